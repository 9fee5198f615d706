"""Checks of a composed config that must fail before any training, naming the key.

The generic checks live here (every boolean key holds a boolean, seed, step counts, batch sizes, the
utility's shift); each stage owns its own checks and names them in its config (``stage.checks``: a
``_partial_`` function of the config), so this module imports no stage:
``rcollapse.stages.<stage>_checks``.
"""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from rcollapse.config.boolean_keys import OR_VALUES, boolean_keys


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


_ABSENT = object()


def check_booleans(cfg: DictConfig) -> None:
    """Every key that takes a boolean in the shipped configs (:mod:`rcollapse.config.boolean_keys`)
    holds ``true`` or ``false`` (or what :data:`~rcollapse.config.boolean_keys.OR_VALUES` allows it):
    Hydra reads ``off``, ``no`` or ``abc`` as strings and ``0``/``1`` as integers, which the code
    would take as true or false."""
    for key in sorted(boolean_keys()):
        value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)
        if value is _ABSENT or isinstance(value, bool):
            continue
        other = OR_VALUES.get(key)
        if other is not None and other[1](value):
            continue
        choices = other[0] if other else "true or false"
        raise ConfigError(f"{key}: must be {choices}, got {value!r} ({type(value).__name__}); "
                          f"set {key}=true or {key}=false")


def validate_config(cfg: DictConfig) -> None:
    """Every check of ``cfg``: the generic ones, then the stage's own (``stage.checks``)."""
    for group in ("stage", "paths"):
        require(group in cfg and cfg[group] is not None, group, "missing from the config")
    check_booleans(cfg)  # before anything reads a switch: a string there is true
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
