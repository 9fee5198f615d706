"""stage=ppo through the pipeline, offline: the shared ensemble, the judge, the files, resume."""

import json

import pytest

from rcollapse.pipeline import run
from tests.conftest import compose_config

SMALL = [
    "stage=ppo", "stage.batch_size=16", "stage.num_updates=4", "stage.checkpoint_every_n_updates=2",
    "stage.module.ppo_epochs=1", "stage.module.num_minibatches=2",
    "dataset.num_train=128", "dataset.num_test=32",
    "model.sft_steps=50", "trainer.enable_progress_bar=false",
    "stage.ensemble_overrides=['stage.ensemble.num_heads=3','stage.max_steps=30','stage.ensemble.head_epochs=1',"
    "'dataset.num_train=256','dataset.num_test_per_section=8']",
]
KEYS = ("ppo/train/score", "ppo/train/kl", "ppo/train/weighted_kl", "ppo/train/beta", "ppo/train/approx_kl",
        "ppo/train/clipfrac", "ppo/train/entropy", "ppo/train/value_loss", "ppo/train/explained_var",
        "ppo/test/judge_mean", "ppo/test/judge_mean_ref")

# ppo_run (tests/conftest.py): one SMALL run per test process, its cache shared with test_wandb_logger.py


def test_ppo_stage_writes_every_metric_and_file(ppo_run):
    out = ppo_run / "run"
    metrics = json.loads((out / "metrics.json").read_text())
    for key in KEYS:
        assert key in metrics, key
    assert metrics["ppo/train/beta"] == pytest.approx(0.05)
    assert (out / "figures" / "ppo_training.png").stat().st_size > 5000
    import csv

    history = list(csv.DictReader((out / "ppo_history.csv").open()))
    assert [r["step"] for r in history] == ["0", "1", "2", "3"]  # one row per iteration
    # the judge ran at iteration 0 (every 10) and at the last, on the policy and (once) the reference
    judged = [r["step"] for r in history if r["ppo/eval/judge_mean"]]
    assert judged == ["0", "3"]
    assert history[0]["ppo/eval/judge_mean_ref"] == history[3]["ppo/eval/judge_mean_ref"]
    # the over-optimisation points: proxy and KL of the same judged responses, at the same iterations
    assert [r["step"] for r in history if r["ppo/eval/proxy_mean"] and r["ppo/eval/kl"]] == judged
    samples = (out / "ppo_samples.csv").read_text().splitlines()
    assert samples[0] == "step,prompt,response,score,variance,weight" and len(samples) > 1
    # every judged response (π0's once, the policy's at 0 and 3) with gold, proxy and σ², and the
    # uncertainty quality on them
    rows = list(csv.DictReader((out / "ppo_judged_samples.csv").open()))
    assert [(r["policy"], r["step"]) for r in rows] == [("reference", "-1")] * 32 + [("policy", "0")] * 32 + [("policy", "3")] * 32
    assert all(float(r["variance"]) >= 0 for r in rows)
    assert metrics["ppo/test/uq/num_samples"] == 96 and -1 <= metrics["ppo/test/uq/spearman_var_abs_error"] <= 1
    assert metrics["ppo/test/uq/var_last_over_ref"] > 0
    logged = list(csv.DictReader((out / "csv" / "metrics.csv").open()))  # the final metrics reach the CSV log
    assert sum(1 for r in logged if r.get("ppo/train/kl")) == 4
    finals = [r for r in logged if r.get("ppo/test/judge_mean")]
    assert len(finals) == 1 and float(finals[0]["ppo/test/judge_mean"]) == pytest.approx(metrics["ppo/test/judge_mean"])
    judged = json.loads((out / "judge_scores.json").read_text())
    assert len(judged["policy_scores"]) == len(judged["reference_scores"]) == 32
    assert (ppo_run / "cache" / "ppo_ensembles").is_dir()  # the offline ensemble, trained once


def test_vanilla_arm_reuses_the_shared_ensemble_and_weights_are_one(ppo_run, tmp_path, capsys, caplog):
    run(compose_config([*SMALL, "ppo_arm=vanilla", f"paths.cache_dir={ppo_run / 'cache'}"], tmp_path))
    assert "training the offline reward ensemble" not in capsys.readouterr().out
    # the fallback to the offline ensemble is said, with the artifact it used
    assert any(r.levelname == "WARNING" and r.getMessage().startswith("stage.ensemble_path is null: the offline "
               "policy is scored by the offline ensemble") and str(ppo_run / "cache" / "ppo_ensembles") in r.getMessage()
               for r in caplog.records)
    lines = (tmp_path / "run" / "ppo_samples.csv").read_text().splitlines()[1:]
    assert all(line.rsplit(",", 1)[1] == "1.0" for line in lines)


def test_a_resumed_run_continues_from_its_last_checkpoint(ppo_run, capsys):
    out = ppo_run / "run"
    run(compose_config([*SMALL, "stage.num_updates=6", f"resume={out}", "resume_force=true", f"paths.cache_dir={ppo_run / 'cache'}"],
                       ppo_run))
    printed = capsys.readouterr().out
    assert "resuming from" in printed and "last.ckpt" in printed
    import torch

    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    assert state["global_step"] == 6 * 2 and "kl_controller" in state and "rng_state" in state
    assert not any(k.startswith("reference.") for k in state["state_dict"])  # π0 is rebuilt, not saved
    # the history and the samples cover the whole run, the interrupted part included, once each
    history = (out / "ppo_history.csv").read_text().splitlines()
    assert [line.split(",", 1)[0] for line in history[1:]] == [str(i) for i in range(6)]
    samples = (out / "ppo_samples.csv").read_text().splitlines()[1:]
    assert [line.split(",", 1)[0] for line in samples] == ["0"] * 4  # iteration 0, 4 samples, not repeated
    metrics = json.loads((out / "metrics.json").read_text())
    import csv

    rows = list(csv.DictReader((out / "ppo_history.csv").open()))
    # the judged iterations' curve, the interrupted part's (0, and 3: its last) included
    assert [r["step"] for r in rows if r["ppo/eval/kl"] and r["ppo/eval/proxy_mean"]] == ["0", "3", "5"]
    kls = [float(r["ppo/train/kl"]) for r in rows]
    assert metrics["ppo/final/kl"] == pytest.approx(sum(kls) / len(kls))  # window 10 > 6 iterations
    assert metrics["ppo/train/kl"] == pytest.approx(kls[-1])


def test_a_run_that_crashes_mid_training_resumes_to_the_uninterrupted_result(ppo_run, tmp_path, monkeypatch):
    """Killed after iteration 4's checkpoint (of 6), resumed: the same policy, history and metrics as
    a run that was never interrupted (RNG, optimiser, KL controller and prompt order restored)."""
    from rcollapse.stages.ppo_module import VarianceKLPPOModule

    common = [*SMALL, "stage.num_updates=6", f"paths.cache_dir={ppo_run / 'cache'}",
              "ppo_arm=small_variance_aware", "stage.module.sample_every_n_steps=2"]
    run(compose_config(common, tmp_path / "straight"))
    steps_per_iteration = 2  # ppo_epochs=1 x num_minibatches=2
    original = VarianceKLPPOModule.training_step

    def crash_in_iteration_5(self, prompts, batch_idx):
        if self.global_step >= 4 * steps_per_iteration:
            raise RuntimeError("node lost")
        return original(self, prompts, batch_idx)

    monkeypatch.setattr(VarianceKLPPOModule, "training_step", crash_in_iteration_5)
    with pytest.raises(RuntimeError, match="node lost"):
        run(compose_config(common, tmp_path / "crashed"))
    monkeypatch.undo()
    crashed = tmp_path / "crashed" / "run"
    assert json.loads((crashed / "status.json").read_text())["status"] == "failed"
    run(compose_config([*common, f"resume={crashed}"], tmp_path / "crashed"))

    straight = tmp_path / "straight" / "run"
    expected, resumed = (json.loads((d / "metrics.json").read_text()) for d in (straight, crashed))
    for key in ("ppo/train/score", "ppo/train/kl", "ppo/train/beta", "ppo/final/kl", "ppo/test/judge_mean"):
        assert resumed[key] == pytest.approx(expected[key], rel=1e-4, abs=1e-6), key
    assert (crashed / "ppo_history.csv").read_text().count("\n") == 1 + 6
    assert (crashed / "ppo_samples.csv").read_text() == (straight / "ppo_samples.csv").read_text()
    assert (crashed / "ppo_judged_samples.csv").read_text() == (straight / "ppo_judged_samples.csv").read_text()
