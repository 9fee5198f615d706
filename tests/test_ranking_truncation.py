"""Completions cut by model.max_length (issue 16, item 7): counted and warned about, and a row
whose completions become one input refused, naming the row and the key."""

import pytest

from rcollapse.data.ranking_rows import MalformedRowError, RankingRow
from rcollapse.data.ranking_truncation import check_truncation
from rcollapse.models.tiny_encoder import build_tiny_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


def row(*completions, row_id="r1"):
    return RankingRow(row_id, "what is it", tuple(completions), 0.0)


def test_short_rows_pass_silently(tokenizer, recwarn):
    assert check_truncation({"train": [row("a b", "c d e")], "test": []}, tokenizer, 32) == {"train": 0, "test": 0}
    assert not [w for w in recwarn if "truncated" in str(w.message)]


def test_truncated_completions_are_counted_and_warned_about(tokenizer):
    long = " ".join(["word"] * 40)
    with pytest.warns(UserWarning, match=r"^model\.max_length=16: 2 completion\(s\) are truncated \(train: 1, test: 1\)"):
        counts = check_truncation({"train": [row(long, "short")], "test": [row("x " + long, "y")]}, tokenizer, 16)
    assert counts == {"train": 1, "test": 1}


def test_completions_identical_after_the_cut_are_refused_naming_row_and_key(tokenizer):
    shared = " ".join(["word"] * 30)
    with pytest.raises(MalformedRowError) as err:  # refused before any warning
        check_truncation({"train": [row(shared + " good", shared + " bad", row_id="row-7")]}, tokenizer, 16)
    assert str(err.value).startswith("model.max_length=16: row row-7 (train): completions 0 and 1 are identical "
                                     "after truncation to 16 tokens")


def test_the_same_text_twice_in_one_ranking_is_refused(tokenizer):
    with pytest.raises(MalformedRowError, match=r"^row r1 \(test\): completions 0 and 2 are the same text"):
        check_truncation({"test": [row("a", "b", "a")]}, tokenizer, 32)


def test_the_reward_stage_reports_the_count_and_refuses_a_row_the_cut_makes_one(tmp_path, fast_reward_run):
    import json

    from rcollapse.pipeline import run
    from tests.conftest import FAST_TRAINING, compose_config

    # stage=reward, utility=x, FAST_TRAINING (tests/conftest.py)
    metrics = json.loads((fast_reward_run("x") / "metrics.json").read_text())
    assert metrics["rm/data/truncated_train"] == 0 and metrics["rm/data/truncated_test"] == 0
    shared = " ".join(["word"] * 30)
    rows = [{"prompt": "p", "completions": [shared + " good", shared + " bad"], "ranking": [0, 1], "type": "open"}]
    for name in ("train.jsonl", "test.jsonl"):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(MalformedRowError, match=r"^model\.max_length=16: row "):
        run(compose_config(["dataset=rankings_jsonl", f"dataset.train_path={tmp_path / 'train.jsonl'}",
                            f"dataset.test_path={tmp_path / 'test.jsonl'}", "model.max_length=16",
                            *[o for o in FAST_TRAINING if not o.startswith("dataset.num_")]],
                           tmp_path / "cut"))


def test_row_fit_accepts_exactly_the_rows_the_check_lets_through(tokenizer):
    """RowFit (what the project's own tasks drop rows by) is check_truncation's condition: a row
    fits iff the check passes it, at the same max_length."""
    from rcollapse.data.ranking_truncation import RowFit

    shared = " ".join(["word"] * 30)
    rows = [row("a b", "c d e"), row(" ".join(["word"] * 40), "short"), row(shared + " good", shared + " bad"),
            row("a", "b", "a"), row("what " + shared, "so " + shared)]
    for max_length in (16, 32, 256):
        fit = RowFit(tokenizer, max_length)
        for r in rows:
            try:
                check_truncation({"train": [r]}, tokenizer, max_length)
                passed = True
            except MalformedRowError:
                passed = False
            assert fit(r) == passed, (r, max_length)
    assert not RowFit(tokenizer, 16)(rows[2]) and RowFit(tokenizer, 256)(rows[2])  # differ after 16 tokens
    assert RowFit(tokenizer, 16).key != RowFit(tokenizer, 32).key  # the sources' caches tell them apart
    assert RowFit(tokenizer, 16).key == RowFit(build_tiny_tokenizer(), 16).key
