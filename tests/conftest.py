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
    "dataset.datamodule.source.num_train=16",
    "dataset.datamodule.source.num_test=8",
    "dataset.datamodule.batch_size=4",
    "dataset.datamodule.train_probe_size=4",
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
