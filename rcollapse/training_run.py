"""What every training stage shares: loggers, checkpoint resolution, the final metrics."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf


@contextlib.contextmanager
def frozen_modules_in_eval_mode():
    """Silences Lightning's "Found N module(s) in eval mode at the start of training" where that is
    intended (a frozen backbone or reference model); every trained part's mode is set explicitly."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training")
        yield


class NonFiniteLossError(FloatingPointError):
    """A training loss became NaN or infinite (the message says what to change and how to resume)."""


def build_loggers(cfg: DictConfig) -> list:
    """The logger group's object(s), each given the whole resolved config as hyperparameters.

    ``logger: null`` logs nowhere.
    """
    if cfg.get("logger") is None:
        return []
    logger = instantiate(cfg.logger)
    loggers = list(logger) if isinstance(logger, list | tuple) else [logger]
    resolved = OmegaConf.to_container(cfg, resolve=True)
    resolved.pop("hydra", None)
    for each in loggers:
        if hasattr(each, "keep_existing"):  # the CSV log keeps the interrupted part of a resumed run
            each.keep_existing = wants_resume(cfg)
        each.log_hyperparams(resolved)
    return loggers


def log_final_metrics(loggers, metrics: dict[str, float], step: int) -> None:
    """Log a run's final (test) metrics through every logger and write them out now: after
    ``trainer.fit``/``test`` nothing else flushes a logger, and a CSV logger only buffers until
    ``save()`` (so ``ens/test/*``, ``ppo/test/*`` reach ``csv/metrics.csv`` and W&B, not only
    ``metrics.json``)."""
    for logger in loggers:
        logger.log_metrics(metrics, step=step)
        if hasattr(logger, "save"):
            logger.save()


def resolve_ckpt_path(cfg: DictConfig, output_dir: Path, checkpoint_dir: str = "checkpoints") -> str | None:
    """The checkpoint to continue from: with ``resume`` (true or a run dir, which is then this
    run's dir) or ``ckpt_path=last``, this run dir's ``{checkpoint_dir}/last.ckpt`` if it exists
    (a job killed before its first checkpoint starts afresh); else ``ckpt_path`` (a file) or None."""
    if wants_resume(cfg) or cfg.get("ckpt_path") == "last":
        last = output_dir / checkpoint_dir / "last.ckpt"
        return str(last) if last.exists() else None
    ckpt = cfg.get("ckpt_path")
    if ckpt in (None, "", "null"):
        return None
    if not Path(ckpt).exists():
        raise FileNotFoundError(f"ckpt_path={ckpt!r} does not exist")
    return str(ckpt)


def wants_resume(cfg: DictConfig) -> bool:
    """``resume`` is true or names a run dir."""
    return cfg.get("resume") not in (None, False, "", "false")


def final_metrics(*metric_dicts) -> dict[str, float]:
    """Merge Lightning's callback_metrics snapshots into flat ``{key: float}`` (later wins)."""
    merged: dict[str, float] = {}
    for metrics in metric_dicts:
        for key, value in metrics.items():
            if isinstance(value, torch.Tensor):
                if value.numel() != 1:
                    continue
                value = value.item()
            merged[key] = float(value)
    return dict(sorted(merged.items()))
