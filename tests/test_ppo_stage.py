"""stage=ppo through the pipeline, offline: the shared ensemble, the judge, the files, resume."""

import json

import pytest

from rcollapse.pipeline import run
from tests.conftest import compose_config

SMALL = [
    "stage=ppo", "stage.batch_size=16", "stage.num_updates=4", "stage.checkpoint_every_n_updates=2",
    "stage.module.ppo_epochs=1", "stage.module.num_minibatches=2",
    "dataset.datamodule.source.num_train=128", "dataset.datamodule.source.num_test=32",
    "model.sft_steps=50", "trainer.enable_progress_bar=false",
    "stage.ensemble_overrides=['stage.ensemble.num_heads=3','stage.max_steps=30','stage.ensemble.head_epochs=1',"
    "'dataset.datamodule.train_source.num_train=256','dataset.datamodule.train_source.num_test_per_section=8']",
]
KEYS = ("ppo/train/score", "ppo/train/kl", "ppo/train/weighted_kl", "ppo/train/beta", "ppo/train/approx_kl",
        "ppo/train/clipfrac", "ppo/train/entropy", "ppo/train/value_loss", "ppo/train/explained_var",
        "ppo/test/judge_mean", "ppo/test/judge_mean_ref")


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ppo")
    run(compose_config(SMALL, tmp))
    return tmp


def test_ppo_stage_writes_every_metric_and_file(ppo_run):
    out = ppo_run / "run"
    metrics = json.loads((out / "metrics.json").read_text())
    for key in KEYS:
        assert key in metrics, key
    assert metrics["ppo/train/beta"] == pytest.approx(0.05)
    assert (out / "figures" / "ppo_training.png").stat().st_size > 5000
    samples = (out / "ppo_samples.csv").read_text().splitlines()
    assert samples[0] == "step,prompt,response,score,variance,weight" and len(samples) > 1
    judged = json.loads((out / "judge_scores.json").read_text())
    assert len(judged["policy_scores"]) == len(judged["reference_scores"]) == 32
    assert (ppo_run / "cache" / "ppo_ensembles").is_dir()  # the offline ensemble, trained once


def test_vanilla_arm_reuses_the_shared_ensemble_and_weights_are_one(ppo_run, tmp_path, capsys):
    run(compose_config([*SMALL, "stage.module.variance_weighted=false", f"paths.cache_dir={ppo_run / 'cache'}"],
                       tmp_path))
    assert "training the offline reward ensemble" not in capsys.readouterr().out
    lines = (tmp_path / "run" / "ppo_samples.csv").read_text().splitlines()[1:]
    assert all(line.rsplit(",", 1)[1] == "1.0" for line in lines)


def test_a_resumed_run_continues_from_its_last_checkpoint(ppo_run, capsys):
    out = ppo_run / "run"
    run(compose_config([*SMALL, "stage.num_updates=6", f"resume={out}", f"paths.cache_dir={ppo_run / 'cache'}"],
                       ppo_run))
    printed = capsys.readouterr().out
    assert "resuming from" in printed and "last.ckpt" in printed
    import torch

    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    assert state["global_step"] == 6 * 2 and "kl_controller" in state and "rng_state" in state
    assert not any(k.startswith("reference.") for k in state["state_dict"])  # π0 is rebuilt, not saved
