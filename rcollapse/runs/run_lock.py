"""One live run per run dir (issue 16, item 3).

Two processes writing into one ``hydra.run.dir`` mixed their records (one run's ``metrics.json``
beside the other's ``overrides.yaml``, an interleaved CSV). :func:`run_dir_lock` holds
``<run dir>/.rcollapse.lock`` (pid, host, Slurm job id, start time) while a run works there: a
second run is refused naming the dir and the owner; the lock of a process that is gone (same
host, pid not alive) or of this same Slurm job (a requeued job) is taken over with a warning.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import warnings
from pathlib import Path

LOCK_NAME = ".rcollapse.lock"


class RunDirBusyError(RuntimeError):
    """Another live run owns the run dir."""


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


@contextlib.contextmanager
def run_dir_lock(run_dir: Path):
    """Hold the run dir's lock for the duration of the block (see the module docstring)."""
    path = Path(run_dir) / LOCK_NAME
    payload = json.dumps(_owner())
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                owner = json.loads(path.read_text() or "{}")
            except (OSError, json.JSONDecodeError):
                owner = {}
            reason = _stale(owner)
            if reason is None:
                raise RunDirBusyError(
                    f"run dir {run_dir} is in use by another run (pid {owner.get('pid')} on {owner.get('host')}"
                    f"{', Slurm job ' + owner['slurm_job_id'] if owner.get('slurm_job_id') else ''}, started "
                    f"{owner.get('started')}); wait for it, give this run its own dir (hydra.run.dir), or, if that "
                    f"run is gone, delete {path}") from None
            warnings.warn(f"run dir {run_dir}: taking over the lock of an earlier run ({reason})", stacklevel=3)
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(payload)
        break
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if path.read_text() == payload:
                path.unlink()
