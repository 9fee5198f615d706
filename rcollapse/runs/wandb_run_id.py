"""The W&B run a resumed job continues: the id of the newest run W&B recorded in the run dir.

W&B keeps each run under ``<save_dir>/wandb/`` as ``run-<time>-<id>`` (online) or
``offline-run-<time>-<id>``; a resumed job passes that id back, so its metrics join the
interrupted run's history instead of starting a second run.
"""

from __future__ import annotations

import re
from pathlib import Path

_RUN_DIR = re.compile(r"^(?:offline-)?run-(?P<time>\d{8}_\d{6})-(?P<id>[a-z0-9]+)$")


def previous_wandb_run_id(save_dir: str | Path) -> str | None:
    """The id of the most recently started W&B run under ``save_dir/wandb`` (None: none yet)."""
    root = Path(save_dir) / "wandb"
    if not root.is_dir():
        return None
    runs = [(m["time"], m["id"]) for p in root.iterdir() if p.is_dir() and (m := _RUN_DIR.match(p.name))]
    return max(runs)[1] if runs else None
