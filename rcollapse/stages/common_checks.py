"""The checks every training stage shares: a data set of the stage's kind, a model group that
builds what the stage trains (with its switches), and ``model.dropout``."""

from __future__ import annotations

from omegaconf import DictConfig

from rcollapse.config.checks import ConfigError, require
from rcollapse.data.data_arguments import check_dataset_config
from rcollapse.models.backbone_options import BackboneOptionError
from rcollapse.models.model_checks import check_model_options

# model.dropout: the checkpoint's dropout active while training, or every dropout probability 0
DROPOUT_CHOICES = {True: True, "on": True, "true": True, False: False, "off": False, "false": False}


def dropout_enabled(value, key: str = "model.dropout") -> bool:
    """``model.dropout`` as a bool: true/on (the checkpoint's rates, as the reward-collapse paper's
    HF-Trainer code trains) or false/off (all dropout off, as TRL's reward trainer)."""
    normalised = value.strip().lower() if isinstance(value, str) else value
    require(normalised in DROPOUT_CHOICES, key, f"must be true (on: the checkpoint's dropout while training) or "
            f"false (off: no dropout), got {value!r}")
    return DROPOUT_CHOICES[normalised]


def check_stage_data(cfg: DictConfig, wanted: str, options: str) -> None:
    """The data set builds the data module the stage reads (``wanted``), or the error says which
    data sets fit (``options``)."""
    if "dataset" not in cfg or cfg.dataset is None:
        return
    target = str(cfg.dataset.get("_target_", ""))  # a data set file is its data module's arguments
    require(target.endswith(wanted), "dataset", f"stage={cfg.stage.name} needs {wanted} data ({options}), "
            f"got {target.rsplit('.', 1)[-1] or 'none'}")
    check_dataset_config(cfg.dataset)  # every dataset.<key> is the module's or its source's argument


def check_stage_model(cfg: DictConfig, part: str, what: str, options: str) -> None:
    """The model group has ``model.{part}`` (``stage=reward model=gpt2`` fails here, naming the
    groups that fit), and its switches are valid (dtype, gradient checkpointing, frozen layers,
    LoRA: before anything loads)."""
    if "model" not in cfg or cfg.model is None:
        return
    require(cfg.model.get(part) is not None, "model", f"stage={cfg.stage.name} needs {what} (a model group with "
            f"model.{part}: {options}); the chosen model group has no model.{part}")
    try:
        check_model_options(cfg.model)
    except BackboneOptionError as err:
        raise ConfigError(str(err)) from err
