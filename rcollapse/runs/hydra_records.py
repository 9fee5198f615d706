"""The run dir's ``.hydra/``: written for an attempt only once the attempt is accepted.

Hydra writes a job's config, its own config and its overrides before the task starts; the report
groups runs by ``.hydra/overrides.yaml``. Written straight into ``.hydra/``, an attempt that is then
refused (the dir is locked by a live run, holds a finished run, or a resume's config differs)
would relabel the run in the dir. So Hydra writes each attempt into ``.hydra/attempts/<time>/``
(``hydra.output_subdir`` in ``conf/config.yaml``), and :func:`record_accepted_attempt` copies it
into ``.hydra/`` once the run dir's lock is held and the resume checks passed. The attempts stay:
they are the record of every command that ran or was refused in the dir.
"""

from __future__ import annotations

from pathlib import Path

from rcollapse.runs.atomic_files import write_text_atomic

HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")


def attempt_dir(output_dir: Path) -> Path | None:
    """Where Hydra wrote this attempt's files (None outside a Hydra run, or when it wrote none:
    a DDP rank started by Lightning, a config composed in a test)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    subdir = HydraConfig.get().output_subdir
    if subdir is None:
        return None
    path = Path(output_dir) / str(subdir)
    return path if path.is_dir() else None


def record_accepted_attempt(output_dir: Path) -> None:
    """Copy this attempt's Hydra files into ``<run dir>/.hydra/`` (each written whole)."""
    attempt = attempt_dir(output_dir)
    target = Path(output_dir) / ".hydra"
    if attempt is None or attempt == target:
        return
    for name in HYDRA_FILES:
        source = attempt / name
        if source.exists():
            write_text_atomic(target / name, source.read_text())
