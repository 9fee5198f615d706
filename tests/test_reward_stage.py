"""The reward stage trains end to end for every utility and leaves its outputs."""

import json
import subprocess
import sys

import pytest

from rcollapse.pipeline import run
from rcollapse.runs.training_run import NonFiniteLossError
from tests.conftest import FAST_TRAINING, REPO, compose_config, group_options

EXPECTED_KEYS = {
    "rm/train/loss", "rm/val/loss", "rm/val/pair_acc", "rm/val/open_closed_distance",
    "rm/test/open_closed_distance", "rm/test/pair_acc", "rm/test/open_reward_rank1",
    "rm/test/closed_reward_rank8", "rm/train/open_closed_distance",
    "rm/test/theory_distance_open", "rm/test/theory_distance_closed",
}


@pytest.mark.parametrize("utility", group_options("utility"))
def test_short_training_run_for_every_utility(utility, fast_reward_run):
    out = fast_reward_run(utility)  # stage=reward, utility=<utility>, FAST_TRAINING (tests/conftest.py)
    metrics = json.loads((out / "metrics.json").read_text())
    assert EXPECTED_KEYS <= set(metrics), EXPECTED_KEYS - set(metrics)
    assert all(isinstance(v, float) for k, v in metrics.items() if k != "cost/device")  # the one string
    assert json.loads((out / "status.json").read_text())["status"] == "completed"
    for name in ("rewards_by_rank_test.png", "rewards_by_rank_train.png", "rewards_over_training.png"):
        assert (out / "figures" / name).stat().st_size > 1000
    assert (out / "checkpoints" / "last.ckpt").exists()
    assert (out / "config_resolved.yaml").exists()


def test_non_finite_loss_stops_with_a_clear_error_and_keeps_the_status(tmp_path):
    # eps: 0 is the un-shifted x_inv (for the theory): U(0) = −inf, so training must refuse.
    cfg = compose_config(["utility=x_inv", "utility.eps=0", *FAST_TRAINING], tmp_path)
    with pytest.raises(NonFiniteLossError, match="rm/train/loss"):
        run(cfg)
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["status"] == "failed" and "NonFiniteLossError" in status["error"]


def test_resume_from_last_checkpoint_continues_the_step_count(tmp_path):
    cfg = compose_config(["utility=x", *FAST_TRAINING], tmp_path)
    run(cfg)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    import torch

    assert torch.load(ckpt, weights_only=False)["global_step"] == 6
    cfg = compose_config(["utility=x", *FAST_TRAINING, "stage.max_steps=9", "ckpt_path=last", "resume_force=true"],
                         tmp_path)
    run(cfg)
    assert torch.load(ckpt, weights_only=False)["global_step"] == 9


@pytest.mark.e2e
def test_run_py_end_to_end_and_two_job_multirun_with_report(tmp_path):
    sweep_dir = tmp_path / "sweep"
    cmd = [sys.executable, "run.py", "-m", "utility=x,adaptive", f"hydra.sweep.dir={sweep_dir}",
           f"paths.cache_dir={tmp_path / 'cache'}", *FAST_TRAINING]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for job in ("0", "1"):
        assert (sweep_dir / job / "metrics.json").exists()
        assert (sweep_dir / job / ".hydra" / "overrides.yaml").exists()
    report = subprocess.run([sys.executable, "-m", "rcollapse.report", str(sweep_dir)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    assert "adaptive" in report.stdout and "open_closed_distance" in report.stdout
    assert (sweep_dir / "report.csv").exists()


def test_own_rankings_with_varying_numbers_of_completions_train(tmp_path):
    import random

    rng = random.Random(0)

    def rows(count):
        out = []
        for k in range(count):
            n = rng.randint(2, 6)
            completions = [" ".join(["word"] * (3 * (i + 1))) for i in range(n)]
            out.append({"id": f"q{k}", "prompt": f"question {k}", "completions": completions,
                        "ranking": list(range(n))[::-1], "type": rng.choice(["open", "closed"])})
        return "\n".join(json.dumps(r) for r in out) + "\n"

    (tmp_path / "train.jsonl").write_text(rows(12))
    (tmp_path / "test.jsonl").write_text(rows(6))
    overrides = [o for o in FAST_TRAINING if not o.startswith("dataset.num_")]
    cfg = compose_config(["dataset=rankings_jsonl", "utility=adaptive", *overrides,
                          f"dataset.train_path={tmp_path / 'train.jsonl'}",
                          f"dataset.test_path={tmp_path / 'test.jsonl'}"], tmp_path)
    run(cfg)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "rm/test/open_reward_rank2" in metrics


def test_malformed_row_stops_before_training_and_names_the_line(tmp_path):
    from rcollapse.data.ranking_rows import MalformedRowError

    good = {"prompt": "p", "completions": ["a b", "a"], "type": "open"}
    tied = {**good, "ranking": [0, 0]}
    (tmp_path / "train.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(tied) + "\n")
    (tmp_path / "test.jsonl").write_text(json.dumps(good) + "\n")
    overrides = [o for o in FAST_TRAINING if not o.startswith("dataset.num_")]
    cfg = compose_config(["dataset=rankings_jsonl", *overrides,
                          f"dataset.train_path={tmp_path / 'train.jsonl'}",
                          f"dataset.test_path={tmp_path / 'test.jsonl'}"], tmp_path)
    with pytest.raises(MalformedRowError, match=r"train.jsonl, line 2.*ties"):
        run(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_crashed_run_resumed_keeps_every_logged_step_once(tmp_path, monkeypatch):
    """Issue 16, item 1: Lightning's CSV logger deleted csv/metrics.csv on resume."""
    import csv

    import pytest

    from rcollapse.stages.ranking_reward_module import RankingRewardModule

    original = RankingRewardModule.training_step

    def crash_at_step_4(self, batch, batch_idx):
        if self.global_step >= 4:
            raise RuntimeError("node lost")
        return original(self, batch, batch_idx)

    common = ["utility=x", *FAST_TRAINING, "trainer.log_every_n_steps=1"]
    monkeypatch.setattr(RankingRewardModule, "training_step", crash_at_step_4)
    with pytest.raises(RuntimeError, match="node lost"):
        run(compose_config(common, tmp_path))
    monkeypatch.undo()
    out = tmp_path / "run"
    before = [r for r in csv.DictReader((out / "csv" / "metrics.csv").open()) if r.get("rm/train/loss")]
    assert [int(r["step"]) for r in before] == [0, 1, 2, 3]
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(compose_config([*common, f"resume={out}"], tmp_path))
    # a resume finds the run's own checkpoints there by design: Lightning's warning is not shown
    assert not [w for w in caught if "exists and is not empty" in str(w.message)]
    rows = list(csv.DictReader((out / "csv" / "metrics.csv").open()))
    train_steps = [int(r["step"]) for r in rows if r.get("rm/train/loss")]
    assert train_steps == [0, 1, 2, 3, 4, 5]  # the interrupted part kept, step 3 (after the checkpoint) once
    assert [r["rm/train/loss"] for r in rows if r.get("rm/train/loss")][:3] == [r["rm/train/loss"] for r in before][:3]
