"""A run dir's own config (``config_resolved.yaml``), in the current layout.

Every reader of a past run's config goes through :func:`read_run_config`, so a run written
before a module or key moved is read as today's code spells it
(:func:`rcollapse.config.migration.current_layout`).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from rcollapse.config.migration import current_layout

RUN_CONFIG = "config_resolved.yaml"


def read_run_config(run_dir: Path | str) -> dict:
    """The resolved config ``run_dir`` ran with, as a plain dict in the current layout.
    Raises ``FileNotFoundError`` when the dir holds none and ``yaml.YAMLError`` when it is
    unreadable."""
    text = (Path(run_dir) / RUN_CONFIG).read_text()
    return current_layout(yaml.safe_load(text) or {})
