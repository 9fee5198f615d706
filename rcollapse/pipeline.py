"""Runs one job: validate the config, seed, run the chosen stage, write what every run leaves.

Every run dir holds the resolved config (``config_resolved.yaml``; Hydra's ``.hydra/`` beside
it), ``status.json`` (running → completed | failed, with the traceback), ``metrics.json``
(the final metrics, flat keys as logged), figures and checkpoints.
"""

from __future__ import annotations

import json
import os
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


def run(cfg: DictConfig) -> float | None:
    """Run ``cfg.stage`` and return ``cfg.optimized_metric`` (for Hydra sweepers), if set."""
    validate_config(cfg)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WANDB_MODE", "offline")
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
        raise
    _write_json(output_dir / "metrics.json", metrics)
    _write_json(status_path, {"status": "completed", "stage": cfg.stage.name})
    key = cfg.get("optimized_metric")
    return metrics.get(key) if key else None
