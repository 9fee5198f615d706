"""SIGTERM and Ctrl-C stop a run (and the sweep it is in) after checkpointing it.

``timeout``, ``kill`` and a scheduler send SIGTERM; a terminal sends SIGINT. While a trainer is
fitting, the signal is only noted: at the end of the current optimiser step
:class:`CheckpointAndStopOnSignal` writes the run's ``last.ckpt`` (the same point in the step at
which the periodic checkpoints are taken, so the resume is exact) and raises
:class:`RunInterrupted`. Outside training (setup, testing, writing figures) the signal raises it
at once, and a second signal while training does too. :class:`RunInterrupted` is a
``SystemExit`` with code 128 + the signal's number: Hydra does not catch it, so the sweep stops
and the command exits non-zero; the pipeline records the run as ``interrupted`` (resumable).

Under Slurm, SIGTERM keeps the handlers it has there (submitit's, which let its pre-emption and
time-out handling, a USR2 to checkpoint and requeue, finish undisturbed); Lightning still notes a
SIGTERM, and the callback checkpoints and stops at the step's end as above.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import torch

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class RunInterrupted(SystemExit):
    """A run stopped by a signal; ``code`` is 128 + the signal's number (143 SIGTERM, 130 SIGINT)."""

    def __init__(self, signum: int, checkpoint: str | None = None):
        super().__init__(128 + int(signum))
        self.signum = int(signum)
        self.checkpoint = checkpoint

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    def __str__(self) -> str:
        saved = f"; checkpoint {self.checkpoint}" if self.checkpoint else ""
        return f"stopped by {self.signal_name}{saved}"


class StopRequest:
    """The signal received, if any, and whether the current phase waits for a step's end."""

    def __init__(self):
        self.signum: int | None = None
        self.deferred = False

    def handle(self, signum, frame) -> None:
        first = self.signum is None
        self.signum = signum
        if self.deferred and first:
            log.warning("%s received: stopping after this optimiser step, with a checkpoint (send it again to "
                        "stop at once)", signal.Signals(signum).name)
            return
        raise RunInterrupted(signum)


_request: StopRequest | None = None


def stop_request() -> StopRequest | None:
    """The request of the run now in this process (None outside :func:`stop_on_signals`)."""
    return _request


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Handle SIGTERM (not under Slurm) and SIGINT as described above for the duration of one run;
    the previous handlers come back afterwards. (A no-op outside the main thread, where Python has no handlers.)"""
    global _request
    if threading.current_thread() is not threading.main_thread():
        yield StopRequest()
        return
    request, previous_request = StopRequest(), _request
    handled = (signal.SIGINT,) if "SLURM_JOB_ID" in os.environ else STOP_SIGNALS
    previous = {signum: signal.getsignal(signum) for signum in handled}
    for signum in handled:
        signal.signal(signum, request.handle)
    _request = request
    try:
        yield request
    finally:
        _request = previous_request
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def interruption_signal(error: BaseException) -> int | None:
    """The signal behind an exception that stopped a run: ours, Lightning's ``SIGTERMException``
    (the signal arrived between the step's end and Lightning's own check) or a KeyboardInterrupt."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    if isinstance(error, RunInterrupted):
        return error.signum
    if isinstance(error, SIGTERMException):
        return int(signal.SIGTERM)
    if isinstance(error, KeyboardInterrupt):
        return int(signal.SIGINT)
    return None


class CheckpointAndStopOnSignal(L.Callback):
    """Defers a stop signal to the end of the optimiser step, then checkpoints and raises
    :class:`RunInterrupted`. The checkpoint goes to the trainer's checkpoint callback's
    ``last.ckpt`` (none is written without one)."""

    def _set_deferred(self, deferred: bool) -> None:
        request = stop_request()
        if request is not None:
            request.deferred = deferred

    def on_train_start(self, trainer, pl_module) -> None:
        self._set_deferred(True)

    def on_train_end(self, trainer, pl_module) -> None:
        self._set_deferred(False)

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._set_deferred(False)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        request = stop_request()
        signum = request.signum if request is not None else None
        if signum is None and trainer.received_sigterm:  # Lightning's handler saw it (e.g. under DDP)
            signum = int(signal.SIGTERM)
        if trainer.world_size > 1:
            signum = self._shared_signal(trainer, pl_module, signum)
        if signum is None:
            return
        checkpoint = None
        callback = trainer.checkpoint_callback
        if callback is not None and getattr(callback, "dirpath", None):
            checkpoint = str(Path(callback.dirpath) / "last.ckpt")
            trainer.save_checkpoint(checkpoint)
        raise RunInterrupted(signum, checkpoint)

    @staticmethod
    def _shared_signal(trainer, pl_module, signum: int | None) -> int | None:
        """The largest signal number any rank received (None if none did), the same on every rank.

        Under DDP every rank must stop at the same step: a rank stopping alone (its signal came a
        step earlier, or only to it) left the others waiting in the next step's all-reduce and
        itself in the checkpoint's barrier, a run hung for ever as `running` (measured: SIGINT to
        rank 1 of `hardware=cpu_ddp`). One all-reduce of a scalar per step.
        """
        local = torch.tensor(float(signum or 0), device=pl_module.device)
        shared = int(trainer.strategy.reduce(local, reduce_op="max").item())
        return shared or None
