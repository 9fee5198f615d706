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
    validate_stage_data(cfg)
    if "dataset" in cfg and cfg.dataset is not None and "datamodule" in cfg.dataset:
        dm = cfg.dataset.datamodule
        for key in ("batch_size", "eval_batch_size"):
            if key in dm:
                _require(int(dm[key]) > 0, f"dataset.datamodule.{key}", f"must be > 0, got {dm[key]}")


# which data module each training stage reads, and the data sets that provide it
STAGE_DATA = {
    "reward": ("RankingDataModule", "dataset=length_offline|longform_length|rankings_jsonl"),
    "ensemble": ("PreferenceDataModule", "dataset=preference_offline|pref_mix|rewardbench"),
    "ppo": ("PromptDataModule", "dataset=prompts_offline|imdb_prompts"),
}


def validate_stage_data(cfg: DictConfig) -> None:
    """A training stage gets a data set of its kind (rankings for ``reward``, preference pairs
    for ``ensemble``), or the error says which data sets fit."""
    name = cfg.stage.get("name")
    if name not in STAGE_DATA or "dataset" not in cfg or cfg.dataset is None:
        return
    wanted, options = STAGE_DATA[name]
    target = str(cfg.dataset.get("datamodule", {}).get("_target_", ""))
    _require(target.endswith(wanted), "dataset", f"stage={name} needs {wanted} data ({options}), "
             f"got {target.rsplit('.', 1)[-1] or 'none'}")
