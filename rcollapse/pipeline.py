"""Runs one job: validate the config, seed, run the chosen stage, write what every run leaves.

Every run dir holds the resolved config (``config_resolved.yaml``; Hydra's ``.hydra/`` beside
it), ``status.json`` (running → completed | failed, with the traceback), ``metrics.json``
(the final metrics, flat keys as logged), figures and checkpoints.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from rcollapse.config_checks import validate_config


def _write_json(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
    tmp.replace(path)


def _finish_wandb(exit_code: int) -> None:
    """Close the W&B run (if any) so that the jobs of a multirun never merge into one run."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=exit_code)
        if os.environ.get("WANDB_MODE") == "offline":
            print("W&B run saved offline; upload it with `wandb sync <run dir>/wandb/offline-run-*`")


def run(cfg: DictConfig) -> float | None:
    """Run ``cfg.stage`` and return ``cfg.optimized_metric`` (for Hydra sweepers), if set."""
    validate_config(cfg)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WANDB_MODE", "offline")
    # Lightning has its own console handler; without this, Hydra's root handler prints it twice.
    logging.getLogger("lightning.pytorch").propagate = False
    (output_dir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    status_path = output_dir / "status.json"
    _write_json(status_path, {"status": "running", "stage": cfg.stage.name})
    try:
        L.seed_everything(cfg.seed, workers=True)
        stage_runner = instantiate(cfg.stage.runner)
        metrics = stage_runner(cfg, output_dir)
    except BaseException as err:
        _write_json(status_path, {
            "status": "failed",
            "stage": cfg.stage.name,
            "error": f"{type(err).__name__}: {err}",
            "traceback": traceback.format_exc(),
        })
        _finish_wandb(exit_code=1)
        raise
    _finish_wandb(exit_code=0)
    _write_json(output_dir / "metrics.json", metrics)
    _write_json(status_path, {"status": "completed", "stage": cfg.stage.name})
    key = cfg.get("optimized_metric")
    return metrics.get(key) if key else None
