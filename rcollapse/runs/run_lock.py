"""One live run per run dir (issue 16, item 3).

Two processes writing into one ``hydra.run.dir`` mixed their records (one run's ``metrics.json``
beside the other's ``overrides.yaml``, an interleaved CSV). :func:`run_dir_lock` holds
``<run dir>/.rcollapse.lock`` (pid, host, Slurm job id, start time) while a run works there: a
second run is refused naming the dir and the owner; the lock of a process that is gone (same
host, pid not alive) or of this same Slurm job (a requeued job) is taken over with a warning. A lock
file that names no owner (garbage, empty) is refused as such (:class:`UnreadableLockError`: delete it
if no run uses the dir), and a dir the run cannot write in as :class:`RunDirNotWritableError`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
import warnings
from pathlib import Path

LOCK_NAME = ".rcollapse.lock"


class RunDirBusyError(RuntimeError):
    """Another live run owns the run dir."""


class UnreadableLockError(RunDirBusyError):
    """The run dir's lock file exists but does not say which run holds it (garbage, empty, unreadable)."""


class RunDirNotWritableError(PermissionError):
    """The run dir cannot be written (a read-only file system, no permission): no lock file, no records."""


NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _owner() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            "started": time.strftime("%Y-%m-%d %H:%M:%S")}


def _stale(owner: dict) -> str | None:
    """Why the lock of ``owner`` may be taken over, or None while its run may still be alive."""
    me = _owner()
    if owner.get("slurm_job_id") and owner.get("slurm_job_id") == me["slurm_job_id"]:
        return "it is this Slurm job's own (requeued)"
    if owner.get("host") == me["host"] and not _alive(int(owner.get("pid", -1))):
        return f"process {owner.get('pid')} on {owner.get('host')} is no longer running"
    return None


def _read_owner(path: Path) -> tuple[dict | None, str]:
    """The owner recorded in the lock file at ``path``, or None with why it cannot be read (None and
    "" when the file is gone: released meanwhile)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return None, ""
    except OSError as err:
        return None, f"it cannot be opened ({err.strerror or err})"
    if not text.strip():
        return None, ("it is empty (a run creating it this instant writes its owner next; "
                      "a run that died at that instant left it so)")
    try:
        owner = json.loads(text)
        int(owner.get("pid", -1))
    except (ValueError, TypeError, AttributeError):
        return None, f"it holds {text.strip()[:80]!r}, not a run's owner record (pid, host, start time)"
    return owner, ""


def _refusal(run_dir: Path, path: Path, owner: dict | None, unreadable: str) -> RunDirBusyError:
    """Why a run may not work in ``run_dir`` while the lock file ``path`` holds ``owner``."""
    if owner is None:
        return UnreadableLockError(
            f"run dir {run_dir} is locked by {path}, which cannot be read: {unreadable}. If no run is using "
            f"{run_dir}, delete {path} and start again; if one is, wait for it or give this run its own dir "
            "(hydra.run.dir)")
    return RunDirBusyError(
        f"run dir {run_dir} is in use by another run (pid {owner.get('pid')} on {owner.get('host')}"
        f"{', Slurm job ' + owner['slurm_job_id'] if owner.get('slurm_job_id') else ''}, started "
        f"{owner.get('started')}); wait for it, give this run its own dir (hydra.run.dir), or, if that "
        f"run is gone, delete {path}")


def _create(path: Path, run_dir: Path) -> int | None:
    """The descriptor of a new lock file at ``path`` (None: one exists); a dir this process cannot
    write in is a :class:`RunDirNotWritableError`."""
    try:
        return os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return None
    except OSError as err:
        if err.errno not in NOT_WRITABLE:
            raise
        where = "is on a read-only file system" if err.errno == errno.EROFS else "is not writable by this user"
        refusal = RunDirNotWritableError(
            f"run dir {run_dir} {where}: the run cannot create its lock file {path} "
            f"({os.strerror(err.errno)}), nor write its records there. Give the run a dir it can write "
            "(hydra.run.dir=<a writable path>; resume=<dir> of a run on a read-only disk: copy the run dir to a "
            "writable place first), or make the dir writable")
        refusal.errno = err.errno
        raise refusal from err


@contextlib.contextmanager
def run_dir_lock(run_dir: Path):
    """Hold the run dir's lock for the duration of the block (see the module docstring)."""
    path = Path(run_dir) / LOCK_NAME
    payload = json.dumps(_owner())
    for _ in range(2):
        fd = _create(path, run_dir)
        if fd is None:
            owner, unreadable = _read_owner(path)
            if owner is None and not unreadable:
                continue  # released meanwhile: take it
            reason = _stale(owner) if owner is not None else None
            if reason is None:
                raise _refusal(run_dir, path, owner, unreadable) from None
            warnings.warn(f"run dir {run_dir}: taking over the lock of an earlier run ({reason})", stacklevel=3)
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(payload)
        break
    else:  # taken by another run each time it was freed: never work in a dir without its lock
        raise RunDirBusyError(f"run dir {run_dir}: another run took its lock {path} as this one tried to; wait "
                              "for it, or give this run its own dir (hydra.run.dir)")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if path.read_text() == payload:
                path.unlink()
