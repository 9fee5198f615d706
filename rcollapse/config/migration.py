"""A run's config as the current layout spells it, whichever layout wrote it.

A run dir keeps the config it ran with (``config_resolved.yaml``). Run dirs written before the
package took its layers (issue 24) name modules that moved (``rcollapse.ppo_objective`` is now
``rcollapse.maths.ppo_objective``) and keys that moved (``dataset.datamodule.source.num_train``
is now ``dataset.num_train``). Everything that reads an old run's config (a resume's comparison,
``diagnose`` rebuilding the model, the report telling the PPO arms apart) reads it through
:func:`current_layout`, so such a run resumes, diagnoses and reports as it did.

The translation is a table, not code per version: :data:`MOVED_MODULES` (old module prefix -> new)
and :data:`MOVED_KEYS` (old dotted key -> new dotted key), applied to a plain dict. A config
already in the current layout comes back unchanged.
"""

from __future__ import annotations

import copy

# module paths of `_target_`s that moved into the subpackages
MOVED_MODULES: dict[str, str] = {
    **{f"rcollapse.{name}": f"rcollapse.maths.{name}"
       for name in ("utilities", "theory", "bandit", "ranking_objective", "preference_objective",
                    "ppo_objective", "utility_design")},
    **{f"rcollapse.{name}": f"rcollapse.runs.{name}"
       for name in ("atomic_files", "checkpoint_files", "csv_log", "interruption", "run_lock", "resume_checks",
                    "run_cost", "wandb_run_id", "training_run", "hydra_callbacks")},
    "rcollapse.config_checks": "rcollapse.config.checks",
    "rcollapse.config_resolvers": "rcollapse.config.resolvers",
}

# dotted keys that moved (applied in order; a key absent from the config is skipped)
MOVED_KEYS: list[tuple[str, str]] = []

# nodes the current layout adds that an old config lacks: (key, value, applies when stage.name is one of)
ADDED_NODES: list[tuple[str, object, tuple[str, ...]]] = [
    *[("stage.checks", {"_target_": f"rcollapse.stages.{name}_checks.check_{name}_config", "_partial_": True},
       (name,)) for name in ("reward", "ensemble", "ppo")],
]


def _renamed_target(target: str) -> str:
    for old, new in MOVED_MODULES.items():
        if target == old or target.startswith(old + "."):
            return new + target[len(old):]
    return target


def _rename_targets(node):
    if isinstance(node, dict):
        return {key: _renamed_target(value) if key == "_target_" and isinstance(value, str) else _rename_targets(value)
                for key, value in node.items()}
    if isinstance(node, list):
        return [_rename_targets(value) for value in node]
    return node


_ABSENT = object()


def _pop(tree: dict, dotted: str):
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        if not isinstance(node, dict) or part not in node:
            return _ABSENT
        node = node[part]
    if not isinstance(node, dict) or leaf not in node:
        return _ABSENT
    return node.pop(leaf)


def _put(tree: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[leaf] = value


def _get(tree: dict, dotted: str):
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _ABSENT
        node = node[part]
    return node


def _prune_empty(tree: dict, dotted: str) -> None:
    """Drop the parents of a moved key that it left empty (``dataset.datamodule.source: {}``)."""
    parts = dotted.split(".")[:-1]
    while parts:
        node = _get(tree, ".".join(parts))
        if isinstance(node, dict) and not node:
            _pop(tree, ".".join(parts))
            parts = parts[:-1]
        else:
            break


def current_layout(config: dict) -> dict:
    """``config`` (a plain dict, e.g. a run's ``config_resolved.yaml``) in the current layout:
    moved modules renamed in every ``_target_``, moved keys at their new place, nodes the current
    layout adds filled in. The input is not modified."""
    config = _rename_targets(copy.deepcopy(config))
    for old, new in MOVED_KEYS:
        value = _pop(config, old)
        if value is not _ABSENT:
            _prune_empty(config, old)
            if _get(config, new) is _ABSENT:
                _put(config, new, value)
    stage_name = _get(config, "stage.name")
    for key, value, stages in ADDED_NODES:
        if stage_name in stages and _get(config, key) is _ABSENT:
            _put(config, key, copy.deepcopy(value))
    return config
