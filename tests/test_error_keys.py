"""Every error that names a key names the one a user types, in full (issue 24).

An AST scan of ``rcollapse/`` collects the config keys the package names: every dotted key in the
text of an ``...Error(...)`` call or a ``require(...)`` check, and every string that is a dotted
key by itself (``"utility.gamma"`` handed to a check, ``PACKING_KEY = "dataset.packing"``). Each
must compose as an override, ``key=<its current value>``, in a config where it exists: a message
naming a bare ``kl_weight``, a key of an older layout (``theory.n``, ``dataset.datamodule.*``) or a
key that exists nowhere fails here. ``rcollapse/config/migration.py`` names the old layout's keys
on purpose and is not scanned.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, ListConfig, OmegaConf

from tests.conftest import CONF, REPO

PACKAGE = REPO / "rcollapse"
NOT_SCANNED = {"config/migration.py"}  # the old layout's keys, translated
# the first part of a key a user types: a group's node, a root setting or Hydra's own
TOP = ("stage", "dataset", "model", "utility", "hardware", "logger", "judge", "trainer", "paths", "hydra",
       # old top-level nodes: named anywhere, they fail below
       "theory", "bandit", "slurm")
KEY = re.compile(rf"(?<![\w/.-])((?:{'|'.join(TOP)})(?:\.[A-Za-z_]\w*)+)(?![\w(])")
# dotted names that are not config keys: file names and a module path inside a transformer
FILE_SUFFIXES = {"json", "csv", "png", "yaml", "ckpt", "pt", "safetensors", "txt", "md", "jsonl"}
NOT_KEYS = {"model.layers"}  # backbone_options.GENERIC_LAYER_PATHS: an attribute path of a HF model
# where to look for a key that the default config lacks (the first composition holding it is used)
CONTEXTS = [[], *[[f"{group}={p.stem}"] for group in ("stage", "dataset", "model", "hardware", "utility", "logger")
                  for p in sorted((CONF / group).glob("*.yaml"))],
            *[["stage=ppo", f"{group}={p.stem}"] for group in ("ppo_arm", "judge")
              for p in sorted((CONF / group).glob("*.yaml"))],
            *[["stage=ensemble", f"ensemble_heads={p.stem}"] for p in sorted((CONF / "ensemble_heads").glob("*.yaml"))]]
_MISSING = object()


def _name(func: ast.expr) -> str:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _texts(node: ast.AST):
    """Each string under ``node``, with whether a formatted value follows it in its f-string."""
    parts_of_fstrings = set()
    for child in ast.walk(node):
        if isinstance(child, ast.JoinedStr):
            for part, after in zip(child.values, [*child.values[1:], None]):
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    parts_of_fstrings.add(id(part))
                    yield part.value, isinstance(after, ast.FormattedValue)
    for child in ast.walk(node):
        if isinstance(child, ast.Constant) and isinstance(child.value, str) and id(child) not in parts_of_fstrings:
            yield child.value, False


def _is_message(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and (_name(node.func).endswith("Error") or _name(node.func) == "require")


def named_keys(root: Path = PACKAGE) -> dict[str, list[str]]:
    """Key -> where (``path:line``) for every config key the package under ``root`` names."""
    found: dict[str, list[str]] = {}

    def add(key: str, path: Path, line: int) -> None:
        where = f"{path.relative_to(root).as_posix()}:{line}"
        if key.rsplit(".", 1)[1] not in FILE_SUFFIXES and key not in NOT_KEYS and where not in found.get(key, []):
            found.setdefault(key, []).append(where)

    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).as_posix() in NOT_SCANNED:
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and KEY.fullmatch(node.value):
                add(node.value, path, node.lineno)  # a key by itself: "utility.gamma", PACKING_KEY
            if not _is_message(node):
                continue
            for text, formatted_next in _texts(node):
                for match in KEY.finditer(text):
                    if formatted_next and text[match.end():] == ".":
                        continue  # f"stage.module.{key}": made at run time (a key by itself elsewhere)
                    add(match.group(1), path, node.lineno)
    return found


@cache
def _composed(overrides: tuple[str, ...]) -> DictConfig:
    from rcollapse.config.resolvers import register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def _override_value(value) -> str:
    """``value`` in Hydra's override grammar."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, ListConfig)):
        return "[" + ",".join(_override_value(v) for v in value) + "]"
    if isinstance(value, (dict, DictConfig)):
        return "{" + ",".join(f"{k}:{_override_value(v)}" for k, v in value.items()) + "}"
    escaped = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def test_the_scan_finds_the_keys_of_messages_checks_and_constants(tmp_path):
    (tmp_path / "m.py").write_text(
        "def f(x, key='model.dtype'):\n"
        "    require(x, 'stage.module.kl_weight', 'must be one of one, std, variance')\n"
        "    raise ConfigError(f'kl_weight: bad {x}; see theory.n, not utility.for_openness(s) or rm/val/x.y')\n"
        "    raise ValueError(f'stage.ensemble.{x} must be > 0; see theory.json')\n"
        "    print('the config: stage.not_a_message')\n"
        "PACKING_KEY = 'dataset.packing'\n")
    found = {key: [where.rsplit(":", 1)[1] for where in places] for key, places in named_keys(tmp_path).items()}
    assert found == {"model.dtype": ["1"], "stage.module.kl_weight": ["2"], "theory.n": ["3"], "dataset.packing": ["6"]}


KEYS = named_keys()


def test_the_package_names_keys():
    assert {"stage.module.kl_weight", "stage.bandit.setting", "stage.theory.n", "utility.eps", "utility.gamma",
            "model.dtype", "dataset.packing"} <= set(KEYS)


@pytest.mark.parametrize("key", sorted(KEYS))
def test_every_key_the_package_names_composes_as_an_override(key):
    for context in CONTEXTS:
        node = OmegaConf.to_container(_composed(tuple(context)), resolve=False)
        for part in key.split("."):
            node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
        if node is _MISSING:
            continue
        _composed((*context, f"{key}={_override_value(node)}"))  # its current value, as typed (unresolved)
        return
    pytest.fail(f"{key} (named at {', '.join(KEYS[key][:3])}) is not a key of any composed config: "
                "a user cannot type it")
