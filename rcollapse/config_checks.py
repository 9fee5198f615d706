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
    validate_stage_model(cfg)
    if stage.get("name") == "ppo":
        validate_ppo(cfg)
    if stage.get("name") == "ensemble":
        validate_ensemble(cfg)
    if "dataset" in cfg and cfg.dataset is not None and "datamodule" in cfg.dataset:
        dm = cfg.dataset.datamodule
        for key in ("batch_size", "eval_batch_size"):
            if key in dm:
                _require(int(dm[key]) > 0, f"dataset.datamodule.{key}", f"must be > 0, got {dm[key]}")


# which data module each training stage reads, and the data sets that provide it
STAGE_DATA = {
    "reward": ("RankingDataModule", "dataset=length_offline|longform_length|stack_exchange|stack_exchange_offline|rankings_jsonl"),
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


# which part of a model group each training stage builds, and the model groups that provide it
STAGE_MODEL = {
    "reward": ("backbone", "a reward model's backbone", "model=tiny|minilm|deberta|gpt_neo|gemma_2b"),
    "ensemble": ("backbone", "a reward model's backbone", "model=tiny|minilm|deberta|ngram|gpt_neo|gemma_2b"),
    "ppo": ("policy", "a causal-LM policy", "model=tiny_gpt2|gpt2"),
}
# model.dropout: the checkpoint's dropout active while training, or every dropout probability 0
DROPOUT_CHOICES = {True: True, "on": True, "true": True, False: False, "off": False, "false": False}


def dropout_enabled(value, key: str = "model.dropout") -> bool:
    """``model.dropout`` as a bool: true/on (the checkpoint's rates, as the reward-collapse paper's
    HF-Trainer code trains) or false/off (all dropout off, as TRL's reward trainer)."""
    normalised = value.strip().lower() if isinstance(value, str) else value
    _require(normalised in DROPOUT_CHOICES, key, f"must be true (on: the checkpoint's dropout while training) or "
             f"false (off: no dropout), got {value!r}")
    return DROPOUT_CHOICES[normalised]


def validate_stage_model(cfg: DictConfig) -> None:
    """A training stage gets a model group that builds what it trains (``stage=reward model=gpt2``
    fails here, naming the groups that fit), and ``model.dropout`` is a valid choice."""
    name = cfg.stage.get("name")
    if name not in STAGE_MODEL or "model" not in cfg or cfg.model is None:
        return
    part, what, options = STAGE_MODEL[name]
    _require(cfg.model.get(part) is not None, "model", f"stage={name} needs {what} (a model group with "
             f"model.{part}: {options}); the chosen model group has no model.{part}")
    if name in ("reward", "ensemble"):
        dropout_enabled(cfg.model.get("dropout", True))
    from rcollapse.models.backbone_options import BackboneOptionError, check_model_options

    try:  # dtype, gradient checkpointing, frozen layers, LoRA: checked before anything loads
        check_model_options(cfg.model)
    except BackboneOptionError as err:
        raise ConfigError(str(err)) from err


def _number(value) -> float | None:
    """``value`` as a float, or None when it is not a number (a string, a bool, a list)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def validate_ensemble(cfg: DictConfig) -> None:
    """Every ``stage=ensemble`` choice, before phase 1 (issue 16: a one-head ensemble has no
    variance; a threshold that is not a number failed at step 10, a negative one ran silently)."""
    from rcollapse.stages.ensemble_stage import HEAD_LR_SCHEDULES

    e = cfg.stage.ensemble
    heads = e.get("num_heads")
    _require(isinstance(heads, int) and not isinstance(heads, bool) and heads >= 2, "stage.ensemble.num_heads",
             f"must be an integer >= 2 (one head has no variance to measure), got {heads!r}")
    if e.get("artifact"):
        return  # a saved ensemble is evaluated, nothing trains
    for key, low in (("loss_threshold", 0.0), ("head_loss_threshold", 0.0)):
        value = e.get(key)
        if value is not None:
            number = _number(value)
            _require(number is not None and number > low, f"stage.ensemble.{key}",
                     f"must be a number > {low:g} (a loss) or null (no early stop), got {value!r}")
    for key in ("head_lr", "head_epochs", "head_init_scale"):
        number = _number(e.get(key))
        _require(number is not None and number > 0, f"stage.ensemble.{key}", f"must be a number > 0, got {e.get(key)!r}")
    fraction = _number(e.get("head_feature_fraction", 1.0))
    _require(fraction is not None and 0 < fraction <= 1, "stage.ensemble.head_feature_fraction",
             f"must be a number in (0, 1], got {e.get('head_feature_fraction')!r}")
    schedule = e.get("head_lr_schedule", "constant")
    _require(schedule in HEAD_LR_SCHEDULES, "stage.ensemble.head_lr_schedule",
             f"must be one of {', '.join(HEAD_LR_SCHEDULES)}; got {schedule!r}")


def validate_ppo(cfg: DictConfig) -> None:
    """Every ``stage=ppo`` choice, before the SFT warm-up, the ensemble or a download."""
    from rcollapse.ppo_objective import KL_ESTIMATORS, KL_WEIGHTS, REWARD_COMBINATIONS

    s, module = cfg.stage, cfg.stage.module
    for key, value, choices in (("kl_estimator", module.kl_estimator, KL_ESTIMATORS),
                                ("kl_weight", module.kl_weight, KL_WEIGHTS),
                                ("reward_combination", module.reward_combination, REWARD_COMBINATIONS)):
        _require(value in choices, f"stage.module.{key}", f"must be one of {', '.join(choices)}; got {value!r}")
    for key, node in (("stage.batch_size", s.batch_size), ("stage.num_updates", s.num_updates),
                      ("stage.checkpoint_every_n_updates", s.checkpoint_every_n_updates),
                      ("stage.final_window", s.final_window), ("stage.module.max_new_tokens", module.max_new_tokens),
                      ("stage.module.ppo_epochs", module.ppo_epochs),
                      ("stage.module.num_minibatches", module.num_minibatches)):
        _require(isinstance(node, int) and not isinstance(node, bool) and node >= 1, key,
                 f"must be an integer >= 1, got {node!r}")
    _require(isinstance(module.reward_head, int) and module.reward_head >= 0, "stage.module.reward_head",
             f"must be an integer >= 0 (a head of the ensemble), got {module.reward_head!r}")
    _require(float(module.temperature) > 0, "stage.module.temperature", f"must be > 0, got {module.temperature}")
    controller = s.kl_controller
    _require(float(controller.get("beta", 0)) >= 0, "stage.kl_controller.beta", f"must be >= 0, got {controller.get('beta')}")
    if "target" in controller:
        _require(float(controller.target) > 0, "stage.kl_controller.target", f"must be > 0, got {controller.target}")
    if controller.get("freeze_after") is not None:
        _require(int(controller.freeze_after) >= 0, "stage.kl_controller.freeze_after",
                 f"must be >= 0 or null, got {controller.freeze_after}")
    from rcollapse.stages.ppo_module import PPOIterationSizes, PPOSizeError

    try:
        PPOIterationSizes(int(s.batch_size), int(module.num_minibatches), int(module.ppo_epochs))
    except PPOSizeError as err:
        raise ConfigError(str(err)) from None
