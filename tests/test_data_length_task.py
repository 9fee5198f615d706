"""The LongForm length task: the SPEC's construction rules, offline and from a local copy."""

import numpy as np
import pytest

from rcollapse.data import hub_access
from rcollapse.data.hub_access import DataUnavailableError, hub_reachable
from rcollapse.data.length_task import (
    CLOSED_LENGTHS,
    CLOSED_SUFFIX,
    OPEN_LENGTHS,
    OPEN_SUFFIX,
    build_length_ranking,
    build_length_rows,
    draw_prompt_types,
    keep_answer,
    split_train_test,
    split_words,
)
from rcollapse.data.sources import PATH_KEY, LengthOfflineSource, LongFormLengthSource
from rcollapse.data.synthetic_longform import generate_instruction_answer_pairs, lexicon


def word_counts(row):
    return [len(c.split(" ")) for c in row.completions]


def test_offline_rows_follow_the_construction_rules():
    data = LengthOfflineSource(num_train=64, num_test=16, seed=3).load()
    assert len(data["train"]) == 64 and len(data["test"]) == 16
    kinds = set()
    for row in data["train"] + data["test"]:
        assert len(row.completions) == 8
        kinds.add(row.openness)
        if row.openness == 1.0:
            assert word_counts(row) == sorted(OPEN_LENGTHS, reverse=True)  # longer is better
            assert row.prompt.endswith(OPEN_SUFFIX)
        else:
            assert row.openness == -1.0
            assert word_counts(row) == sorted(CLOSED_LENGTHS, reverse=True)
            assert row.prompt.endswith(CLOSED_SUFFIX)
        assert all(
            row.completions[0].startswith(c) for c in row.completions[1:]
        )  # prefixes of one answer
    assert kinds == {1.0, -1.0}


def test_one_raw_ranking():
    answer = " ".join(f"w{i}" for i in range(100))
    raw = build_length_ranking("Why?", answer, is_open=False, row_id="r1")
    assert (
        raw["prompt"] == "Why? Write either a short answer or a long answer."
        and raw["type"] == "closed"
    )
    assert [len(c.split(" ")) for c in raw["completions"]] == list(CLOSED_LENGTHS)
    assert raw["ranking"] == [7, 6, 5, 4, 3, 2, 1, 0]  # the longest is rank 0
    assert raw["completions"][0] == "w0 w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15"
    raw = build_length_ranking("Why?", answer, is_open=True, row_id="r2")
    assert raw["prompt"] == "Why? Write the answer in an open-ended way." and raw["id"] == "r2"
    assert [len(c.split(" ")) for c in raw["completions"]] == list(OPEN_LENGTHS)


def test_words_are_split_on_single_spaces_as_the_notebook():
    assert split_words("a  b\nc") == ["a", "", "b\nc"]
    assert keep_answer(" ".join(["w"] * 100)) and not keep_answer(" ".join(["w"] * 99))


def test_types_are_drawn_with_p_half_and_seeded():
    types = draw_prompt_types(20000, seed=0)
    assert types.dtype == bool and abs(types.mean() - 0.5) < 0.015
    assert np.array_equal(types, draw_prompt_types(20000, seed=0))
    assert not np.array_equal(types, draw_prompt_types(20000, seed=1))
    assert abs(draw_prompt_types(20000, seed=0, p_open=0.2).mean() - 0.2) < 0.015
    with pytest.raises(ValueError, match="p_open"):
        draw_prompt_types(3, seed=0, p_open=1.5)


def test_short_answers_are_dropped_and_split_is_first_and_last():
    long_answer = " ".join(f"w{i}" for i in range(120))
    pairs = [
        ("q0", long_answer),
        ("q1", "too short"),
        ("q2", long_answer),
        ("q3", long_answer),
        ("q4", " ".join(["w"] * 99)),
    ]
    rows = build_length_rows(pairs, seed=0, p_open=0.5, id_prefix="t")
    assert [r.row_id for r in rows] == ["t-0", "t-2", "t-3"]
    train, test = split_train_test(rows, 1, 1)
    assert train[0].row_id == "t-0" and test[0].row_id == "t-3"
    train, test = split_train_test(rows, 2, 1)
    assert [r.row_id for r in train] == ["t-0", "t-2"] and test[0].row_id == "t-3"
    with pytest.raises(ValueError, match="only 3 prompts.*num_train=3"):
        split_train_test(rows, 3, 1)


def test_generator_is_deterministic_and_sized():
    a = generate_instruction_answer_pairs(50, seed=1, min_words=100, max_words=130)
    assert a == generate_instruction_answer_pairs(50, seed=1, min_words=100, max_words=130)
    assert a != generate_instruction_answer_pairs(50, seed=2, min_words=100, max_words=130)
    vocabulary = {w.lower() for w in lexicon()}
    for instruction, answer in a:
        assert (
            100 <= len(answer.split(" ")) <= 130 and "  " not in answer and answer == answer.strip()
        )
        assert answer.endswith(".") and instruction[-1] in ".?"
    assert lexicon() == lexicon(0) and len(vocabulary) > 100
    # (its speed is not asserted here: a wall-clock bound fails on a loaded machine; the
    # generator's 10,000 rows take about a second on one idle core)
    assert len(generate_instruction_answer_pairs(10000, seed=0)) == 10000


def _local_longform(tmp_path, num_rows=40):
    import datasets

    # Answers of 60..160 words: some fall under the task's 100-word threshold.
    pairs = generate_instruction_answer_pairs(num_rows, seed=5, min_words=60, max_words=160)
    root = tmp_path / "LongForm"
    (root / "data").mkdir(parents=True)
    datasets.Dataset.from_dict(
        {
            "input": [p for p, _ in pairs],
            "output": [a for _, a in pairs],
            "source": ["synthetic"] * num_rows,
            "subset": ["s"] * num_rows,
        }
    ).to_parquet(str(root / "data" / "train-00000-of-00001.parquet"))
    kept = [k for k, (_, a) in enumerate(pairs) if len(a.split(" ")) >= 100]
    assert 8 < len(kept) < num_rows
    return root, kept


def test_longform_source_from_a_local_copy_builds_and_caches(tmp_path, monkeypatch):
    import datasets

    root, kept = _local_longform(tmp_path)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_datasets")
    calls = []
    real_load = datasets.load_dataset

    def counting_load(*args, **kwargs):
        calls.append((args, kwargs))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", counting_load)
    source = LongFormLengthSource(
        path=str(root), num_train=len(kept) - 4, num_test=4, cache_dir=str(tmp_path / "cache")
    )
    data = source.load()
    assert calls == [((str(root),), {"split": "train"})]
    assert len(data["train"]) == len(kept) - 4 and len(data["test"]) == 4
    assert [r.row_id for r in data["train"]] == [f"longform-{k}" for k in kept[:-4]]
    assert [r.row_id for r in data["test"]] == [f"longform-{k}" for k in kept[-4:]]
    for row in data["train"] + data["test"]:
        lengths = OPEN_LENGTHS if row.openness > 0 else CLOSED_LENGTHS
        assert word_counts(row) == sorted(lengths, reverse=True)
    assert all(f.exists() for f in source.cache_files())

    again = source.load()  # from the cache: load_dataset is not called again
    assert len(calls) == 1 and again == data
    other = LongFormLengthSource(
        path=str(root),
        num_train=len(kept) - 4,
        num_test=4,
        seed=1,
        cache_dir=str(tmp_path / "cache"),
    )
    assert other.cache_files() != source.cache_files()


def test_longform_too_few_rows_says_so(tmp_path, monkeypatch):
    import datasets

    root, kept = _local_longform(tmp_path)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_datasets")
    with pytest.raises(ValueError, match=f"only {len(kept)} prompts"):
        LongFormLengthSource(path=str(root), num_train=len(kept), num_test=4).load()


def test_longform_hub_name_offline_fails_fast_with_the_key(no_network, monkeypatch):
    # tests/conftest.py sets HF_HUB_OFFLINE=1 for every test. Fast means: refused before any
    # connection (no_network) and before `datasets` is asked to load anything (and retry).
    import datasets

    def no_load(*args, **kwargs):
        raise AssertionError(f"datasets.load_dataset was called with {args}")

    monkeypatch.setattr(datasets, "load_dataset", no_load)
    with pytest.raises(DataUnavailableError) as err:
        LongFormLengthSource(path="akoksal/LongForm").load()
    message = str(err.value)
    assert "Cannot load data set 'akoksal/LongForm' (dataset.path):" in message and "not reachable" in message
    assert "`dataset.path=/data/LongForm`" in message and "dataset=length_offline" in message
    assert PATH_KEY == "dataset.path"
    assert "huggingface-cli download akoksal/LongForm --repo-type dataset" in message


def test_longform_hub_unreachable_without_the_offline_flag(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(hub_access, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(DataUnavailableError, match="not reachable"):
        LongFormLengthSource(path="akoksal/LongForm", path_key="dataset.path").load()


def test_load_dataset_errors_become_data_unavailable(monkeypatch):
    import datasets

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(hub_access, "hub_reachable", lambda timeout=3.0: True)

    def failing_load(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'akoksal/LongForm' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", failing_load)
    with pytest.raises(DataUnavailableError, match="ConnectionError: Couldn't reach") as err:
        LongFormLengthSource(path="akoksal/LongForm").load()
    assert "(dataset.path): ConnectionError" in str(err.value) and "`dataset.path=/data/LongForm`" in str(err.value)


def test_a_missing_local_directory_is_named(tmp_path):
    with pytest.raises(DataUnavailableError, match="is not a directory"):
        LongFormLengthSource(path=str(tmp_path / "nowhere")).load()


def test_hub_probe_fails_fast_on_a_closed_port(monkeypatch):
    # Fast means: one TCP connect to HF_ENDPOINT's host, port 443, bounded by the timeout given,
    # a refusal read as "not reachable", and the answer remembered (no second probe, no retry).
    import socket

    calls = []

    def refused(address, timeout=None, *args, **kwargs):
        calls.append((address, timeout))
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(socket, "create_connection", refused)
    monkeypatch.setenv("HF_ENDPOINT", "https://127.0.0.1")
    hub_access._probe.cache_clear()
    try:
        assert hub_reachable(timeout=1.0) is False
        assert hub_reachable(timeout=1.0) is False
    finally:
        hub_access._probe.cache_clear()
    assert calls == [(("127.0.0.1", 443), 1.0)]


def _fits_by_hand(tokenizer, row, max_length):
    """Plain reference: the row's (prompt, completion) inputs cut as the collator cuts them
    (an encoder's pair, longest_first) are pairwise distinct."""
    cut = [tuple(tokenizer(row.prompt, c, truncation="longest_first", max_length=max_length)["input_ids"])
           for c in row.completions]
    return len(set(cut)) == len(cut)


def test_longform_length_drops_and_counts_the_rows_that_cannot_fit_and_trains(tmp_path, monkeypatch):
    """dataset=longform_length on a LongForm-layout copy whose instructions run long (issue 25,
    item 9): the tiny model (max_length 128) trains on the rows that fit, the first ones of the
    kept pairs (train) and the last ones (test), each dropped row counted in metrics.json."""
    import json

    import datasets

    from rcollapse.data.length_task import build_length_rows
    from rcollapse.models.tiny_encoder import build_tiny_tokenizer
    from rcollapse.pipeline import run
    from tests.conftest import FAST_TRAINING, compose_config

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_datasets")
    pairs = generate_instruction_answer_pairs(40, seed=5, min_words=100, max_words=160)
    filler = generate_instruction_answer_pairs(1, seed=9, min_words=150, max_words=150)[0][1]
    # every third instruction carries a 150-word task input (as LongForm's NIv2 / BigBench rows do)
    pairs = [(f"{p} {filler}" if k % 3 == 1 else p, a) for k, (p, a) in enumerate(pairs)]
    root = tmp_path / "LongForm"
    (root / "data").mkdir(parents=True)
    datasets.Dataset.from_dict({"input": [p for p, _ in pairs], "output": [a for _, a in pairs],
                                "source": ["synthetic"] * 40, "subset": ["s"] * 40}).to_parquet(
        str(root / "data" / "train-00000-of-00001.parquet"))
    tokenizer = build_tiny_tokenizer()
    rows = build_length_rows(pairs, seed=0, id_prefix="longform")  # the source's rows (seed 0, p_open ½)
    fitting = [r for r in rows if _fits_by_hand(tokenizer, r, 128)]
    assert 8 <= len(rows) - len(fitting) and len(fitting) >= 20  # some rows cannot fit, most can
    expected_dropped = sum(not _fits_by_hand(tokenizer, r, 128) for r in rows[: rows.index(fitting[15]) + 1])
    expected_dropped += sum(not _fits_by_hand(tokenizer, r, 128) for r in rows[rows.index(fitting[-4]):])

    cfg = compose_config(["dataset=longform_length", f"dataset.path={root}", "model=tiny",
                          *[o for o in FAST_TRAINING if o != "dataset.num_test=8"], "dataset.num_test=4"], tmp_path)
    assert cfg.model.max_length == 128
    run(cfg)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["rm/data/longform_length/rows_dropped_too_long"] == expected_dropped > 0
    assert json.loads((tmp_path / "run" / "status.json").read_text())["status"] == "completed"
    cached = sorted((tmp_path / "cache" / "longform_length").glob("*-train.jsonl"))
    assert len(cached) == 1
    ids = [json.loads(line)["id"] for line in cached[0].read_text().splitlines()]
    assert ids == [r.row_id for r in fitting[:16]]


def test_the_offline_length_task_also_keeps_only_rows_that_fit():
    """The offline twin takes the same rule: at a max_length its long cuts cannot fit, rows are
    dropped and counted and the rows it gives all fit."""
    from rcollapse.data.ranking_truncation import RowFit
    from rcollapse.models.tiny_encoder import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    source = LengthOfflineSource(num_train=16, num_test=4, seed=0)
    source.fit_rows_to(RowFit(tokenizer, 100))  # about half the generated rows fit 100 tokens
    data = source.load()
    assert (len(data["train"]), len(data["test"])) == (16, 4)
    assert all(_fits_by_hand(tokenizer, r, 100) for r in data["train"] + data["test"])
    assert source.stats["rows_dropped_too_long"] > 0
    plain = LengthOfflineSource(num_train=16, num_test=4, seed=0)
    assert plain.load() == LengthOfflineSource(num_train=16, num_test=4, seed=0).load()  # no check: unchanged
    assert plain.stats == {"rows_dropped_too_long": 0}
