"""Before a run continues in an existing run dir: is there a run to continue, and is it the same
experiment? (issue 16, item 9)

``resume=<dir>`` must name a dir that holds a run (its ``config_resolved.yaml``, which the
pipeline writes first): a mistyped path would otherwise train from scratch in a new dir. And a
resumed run's config must be the interrupted run's, so that the dir is never relabelled: the
differing keys are listed and the run refused, unless ``resume_force=true``. Keys that say where
and how a run is resumed or logged, not what it computes, are not compared.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from rcollapse.config_checks import ConfigError

# not part of what a run computes: how it is resumed, where its caches are, how it is logged
IGNORED = ("resume", "resume_force", "ckpt_path", "fail_fast", "paths.", "hydra.", "logger.tags", "logger.mode",
           "logger.group")


def resume_dir(cfg: DictConfig) -> str | None:
    """The run dir ``resume=<dir>`` names, or None (``resume`` false or true)."""
    value = cfg.get("resume")
    if isinstance(value, str) and value.strip().lower() not in ("", "true", "false", "null", "none"):
        return value
    return None


def flatten(tree, prefix: str = "") -> dict[str, object]:
    """``{"a.b": value}`` of a nested dict (lists kept as values)."""
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    out = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}{key}.") if isinstance(value, dict) and value else {f"{prefix}{key}": value})
    return out


def config_differences(before: dict, after: dict) -> list[str]:
    """The keys whose values differ between two resolved configs (``a.b: old -> new``), the
    :data:`IGNORED` ones left out."""
    old, new = flatten(before), flatten(after)
    lines = []
    for key in sorted(set(old) | set(new)):
        if key.startswith(IGNORED):
            continue
        if old.get(key, "<absent>") != new.get(key, "<absent>"):
            lines.append(f"{key}: {old.get(key, '<absent>')!r} -> {new.get(key, '<absent>')!r}")
    return lines


def check_resume(cfg: DictConfig, output_dir: Path) -> None:
    """Refuse ``resume=<dir>`` without a run in it, and a resume whose config differs from the
    run's (``resume_force=true`` allows the latter). ``resume=true`` in a dir without a run starts
    it (a requeued job's first attempt)."""
    from rcollapse.training_run import wants_resume

    if not wants_resume(cfg):
        return
    previous = output_dir / "config_resolved.yaml"
    named = resume_dir(cfg)
    if not previous.exists():
        if named is not None:
            raise ConfigError(f"resume: {named} holds no run to resume (no config_resolved.yaml, which every run "
                              "writes first); check the path (a run dir such as outputs/runs/<date>/<time>, or a "
                              "multirun's job dir), or drop resume= to start a new run")
        return
    before = yaml.safe_load(previous.read_text()) or {}
    after = OmegaConf.to_container(cfg, resolve=True)
    differences = config_differences(before, after)
    if differences and not cfg.get("resume_force", False):
        shown = "\n  ".join(differences[:20]) + (f"\n  ... and {len(differences) - 20} more" if len(differences) > 20 else "")
        raise ConfigError(f"resume: the config differs from the interrupted run's in {output_dir} "
                          f"({len(differences)} key(s)):\n  {shown}\nResume with the run's own overrides "
                          "(its .hydra/overrides.yaml before this attempt, or config_resolved.yaml), or pass "
                          "resume_force=true to continue with the new values (the run dir then mixes two configs)")
