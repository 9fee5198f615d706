"""``stage=ppo``'s config checks (``stage.checks``), before the SFT warm-up, the ensemble or a
download."""

from __future__ import annotations

from omegaconf import DictConfig

from rcollapse.config.checks import ConfigError, require
from rcollapse.maths.ppo_objective import KL_ESTIMATORS, KL_WEIGHTS, REWARD_COMBINATIONS
from rcollapse.stages.common_checks import check_stage_data, check_stage_model
from rcollapse.stages.ppo_module import PPOIterationSizes, PPOSizeError

DATA_SETS = "dataset=prompts_offline|imdb_prompts"
MODELS = "model=tiny_gpt2|gpt2"


def check_ppo_config(cfg: DictConfig) -> None:
    """Every ``stage=ppo`` choice, before the SFT warm-up, the ensemble or a download."""
    check_stage_data(cfg, "PromptDataModule", DATA_SETS)
    check_stage_model(cfg, "policy", "a causal-LM policy", MODELS)
    s, module = cfg.stage, cfg.stage.module
    for key, value, choices in (("kl_estimator", module.kl_estimator, KL_ESTIMATORS),
                                ("kl_weight", module.kl_weight, KL_WEIGHTS),
                                ("reward_combination", module.reward_combination, REWARD_COMBINATIONS)):
        require(value in choices, f"stage.module.{key}", f"must be one of {', '.join(choices)}; got {value!r}")
    for key, node in (("stage.batch_size", s.batch_size), ("stage.num_updates", s.num_updates),
                      ("stage.checkpoint_every_n_updates", s.checkpoint_every_n_updates),
                      ("stage.final_window", s.final_window), ("stage.module.max_new_tokens", module.max_new_tokens),
                      ("stage.module.ppo_epochs", module.ppo_epochs),
                      ("stage.module.num_minibatches", module.num_minibatches)):
        require(isinstance(node, int) and not isinstance(node, bool) and node >= 1, key,
                 f"must be an integer >= 1, got {node!r}")
    require(isinstance(module.reward_head, int) and module.reward_head >= 0, "stage.module.reward_head",
             f"must be an integer >= 0 (a head of the ensemble), got {module.reward_head!r}")
    require(float(module.temperature) > 0, "stage.module.temperature", f"must be > 0, got {module.temperature}")
    controller = s.kl_controller
    require(float(controller.get("beta", 0)) >= 0, "stage.kl_controller.beta", f"must be >= 0, got {controller.get('beta')}")
    if "target" in controller:
        require(float(controller.target) > 0, "stage.kl_controller.target", f"must be > 0, got {controller.target}")
    if controller.get("freeze_after") is not None:
        require(int(controller.freeze_after) >= 0, "stage.kl_controller.freeze_after",
                 f"must be >= 0 or null, got {controller.freeze_after}")
    try:
        PPOIterationSizes(int(s.batch_size), int(module.num_minibatches), int(module.ppo_epochs))
    except PPOSizeError as err:
        raise ConfigError(str(err)) from None
