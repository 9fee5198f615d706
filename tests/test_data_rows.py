"""Ranking rows: good rows pass, bad rows fail with a message naming the row and the problem."""

import json

import numpy as np
import pytest

from rcollapse.data.ranking_rows import (
    MalformedRowError,
    RankingRow,
    validate_ranking_row,
    validate_rows,
)
from rcollapse.data.sources import JsonlRankingSource


def test_ranking_sorts_completions_best_first():
    row = validate_ranking_row(
        {
            "id": "q7",
            "prompt": "p",
            "completions": ["bad", "best", "ok"],
            "ranking": [2, 0, 1],
            "type": "open",
        },
        0,
        "src",
    )
    assert row.completions == ("best", "ok", "bad") and row.openness == 1.0 and row.row_id == "q7"


def test_without_ranking_the_order_is_kept_and_openness_is_read():
    row = validate_ranking_row(
        {"prompt": "p", "completions": ["a", "b"], "openness": -0.25}, 3, "src"
    )
    assert row.completions == ("a", "b") and row.openness == -0.25 and row.row_id == "src:3"


BAD = [
    ({"prompt": "p", "completions": ["only one"], "type": "open"}, "at least 2 completions"),
    ({"prompt": "p", "completions": [], "type": "open"}, "at least 2 completions"),
    ({"prompt": "p", "completions": ["a", "b", "c"], "ranking": [0, 1, 1], "type": "open"}, "ties"),
    (
        {"prompt": "p", "completions": ["a", "b"], "ranking": [0], "type": "open"},
        "one rank per completion",
    ),
    ({"prompt": "p", "completions": ["a", "b"], "ranking": [0, 5], "type": "open"}, "permutation"),
    ({"prompt": "p", "completions": ["a", "b"], "ranking": [0, "1"], "type": "open"}, "integers"),
    ({"prompt": "", "completions": ["a", "b"], "type": "open"}, "'prompt'"),
    ({"completions": ["a", "b"], "type": "open"}, "'prompt'"),
    ({"prompt": "p", "completions": "ab", "type": "open"}, "'completions'"),
    ({"prompt": "p", "completions": ["a", 3], "type": "open"}, "completion 1 must be a string"),
    ({"prompt": "p", "completions": ["a", "  "], "type": "open"}, "completion 1 is empty"),
    ({"prompt": "p", "completions": ["a", "b"], "openness": 1.5}, r"\[-1, 1\]"),
    ({"prompt": "p", "completions": ["a", "b"], "openness": "high"}, "'openness'"),
    ({"prompt": "p", "completions": ["a", "b"], "openness": float("nan")}, "'openness'"),
    ({"prompt": "p", "completions": ["a", "b"], "openness": True}, "'openness'"),
    ({"prompt": "p", "completions": ["a", "b"], "type": "vague"}, "'type'"),
    ({"prompt": "p", "completions": ["a", "b"]}, "needs 'openness'"),
    (["not", "a", "mapping"], "expected a mapping"),
]


@pytest.mark.parametrize(("raw", "problem"), BAD, ids=[b[1] for b in BAD])
def test_bad_rows_name_the_row_and_the_problem(raw, problem):
    with pytest.raises(MalformedRowError, match=problem) as err:
        validate_ranking_row(raw, 12, "my_rankings.jsonl")
    assert "my_rankings.jsonl, row 12" in str(err.value)


def test_ties_name_the_tied_positions():
    raw = {
        "id": 9,
        "prompt": "p",
        "completions": ["a", "b", "c", "d"],
        "ranking": [2, 0, 3, 0],
        "type": "closed",
    }
    with pytest.raises(
        MalformedRowError, match=r"src, row 4 \(id 9\): ties .*completions 1 and 3 share rank 0"
    ):
        validate_ranking_row(raw, 4, "src")


def test_numpy_ranks_and_openness_are_accepted():
    row = validate_ranking_row(
        {
            "prompt": "p",
            "completions": ["b", "a"],
            "ranking": np.array([1, 0]).tolist(),
            "openness": np.float32(0.5),
        },
        0,
        "src",
    )
    assert row.completions == ("a", "b") and row.openness == 0.5 and isinstance(row.openness, float)
    row = validate_ranking_row(
        {
            "prompt": "p",
            "completions": ["b", "a"],
            "ranking": list(np.array([1, 0])),
            "type": "closed",
        },
        0,
        "src",
    )
    assert row.completions == ("a", "b") and row.openness == -1.0


def test_validate_rows_counts_from_zero():
    good = {"prompt": "p", "completions": ["a", "b"], "type": "open"}
    rows = validate_rows([good, {**good, "id": "x"}], "mine")
    assert rows == [
        RankingRow("mine:0", "p", ("a", "b"), 1.0),
        RankingRow("x", "p", ("a", "b"), 1.0),
    ]
    with pytest.raises(MalformedRowError, match="mine, row 1"):
        validate_rows([good, {**good, "type": "neither"}], "mine")


def test_row_id_is_named_when_present():
    with pytest.raises(MalformedRowError, match="id 'abc'"):
        validate_ranking_row(
            {"id": "abc", "prompt": "p", "completions": ["a"], "type": "open"}, 0, "s"
        )


def test_jsonl_source_loads_and_sorts(tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text(
        json.dumps(
            {
                "id": "t1",
                "prompt": "p",
                "completions": ["worst", "best", "mid"],
                "ranking": [2, 0, 1],
                "openness": 0.25,
            }
        )
        + "\n\n"
        + json.dumps({"prompt": "q", "completions": ["x", "y"], "type": "closed"})
        + "\n"
    )
    (tmp_path / "test.jsonl").write_text(
        json.dumps({"prompt": "r", "completions": ["u", "v"], "type": "open"})
    )
    data = JsonlRankingSource(str(train), str(tmp_path / "test.jsonl")).load()
    assert [r.completions for r in data["train"]] == [("best", "mid", "worst"), ("x", "y")]
    assert [r.openness for r in data["train"]] == [0.25, -1.0] and data["test"][0].openness == 1.0


def test_jsonl_source_names_file_and_line(tmp_path):
    good = {"prompt": "p", "completions": ["a", "b"], "type": "closed"}
    train = tmp_path / "train.jsonl"
    train.write_text(json.dumps(good) + "\n" + "{not json\n")
    (tmp_path / "test.jsonl").write_text(json.dumps(good) + "\n")
    with pytest.raises(MalformedRowError, match="train.jsonl, line 2"):
        JsonlRankingSource(str(train), str(tmp_path / "test.jsonl")).load()
    train.write_text(json.dumps(good) + "\n" + json.dumps({**good, "completions": ["a"]}) + "\n")
    with pytest.raises(MalformedRowError, match="train.jsonl, line 2"):
        JsonlRankingSource(str(train), str(tmp_path / "test.jsonl")).load()
