"""``stage=ensemble``'s config checks (``stage.checks``), before phase 1."""

from __future__ import annotations

from omegaconf import DictConfig

from rcollapse.config.checks import number as as_number
from rcollapse.config.checks import require
from rcollapse.models.ensemble_artifact import SCALES
from rcollapse.stages.common_checks import check_stage_data, check_stage_model, dropout_enabled
from rcollapse.stages.ensemble_schedule import HEAD_LR_SCHEDULES

DATA_SETS = "dataset=preference_offline|pref_mix|rewardbench"
MODELS = "model=tiny|minilm|deberta|ngram|gpt_neo|gemma_2b"


def check_ensemble_config(cfg: DictConfig) -> None:
    """Every ``stage=ensemble`` choice, before phase 1 (issue 16: a one-head ensemble has no
    variance; a threshold that is not a number failed at step 10, a negative one ran silently)."""
    check_stage_data(cfg, "PreferenceDataModule", DATA_SETS)
    # a saved ensemble (stage.ensemble.artifact) is only evaluated: its model may be bf16
    check_stage_model(cfg, "backbone", "a reward model's backbone", MODELS,
                      trains=not cfg.stage.get("ensemble", {}).get("artifact"))
    if "model" in cfg and cfg.model is not None:
        dropout_enabled(cfg.model.get("dropout", True))
    scale = cfg.stage.get("ensemble_scale")
    require(scale in SCALES, "stage.ensemble_scale",
            f"must be one of {', '.join(SCALES)} (raw: the heads as trained, the paper's scale; normalised: "
            f"z-scored heads), got {scale!r}")
    e = cfg.stage.ensemble
    heads = e.get("num_heads")
    require(isinstance(heads, int) and not isinstance(heads, bool) and heads >= 2, "stage.ensemble.num_heads",
             f"must be an integer >= 2 (one head has no variance to measure), got {heads!r}")
    if e.get("artifact"):
        return  # a saved ensemble is evaluated, nothing trains
    for key, low in (("loss_threshold", 0.0), ("head_loss_threshold", 0.0)):
        value = e.get(key)
        if value is not None:
            number = as_number(value)
            require(number is not None and number > low, f"stage.ensemble.{key}",
                     f"must be a number > {low:g} (a loss) or null (no early stop), got {value!r}")
    for key in ("head_lr", "head_epochs", "head_init_scale"):
        number = as_number(e.get(key))
        require(number is not None and number > 0, f"stage.ensemble.{key}", f"must be a number > 0, got {e.get(key)!r}")
    fraction = as_number(e.get("head_feature_fraction", 1.0))
    require(fraction is not None and 0 < fraction <= 1, "stage.ensemble.head_feature_fraction",
             f"must be a number in (0, 1], got {e.get('head_feature_fraction')!r}")
    epochs = e.get("epochs")
    if epochs is not None:
        number = as_number(epochs)
        require(number is not None and number > 0, "stage.ensemble.epochs",
                f"must be null (phase 1 runs stage.max_steps) or a number > 0 (epochs of the training pairs), "
                f"got {epochs!r}")
    require(e.get("lr_schedule", "constant") in HEAD_LR_SCHEDULES, "stage.ensemble.lr_schedule",
            f"must be one of {', '.join(HEAD_LR_SCHEDULES)}; got {e.get('lr_schedule')!r}")
    schedule = e.get("head_lr_schedule", "constant")
    require(schedule in HEAD_LR_SCHEDULES, "stage.ensemble.head_lr_schedule",
             f"must be one of {', '.join(HEAD_LR_SCHEDULES)}; got {schedule!r}")
