"""One key per data set (DESIGN: hub names live in one key per config): each hub data set's
``dataset.path`` (and ``dataset.eval_path`` / ``dataset.prior_path``) reaches its source, and
the offline error names exactly that key, which the source learns from the config itself."""

import re

import pytest
from hydra.utils import instantiate

from rcollapse.data.hub_access import DataUnavailableError
from tests.conftest import REPO, compose_config, group_options


def _sources(cfg, tmp_path) -> dict[str, object]:
    """``{"source" | "train_source" | "eval_source" | "prior_sets": built source}``."""
    if cfg.dataset.datamodule._target_.endswith("PromptDataModule"):
        datamodule = instantiate(cfg.dataset.datamodule, batch_size=8)
    else:
        tokenizer = instantiate(compose_config([], tmp_path).model.tokenizer)
        datamodule = instantiate(cfg.dataset.datamodule, tokenizer=tokenizer)
    found = {name: getattr(datamodule, name, None) for name in ("source", "train_source", "eval_source")}
    if getattr(found["eval_source"], "prior_sets", None) is not None:
        found["prior_sets"] = found["eval_source"].prior_sets
    return {name: source for name, source in found.items() if source is not None}


# (data set, key a user types, the source it feeds, whether its load() needs nothing else)
HUB_KEYS = [
    ("longform_length", "dataset.path", "source", True),
    ("imdb_prompts", "dataset.path", "source", False),  # load() takes the policy's tokenizer
    ("pref_mix", "dataset.path", "train_source", True),
    ("pref_mix", "dataset.eval_path", "eval_source", True),
    ("pref_mix", "dataset.prior_path", "prior_sets", True),
    ("rewardbench", "dataset.path", "eval_source", True),
    ("rewardbench", "dataset.prior_path", "prior_sets", True),
]


@pytest.mark.parametrize(("dataset", "key", "source", "loads"), HUB_KEYS)
def test_the_top_level_key_reaches_the_source_and_its_offline_error(dataset, key, source, loads, tmp_path):
    local = tmp_path / "nowhere" / key.replace(".", "_")
    cfg = compose_config([f"dataset={dataset}", f"{key}={local}"], tmp_path)
    built = _sources(cfg, tmp_path)[source]
    assert built.path == str(local) and built.path_key == key
    if not loads:
        return
    with pytest.raises(DataUnavailableError) as err:
        built.load()  # the Prior Sets on their own: RewardBench's load would fail first
    message = str(err.value)
    assert re.search(rf"\(({re.escape(key)})\): \S+ is not a directory", message), message
    assert f"`{key}=/data/{key.replace('.', '_')}`" in message


@pytest.mark.parametrize(("dataset", "keys"), [
    ("longform_length", {"source": "dataset.path"}),
    ("imdb_prompts", {"source": "dataset.path"}),
    ("pref_mix", {"train_source": "dataset.path", "eval_source": "dataset.eval_path",
                  "prior_sets": "dataset.prior_path"}),
    ("rewardbench", {"eval_source": "dataset.path", "prior_sets": "dataset.prior_path"}),
])
def test_every_hub_source_names_a_top_level_key_by_default(dataset, keys, tmp_path):
    cfg = compose_config([f"dataset={dataset}"], tmp_path)
    sources = _sources(cfg, tmp_path)
    assert {name: s.path_key for name, s in sources.items() if hasattr(s, "path_key")} == keys
    for name, key in keys.items():
        assert sources[name].path == cfg.dataset[key.removeprefix("dataset.")]
    assert set(keys.values()) <= {f"dataset.{k}" for k in cfg.dataset}


def test_the_paper_setting_evaluates_the_prior_sets_and_null_skips_them(tmp_path):
    for dataset in ("pref_mix", "rewardbench"):
        cfg = compose_config([f"dataset={dataset}"], tmp_path)
        assert cfg.dataset.prior_path == "allenai/pref-test-sets"
        skipped = _sources(compose_config([f"dataset={dataset}", "dataset.prior_path=null"], tmp_path), tmp_path)
        assert skipped["prior_sets"].path is None and skipped["prior_sets"].load() == {"test": []}


def test_a_value_set_on_the_source_itself_is_named_by_its_own_key(tmp_path):
    cfg = compose_config(["dataset=pref_mix", "dataset.datamodule.eval_source.path=/elsewhere/rb"], tmp_path)
    source = _sources(cfg, tmp_path)["eval_source"]
    assert (source.path, source.path_key) == ("/elsewhere/rb", "dataset.datamodule.eval_source.path")


def test_rankings_jsonl_takes_two_top_level_file_keys(tmp_path):
    cfg = compose_config(["dataset=rankings_jsonl", "dataset.train_path=mine/a.jsonl",
                          "dataset.test_path=mine/b.jsonl"], tmp_path)
    source = _sources(cfg, tmp_path)["source"]
    assert (str(source.train_path), str(source.test_path)) == ("mine/a.jsonl", "mine/b.jsonl")


def test_no_deep_key_is_copied_by_hand():
    for option in group_options("dataset"):
        text = (REPO / "conf" / "dataset" / f"{option}.yaml").read_text()
        assert all(line.split(":", 1)[1].strip() == "${rcollapse.source_key:path}"
                   for line in text.splitlines() if line.strip().startswith("path_key:")), option
        assert not re.search(r"dataset\.datamodule\.\S*path", text), option
    for module in (REPO / "rcollapse" / "data").glob("*.py"):
        assert not re.search(r"dataset\.datamodule\.\S*path", module.read_text()), module.name
