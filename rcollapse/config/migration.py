"""A run's config as the current layout spells it, whichever layout wrote it.

A run dir keeps the config it ran with (``config_resolved.yaml``). Run dirs written before the
package took its layers (issue 24) name modules that moved (``rcollapse.ppo_objective`` is now
``rcollapse.maths.ppo_objective``) and keys that moved (``dataset.datamodule.source.num_train``
is now ``dataset.num_train``). Everything that reads an old run's config (a resume's comparison,
``diagnose`` rebuilding the model, the report telling the PPO arms apart) reads it through
:func:`current_layout`, so such a run resumes, diagnoses and reports as it did.

The translation is a table, not code per version: :data:`MOVED_MODULES` (old module prefix -> new),
:data:`MOVED_KEYS` (old dotted key -> new dotted key), :data:`DROPPED_KEYS`,
:data:`FLATTENED_NODES` (a node whose keys moved up a level) and :data:`FOLDED_KEYS` (an old key whose
value now lives in another key's, e.g. ``stage.module.variance_weighted: false`` ->
``stage.module.kl_weight: one``), applied to a plain dict. A config already in the current layout
comes back unchanged. :func:`current_overrides` reads a run's command-line overrides
(``.hydra/overrides.yaml``) through the same tables.
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
MOVED_KEYS: list[tuple[str, str]] = [
    # issue 24: the theory and bandit stages' settings live under their stage
    ("theory", "stage.theory"),
    ("bandit", "stage.bandit"),
    # issue 24: the Slurm sizes (hardware=slurm_*) live under the hardware group's name
    ("slurm", "hardware"),
    # issue 24: the reward stage's optimiser sits beside its module, as the other stages' do
    ("stage.module.optimizer", "stage.optimizer"),
    # issue 24: RewardBench's Prior Sets are its evaluation source's own arguments, and the IMDB
    # prompts' arguments are named as the keys a user typed (before FLATTENED_NODES lifts them)
    ("dataset.datamodule.eval_source.prior_sets.limit_per_split", "dataset.datamodule.eval_source.prior_limit_per_split"),
    ("dataset.datamodule.source.unit", "dataset.prompt_unit"),
    ("dataset.datamodule.source.min_length", "dataset.prompt_min_length"),
    ("dataset.datamodule.source.max_length", "dataset.prompt_max_length"),
]

# keys the current layout has no place for, dropped before MOVED_KEYS (a key absent is skipped).
# issue 24: a source's key for its offline error (the data module knows it now), and the copies the
# evaluation source held of the hub-name keys dataset.eval_path / dataset.path / dataset.prior_path
DROPPED_KEYS: list[str] = [
    "dataset.datamodule.source.path_key",
    "dataset.datamodule.train_source.path_key",
    "dataset.datamodule.eval_source.path",
    "dataset.datamodule.eval_source.path_key",
    "dataset.datamodule.eval_source.prior_sets.path",
    "dataset.datamodule.eval_source.prior_sets.path_key",
    "dataset.datamodule.eval_source.prior_sets._target_",
]

# nodes whose keys moved up, applied after FOLDED_KEYS, in order: (old node, where its keys go,
# the node that keeps its class as `{_target_, _partial_: true}` or None); a key it moves replaces
# one of the same name there (the old node's value is the one the run used); a null node stays null.
FLATTENED_NODES: list[tuple[str, str, str | None]] = [
    # issue 24: a data set file is its data module's arguments: the module's own and its source's
    # at dataset.* (dataset.num_train, not dataset.datamodule.source.num_train), the evaluation
    # source's in dataset.eval_source
    ("dataset.datamodule.source", "dataset", "dataset.source"),
    ("dataset.datamodule.train_source", "dataset", "dataset.train_source"),
    ("dataset.datamodule.eval_source", "dataset.eval_source", "dataset.eval_source"),
    ("dataset.datamodule", "dataset", None),
]


class Keep:
    """In :data:`FOLDED_KEYS`: the new key keeps the value the config gives it, or ``default``
    when it gives none (a config written before the key existed)."""

    def __init__(self, default: object):
        self.default = default

    def __repr__(self) -> str:
        return f"Keep({self.default!r})"


# keys whose value now lives in another key's value, applied after MOVED_KEYS:
# (old key, new key, {old key's value: the new key's value, or Keep(default)}); the old key is
# removed. A value the table does not name is left as it was (the config check then names it).
FOLDED_KEYS: list[tuple[str, str, dict[object, object]]] = [
    # issue 24: vanilla PPO was stage.module.variance_weighted=false (w = 1), now kl_weight=one;
    # variance_weighted=true weighted by kl_weight (variance or std; variance before kl_weight existed)
    ("stage.module.variance_weighted", "stage.module.kl_weight", {False: "one", True: Keep("variance")}),
    # issue 25: one scale key for everything that consumes an ensemble; normalise_heads=false
    # reported the raw heads
    ("stage.ensemble.normalise_heads", "stage.ensemble_scale", {True: "normalised", False: "raw"}),
]

# keys the current layout adds that an old config lacks, with the value the old code used:
# (key, value, applies when this key's value ..., ... is one of these)
ADDED_NODES: list[tuple[str, object, str, tuple[str, ...]]] = [
    *[("stage.checks", {"_target_": f"rcollapse.stages.{name}_checks.check_{name}_config", "_partial_": True},
       "stage.name", (name,)) for name in ("reward", "ensemble", "ppo")],
    ("dataset.pack_length", None, "dataset.source._target_",
     ("rcollapse.data.sources.LengthOfflineSource", "rcollapse.data.sources.LongFormLengthSource")),
    ("dataset.min_words", 100, "dataset.source._target_", ("rcollapse.data.sources.LengthOfflineSource",)),
    ("dataset.max_words", 160, "dataset.source._target_", ("rcollapse.data.sources.LengthOfflineSource",)),
    # issue 25: before stage.ensemble_scale, PPO and the ensemble stage scored on the normalised scale
    ("stage.ensemble_scale", "normalised", "stage.name", ("ppo", "ensemble")),
    # issue 25: phase 1 ran stage.max_steps at a constant lr (no epoch-derived plan, no cosine)
    ("stage.ensemble.epochs", None, "stage.name", ("ensemble",)),
    ("stage.ensemble.lr_schedule", "constant", "stage.name", ("ensemble",)),
    # issue 25: the judge's batches (generation and scoring) were 64 prompts
    ("stage.judge_batch_size", 64, "stage.name", ("ppo",)),
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


def _fold(config: dict, old: str, new: str, values: dict) -> None:
    """One :data:`FOLDED_KEYS` row: ``old``'s value mapped to ``new``'s, ``old`` removed."""
    value = _get(config, old)
    if value is _ABSENT or not isinstance(value, (bool, int, float, str)) or value not in values:
        return
    _pop(config, old)
    target = values[value]
    if isinstance(target, Keep):
        if _get(config, new) is _ABSENT:
            _put(config, new, target.default)
    else:
        _put(config, new, target)


def _flatten(config: dict, old: str, parent: str, class_node: str | None) -> None:
    """One :data:`FLATTENED_NODES` row."""
    node = _pop(config, old)
    if node is _ABSENT:
        return
    if node is None or not isinstance(node, dict):
        _put(config, class_node or old, node)
        return
    if class_node is not None and "_target_" in node:
        _put(config, class_node, {"_target_": node.pop("_target_"), "_partial_": True})
    for key, value in node.items():
        _put(config, f"{parent}.{key}", value)


def current_layout(config: dict) -> dict:
    """``config`` (a plain dict, e.g. a run's ``config_resolved.yaml``) in the current layout:
    moved modules renamed in every ``_target_``, moved keys at their new place, folded keys'
    values in the key that now holds them, nodes the current layout adds filled in. The input is
    not modified."""
    config = _rename_targets(copy.deepcopy(config))
    for old in DROPPED_KEYS:
        if _pop(config, old) is not _ABSENT:
            _prune_empty(config, old)
    for old, new in MOVED_KEYS:
        value = _pop(config, old)
        if value is not _ABSENT:
            _prune_empty(config, old)
            if _get(config, new) is _ABSENT:
                _put(config, new, value)
    for old, new, values in FOLDED_KEYS:
        _fold(config, old, new, values)
    for old, parent, class_node in FLATTENED_NODES:
        _flatten(config, old, parent, class_node)
    for key, value, when_key, when_values in ADDED_NODES:
        if _get(config, when_key) in when_values and _get(config, key) is _ABSENT:
            _put(config, key, copy.deepcopy(value))
    return config


def _current_key(key: str) -> str | None:
    """A dotted key of an old layout as the current layout spells it (None: it has no place now)."""
    for old in DROPPED_KEYS:
        if key == old or key.startswith(old + "."):
            return None
    for old, new in MOVED_KEYS:
        if key == old or key.startswith(old + "."):
            key = new + key[len(old):]
    for old, parent, class_node in FLATTENED_NODES:
        if key.startswith(old + "."):
            rest = key[len(old) + 1:]
            if rest.split(".")[0] in ("_target_", "_partial_"):
                return None if class_node is None else f"{class_node}.{rest}"
            key = f"{parent}.{rest}"
    return key


def current_overrides(overrides: list[str]) -> list[str]:
    """Command-line overrides (a run's ``.hydra/overrides.yaml``) written for an old layout, in the
    current one: moved keys renamed (``bandit.setting=high`` -> ``stage.bandit.setting=high``),
    folded keys' values moved (``stage.module.variance_weighted=false`` ->
    ``stage.module.kl_weight=one``), dropped keys left out; group choices (``utility=x``) and
    current overrides come back unchanged. The same tables as :func:`current_layout`."""
    result = []
    for override in overrides:
        prefix = override[:len(override) - len(override.lstrip("+~"))]
        key, sep, value = override[len(prefix):].partition("=")
        if "." not in key or "@" in key or "/" in key:
            result.append(override)
            continue
        folded = next((row for row in FOLDED_KEYS if row[0] == key), None)
        if folded is not None and value.lower() in ("true", "false"):
            _, new, values = folded
            target = values.get(value.lower() == "true", _ABSENT)
            if isinstance(target, Keep):
                named = any(o.lstrip("+~").partition("=")[0] == new for o in overrides)
                target = _ABSENT if named else target.default
            if target is not _ABSENT:
                result.append(f"{new}={target}")
            continue
        new_key = _current_key(key)
        if new_key is not None:
            result.append(f"{prefix}{new_key}{sep}{value}")
    return result
