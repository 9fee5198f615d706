"""Shared test helpers: compose the project's Hydra config in-process, offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"

# A few optimiser steps of the tiny model on a few prompts: seconds on a CPU.
FAST_TRAINING = [
    "stage.max_steps=6",
    "stage.val_every_n_steps=3",
    "stage.checkpoint_every_n_steps=3",
    "dataset.num_train=16",
    "dataset.num_test=8",
    "dataset.batch_size=4",
    "dataset.train_probe_size=4",
    "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=2",
]


if os.environ.get("PYTEST_XDIST_WORKER"):
    # One intra-op thread per xdist worker: two workers on two cores, not four threads fighting.
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def _command_line_run(args) -> str | None:
    """The project's command line in a subprocess's arguments: `run.py` or `-m rcollapse...`."""
    words = [str(w) for w in args] if isinstance(args, (list, tuple)) else str(args).split()
    for i, word in enumerate(words):
        if word.endswith("run.py") or (word == "-m" and words[i + 1:i + 2] and words[i + 1].startswith("rcollapse")):
            return " ".join(words[i:i + 2])
    return None


@pytest.fixture(autouse=True)
def _command_line_runs_are_marked_e2e(request, monkeypatch):
    """`make test` stays in-process: a test that starts run.py or `python -m rcollapse...` must be
    marked e2e (run by `make test-e2e`), slow or slurm."""
    if any(request.node.get_closest_marker(name) for name in ("e2e", "slow", "slurm")):
        return
    import subprocess

    original = subprocess.Popen.__init__

    def checked(self, args, *rest, **kwargs):
        command = _command_line_run(args)
        if command is not None:
            raise AssertionError(f"{request.node.nodeid} starts `{command}` in a subprocess: mark it "
                                 "@pytest.mark.e2e (run by `make test-e2e`), or call the code in-process")
        original(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", checked)


@pytest.fixture(scope="session")
def fast_reward_run(tmp_path_factory):
    """``fast_reward_run(utility)``: the run dir of stage=reward with ``utility=<utility>`` and
    FAST_TRAINING, trained once per test process (per xdist worker) and shared by the tests that
    only read what such a run leaves (they must not write into it)."""
    runs: dict[str, Path] = {}

    def reward_run(utility: str) -> Path:
        if utility not in runs:
            from rcollapse.pipeline import run

            tmp = tmp_path_factory.mktemp(f"reward_{utility}")
            run(compose_config([f"utility={utility}", *FAST_TRAINING], tmp))
            runs[utility] = tmp / "run"
        return runs[utility]

    return reward_run


@pytest.fixture(scope="session")
def ppo_run(tmp_path_factory) -> Path:
    """stage=ppo with tests/test_ppo_stage.py's SMALL, once per test process: the dir holding the
    run (``run/``) and its cache (``cache/``: the SFT policy and the offline reward ensemble, which
    the tests' other SMALL PPO runs reuse instead of training them again: measured 46 s for a
    fresh run, 2 s for one that finds them). Under xdist, once per worker that needs it."""
    from rcollapse.pipeline import run
    from tests.test_ppo_stage import SMALL

    tmp = tmp_path_factory.mktemp("ppo")
    run(compose_config(SMALL, tmp))
    return tmp


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to reach the network (a TCP connect, the hub probe) fails the test at once.

    "Fails fast offline" means: no connection is tried, so nothing waits on a timeout or a retry.
    """
    import socket

    from rcollapse.data import hub_access

    def refuse(*args, **kwargs):
        raise AssertionError(f"a network connection was attempted: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(hub_access, "_probe", refuse)  # also a probe answered from its cache


def compose_config(overrides: list[str], tmp_path: Path):
    """The composed config with run paths under ``tmp_path`` (no Hydra runtime needed)."""
    from rcollapse.config.resolvers import register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(
            "config",
            overrides=[f"paths.output_dir={tmp_path / 'run'}", f"paths.cache_dir={tmp_path / 'cache'}", *overrides],
        )


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))
