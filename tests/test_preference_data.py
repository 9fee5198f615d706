"""The hub preference loaders on local copies laid out like the hub repos (SPEC section 5),
their offline errors, RewardBench's section scores and Prior Sets, and the stage/data-set check."""

import datasets
import pandas as pd
import pytest

from rcollapse.config.checks import ConfigError, validate_config
from rcollapse.data.hub_access import DataUnavailableError
from rcollapse.data.preference_pairs import validate_preference_pair
from rcollapse.data.preference_sources import (
    PrefMixSource,
    PriorSetsSource,
    RewardBenchSource,
    prior_prompt,
)
from rcollapse.data.ranking_rows import MalformedRowError
from rcollapse.data.rewardbench_sections import (
    FILTERED_COUNTS,
    SECTIONS,
    SUBSET_WEIGHTS,
    missing_subsets,
    overall_score,
    section_scores,
)
from tests.conftest import compose_config
from tests.hub_copies import PRIOR_SPLITS, rewardbench_rows, write_hub_copy, write_prior_copy


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_datasets")


def _chat(prompt, answer):
    return [{"content": prompt, "role": "user"}, {"content": answer, "role": "assistant"}]


def _write_parquet(root, split, rows, shard="00000-of-00001"):
    (root / "data").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(root / "data" / f"{split}-{shard}.parquet")


def test_pref_mix_local_copy_splits_chats_and_drops_identical_pairs(tmp_path):
    rows = [{"chosen": _chat(f"q{i}", f"good {i}"), "rejected": _chat(f"q{i}", f"bad {i}"), "chosen_score": 1.0}
            for i in range(30)]
    rows.append({"chosen": _chat("q", "same"), "rejected": _chat("q", "same"), "chosen_score": 1.0})
    _write_parquet(tmp_path / "mix", "train", rows)
    source = PrefMixSource(path=str(tmp_path / "mix"), num_pairs=100, num_val=5, seed=0)
    with pytest.warns(UserWarning, match="dropped 1"):
        data = source.load()
    assert (len(data["train"]), len(data["val"]), source.dropped) == (25, 5, 1)
    small = PrefMixSource(path=str(tmp_path / "mix"), num_pairs=10, num_val=3, seed=0).load()
    assert len(small["train"]) + len(small["val"]) in (12, 13)  # 13 drawn, the identical pair maybe among them
    pair = data["train"][0]
    assert pair.prompt.startswith("User: q") and pair.chosen.startswith("good") and pair.rejected.startswith("bad")


def test_pref_mix_malformed_chat_names_the_row(tmp_path):
    rows = [{"chosen": _chat("q", "a"), "rejected": [{"content": "q", "role": "user"}, {"content": "b", "role": "user"}]}]
    _write_parquet(tmp_path / "mix", "train", rows)
    with pytest.raises(MalformedRowError, match="row 0.*'rejected' is 'user'"):
        PrefMixSource(path=str(tmp_path / "mix"), num_pairs=1, num_val=0).load()


def test_rewardbench_local_copy_maps_subsets_to_sections(tmp_path):
    subsets = ["alpacaeval-easy", "mt-bench-med", "llmbar-natural", "donotanswer", "math-prm", "hep-go", "new-subset"]
    rows = [{"prompt": f"p{i}", "chosen": f"c{i}", "chosen_model": "m", "rejected": f"r{i}", "rejected_model": "m",
             "subset": s, "id": i} for i, s in enumerate(subsets)]
    _write_parquet(tmp_path / "rb", "filtered", rows)
    source = RewardBenchSource(path=str(tmp_path / "rb"))
    with pytest.warns(UserWarning, match="new-subset"):
        test = source.load()["test"]
    assert [p.section for p in test] == ["Chat", "Chat", "Chat Hard", "Safety", "Reasoning", "Reasoning"]
    assert test[1].subset == "mt-bench-med" and source.skipped == {"new-subset": 1}


def test_the_fixed_counts_are_rewardbench_filtered_split():
    assert sum(FILTERED_COUNTS.values()) == 2985
    assert [sum(FILTERED_COUNTS[s] for s in subsets) for subsets in SECTIONS.values()] == [358, 456, 740, 1431]
    assert SUBSET_WEIGHTS["math-prm"] == 984 == 6 * 164 and FILTERED_COUNTS["math-prm"] == 447


def test_full_reasoning_is_half_math_prm_and_half_the_code_mean():
    code = {"hep-cpp": 0.2, "hep-go": 0.5, "hep-java": 0.6, "hep-js": 0.7, "hep-python": 0.9, "hep-rust": 0.4}
    scores = section_scores({"math-prm": 0.3, **code})
    assert scores == {"Reasoning": pytest.approx(0.5 * 0.3 + 0.5 * sum(code.values()) / 6)}


def test_partial_sections_renormalise_the_fixed_weights():
    # math-prm and two code subsets: 984 : 164 : 164, not ½ : ¼ : ¼ as the counts observed made it
    acc = {"math-prm": 0.9, "hep-go": 0.5, "hep-js": 0.7, "alpacaeval-easy": 1.0, "mt-bench-med": 0.5}
    scores = section_scores(acc)
    assert scores["Reasoning"] == pytest.approx((984 * 0.9 + 164 * 0.5 + 164 * 0.7) / (984 + 164 + 164))
    assert scores["Reasoning"] == pytest.approx(0.825)
    assert scores["Chat"] == pytest.approx((100 * 1.0 + 40 * 0.5) / 140)
    assert set(scores) == {"Reasoning", "Chat"}
    missing = missing_subsets(acc)
    assert missing["Reasoning"] == ("hep-cpp", "hep-java", "hep-python", "hep-rust")
    assert missing["Prior Sets"] == PRIOR_SPLITS and "Safety" in missing


def test_prior_sets_score_is_the_plain_mean_and_the_overall_weighs_it_half():
    scores = section_scores({"anthropic_helpful": 0.6, "anthropic_hhh": 0.8, "shp": 0.5, "summarize": 0.7,
                             "alpacaeval-easy": 0.9})
    assert scores["Prior Sets"] == pytest.approx((0.6 + 0.8 + 0.5 + 0.7) / 4)
    assert overall_score(scores) is None  # Chat Hard, Safety and Reasoning missing
    five = {"Chat": 0.9, "Chat Hard": 0.5, "Safety": 0.8, "Reasoning": 0.7, "Prior Sets": 0.65}
    assert overall_score(five) == pytest.approx((0.9 + 0.5 + 0.8 + 0.7 + 0.5 * 0.65) / 4.5)
    assert overall_score(five) == pytest.approx(0.7166666667)


@pytest.mark.parametrize(("source", "key"), [
    (PrefMixSource(), "dataset.path"),
    (RewardBenchSource(), "dataset.eval_path"),
])
def test_hub_names_fail_fast_offline_with_the_key_to_set(source, key):
    with pytest.raises(DataUnavailableError) as err:
        source.load()
    message = str(err.value)
    assert f"({key}):" in message and f"`{key}=/data/" in message
    assert "dataset=preference_offline" in message


def test_prior_sets_offline_name_their_key_and_how_to_skip_them():
    with pytest.raises(DataUnavailableError) as err:
        PriorSetsSource().load()
    message = str(err.value)
    assert "Cannot load data set 'allenai/pref-test-sets' (dataset.prior_path):" in message
    assert "`dataset.prior_path=/data/pref-test-sets`" in message and "`dataset.prior_path=null`" in message


def test_prior_sets_local_copy_gives_one_subset_per_split(tmp_path):
    root = write_prior_copy(tmp_path / "pref-test-sets", {"anthropic_helpful": 3, "anthropic_hhh": 2, "shp": 4,
                                                          "summarize": 3})
    pairs = PriorSetsSource(path=str(root)).load()["test"]
    assert [p.subset for p in pairs] == ["anthropic_helpful"] * 3 + ["anthropic_hhh"] * 2 + ["shp"] * 4 + ["summarize"] * 3
    assert {p.section for p in pairs} == {"Prior Sets"}  # pku_safer (not a Prior Sets split) is not read
    assert pairs[0].prompt == "anthropic_helpful question 0"
    assert pairs[0].chosen == "helpful reply 0" and pairs[0].rejected == "unhelpful reply 0"
    hhh = pairs[3]
    assert hhh.prompt == "User: hello 0\n\nAssistant: hi, how can I help?\n\nUser: question 0"
    assert len(PriorSetsSource(path=str(root), limit_per_split=1).load()["test"]) == 4
    assert PriorSetsSource(path=None).load() == {"test": []}


def test_prior_sets_drop_identical_pairs_and_name_a_missing_split(tmp_path):
    rows = [{"prompt": [{"content": "q", "role": "user"}], "chosen": "same", "rejected": "same"},
            {"prompt": [{"content": "q", "role": "user"}], "chosen": "a", "rejected": "b"}]
    root = write_hub_copy(tmp_path / "p", {"shp": rows, "summarize": rows})
    source = PriorSetsSource(path=str(root), splits=("shp", "summarize"))
    with pytest.warns(UserWarning, match="identical"):
        assert len(source.load()["test"]) == 2
    assert source.dropped == {"shp": 1, "summarize": 1}
    with pytest.raises(MalformedRowError, match=r"no split\(s\) \['anthropic_helpful', 'anthropic_hhh'\]"):
        PriorSetsSource(path=str(root)).load()


def test_prior_prompts_as_the_hub_stores_them():
    assert prior_prompt("plain", "w") == "plain"
    assert prior_prompt(["only turn"], "w") == "only turn"  # older revisions: a list of strings
    assert prior_prompt(["q", "a", "q2"], "w") == "User: q\n\nAssistant: a\n\nUser: q2"
    with pytest.raises(MalformedRowError, match="end with the user's"):
        prior_prompt([{"content": "q", "role": "user"}, {"content": "a", "role": "assistant"}], "row 3")


def test_rewardbench_source_appends_the_prior_sets(tmp_path):
    rb = write_hub_copy(tmp_path / "reward-bench", {"filtered": rewardbench_rows({"alpacaeval-easy": 2, "hep-go": 1})})
    prior = write_prior_copy(tmp_path / "pref-test-sets")
    pairs = RewardBenchSource(path=str(rb), prior_path=str(prior)).load()["test"]
    assert [p.section for p in pairs] == ["Chat", "Chat", "Reasoning"] + ["Prior Sets"] * 12
    assert len(RewardBenchSource(path=str(rb), prior_path=str(prior), prior_limit_per_split=1).load()["test"]) == 3 + 4
    without = RewardBenchSource(path=str(rb), prior_path=None).load()["test"]
    assert len(without) == 3


def test_a_pair_with_identical_responses_is_an_error():
    with pytest.raises(MalformedRowError, match="same text"):
        validate_preference_pair({"prompt": "p", "chosen": "x", "rejected": "x"}, 3, "mine.jsonl")


@pytest.mark.parametrize(("stage", "dataset"), [("ensemble", "length_offline"), ("reward", "preference_offline"),
                                                ("ppo", "preference_offline")])
def test_a_stage_rejects_a_data_set_of_the_other_kind(stage, dataset, tmp_path):
    cfg = compose_config([f"stage={stage}", f"dataset={dataset}"], tmp_path)
    with pytest.raises(ConfigError, match=f"stage={stage} needs"):
        validate_config(cfg)
