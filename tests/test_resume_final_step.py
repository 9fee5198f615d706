"""Issue 26, item 2b: a run stopped by SIGTERM right after the checkpoint of its last step, then
resumed, ends with the results of the run never stopped: the last step's training metrics, the
validation that checkpoint preceded (``metrics.json``, ``reward_history.json``, the CSV's rows).

Before: the resumed fit had nothing left to train, so ``metrics.json`` lacked ``rm/train/loss``
and every ``rm/val/*`` (PPO: ``ppo/train/*``; the ensemble: phase 2's train and val keys),
``reward_history.json`` the last validation and the CSV its last rows."""

from __future__ import annotations

import csv
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from rcollapse.pipeline import run
from tests.conftest import FAST_TRAINING, compose_config

COMMON = ["utility=x", *FAST_TRAINING, "stage.max_steps=9", "trainer.log_every_n_steps=1"]  # validations at 3, 6, 9


def _sigterm_at_last_step(monkeypatch, module_class, is_last) -> None:
    """SIGTERM to this process during the training step for which ``is_last(module)`` holds: the
    run checkpoints at that step's end and stops, as under ``kill`` or a scheduler's time-out."""
    original = module_class.training_step

    def step(self, *args, **kwargs):
        if is_last(self):
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(module_class, "training_step", step)


def _interrupted_run(tmp_path: Path, monkeypatch, overrides: list[str], module_class, is_last) -> Path:
    with monkeypatch.context() as patch:
        _sigterm_at_last_step(patch, module_class, is_last)
        with pytest.raises(SystemExit) as stopped:
            run(compose_config(overrides, tmp_path))
    assert stopped.value.code == 128 + signal.SIGTERM
    out = tmp_path / "run"
    assert json.loads((out / "status.json").read_text())["status"] == "interrupted"
    return out


def _step(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=False)["global_step"])


def _metrics(run_dir: Path) -> dict:
    """``metrics.json`` less ``cost/*``: what an attempt cost is its own (a resume that trains no
    step measures no training throughput)."""
    return {k: v for k, v in json.loads((run_dir / "metrics.json").read_text()).items() if not k.startswith("cost/")}


def _assert_same_metrics(resumed: Path, reference: Path, keys_differing: tuple[str, ...] = ()) -> None:
    a, b = _metrics(reference), _metrics(resumed)
    assert sorted(set(a) ^ set(b)) == [], "keys only in one of the runs"
    for key, value in a.items():
        if key in keys_differing:
            continue
        if isinstance(value, float):
            assert b[key] == pytest.approx(value, rel=1e-6, abs=1e-6), key
        else:
            assert b[key] == value, key


def _rows(path: Path) -> list[dict]:
    with path.open() as file:
        return list(csv.DictReader(file))


def _assert_same_rows(resumed: list[dict], reference: list[dict]) -> None:
    assert [(r["step"], sorted(k for k, v in r.items() if v)) for r in resumed] == \
           [(r["step"], sorted(k for k, v in r.items() if v)) for r in reference]
    for mine, theirs in zip(resumed, reference, strict=True):
        for key, value in theirs.items():
            if value and key != "step":
                assert float(mine[key]) == pytest.approx(float(value), rel=1e-6, abs=1e-6), (theirs["step"], key)


def test_a_reward_run_resumed_at_its_last_step_has_the_results_of_the_run_never_stopped(tmp_path, monkeypatch):
    from rcollapse.stages.ranking_reward_module import RankingRewardModule

    run(compose_config(COMMON, tmp_path / "reference"))
    reference = tmp_path / "reference" / "run"
    out = _interrupted_run(tmp_path, monkeypatch, COMMON, RankingRewardModule, lambda m: m.global_step == 8)
    assert _step(out / "checkpoints" / "last.ckpt") == 9  # the last step's, taken before its validation
    assert not (out / "metrics.json").exists()
    run(compose_config([*COMMON, f"resume={out}"], tmp_path))
    assert json.loads((out / "status.json").read_text())["status"] == "completed"
    _assert_same_metrics(out, reference)
    assert "rm/train/loss" in _metrics(out) and "rm/val/pair_acc" in _metrics(out)
    history, expected = (json.loads((d / "reward_history.json").read_text()) for d in (out, reference))
    assert [e["step"] for e in history] == [e["step"] for e in expected] == [3, 6, 9]
    for mine, theirs in zip(history, expected, strict=True):
        assert mine["openness"] == theirs["openness"]
        np.testing.assert_allclose(np.concatenate(mine["rewards"]), np.concatenate(theirs["rewards"]), atol=1e-6)
    _assert_same_rows(_rows(out / "csv" / "metrics.csv"), _rows(reference / "csv" / "metrics.csv"))


@pytest.mark.slow
def test_a_ppo_run_resumed_at_its_last_step_has_the_results_of_the_run_never_stopped(tmp_path, monkeypatch, ppo_run):
    from rcollapse.stages.ppo_module import VarianceKLPPOModule
    from tests.test_ppo_stage import SMALL

    config = [*SMALL, f"paths.cache_dir={ppo_run / 'cache'}"]  # the reference run's SFT policy and ensemble
    out = _interrupted_run(tmp_path, monkeypatch, config, VarianceKLPPOModule,
                           lambda m: m.global_step == m.trainer.max_steps - m.sizes.optimizer_steps)
    assert _step(out / "checkpoints" / "last.ckpt") == 8  # 4 iterations of 2 optimiser steps
    run(compose_config([*config, f"resume={out}"], tmp_path))
    reference = ppo_run / "run"
    _assert_same_metrics(out, reference)
    assert "ppo/train/kl" in _metrics(out)
    _assert_same_rows(_rows(out / "ppo_history.csv"), _rows(reference / "ppo_history.csv"))
    _assert_same_rows(_rows(out / "csv" / "metrics.csv"), _rows(reference / "csv" / "metrics.csv"))


@pytest.mark.slow
def test_an_ensemble_run_resumed_at_its_last_step_has_the_results_of_the_run_never_stopped(tmp_path, monkeypatch):
    from rcollapse.stages.preference_reward_module import PreferenceRewardModule
    from tests.test_ensemble_stage import SMALL

    config = [*SMALL, f"paths.cache_dir={tmp_path / 'cache'}"]
    run(compose_config(config, tmp_path / "reference"))
    out = _interrupted_run(tmp_path, monkeypatch, config, PreferenceRewardModule,  # phase 2's last step
                           lambda m: m.freeze_backbone and m.global_step == m.trainer.max_steps - 1)
    run(compose_config([*config, f"resume={out}"], tmp_path))
    # the pooled features: computed by the reference run, read from its cache by this one
    _assert_same_metrics(out, tmp_path / "reference" / "run", keys_differing=("ens/phase2/features_from_cache",))
    assert "ens/val/acc_mean" in _metrics(out) and "ens/train/loss" in _metrics(out)
