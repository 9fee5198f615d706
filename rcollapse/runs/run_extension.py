"""Extending a completed run (``resume=<dir> resume_force=true`` with new values, e.g. more steps).

Left in place, the completed run's records would be relabelled by the extension: its
``metrics.json`` beside a config that says 3,000 steps, its ``completed`` status while the
extension is interrupted at step 100, its final checkpoint replaced. So before the extension
starts, :func:`begin_extension` sets the completed run aside in ``superseded/<time>/``, at no
cost whatever the model weighs: checkpoints are hard-linked (the extension writes new ones by a
rename, so a linked file keeps the completed run's content), ``metrics.json`` and every file of
:data:`MOVE_FROM_BYTES` or more (a saved model, an ensemble artifact) are moved (the extension
writes its own at its end), the other files are copied. The run's ``status.json`` names the dir
(``superseded``).

An extension that fails or is interrupted before it wrote or moved any checkpoint changed nothing
that matters: :meth:`Extension.undo` puts the records back and the run stays ``completed``, the
error kept as ``last_resume_error``.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from rcollapse.runs.atomic_files import TEMP_MARK

SUPERSEDED = "superseded"
# not part of the completed run's snapshot: earlier snapshots, Hydra's per-attempt records, the
# live lock, W&B's own run files (W&B keeps its run; the extension goes on as the same run id)
NOT_SNAPSHOT = (SUPERSEDED, ".hydra/attempts", "wandb", ".rcollapse.lock")
MOVE_FROM_BYTES = 64 * 2**20


def _run_files(output_dir: Path) -> list[Path]:
    """The run dir's files, relative, less :data:`NOT_SNAPSHOT` and unfinished writes."""
    files = []
    for path in sorted(output_dir.rglob("*")):
        rel = path.relative_to(output_dir)
        if rel.as_posix().startswith(NOT_SNAPSHOT) or TEMP_MARK in path.name or not path.is_file():
            continue
        files.append(rel)
    return files


def _checkpoint_state(output_dir: Path) -> dict[str, tuple[int, int]]:
    """Each checkpoint's identity (inode, modification time): any change means training was saved."""
    state = {}
    for rel in _run_files(output_dir):
        if rel.name.endswith(".ckpt"):
            stat = (output_dir / rel).stat()
            state[rel.as_posix()] = (stat.st_ino, stat.st_mtime_ns)
    return state


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # a file system without hard links
        shutil.copy2(source, target)


@dataclass
class Extension:
    """A completed run set aside in ``kept`` while an extension runs in ``output_dir``."""

    output_dir: Path
    kept: Path
    checkpoints_before: dict[str, tuple[int, int]]
    moved: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """``superseded/<time>``: where the completed run's records are, relative to the run dir."""
        return self.kept.relative_to(self.output_dir).as_posix()

    def wrote_checkpoints(self) -> bool:
        """Whether the extension has saved (or moved) a checkpoint since it started."""
        return _checkpoint_state(self.output_dir) != self.checkpoints_before

    def undo(self) -> None:
        """Put the completed run back as it was (the extension wrote no checkpoint, so it trained
        nothing that was kept): moved files moved back, copied ones restored where the attempt
        changed them (its config, its logger's hyperparameters), and the snapshot, then empty,
        removed. ``status.json`` is left to the caller, which records the attempt's error."""
        for path in sorted(p for p in self.kept.rglob("*") if p.is_file()):
            rel = path.relative_to(self.kept)
            original = self.output_dir / rel
            if rel.as_posix() in self.moved:
                os.replace(path, original)
                continue
            if rel.as_posix() != "status.json" and not rel.name.endswith(".ckpt") and not (
                    original.is_file() and filecmp.cmp(path, original, shallow=False)):
                os.replace(path, original)
                continue
            path.unlink()
        for directory in sorted((p for p in self.kept.rglob("*") if p.is_dir()), reverse=True):
            directory.rmdir()
        for directory in (self.kept, self.kept.parent):
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()


def begin_extension(output_dir: Path) -> Extension:
    """Set the completed run in ``output_dir`` aside (see the module docstring)."""
    output_dir = Path(output_dir)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    kept, n = output_dir / SUPERSEDED / stamp, 1
    while kept.exists():
        n += 1
        kept = output_dir / SUPERSEDED / f"{stamp}_{n}"
    extension = Extension(output_dir=output_dir, kept=kept, checkpoints_before=_checkpoint_state(output_dir))
    for rel in _run_files(output_dir):
        source, target = output_dir / rel, kept / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel.name.endswith(".ckpt"):
            _link_or_copy(source, target)
        elif rel.as_posix() == "metrics.json" or source.stat().st_size >= MOVE_FROM_BYTES:
            os.replace(source, target)
            extension.moved.append(rel.as_posix())
        else:
            shutil.copy2(source, target)
    return extension
