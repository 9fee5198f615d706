"""One key per data set (DESIGN: hub names live in one key per config): each hub data set's
``dataset.path`` (and ``dataset.eval_path`` / ``dataset.prior_path``) reaches its source, and
the offline error names exactly that key. A data set file is its data module's arguments: every
key is ``dataset.<name>`` (the evaluation source's own ``dataset.eval_source.<name>``), and one
that is neither the module's nor its source's fails, naming it."""

import re

import pytest
from hydra.utils import instantiate

from rcollapse.config.checks import ConfigError
from rcollapse.data.data_arguments import check_dataset_config
from rcollapse.data.hub_access import DataUnavailableError
from tests.conftest import REPO, compose_config, group_options


def _sources(cfg, tmp_path) -> dict[str, object]:
    """``{"source" | "train_source" | "eval_source" | "prior_sets": built source}``."""
    if cfg.dataset._target_.endswith("PromptDataModule"):
        datamodule = instantiate(cfg.dataset, batch_size=8)
    else:
        tokenizer = instantiate(compose_config([], tmp_path).model.tokenizer)
        datamodule = instantiate(cfg.dataset, tokenizer=tokenizer)
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
        assert _sources(cfg, tmp_path)["prior_sets"].path == "allenai/pref-test-sets"
        skipped = _sources(compose_config([f"dataset={dataset}", "dataset.prior_path=null"], tmp_path), tmp_path)
        assert "prior_sets" not in skipped and skipped["eval_source"].prior_sets is None


@pytest.mark.parametrize("option", group_options("dataset"))
def test_a_data_set_file_is_its_data_modules_arguments(option, tmp_path):
    """Every key of a data set is at most two below ``dataset`` (a source node holds only its
    class and, for an evaluation source, its own arguments), and the file builds as it is."""
    paths = ["dataset.train_path=a.jsonl", "dataset.test_path=b.jsonl"] if option == "rankings_jsonl" else []
    cfg = compose_config([f"dataset={option}", *paths], tmp_path)
    check_dataset_config(cfg.dataset)
    for key, value in cfg.dataset.items():
        if hasattr(value, "items"):
            assert "_target_" in value, key
            assert all(not hasattr(v, "items") for v in value.values()), key  # nothing three deep
    assert _sources(cfg, tmp_path)


@pytest.mark.parametrize(("option", "key"), [
    ("length_offline", "+dataset.num_prompts=3"),         # the stack-exchange name on the length task
    ("stack_exchange_offline", "+dataset.num_train=3"),   # and the length task's on stack exchange
    ("prompts_offline", "+dataset.max_length=3"),
    ("pref_mix", "+dataset.limit_per_subset=3"),          # the evaluation source's, not the training source's
    ("pref_mix", "+dataset.eval_source.num_pairs=3"),
    ("rewardbench", "+dataset.num_pairs=3"),
])
def test_a_key_that_is_no_argument_fails_naming_it(option, key, tmp_path):
    cfg = compose_config([f"dataset={option}", key], tmp_path)
    name = key[1:].split("=")[0]
    with pytest.raises(ConfigError, match=rf"^{re.escape(name)}: not an argument of"):
        check_dataset_config(cfg.dataset)  # run by the stages' config checks, before anything is built
    if ".eval_source." not in key:
        with pytest.raises(Exception, match=rf"{re.escape(name)}: not an argument of the data module"):
            _sources(cfg, tmp_path)


def test_rankings_jsonl_takes_two_top_level_file_keys(tmp_path):
    cfg = compose_config(["dataset=rankings_jsonl", "dataset.train_path=mine/a.jsonl",
                          "dataset.test_path=mine/b.jsonl"], tmp_path)
    source = _sources(cfg, tmp_path)["source"]
    assert (str(source.train_path), str(source.test_path)) == ("mine/a.jsonl", "mine/b.jsonl")


def test_no_key_is_copied_by_hand():
    """A data set file's keys are the arguments themselves: no ``${dataset.x}`` copies, no
    ``path_key`` written out, and nothing in the package names the old nested keys."""
    for option in group_options("dataset"):
        text = (REPO / "conf" / "dataset" / f"{option}.yaml").read_text()
        assert "path_key:" not in text and "${dataset." not in text, option
    for module in [*(REPO / "rcollapse").rglob("*.py"), *(REPO / "conf").rglob("*.yaml")]:
        if module.name != "migration.py":  # which translates the old keys of old run dirs
            assert "dataset.datamodule" not in module.read_text(), module


def test_every_key_an_error_names_is_a_key_a_user_types(tmp_path):
    """The data package's messages name keys as a user types them (``dataset.num_prompts``, not
    ``num_prompts`` or ``dataset.datamodule.source.num_prompts``), and each is a key of a data set."""
    named = set()
    for module in (REPO / "rcollapse" / "data").glob("*.py"):
        for message in re.findall(r'f?"[^"\n]*"', module.read_text()):
            named |= set(re.findall(r"\bdataset\.([a-z_]+)\b", message))
    named -= {"column_names", "select_columns", "with_format"}  # a `datasets` table's methods, in code
    keys = set()
    for option in group_options("dataset"):
        keys |= set(compose_config([f"dataset={option}"], tmp_path).dataset)
    # arguments the data set files leave at their defaults (the length task's answer lengths, the
    # packed row length): a user sets them with +, e.g. +dataset.pack_length=1024
    assert named - keys <= {"min_words", "max_words", "pack_length"}, sorted(named - keys)
    assert {"num_prompts", "num_test", "num_train", "data_dir", "ties", "path", "eval_path", "prior_path"} <= named


def test_the_stack_exchange_counts_error_names_the_keys_to_change(tmp_path):
    from rcollapse.data.stack_exchange import StackExchangeOfflineSource

    cfg = compose_config(["dataset=stack_exchange_offline", "dataset.num_prompts=590", "dataset.num_test=16",
                          "dataset.copy_questions=60"], tmp_path)
    with pytest.raises(ValueError) as err:
        instantiate(cfg.dataset, tokenizer=None).source.load()
    message = str(err.value)
    assert "dataset.num_prompts=590 + dataset.num_test=16 needs more" in message
    assert "(dataset.data_dir)" in message and "dataset.ties=break" in message
    assert isinstance(instantiate(cfg.dataset, tokenizer=None).source, StackExchangeOfflineSource)
