"""Whether the Hugging Face Hub can be reached, and the clear error when a data set cannot be had.

A hub name that is not a local directory is only passed on to ``datasets`` when the hub can be
reached; otherwise loading fails at once with advice (download elsewhere, copy the directory
here, point the config key at it), instead of retrying for a minute and ending in a generic
connection error.
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

OFFLINE_ALTERNATIVE = "dataset=length_offline"

# The keys a user sets to point a data set at its hub name or a local copy (conf/dataset/*.yaml):
# the data set, its second (evaluation) data set, and RewardBench's Prior Sets. A data set file is
# its data module's arguments, so a source's `path` is always `dataset.path`; the preference data
# module passes the other two to its evaluation source (rcollapse/data/preference_datamodule.py).
DATASET_PATH_KEY = "dataset.path"
DATASET_EVAL_PATH_KEY = "dataset.eval_path"
DATASET_PRIOR_PATH_KEY = "dataset.prior_path"


class DataUnavailableError(OSError):
    """A data set named by hub id cannot be loaded on this machine."""


def _truthy(name: str) -> bool:
    return os.environ.get(name, "0").strip().lower() not in ("", "0", "false", "no", "off")


def hub_offline_by_env(datasets: bool = True) -> bool:
    """``HF_HUB_OFFLINE`` (or, for data sets, ``HF_DATASETS_OFFLINE``) is set to anything but
    0/false/no/off."""
    return _truthy("HF_HUB_OFFLINE") or (datasets and _truthy("HF_DATASETS_OFFLINE"))


@functools.lru_cache(maxsize=8)
def _probe(host: str, timeout: float) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def hub_host() -> str:
    """The host of ``HF_ENDPOINT`` (default ``https://huggingface.co``)."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    return urlparse(endpoint).hostname or "huggingface.co"


def hub_reachable(timeout: float = 3.0) -> bool:
    """A TCP connect to the hub's host, port 443, succeeds within ``timeout`` seconds.

    The answer is remembered per host for the process, so that several loaders pay at most one
    probe.
    """
    return _probe(hub_host(), float(timeout))


def data_unavailable_message(
    path: str,
    key: str,
    cause: str,
    what: str = "data set",
    alternative: str | None = OFFLINE_ALTERNATIVE,
) -> str:
    """The advice given with every :class:`DataUnavailableError`."""
    local = f"/data/{path.rstrip('/').split('/')[-1]}"
    message = (
        f"Cannot load {what} '{path}' ({key}): {cause}. Download it elsewhere (e.g. "
        f"`huggingface-cli download {path} --repo-type dataset --local-dir {local}`), copy the "
        f"directory here, and run with `{key}={local}` (a directory with the hub repo's files, "
        f"README.md included)"
    )
    return message + (f"; or use `{alternative}`." if alternative else ".")


def require_hub_or_local(
    path: str, key: str, what: str = "data set", alternative: str | None = OFFLINE_ALTERNATIVE
) -> str:
    """``path`` itself if it is a local directory (``~`` expanded) or the hub is reachable.

    Otherwise (or when ``path`` looks like a file-system path but is no directory) raise
    :class:`DataUnavailableError` naming ``what`` (e.g. "data set"), ``path``
    and the config ``key`` that takes a local copy instead. Costs at most one 3-second TCP
    probe, and none when ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` is set.
    """
    local = Path(path).expanduser()
    if local.is_dir():
        return str(local)
    if path.startswith(("/", "./", "../", "~")):
        cause = f"{local} is not a directory"
    elif hub_offline_by_env():
        cause = (
            "the Hugging Face Hub is not reachable from this machine "
            "(HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set)"
        )
    elif not hub_reachable():
        cause = (
            "the Hugging Face Hub is not reachable from this machine "
            f"(no connection to {hub_host()}:443)"
        )
    else:
        return path
    raise DataUnavailableError(data_unavailable_message(path, key, cause, what, alternative))


def load_hub_dataset(path: str, key: str, split: str | None, alternative: str | None = OFFLINE_ALTERNATIVE,
                     name: str | None = None):
    """``datasets.load_dataset(path, name, split=split)`` for a hub name or a local copy, with
    every failure to get the files turned into a :class:`DataUnavailableError` naming ``key``
    (``split=None``: every split, as a ``DatasetDict``)."""
    import datasets

    source = require_hub_or_local(path, key, what="data set", alternative=alternative)
    try:
        args = (source,) if name is None else (source, name)
        return datasets.load_dataset(*args, split=split)
    except (ConnectionError, OSError, FileNotFoundError) as err:
        if isinstance(err, DataUnavailableError):
            raise
        first_line = (str(err).strip().splitlines() or [""])[0]
        raise DataUnavailableError(
            data_unavailable_message(path, key, f"{type(err).__name__}: {first_line}", alternative=alternative)
        ) from err
