"""Checks of a composed config that must fail before any training, naming the key."""

from __future__ import annotations

from omegaconf import DictConfig


class ConfigError(ValueError):
    """A config value is invalid; the message names the key."""


def _require(cond: bool, key: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"{key}: {message}")


def validate_config(cfg: DictConfig) -> None:
    for group in ("stage", "paths"):
        _require(group in cfg and cfg[group] is not None, group, "missing from the config")
    _require(isinstance(cfg.get("seed"), int), "seed", f"must be an integer, got {cfg.get('seed')!r}")
    stage = cfg.stage
    for key in ("max_steps", "val_every_n_steps", "checkpoint_every_n_steps"):
        if key in stage:
            value = stage[key]
            _require(isinstance(value, int) and value > 0, f"stage.{key}", f"must be a positive integer, got {value!r}")
    if "utility" in cfg and cfg.utility is not None:
        eps = cfg.utility.get("eps")
        if eps is not None:
            _require(float(eps) >= 0, "utility.eps", f"must be >= 0, got {eps}")
    if "dataset" in cfg and cfg.dataset is not None and "datamodule" in cfg.dataset:
        dm = cfg.dataset.datamodule
        for key in ("batch_size", "eval_batch_size"):
            if key in dm:
                _require(int(dm[key]) > 0, f"dataset.datamodule.{key}", f"must be > 0, got {dm[key]}")
