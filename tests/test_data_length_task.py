"""The LongForm length task: the SPEC's construction rules, offline and from a local LongForm copy."""

import time

import numpy as np
import pytest

from rcollapse.data import sources
from rcollapse.data.hub_access import DataUnavailableError
from rcollapse.data.length_task import (
    CLOSED_LENGTHS,
    CLOSED_SUFFIX,
    OPEN_LENGTHS,
    OPEN_SUFFIX,
    build_length_rows,
    draw_prompt_types,
    split_train_test,
)
from rcollapse.data.sources import LengthOfflineSource, LongFormLengthSource
from rcollapse.data.synthetic_longform import generate_instruction_answer_pairs


def word_counts(row):
    return [len(c.split(" ")) for c in row.completions]


def test_offline_rows_follow_the_construction_rules():
    data = LengthOfflineSource(num_train=64, num_test=16, seed=3).load()
    assert len(data["train"]) == 64 and len(data["test"]) == 16
    for row in data["train"] + data["test"]:
        assert len(row.completions) == 8
        if row.openness > 0:
            assert word_counts(row) == sorted(OPEN_LENGTHS, reverse=True)  # longer is better
            assert row.prompt.endswith(OPEN_SUFFIX)
        else:
            assert word_counts(row) == sorted(CLOSED_LENGTHS, reverse=True)
            assert row.prompt.endswith(CLOSED_SUFFIX)
        assert all(row.completions[0].startswith(c) for c in row.completions[1:])  # prefixes of one answer


def test_types_are_drawn_with_p_half_and_seeded():
    types = draw_prompt_types(20000, seed=0)
    assert abs(types.mean() - 0.5) < 0.015
    assert np.array_equal(types, draw_prompt_types(20000, seed=0))
    assert not np.array_equal(types, draw_prompt_types(20000, seed=1))


def test_short_answers_are_dropped_and_split_is_first_and_last():
    long_answer = " ".join(f"w{i}" for i in range(120))
    pairs = [("q0", long_answer), ("q1", "too short"), ("q2", long_answer), ("q3", long_answer)]
    rows = build_length_rows(pairs, seed=0, id_prefix="t")
    assert [r.row_id for r in rows] == ["t-0", "t-2", "t-3"]
    train, test = split_train_test(rows, 1, 1)
    assert train[0].row_id == "t-0" and test[0].row_id == "t-3"
    with pytest.raises(ValueError, match="num_train"):
        split_train_test(rows, 3, 1)


def test_generator_is_deterministic_and_sized():
    a = generate_instruction_answer_pairs(50, seed=1, min_words=100, max_words=130)
    assert a == generate_instruction_answer_pairs(50, seed=1, min_words=100, max_words=130)
    for _, answer in a:
        assert 100 <= len(answer.split(" ")) <= 130 and "  " not in answer


def _local_longform(tmp_path, num_rows=40):
    import datasets

    pairs = generate_instruction_answer_pairs(num_rows, seed=5, min_words=60, max_words=160)
    root = tmp_path / "LongForm"
    (root / "data").mkdir(parents=True)
    datasets.Dataset.from_dict({
        "input": [p for p, _ in pairs], "output": [a for _, a in pairs],
        "source": ["synthetic"] * num_rows, "subset": ["s"] * num_rows,
    }).to_parquet(str(root / "data" / "train-00000-of-00001.parquet"))
    kept = sum(len(a.split(" ")) >= 100 for _, a in pairs)
    return root, kept


def test_longform_source_from_a_local_copy_builds_and_caches(tmp_path, monkeypatch):
    root, kept = _local_longform(tmp_path)
    source = LongFormLengthSource(path=str(root), num_train=kept - 4, num_test=4, cache_dir=str(tmp_path / "cache"))
    data = source.load()
    assert len(data["train"]) == kept - 4 and len(data["test"]) == 4
    assert all(len(r.completions) == 8 for r in data["train"])
    import datasets

    def no_hub(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(datasets, "load_dataset", no_hub)
    again = source.load()
    assert [r.completions for r in again["test"]] == [r.completions for r in data["test"]]


def test_longform_hub_name_offline_fails_fast_with_the_key():
    start = time.monotonic()
    with pytest.raises(DataUnavailableError) as err:
        LongFormLengthSource(path="akoksal/LongForm").load()
    assert "akoksal/LongForm" in str(err.value) and "dataset.datamodule.source.path=" in str(err.value)
    assert time.monotonic() - start < 5


def test_longform_hub_unreachable_without_the_offline_flag(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE")
    monkeypatch.setattr(sources, "require_hub_or_local", _unreachable)
    with pytest.raises(DataUnavailableError, match="not reachable"):
        LongFormLengthSource(path="akoksal/LongForm").load()


def _unreachable(path, key):
    from rcollapse.data import hub_access

    original = hub_access.hub_reachable
    hub_access.hub_reachable = lambda *a, **k: False
    try:
        return hub_access.require_hub_or_local(path, key)
    finally:
        hub_access.hub_reachable = original
