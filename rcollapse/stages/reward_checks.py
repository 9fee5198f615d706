"""``stage=reward``'s config checks (``stage.checks``), before any data or model is built."""

from __future__ import annotations

from omegaconf import DictConfig

from rcollapse.stages.common_checks import check_stage_data, check_stage_model, dropout_enabled

DATA_SETS = "dataset=length_offline|longform_length|stack_exchange|stack_exchange_offline|rankings_jsonl"
MODELS = "model=tiny|minilm|deberta|gpt_neo|gemma_2b"


def check_reward_config(cfg: DictConfig) -> None:
    """Ranking data, a reward model's backbone, a valid ``model.dropout``."""
    check_stage_data(cfg, "RankingDataModule", DATA_SETS)
    check_stage_model(cfg, "backbone", "a reward model's backbone", MODELS)
    if "model" in cfg and cfg.model is not None:
        dropout_enabled(cfg.model.get("dropout", True))
