"""A run dir written by an earlier layout reads as today's (rcollapse/config/migration.py):
keys that moved, keys folded into another key's value, nodes added; a current config is unchanged."""

import copy

import pytest
from omegaconf import OmegaConf

from rcollapse.config.migration import FOLDED_KEYS, MOVED_KEYS, Keep, current_layout
from tests.conftest import compose_config


def test_top_level_theory_and_bandit_move_under_their_stage():
    old = {"stage": {"name": "theory"}, "theory": {"n": 512, "openness": 1.0}, "seed": 0}
    assert current_layout(old) == {"stage": {"name": "theory", "theory": {"n": 512, "openness": 1.0}}, "seed": 0}
    old = {"stage": {"name": "bandit"}, "bandit": {"setting": "low", "seed": 3}}
    assert current_layout(old) == {"stage": {"name": "bandit", "bandit": {"setting": "low", "seed": 3}}}


def test_top_level_slurm_sizes_move_under_hardware():
    old = {"slurm": {"nodes": 2, "gpus_per_node": 4, "tasks_per_node": 4}, "trainer": {"num_nodes": 2}}
    assert current_layout(old) == {"hardware": {"nodes": 2, "gpus_per_node": 4, "tasks_per_node": 4},
                                   "trainer": {"num_nodes": 2}}


@pytest.mark.parametrize(("module", "kl_weight"), [
    ({"variance_weighted": False, "kl_weight": "variance"}, "one"),
    ({"variance_weighted": False, "kl_weight": "std"}, "one"),
    ({"variance_weighted": False}, "one"),
    ({"variance_weighted": True, "kl_weight": "variance"}, "variance"),
    ({"variance_weighted": True, "kl_weight": "std"}, "std"),
    ({"variance_weighted": True}, "variance"),  # written before kl_weight existed: w was sigma^2
])
def test_variance_weighted_folds_into_kl_weight(module, kl_weight):
    old = {"stage": {"name": "ppo", "module": {**module, "kl_estimator": "k1"}}}
    new = current_layout(old)
    assert new["stage"]["module"] == {"kl_weight": kl_weight, "kl_estimator": "k1"}
    assert old["stage"]["module"] == {**module, "kl_estimator": "k1"}  # the input is not modified


def test_a_value_the_fold_does_not_name_is_left_for_the_config_check():
    old = {"stage": {"module": {"variance_weighted": "maybe", "kl_weight": "variance"}}}
    assert current_layout(old)["stage"]["module"] == old["stage"]["module"]


def test_the_tables_are_declarative_and_name_only_typed_keys():
    assert all(isinstance(old, str) and isinstance(new, str) for old, new in MOVED_KEYS)
    for old, new, values in FOLDED_KEYS:
        assert isinstance(old, str) and isinstance(new, str) and values
        assert all(isinstance(v, (str, int, float, bool, Keep)) for v in values.values())


@pytest.mark.parametrize("overrides", [
    ["stage=theory"], ["stage=bandit"], ["stage=ppo"], ["stage=ppo", "ppo_arm=vanilla"],
    ["stage=ppo", "ppo_arm=paper_variance_aware", "stage.module.kl_weight=std"],
    ["hardware=slurm_a40"], ["hardware=slurm_local"],
], ids=lambda o: " ".join(o))
def test_a_current_config_comes_back_unchanged(overrides, tmp_path):
    cfg = compose_config(overrides, tmp_path)
    config = OmegaConf.to_container(cfg, resolve=False)
    assert current_layout(copy.deepcopy(config)) == config


def test_an_old_ppo_theory_and_slurm_config_reads_as_the_composed_new_one(tmp_path):
    """The old spelling of a composed config, translated, is the composed config itself."""
    for overrides in (["stage=theory"], ["stage=bandit"], ["stage=ppo", "ppo_arm=vanilla"], ["stage=ppo"],
                      ["stage=ppo", "hardware=slurm_local"]):
        new = OmegaConf.to_container(compose_config(overrides, tmp_path), resolve=False)
        old = copy.deepcopy(new)
        stage = old["stage"]
        for name in ("theory", "bandit"):
            if name in stage:
                old[name] = stage.pop(name)
        if "hardware" in old:
            old["slurm"] = old.pop("hardware")
        if "module" in stage:
            weight = stage["module"]["kl_weight"]
            stage["module"]["variance_weighted"] = weight != "one"
            stage["module"]["kl_weight"] = "variance" if weight == "one" else weight
        assert old != new
        assert current_layout(old) == new, overrides


# ---- data sets: a data set file is its data module's arguments (issue 24) ----------------------
# The `dataset` node of a run's config_resolved.yaml as the old layout (commit 5ef59ef) composed
# it, CACHE standing for paths.cache_dir and MAX_LENGTH for model.max_length.
OLD_DATASETS = {
    "length_offline": """
datamodule:
  _target_: rcollapse.data.ranking_datamodule.RankingDataModule
  source: {_target_: rcollapse.data.sources.LengthOfflineSource, num_train: 256, num_test: 16, seed: 0, p_open: 0.5}
  batch_size: 8
  eval_batch_size: 16
  num_workers: 0
  max_length: MAX_LENGTH
  train_probe_size: 16
  shuffle_seed: 0
  packing: false
""",
    # the site folder as the hub names it (issue 25 changed the value, not the layout)
    "stack_exchange_offline": """
path: CACHE/stack_exchange_copy
data_dir: data/apple.stackexchange.com
datamodule:
  _target_: rcollapse.data.ranking_datamodule.RankingDataModule
  source:
    _target_: rcollapse.data.stack_exchange.StackExchangeOfflineSource
    path: CACHE/stack_exchange_copy
    path_key: dataset.path
    copy_sites: [apple.stackexchange.com]
    copy_questions: 600
    copy_seed: 0
    data_dir: data/apple.stackexchange.com
    num_answers: 5
    num_prompts: 128
    num_test: 16
    ties: break
    seed: 0
    max_chars: null
    openness: 1.0
    cache_dir: CACHE/stack_exchange
  batch_size: 8
  eval_batch_size: 16
  num_workers: 0
  max_length: MAX_LENGTH
  train_probe_size: 16
  shuffle_seed: 0
""",
    "pref_mix": """
path: weqweasdas/preference_dataset_mix2
eval_path: allenai/reward-bench
prior_path: allenai/pref-test-sets
datamodule:
  _target_: rcollapse.data.preference_datamodule.PreferenceDataModule
  train_source:
    _target_: rcollapse.data.preference_sources.PrefMixSource
    path: weqweasdas/preference_dataset_mix2
    path_key: dataset.path
    split: train
    num_pairs: 50000
    num_val: 1000
    seed: 0
  eval_source:
    _target_: rcollapse.data.preference_sources.RewardBenchSource
    path: allenai/reward-bench
    path_key: dataset.eval_path
    split: filtered
    limit_per_subset: null
    prior_sets:
      _target_: rcollapse.data.preference_sources.PriorSetsSource
      path: allenai/pref-test-sets
      path_key: dataset.prior_path
      limit_per_split: null
  batch_size: 32
  eval_batch_size: 64
  num_workers: 0
  max_length: MAX_LENGTH
  shuffle_seed: 0
""",
    "prompts_offline": """
datamodule:
  _target_: rcollapse.data.prompt_datamodule.PromptDataModule
  source: {_target_: rcollapse.data.prompt_sources.PromptsOfflineSource, num_train: 2048, num_test: 128, seed: 0}
  num_workers: 0
""",
}
DATASET_STAGES = {"pref_mix": ["stage=ensemble"], "prompts_offline": ["stage=ppo"]}


def _old_dataset(option: str, new: dict) -> dict:
    import yaml

    text = OLD_DATASETS[option].replace("CACHE", new["paths"]["cache_dir"])
    return yaml.safe_load(text.replace("MAX_LENGTH", str(new["model"]["max_length"])))


@pytest.mark.parametrize("option", sorted(OLD_DATASETS))
def test_an_old_data_set_reads_as_the_new_layout_composes_it(option, tmp_path):
    """dataset.datamodule.<source>.num_train -> dataset.num_train, dataset.datamodule.batch_size ->
    dataset.batch_size, the source's class in a `_partial_` node, its path_key dropped."""
    new = OmegaConf.to_container(compose_config([*DATASET_STAGES.get(option, []), f"dataset={option}"], tmp_path),
                                 resolve=True)
    old = {**copy.deepcopy(new), "dataset": _old_dataset(option, new)}
    assert current_layout(old) == new
    assert current_layout(new) == new


def test_an_old_data_set_set_on_its_nested_keys_reads_as_the_flat_keys_compose_it(tmp_path):
    overrides = ["dataset=pref_mix", "dataset.num_pairs=64", "dataset.batch_size=4",
                 "dataset.eval_source.limit_per_subset=2", "dataset.eval_source.prior_limit_per_split=3"]
    new = OmegaConf.to_container(compose_config(["stage=ensemble", *overrides], tmp_path), resolve=True)
    old = {**copy.deepcopy(new), "dataset": _old_dataset("pref_mix", new)}
    module = old["dataset"]["datamodule"]
    module["train_source"]["num_pairs"], module["batch_size"] = 64, 4
    module["eval_source"]["limit_per_subset"], module["eval_source"]["prior_sets"]["limit_per_split"] = 2, 3
    assert current_layout(old) == new


def test_an_old_run_s_overrides_read_in_the_current_keys():
    from rcollapse.config.migration import current_overrides

    old = ["experiment=bandit_risk_offline", "bandit.setting=high", "theory.n=64", "+slurm.nodes=2",
           "stage.module.optimizer.weight_decay=0.1", "ppo_arm=vanilla", "utility=x"]
    assert current_overrides(old) == ["experiment=bandit_risk_offline", "stage.bandit.setting=high",
                                      "stage.theory.n=64", "+hardware.nodes=2", "stage.optimizer.weight_decay=0.1",
                                      "ppo_arm=vanilla", "utility=x"]
    assert current_overrides(["stage.module.variance_weighted=false"]) == ["stage.module.kl_weight=one"]
    assert current_overrides(["stage.module.variance_weighted=true"]) == ["stage.module.kl_weight=variance"]
    assert current_overrides(["stage.module.variance_weighted=true", "stage.module.kl_weight=std"]) == [
        "stage.module.kl_weight=std"]
    current = ["stage=ppo", "stage.module.kl_weight=one", "stage.bandit.d=10", "hardware.nodes=2"]
    assert current_overrides(current) == current
