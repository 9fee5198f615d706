"""The StackExchange evidence's loader (reward-collapse paper, Section 5.1) on local copies in the hub
repo's layout: the generated one, and hand-built questions for the tie rule and malformed rows."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hydra.utils import instantiate

from rcollapse.data.hub_access import DataUnavailableError
from rcollapse.data.ranking_rows import MalformedRowError
from rcollapse.data.stack_exchange import (
    StackExchangeOfflineSource,
    StackExchangeRankingSource,
    answer_order,
    html_to_text,
    tied_pairs,
)
from rcollapse.data.synthetic_stack_exchange import (
    ANSWER_FILE,
    stack_exchange_schema,
    write_stack_exchange_copy,
    write_stack_exchange_rows,
)
from rcollapse.stages.reward_stage import source_stats_metrics
from tests.conftest import compose_config

# the hub repo names each site's folder by its domain: data/apple.stackexchange.com, data/askubuntu.com, ...
SITE = "apple.stackexchange.com"

@pytest.fixture(scope="module")
def copy_dir(tmp_path_factory):
    """A generated copy with two sites (the loader reads one through data_dir)."""
    return write_stack_exchange_copy(tmp_path_factory.mktemp("se") / "copy", sites=(SITE, "math.stackexchange.com"),
                                     num_questions=300, seed=0)


def _answer(answer_id: int, score: int, text: str, selected: bool = False) -> dict:
    return {"answer_id": answer_id, "author": "someone", "author_id": answer_id + 1000,
            "author_profile": f"https://apple.stackexchange.com/users/{answer_id + 1000}", "pm_score": score,
            "selected": selected, "text": text}


def _question(qid: int, answers: list[dict], question: str | None = None) -> dict:
    return {"qid": qid, "question": question or f"<p>Question {qid}?</p>", "answers": answers,
            "date": "2012/03/04", "metadata": [f"https://apple.stackexchange.com/questions/{qid}"]}


def _distinct(qid: int) -> dict:
    return _question(qid, [_answer(qid * 10 + k, 4 - k, f"<p>answer {k} of {qid}</p>") for k in range(5)])


# Scores [3, 3, 1, 0, 0] with the accepted answer second among the 3s and the 0s in reverse id order.
TIED = _question(7, [
    _answer(70, 3, "<p>three, earlier</p>"),
    _answer(74, 0, "<p>zero, later</p>"),
    _answer(72, 3, "<p>three, accepted</p>", selected=True),
    _answer(71, 1, "<p>one</p>"),
    _answer(69, 0, "<p>zero, earliest</p>"),
])
TIED_ORDER = ("three, accepted", "three, earlier", "one", "zero, earliest", "zero, later")


def _source(path, **kwargs) -> StackExchangeRankingSource:
    args = {"data_dir": f"data/{SITE}", "num_prompts": 1, "num_test": 1} | kwargs
    return StackExchangeRankingSource(str(path), **args)


def test_the_generated_copy_has_the_hub_layout_columns_and_types(copy_dir):
    readme = (copy_dir / "README.md").read_text()
    assert re.search(r"configs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/\*/train-\*",
                     readme)
    for site in (SITE, "math.stackexchange.com"):
        table = pq.read_table(copy_dir / "data" / site / ANSWER_FILE)
        assert table.schema.equals(stack_exchange_schema())
        rows = table.to_pylist()
        assert {len(r["answers"]) for r in rows} == set(range(2, 9))
        scores = [[a["pm_score"] for a in r["answers"]] for r in rows]
        assert sum(tied_pairs(s) > 0 for s in scores) > len(rows) / 3  # ties are frequent
        assert 0 < sum(any(a["selected"] for a in r["answers"]) for r in rows) < len(rows)
        texts = [a["text"] for r in rows for a in r["answers"]]
        assert all("<p>" in t for t in texts) and any("<code>" in t for t in texts)
        assert any("&amp;" in t for t in texts) and all("&amp;" in r["question"] for r in rows)
    # longer answers score higher: the mean plain-text length rises with pm_score
    answers = [a for r in pq.read_table(copy_dir / "data" / SITE / ANSWER_FILE).to_pylist() for a in r["answers"]]
    by_score = pd.DataFrame({"score": [a["pm_score"] for a in answers],
                             "words": [len(html_to_text(a["text"]).split()) for a in answers]})
    means = by_score.groupby("score")["words"].mean()
    assert means.is_monotonic_increasing and len(means) >= 4


def test_exactly_n_answers_are_selected_and_ranked_by_pm_score(copy_dir):
    source = _source(copy_dir, num_prompts=20, num_test=4)
    data = source.load()
    assert (len(data["train"]), len(data["test"])) == (20, 4)
    raw = {r["qid"]: r for r in pq.read_table(copy_dir / "data" / SITE / ANSWER_FILE).to_pylist()}
    seen = set()
    for row in data["train"] + data["test"]:
        qid = int(re.fullmatch(r"stack_exchange-q(\d+)-r\d+", row.row_id).group(1))
        assert qid not in seen and qid < 100_000  # one site (math's qids start at 100001), no repeats
        seen.add(qid)
        answers = raw[qid]["answers"]
        assert len(row.completions) == 5 == len(answers) and row.openness == 1.0
        score_of = {html_to_text(a["text"]): a["pm_score"] for a in answers}
        scores = [score_of[text] for text in row.completions]
        assert scores == sorted(scores, reverse=True)
        assert row.prompt == html_to_text(raw[qid]["question"])
    stats = source.stats
    assert stats["questions_seen"] == 300
    assert stats["questions_with_n_answers"] == sum(len(r["answers"]) == 5 for r in raw.values())
    assert (stats["questions_kept"], stats["train_prompts"], stats["test_prompts"]) == (24, 20, 4)
    # the same arguments give the same rows (seeded selection)
    again = _source(copy_dir, num_prompts=20, num_test=4).load()
    assert [r.row_id for r in again["train"]] == [r.row_id for r in data["train"]]


def test_ties_are_broken_accepted_first_then_earlier(tmp_path):
    assert answer_order(TIED["answers"]) == [2, 0, 3, 4, 1]
    assert tied_pairs([3, 3, 1, 0, 0]) == 2
    write_stack_exchange_rows(tmp_path, {SITE: [TIED, _distinct(8), _question(9, TIED["answers"][:4])]})
    source = _source(tmp_path, ties="break")
    data = source.load()
    row = next(r for r in data["train"] + data["test"] if r.row_id.startswith("stack_exchange-q7-"))
    assert row.completions == TIED_ORDER
    assert source.stats["questions_with_n_answers"] == 2  # qid 9 has 4 answers
    assert (source.stats["tied_pairs"], source.stats["tied_pairs_broken"]) == (2, 2)
    assert (source.stats["questions_with_ties"], source.stats["questions_dropped_ties"]) == (1, 0)


def test_ties_drop_keeps_only_distinct_scores_and_counts_the_dropped(tmp_path):
    write_stack_exchange_rows(tmp_path, {SITE: [TIED, _distinct(8), _distinct(9)]})
    source = _source(tmp_path, ties="drop")
    data = source.load()
    assert sorted(r.row_id.split("-")[1] for r in data["train"] + data["test"]) == ["q8", "q9"]
    assert source.stats["questions_dropped_ties"] == 1 and source.stats["tied_pairs"] == 2
    assert source.stats["tied_pairs_broken"] == 0
    with pytest.raises(ValueError, match=r"only 2 usable questions with exactly 5 answers"):
        _source(tmp_path, ties="drop", num_prompts=2).load()


def test_html_is_stripped_to_plain_text():
    html = ("<p>Use <code>a &amp;&amp; b</code> here:</p>\n\n<pre><code>if (x &lt; 3) {\n    y = 1;\n}\n"
            "</code></pre><ul><li>one</li><li>two</li></ul><script>alert(1)</script>It&#39;s&nbsp;done<br/>end")
    assert html_to_text(html) == "Use a && b here: if (x < 3) { y = 1; } one two It's done end"


def test_a_malformed_answer_names_the_question_and_the_field(tmp_path):
    broken = _distinct(8)
    del broken["answers"][2]["pm_score"]  # written as null
    write_stack_exchange_rows(tmp_path / "null", {SITE: [_distinct(7), broken]})
    with pytest.raises(MalformedRowError, match=r"qid 8 \(row 1\): answers\[2\]\.pm_score is missing"):
        _source(tmp_path / "null").load()
    # answers without the field at all (another schema)
    (tmp_path / "absent" / "data" / SITE).mkdir(parents=True)
    (tmp_path / "absent" / "README.md").write_text("---\nlicense: cc-by-sa-4.0\n---\n")
    rows = [_distinct(7), _distinct(8)]
    for row in rows:
        for answer in row["answers"]:
            del answer["pm_score"]
    pd.DataFrame(rows).to_parquet(tmp_path / "absent" / "data" / SITE / ANSWER_FILE)
    with pytest.raises(MalformedRowError, match=r"qid 7 \(row 0\): the answers have no field 'pm_score'"):
        _source(tmp_path / "absent").load()


def test_extra_columns_are_tolerated(tmp_path):
    write_stack_exchange_rows(tmp_path, {SITE: [_distinct(7), _distinct(8)]})
    file = tmp_path / "data" / SITE / ANSWER_FILE
    table = pq.read_table(file)
    pq.write_table(table.append_column("views", pa.array([10, 20], pa.int64())), file)
    data = _source(tmp_path).load()
    assert len(data["train"]) == len(data["test"]) == 1


def test_offline_the_error_names_the_key_and_how_to_supply_a_copy(tmp_path):
    cfg = compose_config(["dataset=stack_exchange"], tmp_path)
    source = instantiate(cfg.dataset, tokenizer=None).source
    assert (source.path, source.path_key, source.data_dir) == ("HuggingFaceH4/stack-exchange-preferences",
                                                              "dataset.path", f"data/{SITE}")
    with pytest.raises(DataUnavailableError) as err:
        source.load()  # HF_HUB_OFFLINE is set by the tests
    message = str(err.value)
    assert "(dataset.path)" in message and "`dataset.path=/data/stack-exchange-preferences`" in message
    assert f"--include 'data/{SITE}/*' README.md" in message and "dataset=stack_exchange_offline" in message
    missing = instantiate(compose_config(["dataset=stack_exchange", f"dataset.path={tmp_path}/none"],
                                         tmp_path).dataset, tokenizer=None).source
    with pytest.raises(DataUnavailableError, match=r"\(dataset\.path\): \S+ is not a directory"):
        missing.load()
    write_stack_exchange_rows(tmp_path / "copy", {SITE: [_distinct(7)]})
    with pytest.raises(DataUnavailableError, match=r"no folder 'data/cooking' \(dataset\.data_dir\); its sites are \['apple\.stackexchange\.com'\]"):
        _source(tmp_path / "copy", data_dir="data/cooking").load()


def test_the_counts_reach_the_runs_metrics_and_survive_the_cache(tmp_path):
    write_stack_exchange_rows(tmp_path / "copy", {SITE: [TIED, _distinct(8)]})
    source = _source(tmp_path / "copy", cache_dir=str(tmp_path / "cache"))
    first = source.load()
    metrics = source_stats_metrics(source)
    assert metrics["rm/data/stack_exchange/tied_pairs"] == 2.0
    assert metrics["rm/data/stack_exchange/questions_kept"] == 2.0
    assert set(metrics) == {f"rm/data/stack_exchange/{k}" for k in source.stats}
    assert len(list((tmp_path / "cache").glob("stack_exchange-*.json"))) == 1
    cached = _source(tmp_path / "copy", cache_dir=str(tmp_path / "cache"))
    assert cached.load() == first and cached.stats == source.stats
    assert source_stats_metrics(object()) == {}  # sources without counts add nothing


def test_max_chars_cuts_long_answers(tmp_path):
    write_stack_exchange_rows(tmp_path, {SITE: [_distinct(7), _distinct(8)]})
    data = _source(tmp_path, max_chars=8).load()
    assert all(len(c) <= 8 for r in data["train"] + data["test"] for c in r.completions)
    assert data["train"][0].completions[0] == "answer 0"


def test_arguments_are_checked_when_built():
    with pytest.raises(ValueError, match="ties='keep'"):
        StackExchangeRankingSource(ties="keep")
    with pytest.raises(ValueError, match="num_answers=1"):
        StackExchangeRankingSource(num_answers=1)


def test_the_offline_config_writes_its_copy_once_and_leaves_other_dirs_alone(tmp_path, capsys):
    cfg = compose_config(["dataset=stack_exchange_offline"], tmp_path)
    source = instantiate(cfg.dataset, tokenizer=None).source
    assert isinstance(source, StackExchangeOfflineSource) and source.path_key == "dataset.path"
    assert not (tmp_path / "cache" / "stack_exchange_copy").exists()  # nothing written when built
    data = source.load()
    assert (len(data["train"]), len(data["test"])) == (128, 16)
    assert all(len(r.completions) == 5 for r in data["train"])
    out = capsys.readouterr().out
    assert "wrote a generated local copy" in out and "kept 144 (128 train + 16 test)" in out
    marker = tmp_path / "cache" / "stack_exchange_copy" / StackExchangeOfflineSource.MARKER
    written = marker.stat().st_mtime_ns
    instantiate(cfg.dataset, tokenizer=None).source.load()
    assert marker.stat().st_mtime_ns == written  # reused
    # a directory the project did not write is read as it is
    write_stack_exchange_rows(tmp_path / "mine", {SITE: [_distinct(7), _distinct(8)]})
    mine = StackExchangeOfflineSource(str(tmp_path / "mine"), num_prompts=1, num_test=1)
    assert len(mine.load()["train"]) == 1 and not (tmp_path / "mine" / mine.MARKER).exists()


def test_the_real_experiment_reads_its_default_site_folder_from_a_copy_in_the_hub_layout(tmp_path):
    """experiment=collapse_stackexchange with only dataset.path set reads the hub's folder for the
    apple site (data/apple.stackexchange.com), not another site's (issue 25, item 6)."""
    copy = write_stack_exchange_copy(tmp_path / "copy", sites=(SITE, "askubuntu.com", "cs.stackexchange.com"),
                                     num_questions=600, seed=0)
    assert sorted(p.name for p in (copy / "data").iterdir()) == ["apple.stackexchange.com", "askubuntu.com",
                                                                 "cs.stackexchange.com"]
    cfg = compose_config(["experiment=collapse_stackexchange", f"dataset.path={copy}"], tmp_path)
    assert cfg.dataset.data_dir == "data/apple.stackexchange.com"
    source = instantiate(cfg.dataset, tokenizer=None).source
    data = source.load()
    assert (len(data["train"]), len(data["test"])) == (128, 16)
    qids = [int(re.match(r"stack_exchange-q(\d+)-", r.row_id).group(1)) for r in data["train"] + data["test"]]
    assert max(qids) < 100_000  # the first site's questions only (the others' qids start at 100001)
    assert source.stats["questions_seen"] == 600


def test_the_stack_exchange_task_drops_and_counts_the_questions_that_cannot_fit_and_trains(tmp_path):
    """dataset=stack_exchange with the tiny model (max_length 128) on a copy whose long questions
    come with long answers that quote one passage before they differ (issue 25, item 9): those
    questions are skipped for the next ones and counted, the rest train."""
    import json

    from rcollapse.data.synthetic_longform import generate_instruction_answer_pairs
    from rcollapse.pipeline import run
    from tests.conftest import FAST_TRAINING, compose_config

    quote = generate_instruction_answer_pairs(1, seed=3, min_words=120, max_words=120)[0][1]
    long_ones = {q for q in range(1, 25) if q % 4 == 0}
    questions = []
    for q in range(1, 25):
        if q in long_ones:  # a 120-word question, answers quoting the same 120 words first
            answers = [_answer(q * 10 + k, 4 - k, f"<p>{quote}</p><p>then {k} of {q}</p>") for k in range(5)]
            questions.append(_question(q, answers, question=f"<p>Question {q}: {quote}</p>"))
        else:
            questions.append(_distinct(q))
    write_stack_exchange_rows(tmp_path / "copy", {SITE: questions})
    cfg = compose_config(["dataset=stack_exchange", f"dataset.path={tmp_path / 'copy'}", "model=tiny",
                          "dataset.num_prompts=12", "dataset.num_test=4",
                          *[o for o in FAST_TRAINING if not o.startswith("dataset.num_")]], tmp_path)
    assert cfg.model.max_length == 128
    run(cfg)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    kept = metrics["rm/data/stack_exchange/questions_kept"]
    dropped = metrics["rm/data/stack_exchange/rows_dropped_too_long"]
    assert kept == 16 and dropped > 0
    # the candidates in the source's seeded order (dataset.seed 0): the long ones met before the 16th short one
    order = [int(k) + 1 for k in np.random.default_rng(0).permutation(24)]
    sixteenth = [q for q in order if q not in long_ones][15]
    assert dropped == sum(q in long_ones for q in order[: order.index(sixteenth)])
    cached = json.loads(next((tmp_path / "cache" / "stack_exchange").glob("stack_exchange-*.json")).read_text())
    ids = [int(re.match(r"stack_exchange-q(\d+)-", r["id"]).group(1)) for r in cached["train"] + cached["test"]]
    assert not set(ids) & long_ones and len(set(ids)) == 16
