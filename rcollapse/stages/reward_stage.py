"""Builds the ranking reward stage from the config and runs it: fit, then test on test/train prompts."""

from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from rcollapse.config.resolvers import config_choice
from rcollapse.runs.checkpoint_files import checkpoint_callback
from rcollapse.runs.checkpointed_metrics import metrics_after_fit
from rcollapse.runs.training_run import (
    build_loggers,
    build_trainer,
    final_metrics,
    resolve_ckpt_path,
    resuming_quietly,
)
from rcollapse.stages.collapse_figures import CollapseFiguresCallback
from rcollapse.stages.common_checks import dropout_enabled
from rcollapse.stages.reward_diagnostics_callback import RewardDiagnosticsCallback


def run_reward_stage(cfg: DictConfig, output_dir: Path) -> dict[str, float]:
    tokenizer = instantiate(cfg.model.tokenizer)
    backbone = instantiate(cfg.model.backbone, tokenizer=tokenizer)
    reward_model = instantiate(cfg.model.reward_model, backbone=backbone)
    utility = instantiate(cfg.utility)
    datamodule = instantiate(cfg.dataset, tokenizer=tokenizer)
    module = instantiate(
        cfg.stage.module,
        reward_model=reward_model,
        utility=utility,
        optimizer=instantiate(cfg.stage.optimizer),
        test_split_names=list(datamodule.test_split_names),
        dropout=dropout_enabled(cfg.model.get("dropout", True)),
    )
    tokenizer.save_pretrained(str(output_dir / "tokenizer"))

    checkpoints = checkpoint_callback(output_dir / "checkpoints", cfg.stage.checkpoint_every_n_steps)
    choice = config_choice("utility")
    title = f"utility={choice if choice != 'unknown' else cfg.utility._target_.rsplit('.', 1)[-1]}"
    callbacks = [checkpoints, CollapseFiguresCallback(str(output_dir), title=title),
                 RewardDiagnosticsCallback(str(output_dir), title=title)]
    trainer = build_trainer(cfg, callbacks, build_loggers(cfg))
    ckpt_path = resolve_ckpt_path(cfg, output_dir)
    if ckpt_path:
        print(f"resuming from {ckpt_path}")
    with resuming_quietly(ckpt_path):
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    fit_metrics = metrics_after_fit(trainer, module, datamodule)  # also after a resume at the last step
    trainer.test(module, datamodule=datamodule, verbose=False)
    metrics = final_metrics(fit_metrics, trainer.callback_metrics)
    # completions model.max_length cut (check_truncation warned when any were)
    metrics.update({f"rm/data/truncated_{split}": float(n) for split, n in datamodule.truncated.items()})
    metrics.update(source_stats_metrics(getattr(datamodule, "source", None)))  # e.g. rm/data/stack_exchange/*
    print_summary(metrics, output_dir)
    return metrics


def source_stats_metrics(source) -> dict[str, float]:
    """``rm/data/<name>/<count>`` for a source that reports counts about its data: a ``stats`` dict
    of numbers filled by its ``load()``, ``<name>`` its ``stats_name`` (e.g. StackExchange's
    selection and ties); nothing for a source without them."""
    stats = getattr(source, "stats", None)
    if not isinstance(stats, dict):
        return {}
    name = getattr(source, "stats_name", type(source).__name__)
    return {f"rm/data/{name}/{key}": float(value) for key, value in stats.items()}


SUMMARY_KEYS = (
    "rm/val/pair_acc", "rm/test/pair_acc", "rm/test/open_closed_distance", "rm/train/open_closed_distance",
    "rm/test/open_w1_uniform", "rm/test/closed_w1_two_point",
)


def print_summary(metrics: dict[str, float], output_dir: Path) -> None:
    width = max(len(k) for k in SUMMARY_KEYS)
    lines = [f"  {k:<{width}}  {metrics[k]:.4f}" for k in SUMMARY_KEYS if k in metrics]
    print("\n".join(["", f"reward stage finished; outputs in {output_dir}", *lines, ""]))
