"""Runs one job: validate the config, seed, run the chosen stage, write what every run leaves.

Every run dir holds the resolved config (``config_resolved.yaml``; Hydra's ``.hydra/`` beside
it), ``status.json`` (running → completed | failed, with the traceback | interrupted, by
SIGTERM or Ctrl-C, resumable), ``metrics.json`` (the final metrics, flat keys as logged, and
what the run cost: ``cost/*``, see ``rcollapse.runs.run_cost``; ``cost/device`` is the one string),
figures and checkpoints. Every record is written whole or not at all (``rcollapse.runs.atomic_files``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import traceback
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from rcollapse.config.checks import validate_config
from rcollapse.config.resolvers import register_resolvers
from rcollapse.runs.atomic_files import is_disk_full, write_json_atomic, write_text_atomic
from rcollapse.runs.hydra_records import record_accepted_attempt
from rcollapse.runs.interruption import RunInterrupted, interruption_signal, stop_on_signals
from rcollapse.runs.resume_checks import check_resume
from rcollapse.runs.run_cost import RunCost, cost_line
from rcollapse.runs.run_extension import begin_extension
from rcollapse.runs.run_lock import run_dir_lock
from rcollapse.runs.training_run import wants_resume

log = logging.getLogger(__name__)


def _is_rank_zero() -> bool:
    """Rank 0 of a multi-process job (Lightning reads RANK / LOCAL_RANK / SLURM_PROCID)."""
    from lightning.pytorch.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def _write_json(path: Path, payload: dict) -> None:
    write_json_atomic(path, payload, indent=2, sort_keys=True)


def _record_status(path: Path, payload: dict) -> None:
    """Write ``status.json``. On a full disk the whole record (a new file beside the old one, then
    a rename) may not fit; the status and the error then overwrite the old file in place, in the
    space it already holds, and the traceback goes to the log only."""
    try:
        _write_json(path, payload)
    except OSError as err:
        if not is_disk_full(err):
            raise
        short = {key: payload[key] for key in ("status", "stage", "error", "signal") if key in payload}
        try:
            path.write_text(json.dumps(short))
        except OSError as again:
            log.error("could not record %s in %s (%s): the disk is full", short, path, again)


def _job_ids() -> dict:
    """The scheduler's ids of this job, when it runs under Slurm."""
    keys = {"SLURM_JOB_ID": "slurm_job_id", "SLURM_ARRAY_JOB_ID": "slurm_array_job_id",
            "SLURM_ARRAY_TASK_ID": "slurm_array_task_id"}
    ids = {name: os.environ[key] for key, name in keys.items() if key in os.environ}
    if ids:  # whether Lightning takes its ranks and world from Slurm (SLURMEnvironment)
        from lightning.fabric.plugins.environments import SLURMEnvironment

        ids["lightning_slurm_environment"] = SLURMEnvironment.detect()
    return ids


def _world_size() -> int:
    """The number of processes that trained together (1 without a process group)."""
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _finish_wandb(exit_code: int) -> None:
    """Close the W&B run (if any) so that the jobs of a multirun never merge into one run."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=exit_code)
        if os.environ.get("WANDB_MODE") == "offline":
            print("W&B run saved offline; upload it with `wandb sync <run dir>/wandb/offline-run-*`")


def _measured_cost(meter: RunCost) -> dict:
    """The run's ``cost/*`` metrics; {} (with a warning) should measuring fail: the run's own
    results are never lost to their bookkeeping."""
    try:
        return meter.metrics()
    except Exception as err:
        log.warning("could not measure the run's cost (no cost/* in metrics.json): %s", err)
        return {}


def _log_cost_to_wandb(cost: dict) -> None:
    """The run's ``cost/*`` into its W&B summary (the device string too), when a W&B run is open.
    Lightning's loggers never see them: the stage logged its final metrics before they existed."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        try:
            wandb.run.summary.update(cost)
        except Exception as err:  # the record of the cost is metrics.json; W&B's copy is a convenience
            log.warning("could not add the run's cost to its W&B summary: %s", err)


def _previous_status(status_path: Path) -> dict:
    try:
        return json.loads(status_path.read_text())
    except (OSError, ValueError):
        return {}


def _resume_hint(output_dir: Path) -> str:
    """How to continue an interrupted run: its sweep rerun in place, or the run itself."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    alone = f"run the same command with resume={output_dir}"
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        sweep_dir = HydraConfig.get().sweep.dir
        return (f"rerun the sweep's command with hydra.sweep.dir={sweep_dir} resume=true (every job continues in "
                f"its dir, the unstarted ones start); this job alone: its overrides with resume={output_dir}")
    return alone


def _outcome(cfg: DictConfig, output_dir: Path, err: BaseException) -> dict:
    """``status.json`` of a run that ended with ``err``: interrupted by a signal (resumable), or
    failed (with the error, a hint when the disk is full, and the traceback)."""
    signum = interruption_signal(err)
    if signum is not None:
        return {"status": "interrupted", "stage": cfg.stage.name, "signal": signal.Signals(signum).name,
                "checkpoint": getattr(err, "checkpoint", None),
                "resume": _resume_hint(output_dir), **_job_ids()}
    error = f"{type(err).__name__}: {err}"
    if is_disk_full(err):
        error += f" (the disk holding {output_dir} is full: free space, then resume with resume={output_dir})"
    return {"status": "failed", "stage": cfg.stage.name, "error": error, "traceback": traceback.format_exc(),
            **_job_ids()}


def _completed_metrics(output_dir: Path) -> dict:
    """The final metrics of the completed run in ``output_dir`` ({} when unreadable)."""
    try:
        return json.loads((output_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}


def _run_in_dir(cfg: DictConfig, output_dir: Path, leader: bool) -> dict:
    """Check a resume, record the run as running, run the stage, record the outcome.

    A completed run resumed with its own config has nothing to do: it is left as it is and its
    metrics returned. A completed run resumed with new values (``resume_force``) is extended, its
    records set aside first (:mod:`rcollapse.runs.run_extension`)."""
    differences = check_resume(cfg, output_dir)  # before this attempt overwrites the run's records
    status_path = output_dir / "status.json"
    previous = _previous_status(status_path)
    finished = wants_resume(cfg) and previous.get("status") == "completed"
    if finished and not differences:
        print(f"{output_dir} holds a completed run with this config: nothing to resume, its records left as they "
              "are. To train it further, resume it with the new values and resume_force=true.", file=sys.stderr)
        return _completed_metrics(output_dir)
    extension = begin_extension(output_dir) if finished and leader else None
    extras = {"superseded": extension.label} if extension else (
        {"superseded": previous["superseded"]} if "superseded" in previous else {})
    if leader:
        record_accepted_attempt(output_dir)
        write_text_atomic(output_dir / "config_resolved.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        _write_json(status_path, {"status": "running", "stage": cfg.stage.name, **extras, **_job_ids()})
    try:
        with RunCost() as meter:  # wall time, peak memory, device; the trainers add their throughput
            L.seed_everything(cfg.seed, workers=True)
            stage_runner = instantiate(cfg.stage.runner)
            metrics = stage_runner(cfg, output_dir)
        cost = _measured_cost(meter)
        metrics = {**metrics, **cost}
        if leader:  # inside: a full disk here is a failure like any other
            _write_json(output_dir / "metrics.json", metrics)
            _log_cost_to_wandb(cost)
    except BaseException as err:
        outcome = _outcome(cfg, output_dir, err)
        if leader:
            if extension is not None and not extension.wrote_checkpoints():
                # an extension that saved no training leaves the completed run as it was
                extension.undo()
                _record_status(status_path, {**previous, "last_resume_error": outcome.get("error", outcome["status"]),
                                             "last_resume_traceback": traceback.format_exc()})
            else:
                _record_status(status_path, {**outcome, **extras})
        _finish_wandb(exit_code=1)
        if outcome["status"] == "interrupted":
            print(f"run interrupted by {outcome['signal']}; {outcome['resume']}", file=sys.stderr)
            if not isinstance(err, RunInterrupted):  # Lightning's SIGTERMException exits with code 0
                raise RunInterrupted(signal.Signals[outcome["signal"]]) from err
        raise
    _finish_wandb(exit_code=0)
    if leader:
        _record_status(status_path, {"status": "completed", "stage": cfg.stage.name, "world_size": _world_size(),
                                     **extras, **_job_ids()})
        if cost:
            print(cost_line(cost))
    return metrics


def run(cfg: DictConfig) -> float | None:
    """Run ``cfg.stage`` and return ``cfg.optimized_metric`` (for Hydra sweepers), if set.

    In a multirun Hydra records a failed job and goes on with the others; see
    ``rcollapse.runs.hydra_callbacks.FailFastCallback`` for ``fail_fast``.
    """
    register_resolvers()
    validate_config(cfg)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WANDB_MODE", "offline")
    # Lightning has its own console handler; without this, Hydra's root handler prints it twice.
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).propagate = False
    leader = _is_rank_zero()  # in DDP every rank runs this; only rank 0 writes the run's files
    # one live run per run dir: rank 0 holds its lock while the run works there; SIGTERM and
    # Ctrl-C stop the run (and its sweep) after checkpointing it (rcollapse.runs.interruption)
    with stop_on_signals(), run_dir_lock(output_dir) if leader else contextlib.nullcontext():
        metrics = _run_in_dir(cfg, output_dir, leader)
    key = cfg.get("optimized_metric")
    return metrics.get(key) if key else None
