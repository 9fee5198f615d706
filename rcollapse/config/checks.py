"""Checks of a composed config that must fail before any training, naming the key.

The generic checks live here (seed, step counts, batch sizes, the utility's shift); each stage owns
its own checks and names them in its config (``stage.checks``: a ``_partial_`` function of the
config), so this module imports no stage: ``rcollapse.stages.<stage>_checks``.
"""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig


class ConfigError(ValueError):
    """A config value is invalid; the message names the key."""


def require(cond: bool, key: str, message: str) -> None:
    """Raise :class:`ConfigError` ``"{key}: {message}"`` unless ``cond``."""
    if not cond:
        raise ConfigError(f"{key}: {message}")


def number(value) -> float | None:
    """``value`` as a float, or None when it is not a number (a string, a bool, a list)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def validate_config(cfg: DictConfig) -> None:
    """Every check of ``cfg``: the generic ones, then the stage's own (``stage.checks``)."""
    for group in ("stage", "paths"):
        require(group in cfg and cfg[group] is not None, group, "missing from the config")
    require(isinstance(cfg.get("seed"), int), "seed", f"must be an integer, got {cfg.get('seed')!r}")
    stage = cfg.stage
    for key in ("max_steps", "val_every_n_steps", "checkpoint_every_n_steps"):
        if key in stage:
            value = stage[key]
            require(isinstance(value, int) and value > 0, f"stage.{key}", f"must be a positive integer, got {value!r}")
    if "utility" in cfg and cfg.utility is not None:
        eps = cfg.utility.get("eps")
        if eps is not None:
            require(float(eps) >= 0, "utility.eps", f"must be >= 0, got {eps}")
    if stage.get("checks") is not None:
        instantiate(stage.checks)(cfg)
    if "dataset" in cfg and cfg.dataset is not None:
        data = cfg.dataset  # a data set file is its data module's arguments (conf/dataset)
        for key in ("batch_size", "eval_batch_size"):
            if key in data:
                require(int(data[key]) > 0, f"dataset.{key}", f"must be > 0, got {data[key]}")
