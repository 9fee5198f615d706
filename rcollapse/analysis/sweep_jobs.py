"""The jobs a Hydra multirun should have, against the run dirs it has: which job is missing.

Hydra writes ``multirun.yaml`` (the sweep's config) into the sweep dir when the sweep starts, before
any job runs. For Hydra's basic sweeper the jobs are the cartesian product of the values of every
override (``hydra.sweeper.params`` first, then the command line's ``hydra.overrides.task``), numbered
``0..N-1`` in Hydra's own order: :func:`expected_jobs` expands them with Hydra's override parser and
the basic sweeper's own split (``a=1,2``, ``range(...)``, ``choice(...)``, and ``glob(...)`` over the
config dirs the sweep read). Other sweepers (Optuna, Nevergrad, ...) choose their jobs as they run:
their expected count is unknown. A job's run dir is ``<sweep dir>/<num>`` under the default
``hydra.sweep.subdir`` (``${hydra.job.num}``), else the run dir whose ``.hydra/hydra.yaml`` says
``hydra.job.num: <num>``. :func:`check_sweeps` says, per sweep dir, how many jobs have a run dir and
which are missing (their number and swept overrides).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from rcollapse.analysis.sweep_runs import OVERRIDES, find_run_dirs, parse_overrides

MULTIRUN = "multirun.yaml"
BASIC_SWEEPER = "BasicSweeper"  # the class that multirun.yaml's hydra.sweeper._target_ names, in hydra._internal
DEFAULT_SUBDIR = "${hydra.job.num}"


@dataclass
class MissingJob:
    num: int
    overrides: list[str]  # every override of the job, as Hydra gives it
    label: str  # the swept ones: ``utility=log, seed=1``
    run_dir: Path  # where its run dir would be (the default subdir) or the sweep dir
    reason: str


@dataclass
class SweepJobs:
    sweep_dir: Path
    expected: int | None  # None: unknown (another sweeper, or multirun.yaml unreadable)
    found: int  # expected jobs that have a run dir (all run dirs when expected is None)
    missing: list[MissingJob] = field(default_factory=list)
    note: str = ""  # why the expected count is unknown

    def summary(self) -> str:
        """``3 of 4 jobs have a run dir; missing: 1`` (or why the count is unknown)."""
        if self.expected is None:
            return f"{self.found} job(s) have a run dir; expected count unknown: {self.note}"
        missing = ", ".join(str(job.num) for job in self.missing) or "none"
        return f"{self.found} of {self.expected} jobs have a run dir; missing: {missing}"


def find_sweep_dirs(roots: Iterable) -> list[Path]:
    """Dirs holding ``multirun.yaml`` under ``roots`` (each root included), outside run dirs' ``.hydra``."""
    found: dict[Path, Path] = {}
    for root in map(Path, roots):
        if root.is_dir():
            for path in sorted(root.rglob(MULTIRUN)):
                if ".hydra" not in path.parts[len(root.parts):]:
                    found.setdefault(path.parent.resolve(), path.parent)
    return list(found.values())


def _config_loader(hydra_cfg: dict):
    """A config loader over the config dirs the sweep read (``hydra.runtime.config_sources``), for
    ``glob(...)`` over a group's options; None when it cannot be built."""
    try:
        from hydra._internal.config_loader_impl import ConfigLoaderImpl
        from hydra._internal.config_search_path_impl import ConfigSearchPathImpl
        from hydra.core.plugins import Plugins

        Plugins.instance()  # registers the config source kinds (file://, pkg://)
        search_path = ConfigSearchPathImpl()
        for source in (hydra_cfg.get("runtime") or {}).get("config_sources") or []:
            search_path.append(str(source["provider"]), f"{source['schema']}://{source['path']}")
        return ConfigLoaderImpl(config_search_path=search_path)
    except Exception:  # noqa: BLE001 - a private API of Hydra: without it, no glob
        return None


def expected_jobs(multirun: dict) -> tuple[list[list[str]] | None, str]:
    """``(jobs, problem)``: each job's overrides in job-number order, as Hydra's basic sweeper
    launches them, or None and why the jobs are unknown."""
    hydra_cfg = multirun.get("hydra") or {}
    sweeper = hydra_cfg.get("sweeper") or {}
    target = str(sweeper.get("_target_", ""))
    if target.rpartition(".")[2] != BASIC_SWEEPER:
        return None, f"the sweeper {target or '(none named)'} chooses its jobs as it runs"
    params = [f"{key}={value}" for key, value in (sweeper.get("params") or {}).items()]
    task = list((hydra_cfg.get("overrides") or {}).get("task") or [])
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parser = OverridesParser.create(config_loader=_config_loader(hydra_cfg))
        batches = BasicSweeper.split_arguments(parser.parse_overrides([*params, *task]), None)
    except Exception as err:  # noqa: BLE001 - Hydra's parser and sweeper: any refusal is "unknown"
        return None, f"its overrides cannot be expanded ({type(err).__name__}: {' '.join(str(err).split())})"
    return [list(job) for batch in batches for job in batch], ""


def _swept_label(job: list[str], jobs: list[list[str]]) -> str:
    """The job's overrides whose value differs between jobs (``utility=log``)."""
    varying = [i for i in range(len(job)) if len({other[i] for other in jobs}) > 1]  # one key per position
    return ", ".join(job[i] for i in varying)


def _job_number(run_dir: Path) -> int | None:
    try:
        config = yaml.safe_load((run_dir / ".hydra" / "hydra.yaml").read_text()) or {}
        return int(config["hydra"]["job"]["num"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return None


def _run_dirs_by_job(sweep_dir: Path, subdir: str) -> dict[int, Path]:
    """The sweep's run dirs by job number: their dir name under the default subdir, else what
    their ``.hydra/hydra.yaml`` says."""
    found: dict[int, Path] = {}
    for run_dir in find_run_dirs(sweep_dir):
        if subdir == DEFAULT_SUBDIR and run_dir.parent.resolve() == sweep_dir.resolve() and run_dir.name.isdigit():
            found.setdefault(int(run_dir.name), run_dir)
        elif subdir != DEFAULT_SUBDIR and (num := _job_number(run_dir)) is not None:
            found.setdefault(num, run_dir)
    return found


def check_sweep(sweep_dir: Path) -> SweepJobs:
    """The jobs of the sweep in ``sweep_dir`` (its ``multirun.yaml``) against its run dirs."""
    sweep_dir = Path(sweep_dir)
    try:
        multirun = yaml.safe_load((sweep_dir / MULTIRUN).read_text())
    except (OSError, yaml.YAMLError) as err:
        multirun, problem = None, f"{MULTIRUN} cannot be read ({' '.join(str(err).split())})"
    else:
        problem = "" if isinstance(multirun, dict) else f"{MULTIRUN} holds no mapping"
    jobs, why = expected_jobs(multirun) if not problem else (None, problem)
    subdir = str(((multirun or {}).get("hydra") or {}).get("sweep", {}).get("subdir") or DEFAULT_SUBDIR)
    by_job = _run_dirs_by_job(sweep_dir, subdir)
    if jobs is None:
        return SweepJobs(sweep_dir, None, len(find_run_dirs(sweep_dir)), note=why)
    missing = []
    for num, job in enumerate(jobs):
        if num in by_job:
            continue
        where = sweep_dir / str(num) if subdir == DEFAULT_SUBDIR else sweep_dir
        reason = (f"{where} holds no {OVERRIDES}" if subdir == DEFAULT_SUBDIR and where.is_dir()
                  else "no run dir")
        missing.append(MissingJob(num, job, _swept_label(job, jobs), where, reason))
    return SweepJobs(sweep_dir, len(jobs), len(jobs) - len(missing), missing)


def check_sweeps(roots: Iterable) -> list[SweepJobs]:
    """:func:`check_sweep` of every sweep dir under ``roots``."""
    return [check_sweep(sweep_dir) for sweep_dir in find_sweep_dirs(roots)]


def missing_job_rows(sweeps: Iterable[SweepJobs]) -> list[dict]:
    """One ``report.csv`` row per missing job: where its run dir would be, its overrides (less the
    run-control ones, as a run's), ``status`` ``missing`` and the reason in ``error``."""
    return [{"run_dir": str(job.run_dir), **parse_overrides(job.overrides), "status": "missing",
             "error": f"job {job.num}: {job.reason}"}
            for sweep in sweeps for job in sweep.missing]
