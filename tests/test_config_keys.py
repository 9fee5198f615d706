"""Keys a user types are at most two levels below their group (issue 24).

Every option of every config group (``conf/<group>/*.yaml``, each experiment and each sweep among
them) is composed, and every settable leaf of the result is listed: a leaf deeper than two levels
below its group (``stage.module.kl_weight`` is fine, ``dataset.datamodule.source.num_train`` is
not) fails, outside ``hydra.*`` and Hydra's instantiation internals (``_target_``, ``_partial_``;
a node holding only those is internals). A group's settings live under the group's name: the
top-level keys are the groups' nodes and the root config's own settings.
"""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from tests.conftest import CONF, compose_config

# Hydra's instantiation keys: internals, not settings
INTERNALS = {"_target_", "_partial_", "_args_", "_recursive_", "_convert_"}
MAX_DEPTH = 2  # levels below the group: stage.module.kl_weight
# the root config's own settings (conf/config.yaml), beside the groups' nodes
ROOT_SETTINGS = {"seed", "optimized_metric", "resume", "resume_force", "ckpt_path", "fail_fast", "paths", "trainer"}
# groups that only make sense with another choice (they set that stage's keys)
CONTEXT = {"ppo_arm": ["stage=ppo"], "judge": ["stage=ppo"], "ensemble_heads": ["stage=ensemble"]}
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir())


def _overrides(group: str, option: str) -> list[str]:
    if group == "sweep":  # not in the defaults list: added
        return [f"+sweep={option}"]
    return [*CONTEXT.get(group, []), f"{group}={option}"]


COMPOSITIONS = [(group, path.stem) for group in GROUPS for path in sorted((CONF / group).glob("*.yaml"))]


def _compose(overrides: list[str], with_hydra: bool = False):
    from rcollapse.config.resolvers import register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=with_hydra)


def settable_leaves(node, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key a user can set in ``node`` (a plain container): scalars, lists and empty nodes;
    Hydra's ``_target_``-style keys and nodes made only of them are internals."""
    if not isinstance(node, dict):
        return [path]
    keys = [key for key in node if key not in INTERNALS]
    if not keys:
        return [path] if not node else []
    return [leaf for key in keys for leaf in settable_leaves(node[key], (*path, str(key)))]


def _leaves(overrides: list[str]) -> list[str]:
    config = OmegaConf.to_container(_compose(overrides), resolve=False)
    config.pop("hydra", None)
    return [".".join(leaf) for leaf in settable_leaves(config)]


def test_the_leaf_listing_skips_internals_and_counts_depth_below_the_group():
    config = {"stage": {"runner": {"_target_": "f", "_partial_": True},
                        "module": {"_target_": "M", "kl_weight": "one", "optimizer": {"_target_": "A", "lr": 1}}},
              "trainer": {"plugins": [], "strategy": {}}}
    assert [".".join(leaf) for leaf in settable_leaves(config)] == [
        "stage.module.kl_weight", "stage.module.optimizer.lr", "trainer.plugins", "trainer.strategy"]


@pytest.mark.parametrize(("group", "option"), COMPOSITIONS, ids=[f"{g}={o}" for g, o in COMPOSITIONS])
def test_every_settable_key_is_at_most_two_levels_below_its_group(group, option):
    """Also: a group's settings sit under its name (``theory:``, ``bandit:`` and ``slurm:`` sat at
    the top): every top-level key is a group's node or a root setting."""
    leaves = _leaves(_overrides(group, option))
    assert leaves, "nothing settable?"
    too_deep = [leaf for leaf in leaves if leaf.count(".") > MAX_DEPTH]
    assert not too_deep, f"{group}={option}: keys more than {MAX_DEPTH} levels below their group: {too_deep}"
    stray = {leaf.split(".")[0] for leaf in leaves} - ROOT_SETTINGS - set(GROUPS)
    assert not stray, f"{group}={option} writes top-level keys that belong under a group: {sorted(stray)}"


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "sweep").glob("*.yaml"))
                         + sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")))
def test_every_swept_key_is_a_settable_key_or_a_group(name, tmp_path):
    """The keys under ``hydra.sweeper.params`` are typed like any override: each names a group or a
    settable key of the composed config, at most two levels below its group."""
    overrides = [f"+sweep={name}"] if (CONF / "sweep" / f"{name}.yaml").exists() else [f"experiment={name}"]
    params = _compose(overrides, with_hydra=True).hydra.sweeper.params or {}
    leaves = set(_leaves(overrides))
    for key in params:
        if key in GROUPS:
            continue
        assert key in leaves or key in ROOT_SETTINGS, f"{name}: swept key {key} is not a settable key"
        assert key.count(".") <= MAX_DEPTH, f"{name}: swept key {key} is too deep"
        compose_config([*overrides, f"{key}={OmegaConf.select(_compose(overrides), key)}"], tmp_path)
