"""A run resumed from a checkpoint of its last step ends with the results the uninterrupted run has.

The checkpoints of a step are written at the step's end, before the validation that may follow it
and before the step's metrics reach the loggers (Lightning's order; a SIGTERM stops there too).
A run stopped after the checkpoint of its *last* step resumes with nothing left to train: its fit
runs no step, so nothing logs the last step's training metrics (``rm/train/loss``, ``ppo/train/*``,
...), nor runs the validation (``rm/val/*``, the last ``reward_history.json`` entry, the CSV's last
rows) — and ``metrics.json`` lacked them.

:class:`CheckpointedMetrics` (on every trainer: :func:`rcollapse.runs.training_run.build_trainer`)
keeps in each checkpoint the scalar metrics logged so far, the step's row for the loggers, and
whether a validation follows the step. :func:`metrics_after_fit`, which the stages call after
``trainer.fit`` in place of reading ``trainer.callback_metrics``, gives those metrics back when the
fit resumed at its last step, first finishing what the checkpoint preceded: the step's row logged,
then the validation run (:meth:`lightning.Trainer.validate`, on the restored weights), as the
uninterrupted run did.
"""

from __future__ import annotations

import logging

import lightning as L
import torch

log = logging.getLogger(__name__)


def scalar_metrics(metrics: dict) -> dict[str, float]:
    """``{key: float}`` of the one-number entries of a Lightning metrics dict."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                continue
            value = value.item()
        if isinstance(value, int | float):
            out[key] = float(value)
    return out


def _inside_step_end(trainer: L.Trainer) -> bool:
    """Whether the trainer is between a training step's processing and its completion (its
    ``on_train_batch_end``: where the periodic and the signal's checkpoints are written)."""
    total = trainer.fit_loop.epoch_loop.batch_progress.total
    return total.completed == total.processed - 1


def _step_record(trainer: L.Trainer) -> dict:
    """What a checkpoint written now must carry for a resume at this step (see the module's doc).
    Reads Lightning's loop state: a version that moved it records only the metrics."""
    record = {"step": int(trainer.global_step), "metrics": scalar_metrics(trainer.callback_metrics)}
    if not _inside_step_end(trainer):  # after the step's end: its row logged, its validation run
        return record
    try:
        loop, connector = trainer.fit_loop.epoch_loop, trainer._logger_connector
        record["validation_follows"] = bool(loop._should_check_val_fx(trainer.fit_loop._data_fetcher))
        accumulating = loop._should_accumulate()
        # as the connector's update_train_step_metrics decides, after this hook
        if connector.should_update_logs and not (accumulating and trainer.lightning_module.automatic_optimization):
            record["step_row"] = scalar_metrics(connector.metrics["log"])
        record["batches_after_step"] = int(loop._batches_that_stepped) + (0 if accumulating else 1)
    except Exception as err:  # noqa: BLE001 - a record without these is still a record of the metrics
        log.debug("could not record the step's pending validation and log row: %s", err)
    return record


class CheckpointedMetrics(L.Callback):
    """Keeps :func:`_step_record` in every checkpoint and notes whether a fit trained any step."""

    def __init__(self):
        self._trainer: L.Trainer | None = None
        self.restored: dict | None = None  # the record of the checkpoint this fit resumed from
        self.trained = False  # this fit ran a training step

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._trainer = trainer

    def on_fit_start(self, trainer, pl_module) -> None:
        self.trained = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.trained = True

    def state_dict(self) -> dict:
        if self._trainer is None or (self.restored is not None and not self.trained):
            return dict(self.restored or {})  # nothing happened since the checkpoint resumed from
        return _step_record(self._trainer)

    def load_state_dict(self, state_dict: dict) -> None:
        self.restored = dict(state_dict)

    def resumed_at_last_step(self) -> bool:
        """The fit resumed from a checkpoint with a record and trained nothing: the checkpoint was
        of its last step."""
        return self.restored is not None and "metrics" in self.restored and not self.trained


def _record_of(trainer: L.Trainer) -> CheckpointedMetrics | None:
    return next((c for c in trainer.callbacks if isinstance(c, CheckpointedMetrics)), None)


def _finish_checkpointed_step(trainer: L.Trainer, module, datamodule, record: dict) -> dict[str, float]:
    """Log the step's row and run the validation that followed the checkpointed step; the metrics
    the fit would have ended with."""
    metrics = dict(record.get("metrics", {}))
    row = record.get("step_row")
    if row:
        trainer._logger_connector.log_metrics(dict(row))
    if record.get("validation_follows"):
        print(f"the checkpoint of step {record.get('step')} preceded its validation: validating now")
        trainer.validate(module, datamodule=datamodule, verbose=False)
        metrics.update(scalar_metrics(trainer.callback_metrics))
    if "batches_after_step" in record:  # as the step's end would have left it: later logs at the next step
        trainer.fit_loop.epoch_loop._batches_that_stepped = int(record["batches_after_step"])
    epochs = trainer.fit_loop.epoch_progress
    if epochs.current.started > epochs.current.completed:  # the epoch the last step ended, as the fit ends it
        epochs.increment_processed()
        epochs.increment_completed()
    for logger in trainer.loggers:
        logger.save()
    return metrics


def metrics_after_fit(trainer: L.Trainer, module, datamodule=None) -> dict[str, float]:
    """The metrics a fit ended with (``trainer.callback_metrics``, as flat floats). When the fit
    resumed from a checkpoint of its last step and so trained nothing, those of the checkpointed
    run, after finishing what the checkpoint preceded (:func:`_finish_checkpointed_step`)."""
    callback = _record_of(trainer)
    if callback is None or not callback.resumed_at_last_step():
        return scalar_metrics(trainer.callback_metrics)
    record = callback.restored
    metrics = _finish_checkpointed_step(trainer, module, datamodule, record)
    callback.restored = {"step": record.get("step"), "metrics": metrics}  # done: a later save records it so
    return metrics
