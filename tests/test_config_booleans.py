"""Every boolean key takes only a boolean (issue 26): ``off``, ``no``, ``0`` or ``abc`` is refused,
naming the key, before any training. The boolean keys are read from the shipped config files."""

from __future__ import annotations

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from rcollapse.config.boolean_keys import (
    CONF_DIR,
    OR_VALUES,
    boolean_keys,
    file_package,
    mixed_keys,
)
from rcollapse.config.checks import ConfigError, validate_config
from tests.conftest import compose_config


@pytest.mark.parametrize(("word", "parsed"), [("off", "off"), ("no", "no"), ("yes", "yes"), ("abc", "abc"),
                                              ("0", 0), ("1", 1), ("True", True), ("FALSE", False)])
def test_what_hydra_makes_of_yes_no_words(word, parsed):
    """Why the check is needed: only true/false (any case) become booleans."""
    value = OverridesParser.create().parse_override(f"stage.module.whiten_advantages={word}").value()
    assert value == parsed and type(value) is type(parsed)


@pytest.mark.parametrize("key", ["stage.module.normalise_kl_weight", "stage.module.whiten_advantages"])
@pytest.mark.parametrize("value", ["off", "abc", "0", "no", "''", "null", "1.0"])
def test_a_non_boolean_at_a_ppo_switch_is_refused_naming_the_key(key, value, tmp_path):
    cfg = compose_config(["stage=ppo", f"{key}={value}"], tmp_path)
    with pytest.raises(ConfigError, match=rf"^{key}: must be true or false, got .*set {key}=true or {key}=false"):
        validate_config(cfg)


def test_the_old_variance_weighted_switch_is_no_key(tmp_path):
    """``stage.module.variance_weighted`` became ``stage.module.kl_weight`` (issue 24): Hydra refuses
    it by name, whatever the value (the brief's ``variance_weighted=off`` example)."""
    from hydra.errors import ConfigCompositionException

    for value in ("off", "abc", "0"):
        with pytest.raises(ConfigCompositionException, match="stage.module.variance_weighted"):
            compose_config(["stage=ppo", f"stage.module.variance_weighted={value}"], tmp_path)


@pytest.mark.parametrize("override", ["fail_fast=no", "resume_force=yes", "trainer.enable_progress_bar=0",
                                      "dataset.packing=on", "trainer.deterministic=abc", "logger=wandb logger.log_model=yes",
                                      "model.dropout=1", "resume=0", "resume=off", "resume=null"])
def test_non_booleans_elsewhere_are_refused(override, tmp_path):
    key = override.split()[-1].split("=")[0]
    with pytest.raises(ConfigError, match=rf"^{key}: must be true.*false.*, got .*; set {key}=true or {key}=false"):
        validate_config(compose_config(override.split(), tmp_path))


@pytest.mark.parametrize("overrides", [
    ["stage=ppo", "stage.module.normalise_kl_weight=true", "stage.module.whiten_advantages=False"],
    ["model.dropout=off"], ["model.dropout=ON"], ["trainer.deterministic=warn"],
    ["logger=wandb", "logger.log_model=all"], ["fail_fast=TRUE", "resume_force=false", "resume=false"]])
def test_booleans_and_the_declared_other_values_pass(overrides, tmp_path):
    validate_config(compose_config(overrides, tmp_path))


def test_resume_takes_a_run_dir(tmp_path):
    validate_config(compose_config([f"resume={tmp_path}"], tmp_path))  # a dir: check_resume looks inside it
    validate_config(compose_config(["resume=outputs/runs/2026-01-01/10-00-00"], tmp_path))  # named, not yet there
    (tmp_path / "off").mkdir()
    validate_config(compose_config([f"resume={tmp_path / 'off'}"], tmp_path))


def test_every_boolean_key_of_the_shipped_configs_is_covered():
    keys = boolean_keys()
    for known in ("stage.module.normalise_kl_weight", "stage.module.whiten_advantages", "resume", "resume_force",
                  "fail_fast", "trainer.enable_progress_bar", "trainer.deterministic", "model.dropout",
                  "model.gradient_checkpointing", "dataset.packing", "stage.ensemble.cache_features",
                  "stage.ensemble.freeze_backbone", "trainer.strategy.limit_all_gathers"):
        assert known in keys, known
    # not a setting of run.py (hydra's own; another command's primary config; a string key)
    assert not {"hydra.job.chdir", "diagnose.symmetrise", "plot", "seed", "stage.module.kl_weight"} & keys
    assert set(OR_VALUES) <= keys, "a key declared bool-or-value is no boolean key of the shipped files"
    assert mixed_keys() == {}, "a key is a boolean in one shipped file and not in another: make it one kind"


def test_every_boolean_key_in_the_composed_defaults_is_checked(tmp_path):
    """Each boolean of the composed default config (per stage) is among the checked keys."""
    from omegaconf import OmegaConf

    from tests.test_config_keys import settable_leaves

    for stage in ("reward", "ensemble", "ppo", "theory", "bandit"):
        tree = OmegaConf.to_container(compose_config([f"stage={stage}"], tmp_path), resolve=False)
        for leaf in settable_leaves(tree):
            value = tree
            for part in leaf:
                value = value[part]
            if isinstance(value, bool):
                assert ".".join(leaf) in boolean_keys(), (stage, leaf)


def test_packages_place_each_file_keys(tmp_path):
    assert file_package(CONF_DIR / "stage" / "reward.yaml", CONF_DIR) == "stage"
    assert file_package(CONF_DIR / "stage" / "ppo.yaml", CONF_DIR) == ""  # `# @package _global_`
    (tmp_path / "g" / "sub").mkdir(parents=True)
    (tmp_path / "g" / "sub" / "o.yaml").write_text("# a comment\n# @package _group_.inner\nflag: true\n")
    (tmp_path / "config.yaml").write_text("top: false\n")
    assert file_package(tmp_path / "g" / "sub" / "o.yaml", tmp_path) == "g.sub.inner"
    assert boolean_keys(tmp_path) == {"g.sub.inner.flag", "top"}
