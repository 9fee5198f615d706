"""The config keys that take a boolean, read from the shipped config files (no hand-kept list).

A key is boolean when the shipped files give it a value and every such value is ``true`` or
``false`` (YAML booleans): the run's primary config (``conf/config.yaml``) and every group file
``conf/<group>/<option>.yaml``, each file's keys placed at its package (``conf/stage/ppo.yaml`` ->
``stage.``, ``# @package _global_`` -> the root). ``hydra.*`` is Hydra's own (its schema checks it),
a ``defaults`` list no setting. The other primary configs beside ``config.yaml`` (``design.yaml``,
``diagnose.yaml``) belong to other commands and are left out.

Hydra's override grammar reads ``true``/``false`` (any case) as booleans but ``off``, ``no``, ``yes``,
``on`` and ``abc`` as strings and ``0``/``1`` as integers, and a composed config has no schema: such
a value reached the code, where any non-empty string is true. :func:`rcollapse.config.checks.validate_config`
refuses it at every key :func:`boolean_keys` lists. A few keys take a boolean *or* something else
their reader understands; :data:`OR_VALUES` says what (the test of this module checks that each of
them still is a boolean key of the shipped files).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import yaml

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
PRIMARY = "config.yaml"
# strings that read as a yes/no answer: never a run dir unless such a dir exists
YES_NO_WORDS = frozenset({"", "true", "false", "on", "off", "yes", "no", "y", "n", "t", "f", "0", "1",
                          "null", "none"})


def _is_run_dir_name(value) -> bool:
    """``resume=<run dir>``: a string that names a dir, not a yes/no word (unless that dir exists)."""
    return isinstance(value, str) and (value.strip().lower() not in YES_NO_WORDS or Path(value).is_dir())


def _one_of(*words: str, fold_case: bool = False) -> Callable[[object], bool]:
    def accepts(value) -> bool:
        if not isinstance(value, str):
            return False
        return (value.strip().lower() if fold_case else value) in words

    return accepts


# boolean keys that also take another kind of value: (what the key takes, for the error; does it accept a value)
OR_VALUES: dict[str, tuple[str, Callable[[object], bool]]] = {
    # conf/config.yaml: resume=true continues in this job's dir, resume=<run dir> in that dir
    "resume": ("true, false or a run dir to resume", _is_run_dir_name),
    # conf/model/*.yaml, docs/configuration.md: true/on or false/off (rcollapse.stages.common_checks)
    "model.dropout": ("true (on: the checkpoint's dropout while training) or false (off: no dropout)",
                      _one_of("on", "off", "true", "false", fold_case=True)),
    # W&B's WandbLogger: log_model="all" uploads every checkpoint
    "logger.log_model": ("true, false or all (W&B: upload every checkpoint)", _one_of("all")),
    # Lightning's Trainer: deterministic="warn" warns instead of failing on nondeterministic ops
    "trainer.deterministic": ("true, false or warn (Lightning: warn on nondeterministic operations)",
                              _one_of("warn")),
}


def file_package(path: Path, conf_dir: Path) -> str:
    """The dotted key a config file's keys sit under: its ``# @package`` header line, else its
    group (``conf/stage/ppo.yaml`` -> ``stage``); ``""`` for the root."""
    group = ".".join(path.relative_to(conf_dir).parts[:-1])
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            break  # the header ends at the first setting
        words = stripped.lstrip("#").split()
        if len(words) >= 2 and words[0] == "@package":
            package = words[1].replace("_group_", group)
            if package == "_global_":
                return ""
            return package.removeprefix("_global_.")
    return group


def _leaves(node, prefix: str):
    """``(dotted key, value)`` of every scalar leaf of a YAML mapping (lists are values)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, node


def shipped_values(conf_dir: Path = CONF_DIR, primary: str = PRIMARY) -> dict[str, list[tuple[object, str]]]:
    """``{dotted key: [(value, file), ...]}`` over the primary config and every group file."""
    files = [conf_dir / primary, *sorted(p for p in conf_dir.rglob("*.yaml") if p.parent != conf_dir)]
    values: dict[str, list[tuple[object, str]]] = {}
    for path in files:
        tree = yaml.safe_load(path.read_text()) or {}
        if not isinstance(tree, dict):
            continue
        tree.pop("defaults", None)
        for key, value in _leaves(tree, file_package(path, conf_dir)):
            if key and key != "hydra" and not key.startswith("hydra."):
                values.setdefault(key, []).append((value, str(path.relative_to(conf_dir))))
    return values


@lru_cache(maxsize=4)
def boolean_keys(conf_dir: Path = CONF_DIR, primary: str = PRIMARY) -> frozenset[str]:
    """The dotted keys whose every shipped value is a boolean (empty when ``conf_dir`` is absent,
    e.g. the package installed without its configs)."""
    if not (conf_dir / primary).is_file():
        return frozenset()
    return frozenset(key for key, found in shipped_values(conf_dir, primary).items()
                     if all(isinstance(value, bool) for value, _ in found))


def mixed_keys(conf_dir: Path = CONF_DIR, primary: str = PRIMARY) -> dict[str, list[tuple[object, str]]]:
    """Keys a shipped file sets to a boolean and another to something else (none should be: such a
    key is no boolean key, so its values go unchecked)."""
    return {key: found for key, found in shipped_values(conf_dir, primary).items()
            if any(isinstance(v, bool) for v, _ in found) and not all(isinstance(v, bool) for v, _ in found)}
