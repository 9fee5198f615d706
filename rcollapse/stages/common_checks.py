"""The checks every training stage shares: a data set of the stage's kind, a model group that
builds what the stage trains (with its switches), and ``model.dropout``."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from rcollapse.config.checks import ConfigError, require
from rcollapse.data.data_arguments import check_dataset_config
from rcollapse.models.backbone_options import BackboneOptionError, plain_value, resolve_dtype
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


def check_stage_model(cfg: DictConfig, part: str, what: str, options: str, trains: bool = True) -> None:
    """The model group has ``model.{part}`` (``stage=reward model=gpt2`` fails here, naming the
    groups that fit), and its switches are valid (dtype, gradient checkpointing, frozen layers,
    LoRA: before anything loads); a model the stage ``trains`` keeps 32-bit weights
    (:func:`check_trained_precision`)."""
    if "model" not in cfg or cfg.model is None:
        return
    require(cfg.model.get(part) is not None, "model", f"stage={cfg.stage.name} needs {what} (a model group with "
            f"model.{part}: {options}); the chosen model group has no model.{part}")
    try:
        check_model_options(cfg.model)
    except BackboneOptionError as err:
        raise ConfigError(str(err)) from err
    if trains:
        check_trained_precision(cfg)


# Lightning precisions that keep the weights themselves (and so AdamW's master copy) in 16 bits
HALF_WEIGHT_PRECISIONS = ("bf16-true", "16-true")


def check_trained_precision(cfg: DictConfig) -> None:
    """A model that trains keeps 32-bit master weights and AdamW state: at ``model.lr`` 1e-5 an
    AdamW step moves a weight by about 1e-5, below half the bfloat16 spacing of any weight above
    ~5e-3 in size (2^-9 of it), so in bf16 weights most updates round away (the uncertainty-aware
    RLHF paper trains with 32-bit AdamW). Refused: ``model.dtype`` bfloat16 with the model fully
    trained (``model.lora`` null; LoRA's adapters are float32 over a frozen bf16 base), and a
    ``trainer.precision`` that casts the weights to 16 bits (``bf16-true``, ``16-true``).
    ``bf16-mixed`` (32-bit weights, bf16 compute) is the way to compute in bf16."""
    model = cfg.model
    dtype = model.get("dtype")
    if dtype is not None and plain_value(model.get("lora")) is None and resolve_dtype(dtype) != torch.float32:
        require(False, "model.dtype", f"{dtype} weights with stage={cfg.stage.name} training the whole model: AdamW's "
                f"steps of about model.lr={model.get('lr')} round away in bf16 weights. Set model.dtype=float32 "
                f"(32-bit master weights and AdamW state; trainer.precision=bf16-mixed still computes in bf16) or "
                f"model.lora={{r: 16, alpha: 32, dropout: 0.05, target_modules: [q_proj, v_proj]}} (a frozen bf16 "
                f"base, float32 adapters); a bf16 model.dtype is for frozen use")
    trainer = cfg.get("trainer")
    precision = str(trainer.get("precision")) if trainer is not None else ""
    require(precision not in HALF_WEIGHT_PRECISIONS, "trainer.precision",
            f"{precision} casts the trained weights and AdamW's master copy to 16 bits (most updates at lr 1e-5 "
            f"round away); use trainer.precision=bf16-mixed (32-bit weights, bf16 compute)")
