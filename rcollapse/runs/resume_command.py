"""``python run.py resume=<run dir>``: the command line a resume runs with, read before Hydra starts.

A resumed run is the run it continues: ``resume=D`` alone takes D's own overrides (its
``.hydra/overrides.yaml``, in today's layout), so a user never retypes them. Overrides given with
it replace the run's own for the same key; those are changes, which the resume check refuses
unless ``resume_force=true`` (:mod:`rcollapse.runs.resume_checks`).

Checked here, before Hydra creates or writes anything: that D holds a run, that it is writable,
and that no ``hydra.run.dir`` names another dir (``resume=D`` runs in D). A new run's
``hydra.run.dir`` / ``hydra.sweep.dir`` that exists read-only is refused here too: Hydra would
fail writing its ``.hydra/`` there with a bare ``OSError``.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from rcollapse.config.migration import current_overrides
from rcollapse.config.resolvers import run_dir_for

# what says how this attempt runs, not what the run computes: never taken from the run
RUN_CONTROL_KEYS = ("resume", "resume_force", "ckpt_path", "fail_fast")
MULTIRUN_FLAGS = ("-m", "--multirun")


class ResumeCommandError(ValueError):
    """A resume or run dir given on the command line cannot be used (the message says why and what to do)."""


def _is_override(arg: str) -> bool:
    return "=" in arg and not arg.startswith("-")


def override_key(override: str) -> str:
    """The key an override sets: ``stage.max_steps`` of ``++stage.max_steps=3``, ``utility`` of ``utility=x``."""
    return override.partition("=")[0].lstrip("+~").strip()


def _value(args: list[str], key: str) -> str | None:
    """The value the command line gives ``key`` (its last override), or None."""
    found = None
    for arg in args:
        if _is_override(arg) and override_key(arg) == key:
            found = arg.partition("=")[2].strip().strip("'\"")
    return found


def named_run_dir(value: str | None) -> str | None:
    """The run dir a ``resume`` value names (None for true / false / absent): the rule of
    ``hydra.run.dir``'s resolver, :func:`rcollapse.config.resolvers.run_dir_for`."""
    return run_dir_for(value, None)


def _same_dir(a: str, b: str) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def _check_writable(path: Path, what: str) -> None:
    if path.exists() and not os.access(path, os.W_OK):
        raise ResumeCommandError(
            f"{what} {path} is not writable (a read-only file system, or its permissions): a run writes its "
            f"config, status, log and checkpoints there. Make it writable, or copy it to a writable place "
            f"(cp -a {path} NEW) and use NEW")


def run_overrides(run_dir: Path) -> list[str]:
    """The overrides the run in ``run_dir`` was started with, in today's layout, less the
    run-control ones; [] when it has no readable ``.hydra/overrides.yaml``."""
    try:
        items = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) or []
    except (OSError, yaml.YAMLError):
        return []
    if not isinstance(items, list):
        return []
    overrides = [str(item) for item in items if override_key(str(item)) not in RUN_CONTROL_KEYS]
    return current_overrides(overrides)


def _check_resume_target(run_dir: Path, args: list[str]) -> None:
    if not (run_dir / "config_resolved.yaml").exists():
        raise ResumeCommandError(
            f"resume: {run_dir} holds no run to resume (no config_resolved.yaml, which every run writes "
            f"first); check the path (a run dir such as outputs/runs/<date>/<time>, or a multirun's job dir), "
            f"or drop resume= to start a new run")
    _check_writable(run_dir, "resume: the run dir")
    other = _value(args, "hydra.run.dir")
    if other is not None and not _same_dir(other, str(run_dir)):
        raise ResumeCommandError(
            f"resume={run_dir} continues that run in its own dir, but hydra.run.dir={other} names another. "
            f"Drop hydra.run.dir to continue in {run_dir}; to continue a copy elsewhere, copy the dir first "
            f"(cp -a {run_dir} {other}) and resume={other}")


def resume_arguments(args: list[str]) -> list[str]:
    """``args`` (the command line less the program) as a resumed run needs them: with
    ``resume=<dir>`` (a single run), the run's own overrides added for every key the command line
    does not set. Raises :class:`ResumeCommandError` for a resume or run dir that cannot be used."""
    multirun = any(arg in MULTIRUN_FLAGS for arg in args)
    dir_key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    given_dir = _value(args, dir_key)
    if given_dir is not None:
        _check_writable(Path(given_dir), dir_key)
    run_dir = named_run_dir(_value(args, "resume"))
    if run_dir is None or multirun:
        return args
    path = Path(run_dir).expanduser()
    _check_resume_target(path, args)
    given = {override_key(arg) for arg in args if _is_override(arg)}
    taken = [override for override in run_overrides(path) if override_key(override) not in given]
    return [*args, *taken]
