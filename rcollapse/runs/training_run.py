"""What every training stage shares: the trainer, loggers, checkpoint resolution, the final metrics."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from rcollapse.runs.checkpoint_files import (
    AtomicCheckpointIO,
    checkpoint_to_resume,
    verified_checkpoint,
)
from rcollapse.runs.checkpointed_metrics import CheckpointedMetrics
from rcollapse.runs.interruption import CheckpointAndStopOnSignal
from rcollapse.runs.run_cost import ThroughputMeter
from rcollapse.runs.wandb_run_id import previous_wandb_run_id


@contextlib.contextmanager
def frozen_modules_in_eval_mode():
    """Silences Lightning's "Found N module(s) in eval mode at the start of training" where that is
    intended (a frozen backbone or reference model); every trained part's mode is set explicitly."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training")
        yield


@contextlib.contextmanager
def resuming_quietly(ckpt_path: str | None):
    """Silences Lightning's "Checkpoint directory … exists and is not empty" on a resume, where
    the directory holds the run's own checkpoints by design (a new run in a directory with
    checkpoints is refused before training: :mod:`rcollapse.runs.resume_checks`)."""
    with warnings.catch_warnings():
        if ckpt_path:
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
        yield


class NonFiniteLossError(FloatingPointError):
    """A training loss became NaN or infinite (the message says what to change and how to resume)."""


def after_non_finite_loss(module) -> str:
    """How a run whose loss became NaN or infinite goes on once the cause is changed: from the run's
    latest checkpoint, named, when it wrote one (``resume=<run dir> resume_force=true``: the change
    is a config difference a resume otherwise refuses); else it starts again, since nothing can be
    resumed. ``module``: the LightningModule that met the loss, its trainer's checkpoint callbacks
    telling where the run dir's checkpoints are."""
    trainer = getattr(module, "_trainer", None)
    dirs = [Path(cb.dirpath) for cb in getattr(trainer, "checkpoint_callbacks", None) or []
            if getattr(cb, "dirpath", None)]
    if not dirs:
        return "then resume the run from its last checkpoint if it wrote one, or start it again"
    run_dir = next((p for d in dirs for p in (d, *d.parents) if (p / "config_resolved.yaml").exists()), dirs[0].parent)
    kept = run_dir / "checkpoints"
    written = [p for p in kept.rglob("*") if p.suffix == ".ckpt" or p.name == "final.pt"] if kept.is_dir() else []
    if written:
        latest = max(written, key=lambda p: (p.stat().st_mtime, p.name == "last.ckpt"))
        return (f"then resume from the run's latest checkpoint, {latest}, with resume={run_dir} resume_force=true "
                "(the change is a config difference, which a resume refuses without resume_force), or start the run "
                "again in a new dir")
    return (f"no checkpoint was written before the loss went non-finite (none in {kept}), so there is nothing to "
            "resume: start the run again with the change, in a new dir (another hydra.run.dir, or none for a new "
            "dated one)")


def build_loggers(cfg: DictConfig) -> list:
    """The logger group's object(s), each given the whole resolved config as hyperparameters.

    ``logger: null`` logs nowhere. A resumed run continues its CSV log and its W&B run.
    """
    if cfg.get("logger") is None:
        return []
    continued = {}
    if wants_resume(cfg) and str(cfg.logger.get("_target_", "")).endswith("WandbLogger"):
        run_id = previous_wandb_run_id(cfg.logger.get("save_dir") or cfg.paths.output_dir)
        if run_id is not None:  # the interrupted job's W&B run goes on (WandbLogger resumes with "allow")
            continued = {"id": run_id}
    logger = instantiate(cfg.logger, **continued)
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


def build_trainer(cfg: DictConfig, callbacks: list, logger, **overrides) -> L.Trainer:
    """``cfg.trainer`` with the run's callbacks and loggers, checkpoints written whole or not at
    all (:class:`AtomicCheckpointIO`), and SIGTERM / Ctrl-C turned into a checkpoint and a stop
    at the end of the optimiser step (:class:`CheckpointAndStopOnSignal`), and the training
    throughput measured for the run's ``cost/*`` metrics (:class:`rcollapse.runs.run_cost.ThroughputMeter`),
    and each checkpoint carrying the metrics logged so far, for a resume at the last step
    (:class:`rcollapse.runs.checkpointed_metrics.CheckpointedMetrics`: read the fit's metrics with
    :func:`rcollapse.runs.checkpointed_metrics.metrics_after_fit`)."""
    return instantiate(cfg.trainer, logger=logger,
                       callbacks=[*callbacks, ThroughputMeter(), CheckpointedMetrics(), CheckpointAndStopOnSignal()],
                       plugins=[AtomicCheckpointIO()], **overrides)


def resolve_ckpt_path(cfg: DictConfig, output_dir: Path, checkpoint_dir: str = "checkpoints") -> str | None:
    """The checkpoint to continue from: with ``resume`` (true or a run dir, which is then this
    run's dir) or ``ckpt_path=last``, the newest intact checkpoint in ``{checkpoint_dir}``
    (``last.ckpt``, or with a warning an older one when it is damaged; None when there is none: a
    job killed before its first checkpoint starts afresh); else ``ckpt_path`` (a file, checked)."""
    if wants_resume(cfg) or cfg.get("ckpt_path") == "last":
        found = checkpoint_to_resume(output_dir / checkpoint_dir)
        return str(found) if found is not None else None
    ckpt = cfg.get("ckpt_path")
    if ckpt in (None, "", "null"):
        return None
    return str(verified_checkpoint(Path(ckpt)))


def wants_resume(cfg: DictConfig) -> bool:
    """``resume`` is true or names a run dir, or ``ckpt_path=last`` (this dir's last checkpoint: a
    resume, with a resume's checks and its log kept)."""
    return cfg.get("resume") not in (None, False, "", "false") or cfg.get("ckpt_path") == "last"


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
