"""Checkpoints that are whole or absent, checked before a resume trusts them.

Lightning's own writer serialises to a temporary file on another file system and copies it over:
a full disk leaves a truncated ``last.ckpt``. :class:`AtomicCheckpointIO` writes beside the target
and renames. :func:`checkpoint_to_resume` reads a run's checkpoints newest first and returns the
first intact one, warning about each one it passes over. :func:`checkpoint_callback` is the one
``ModelCheckpoint`` every training stage writes them with: always ``last.ckpt``, never a versioned
``last-v1.ckpt`` beside it (which older code wrote when a resume changed the callback's settings;
:func:`checkpoint_to_resume` takes the newest of such a family, by the step each one records).
"""

from __future__ import annotations

import errno
import logging
import pickle
import re
import zipfile
from pathlib import Path

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from rcollapse.runs.atomic_files import atomic_writer, is_disk_full, stale_temp_files

log = logging.getLogger(__name__)
_STEP_NAME = re.compile(r"step(\d+)")
_LAST_NAME = re.compile(r"last(-v\d+)?\.ckpt")  # last.ckpt and the versions older code wrote beside it


class CheckpointUnreadableError(RuntimeError):
    """No checkpoint of a run dir can be read (each one named, with what is wrong with it)."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``torch.save`` checkpoints, written to a temporary sibling and renamed into place."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if "://" in str(path):  # a remote URL: Lightning's fsspec writer
            return super().save_checkpoint(checkpoint, path, storage_options)
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with atomic_writer(path, "wb") as handle:
                torch.save(checkpoint, handle)
        except Exception as err:
            if is_disk_full(err) and not isinstance(err, OSError):  # torch's writer hides the ENOSPC
                raise OSError(errno.ENOSPC, f"No space left on device while writing {path}") from err
            raise


class StageCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` whose ``last.ckpt`` is always of the fit's last step.

    Lightning writes ``last.ckpt`` at the end of training only when the fit wrote none before: a
    run of 7 steps checkpointed every 3 ended with ``last.ckpt`` of step 6 (measured), so the
    trained model read from it lacked the last step, and an extension of the run trained step 7
    again. Its state is kept under ``ModelCheckpoint``'s key, so run dirs written before resume
    with their callback state."""

    @property
    def state_key(self) -> str:
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):  # skipped: saved at this step
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


def checkpoint_callback(checkpoint_dir: Path, every_n_train_steps: int | None) -> ModelCheckpoint:
    """The checkpoints of a training stage (reward, each ensemble phase, PPO): ``last.ckpt`` (of
    the last step trained: :class:`StageCheckpoint`) and the newest ``step{N:06d}.ckpt`` in
    ``checkpoint_dir``, written every ``every_n_train_steps`` optimiser steps (Lightning's
    ``global_step``). The settings are part of what a resume reads back (Lightning keys the
    callback's state by them), so a change here is a change of every run dir's checkpoints.

    No version counter: a resume whose settings differ (``resume_force=true`` with another
    ``checkpoint_every_n_steps``, or an extension whose derived interval differs) does not get the
    callback's state back, and Lightning then wrote ``last-v1.ckpt`` beside the old ``last.ckpt``
    (measured: the next resume took the stale ``last.ckpt``, discarding the extension's training).
    ``last.ckpt`` is replaced by a rename (:class:`AtomicCheckpointIO`)."""
    return StageCheckpoint(dirpath=str(checkpoint_dir), filename="step{step:06d}", auto_insert_metric_name=False,
                           every_n_train_steps=every_n_train_steps, save_top_k=1, save_last=True,
                           enable_version_counter=False)


def checkpoint_defect(path: Path) -> str | None:
    """What is wrong with the checkpoint at ``path`` (None: it is a whole ``torch.save`` archive
    whose every member matches its checksum). Reads the file once; unpickles nothing."""
    try:
        if path.stat().st_size == 0:
            return "empty file"
        if not zipfile.is_zipfile(path):
            return "not a complete torch checkpoint (no zip directory at its end: truncated?)"
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if not any(name.endswith("data.pkl") for name in names):
                return "no data.pkl in the archive"
            bad = archive.testzip()
            if bad is not None:
                return f"member {bad} fails its checksum"
    except (OSError, zipfile.BadZipFile, EOFError, RuntimeError) as err:
        return f"{type(err).__name__}: {err}"
    return None


def _step_in_name(path: Path) -> int:
    """The step of a ``step{N}.ckpt`` checkpoint (the stages' file names); -1 for other names."""
    match = _STEP_NAME.search(path.stem)
    return int(match.group(1)) if match else -1


class _Opaque:
    """Whatever a checkpoint's pickle builds besides plain containers: accepted and ignored."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Opaque()

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, item):
        pass

    def extend(self, items):
        pass


class _StepOnlyUnpickler(pickle.Unpickler):
    """Reads a checkpoint's ``data.pkl`` without importing a class or loading a tensor."""

    def find_class(self, module, name):
        return _Opaque

    def persistent_load(self, pid):
        return None


def recorded_step(path: Path) -> int | None:
    """The ``global_step`` a checkpoint records (None when it cannot be read): only the archive's
    small ``data.pkl`` is read, no tensor and no class of the run's code."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
            with archive.open(name) as handle:
                state = _StepOnlyUnpickler(handle).load()
        step = state.get("global_step") if isinstance(state, dict) else None
        return int(step) if isinstance(step, int) else None
    except Exception:  # a damaged file: checkpoint_defect names what is wrong with it
        return None


def _last_checkpoints(checkpoint_dir: Path) -> list[Path]:
    """``last.ckpt`` and any ``last-v{N}.ckpt`` left by older code, the newest first: the latest
    recorded step, then the most recently written. One whose step cannot be read comes first, so
    that the check of its defect names it (and sets it aside) rather than passing over it silently."""
    found = [p for p in checkpoint_dir.glob("last*.ckpt") if _LAST_NAME.fullmatch(p.name)]
    steps = {p: recorded_step(p) for p in found}
    ordered = sorted(found, key=lambda p: (steps[p] is None, steps[p] or 0, p.stat().st_mtime, p.name), reverse=True)
    if len(ordered) > 1:
        listed = ", ".join(f"{p.name} (step {steps[p] if steps[p] is not None else 'unreadable'})" for p in ordered)
        log.warning("%s holds several last checkpoints (%s; the versioned ones were written by an older version of "
                    "this code): resuming from the newest, %s, if it is intact", checkpoint_dir, listed, ordered[0].name)
    return ordered


def _newest_first(checkpoint_dir: Path) -> list[Path]:
    """The last checkpoints first (:func:`_last_checkpoints`), then the other checkpoints, the
    latest step first (then the most recently written)."""
    lasts = _last_checkpoints(checkpoint_dir)
    others = sorted((p for p in checkpoint_dir.glob("*.ckpt") if p not in lasts),
                    key=lambda p: (_step_in_name(p), p.stat().st_mtime, p.name), reverse=True)
    return lasts + others


def set_aside(path: Path) -> Path:
    """Rename a damaged checkpoint to ``NAME.damaged`` (``.damaged2``, ... if taken): kept for
    inspection, out of the way of the resumed run, which writes its ``last.ckpt`` anew (and of
    every later resume's choice)."""
    target, n = path.with_name(path.name + ".damaged"), 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged{n}")
    path.rename(target)
    return target


def checkpoint_to_resume(checkpoint_dir: Path) -> Path | None:
    """The newest intact checkpoint in ``checkpoint_dir`` (None when it holds none: a run killed
    before its first checkpoint starts afresh). A damaged newer one is skipped with a warning and
    set aside (:func:`set_aside`); when every checkpoint is damaged, all stay where they are and
    :class:`CheckpointUnreadableError` names them.
    Temporary files of writes that never finished are removed."""
    for partial in stale_temp_files(checkpoint_dir):
        log.warning("removing %s: the partial write of a checkpoint whose process died", partial)
        partial.unlink(missing_ok=True)
    candidates = _newest_first(checkpoint_dir) if checkpoint_dir.is_dir() else []
    defects = []
    for path in candidates:
        defect = checkpoint_defect(path)
        if defect is None:
            if defects:
                kept = [set_aside(p) for p, _ in defects]
                skipped = "; ".join(f"{p.name}: {d}" for p, d in defects)
                log.warning("resuming from the older checkpoint %s: the newer one(s) cannot be read (%s); kept as %s",
                            path, skipped, ", ".join(k.name for k in kept))
            return path
        defects.append((path, defect))
    if defects:
        listed = "; ".join(f"{p}: {d}" for p, d in defects)
        raise CheckpointUnreadableError(
            f"no intact checkpoint to resume from in {checkpoint_dir} ({listed}). Move the damaged files "
            f"aside to run again from step 0 in this dir, or start a new run."
        )
    return None


def verified_checkpoint(path: Path, key: str = "ckpt_path") -> Path:
    """A checkpoint named explicitly (``ckpt_path=FILE``): it must exist and be intact."""
    if not path.exists():
        raise FileNotFoundError(f"{key}={str(path)!r} does not exist")
    defect = checkpoint_defect(path)
    if defect is not None:
        raise CheckpointUnreadableError(f"{key}={str(path)!r} cannot be read: {defect}")
    return path
