"""The hub preference loaders on local copies laid out like the hub repos (SPEC section 5),
their offline errors, RewardBench's section scores, and the stage/data-set check."""

import pandas as pd
import pytest

from rcollapse.config_checks import ConfigError, validate_config
from rcollapse.data.hub_access import DataUnavailableError
from rcollapse.data.preference_pairs import validate_preference_pair
from rcollapse.data.preference_sources import PrefMixSource, RewardBenchSource
from rcollapse.data.ranking_rows import MalformedRowError
from rcollapse.data.rewardbench_sections import section_scores
from tests.conftest import compose_config


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


def test_section_scores_weight_math_prm_like_all_code_subsets():
    acc = {"math-prm": 0.9, "hep-go": 0.5, "hep-js": 0.7, "alpacaeval-easy": 1.0, "mt-bench-med": 0.5}
    counts = {"math-prm": 447, "hep-go": 164, "hep-js": 164, "alpacaeval-easy": 100, "mt-bench-med": 40}
    scores = section_scores(acc, counts)
    assert scores["Reasoning"] == pytest.approx(0.5 * 0.9 + 0.5 * (0.5 + 0.7) / 2)
    assert scores["Chat"] == pytest.approx((100 * 1.0 + 40 * 0.5) / 140)
    assert set(scores) == {"Reasoning", "Chat"}


@pytest.mark.parametrize(("source", "key"), [
    (PrefMixSource(), "dataset.datamodule.train_source.path"),
    (RewardBenchSource(), "dataset.datamodule.eval_source.path"),
])
def test_hub_names_fail_fast_offline_with_the_key_to_set(source, key):
    with pytest.raises(DataUnavailableError, match=key) as err:
        source.load()
    assert "dataset=preference_offline" in str(err.value)


def test_a_pair_with_identical_responses_is_an_error():
    with pytest.raises(MalformedRowError, match="same text"):
        validate_preference_pair({"prompt": "p", "chosen": "x", "rejected": "x"}, 3, "mine.jsonl")


@pytest.mark.parametrize(("stage", "dataset"), [("ensemble", "length_offline"), ("reward", "preference_offline"),
                                                ("ppo", "preference_offline")])
def test_a_stage_rejects_a_data_set_of_the_other_kind(stage, dataset, tmp_path):
    cfg = compose_config([f"stage={stage}", f"dataset={dataset}"], tmp_path)
    with pytest.raises(ConfigError, match=f"stage={stage} needs"):
        validate_config(cfg)
