"""A run dir's own config (``config_resolved.yaml``), in the current layout.

Every reader of a past run's config goes through :func:`read_run_config`, so a run written
before a module or key moved is read as today's code spells it
(:func:`rcollapse.config.migration.current_layout`). A damaged file is refused with
:class:`RunConfigUnreadableError`, which names the file, the fault and the cure.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from rcollapse.config.checks import ConfigError
from rcollapse.config.migration import current_layout

RUN_CONFIG = "config_resolved.yaml"


class RunConfigUnreadableError(ConfigError, yaml.YAMLError):
    """A run dir's ``config_resolved.yaml`` is not a readable config (a ``yaml.YAMLError`` too,
    for the readers that skip such a run)."""


def _unreadable(path: Path, fault: str) -> RunConfigUnreadableError:
    hydra_copy = path.parent / ".hydra" / "config.yaml"
    return RunConfigUnreadableError(
        f"{path} cannot be read: {fault}. The file is damaged (it records the config the run in "
        f"{path.parent} ran with, which a resume, diagnose and the report read). Restore it (from a backup, or "
        f"by hand from {hydra_copy}: Hydra's copy of the run's composed config, its ${{...}} interpolations "
        "unresolved), or start the run anew in another dir")


def _parse_fault(err: yaml.YAMLError) -> str:
    """``err`` in one line: what the parser met and where (line, column, counted from 1)."""
    parts = []
    for text, mark in ((getattr(err, "context", None), getattr(err, "context_mark", None)),
                       (getattr(err, "problem", None), getattr(err, "problem_mark", None))):
        if text:
            parts.append(text + (f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""))
    return "invalid YAML: " + (", ".join(parts) if parts else str(err).replace("\n", " "))


def read_run_config(run_dir: Path | str) -> dict:
    """The resolved config ``run_dir`` ran with, as a plain dict in the current layout.
    Raises ``FileNotFoundError`` when the dir holds none and :class:`RunConfigUnreadableError`
    (a ``ConfigError`` and a ``yaml.YAMLError``) when it is unreadable."""
    path = Path(run_dir) / RUN_CONFIG
    text = path.read_text(errors="replace")
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise _unreadable(path, _parse_fault(err)) from None  # the message says all the parser said
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise _unreadable(path, f"it holds a {type(config).__name__} ({text.strip()[:60]!r}), not a mapping of keys")
    return current_layout(config)
