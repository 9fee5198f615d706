"""Writes a run's records whole or not at all: a temporary file beside the target, then a rename.

A full disk (ENOSPC), a crash or a kill mid-write leaves the previous version of the file (or
none), never a truncated one; the temporary file of a failed write is removed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

TEMP_MARK = ".partial-"  # the temporary files' names: .<name>.partial-<pid>


def temp_path_for(path: Path) -> Path:
    """The temporary sibling a write of ``path`` goes to before the rename (same file system)."""
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}")


def stale_temp_files(directory: Path) -> list[Path]:
    """Temporary files of writes that never finished (their process killed mid-write)."""
    return sorted(directory.glob(f".*{TEMP_MARK}*")) if directory.is_dir() else []


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; on success flush it to disk and rename it
    onto ``path``; on any error remove it and re-raise (``path`` keeps its previous content)."""
    path = Path(path)
    tmp = temp_path_for(path)
    try:
        with open(tmp, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_writer(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_json_atomic(path: str | os.PathLike, payload, **dumps_kwargs) -> None:
    write_text_atomic(path, json.dumps(payload, **dumps_kwargs))


def is_disk_full(error: BaseException) -> bool:
    """ENOSPC or EDQUOT (a quota), anywhere in the exception's chain."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        error = error.__cause__ or error.__context__
    return False
