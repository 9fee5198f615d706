"""Before a run starts in its run dir: is there a run to continue, is it the same experiment, and
is a new run about to overwrite an old one? (issue 16, item 9)

A new run (no ``resume``) is refused in a dir that already holds a run's results (metrics, log or
checkpoints): it would overwrite them. A run that failed before training left none, and its dir
may be used again.

``resume=<dir>`` must name a dir that holds a run (its ``config_resolved.yaml``, which the
pipeline writes first): a mistyped path would otherwise train from scratch in a new dir. And a
resumed run's config must be the interrupted run's, so that the dir is never relabelled: the
differing keys are listed and the run refused, unless ``resume_force=true``. Keys that say where
and how a run is resumed or logged, not what it computes, are not compared, and paths inside the
run dir follow it: a run dir moved or copied elsewhere resumes there (its log and checkpoint
paths name the new place). ``ckpt_path=last`` is a resume of the run in this dir, with the same checks.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rcollapse.config.checks import ConfigError
from rcollapse.config.resolvers import run_dir_for
from rcollapse.runs.run_config import read_run_config

# not part of what a run computes: how it is resumed, where its caches are, how it is logged
IGNORED = ("resume", "resume_force", "ckpt_path", "fail_fast", "paths.", "hydra.", "logger.tags", "logger.mode",
           "logger.group")


def resume_dir(cfg: DictConfig) -> str | None:
    """The run dir ``resume=<dir>`` names, or None (``resume`` false or true)."""
    return run_dir_for(cfg.get("resume"), None)


def flatten(tree, prefix: str = "") -> dict[str, object]:
    """``{"a.b": value}`` of a nested dict (lists kept as values)."""
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    out = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}{key}.") if isinstance(value, dict) and value else {f"{prefix}{key}": value})
    return out


def _moved_with_the_run_dir(before: dict, after: dict) -> dict:
    """``before`` with every path inside its run dir (``paths.output_dir``) moved into ``after``'s:
    a copied or moved run dir names its log and checkpoints in its new place, which is no change."""
    old_dir = str((before.get("paths") or {}).get("output_dir") or "")
    new_dir = str((after.get("paths") or {}).get("output_dir") or "")
    if not old_dir or not new_dir or old_dir == new_dir:
        return before

    def moved(value):
        if isinstance(value, dict):
            return {key: moved(item) for key, item in value.items()}
        if isinstance(value, list):
            return [moved(item) for item in value]
        if isinstance(value, str) and (value == old_dir or value.startswith(old_dir.rstrip("/") + "/")):
            return new_dir + value[len(old_dir):]
        return value

    return moved(before)


def config_differences(before: dict, after: dict) -> list[str]:
    """The keys whose values differ between two resolved configs (``a.b: old -> new``), the
    :data:`IGNORED` ones left out and paths inside the run dir taken as following it."""
    old, new = flatten(_moved_with_the_run_dir(before, after)), flatten(after)
    lines = []
    for key in sorted(set(old) | set(new)):
        if key.startswith(IGNORED):
            continue
        if old.get(key, "<absent>") != new.get(key, "<absent>"):
            lines.append(f"{key}: {old.get(key, '<absent>')!r} -> {new.get(key, '<absent>')!r}")
    return lines


def run_results(output_dir: Path) -> list[str]:
    """What a run left in ``output_dir`` that a new run there would overwrite: its metrics, its
    log, its checkpoints (a run that failed before training leaves none of them)."""
    found = [name for name in ("metrics.json", "csv/metrics.csv") if (output_dir / name).exists()]
    checkpoints = output_dir / "checkpoints"
    if checkpoints.is_dir() and any(checkpoints.rglob("*.ckpt")):
        found.append("checkpoints/")
    return found


def check_resume(cfg: DictConfig, output_dir: Path) -> list[str]:
    """Refuse a new run (no ``resume``) in a dir that holds a run's results, ``resume=<dir>`` without a run in
    it, and a resume whose config differs from the run's (``resume_force=true`` allows the
    latter). ``resume=true`` in a dir without a run starts it (a requeued job's first attempt).
    Returns the differences a forced resume goes on with ([] when the config is the run's)."""
    from rcollapse.runs.training_run import wants_resume

    previous = output_dir / "config_resolved.yaml"
    if not wants_resume(cfg):
        results = run_results(output_dir)
        if results:
            raise ConfigError(f"{output_dir} holds a run already ({', '.join(results)}): a new run there would "
                              f"overwrite its records. Resume it with resume={output_dir}, or start this run in "
                              "another dir (another hydra.run.dir / hydra.sweep.dir, or none for a new dated one)")
        return []
    named = resume_dir(cfg)
    if not previous.exists():
        if named is not None:
            raise ConfigError(f"resume: {named} holds no run to resume (no config_resolved.yaml, which every run "
                              "writes first); check the path (a run dir such as outputs/runs/<date>/<time>, or a "
                              "multirun's job dir), or drop resume= to start a new run")
        return []
    before = read_run_config(output_dir)  # a run written by an earlier layout reads as today's
    after = OmegaConf.to_container(cfg, resolve=True)
    differences = config_differences(before, after)
    if differences and not cfg.get("resume_force", False):
        shown = "\n  ".join(differences[:20]) + (f"\n  ... and {len(differences) - 20} more" if len(differences) > 20 else "")
        raise ConfigError(f"resume: the config differs from the run's in {output_dir} "
                          f"({len(differences)} key(s)):\n  {shown}\nresume={output_dir} alone continues the run "
                          "as it was configured (its .hydra/overrides.yaml); pass resume_force=true to continue with "
                          "the new values (a completed run's results are then kept in its superseded/ dir)")
    return differences
