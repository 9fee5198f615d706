"""``stage=ppo``'s config checks (``stage.checks``), before the SFT warm-up, the ensemble or a
download."""

from __future__ import annotations

from omegaconf import DictConfig

from rcollapse.config.checks import ConfigError, require
from rcollapse.maths.ppo_objective import KL_ESTIMATORS, KL_WEIGHTS, REWARD_COMBINATIONS
from rcollapse.models.ensemble_artifact import SCALES
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
    require(s.get("ensemble_scale") in SCALES, "stage.ensemble_scale",
            f"must be one of {', '.join(SCALES)} (raw: the heads as trained, the paper's scale; normalised: "
            f"z-scored heads), got {s.get('ensemble_scale')!r}")
    check_kl_calibration(s)
    check_judge_sizes(s)
    try:
        PPOIterationSizes(int(s.batch_size), int(module.num_minibatches), int(module.ppo_epochs))
    except PPOSizeError as err:
        raise ConfigError(str(err)) from None


ADAPTIVE = "rcollapse.maths.ppo_objective.AdaptiveKLController"


def check_kl_calibration(s: DictConfig) -> None:
    """``stage.kl_controller``: β >= 0; an adaptive controller's target > 0; and a calibration
    (``freeze_after``, the KL matching of the paper arms) that ends with a fixed β for the final
    KL: it freezes before the last iteration, and ``stage.final_window`` (the iterations whose mean
    KL is the report's final KL) lies in the fixed-β part."""
    controller = s.kl_controller
    require(float(controller.get("beta", 0)) >= 0, "stage.kl_controller.beta", f"must be >= 0, got {controller.get('beta')}")
    if "target" in controller:
        require(float(controller.target) > 0, "stage.kl_controller.target", f"must be > 0, got {controller.target}")
    if "horizon" in controller:
        require(float(controller.horizon) > 0, "stage.kl_controller.horizon", f"must be > 0, got {controller.horizon}")
    freeze_after = controller.get("freeze_after")
    require(freeze_after is None or (isinstance(freeze_after, int) and not isinstance(freeze_after, bool)
                                     and freeze_after >= 0),
            "stage.kl_controller.freeze_after", f"must be an integer >= 0 or null, got {freeze_after!r}")
    adaptive = controller.get("_target_") == ADAPTIVE
    for key in ("target", "horizon", "freeze_after"):
        require(adaptive or key not in controller, f"stage.kl_controller.{key}",
                f"belongs to the adaptive controller ({ADAPTIVE}), but stage.kl_controller._target_ is "
                f"{controller.get('_target_')}: drop the key or use the adaptive controller")
    if freeze_after is None:
        return
    updates, window = int(s.num_updates), int(s.final_window)
    require(freeze_after < updates, "stage.kl_controller.freeze_after",
            f"is {freeze_after}, but the run has stage.num_updates={updates} iterations: β would never be fixed "
            f"(the calibration must end before the run does)")
    require(window <= updates - freeze_after, "stage.final_window",
            f"is {window}, but only {updates - freeze_after} iterations run at the fixed β "
            f"(stage.num_updates={updates} - stage.kl_controller.freeze_after={freeze_after}): the final KL "
            f"would mix calibration iterations in; lower stage.final_window or freeze earlier")


def _count(node) -> bool:
    return isinstance(node, int) and not isinstance(node, bool)


def check_judge_sizes(s: DictConfig) -> None:
    """``stage.judge_num_prompts`` (an integer >= 1, or null: every test prompt),
    ``stage.judge_every_n_updates`` (>= 0) and ``stage.judge_batch_size`` (>= 1)."""
    num = s.get("judge_num_prompts")
    require(num is None or (_count(num) and num >= 1), "stage.judge_num_prompts",
            f"must be an integer >= 1, or null for every test prompt, got {num!r}")
    every = s.get("judge_every_n_updates", 0)
    require(_count(every) and every >= 0, "stage.judge_every_n_updates",
            f"must be an integer >= 0 (0: judge only after training), got {every!r}")
    size = s.get("judge_batch_size", 64)
    require(_count(size) and size >= 1, "stage.judge_batch_size", f"must be an integer >= 1, got {size!r}")
