"""Whether the Hugging Face Hub can be reached, and the clear error when a data set cannot be had."""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path
from urllib.parse import urlparse


class DataUnavailableError(OSError):
    """A data set named by hub id cannot be loaded on this machine."""


def _truthy(name: str) -> bool:
    return os.environ.get(name, "0").strip().lower() not in ("", "0", "false", "no")


def hub_offline_by_env() -> bool:
    return _truthy("HF_HUB_OFFLINE") or _truthy("HF_DATASETS_OFFLINE")


@functools.lru_cache(maxsize=4)
def _probe(host: str, timeout: float) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def hub_reachable(timeout: float = 3.0) -> bool:
    """A TCP connect to the hub's host (``HF_ENDPOINT``, default huggingface.co) within ``timeout``."""
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    return _probe(host, timeout)


def data_unavailable_message(path: str, key: str, cause: str) -> str:
    local = f"/data/{path.split('/')[-1]}"
    return (
        f"Cannot load data set '{path}' ({key}): {cause}. Download it on a machine with network "
        f"access (e.g. `huggingface-cli download {path} --repo-type dataset --local-dir {local}`), "
        f"copy the directory here and run with `{key}={local}` (a directory holding the hub "
        f"repo's files, README.md included); or use `dataset=length_offline`, generated offline."
    )


def require_hub_or_local(path: str, key: str) -> str:
    """Return ``path`` if it is a local directory or the hub is reachable; raise a clear error else."""
    if Path(path).expanduser().is_dir():
        return str(Path(path).expanduser())
    if hub_offline_by_env():
        raise DataUnavailableError(data_unavailable_message(path, key, "HF_HUB_OFFLINE is set and no local copy was given"))
    if not hub_reachable():
        raise DataUnavailableError(data_unavailable_message(path, key, "the Hugging Face Hub is not reachable from this machine"))
    return path
