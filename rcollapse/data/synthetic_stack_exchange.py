"""A generated local copy of ``HuggingFaceH4/stack-exchange-preferences`` in the hub repo's layout.

The copy is what the real loader (:class:`rcollapse.data.stack_exchange.StackExchangeRankingSource`)
reads offline: ``README.md`` with a ``configs`` block (one split, ``train``) and
``data/<site>/train-00000-of-00001.parquet`` per site (``<site>`` the site's domain, as the hub
names its folders: ``data/apple.stackexchange.com``, ``data/askubuntu.com``), with the real columns and types (SPEC
section 5): ``qid`` int64, ``question`` (HTML), ``date``, ``metadata`` (list of str) and
``answers``, a list of {``answer_id`` int64, ``author``, ``author_id`` int64, ``author_profile``,
``pm_score`` int64, ``selected`` bool, ``text`` (HTML)}.

No text comes from Stack Exchange: questions are the procedural corpus's instructions
(:mod:`rcollapse.data.synthetic_longform`) and answers are cuts of its generated answers, wrapped
in ``<p>``, ``<pre><code>``, ``<ul><li>`` and ``&amp;`` entities. Each question has 2..8 answers.
Votes follow a latent quality per answer; ``pm_score`` is computed from them as the hub data set's
card defines it (``round(log2(1 + net votes))``, +1 for the accepted answer, −1 when the net vote
is negative), so scores tie often. An answer's length and detail grow with its ``pm_score``
(longer, with a code block from score 2 and a list from score 4), so a reward model has something
to learn; answers of equal score are alike in kind, as the real ties are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from rcollapse.data.synthetic_longform import generate_instruction_answer_pairs, lexicon

ANSWER_COUNTS = (2, 3, 4, 5, 6, 7, 8)
# How often a question has each number of answers: 5 is common enough that a copy of N questions
# holds about 0.3 N with exactly five.
ANSWER_COUNT_WEIGHTS = (0.2, 0.15, 0.12, 0.3, 0.1, 0.08, 0.05)
P_ACCEPTED = 0.5  # share of questions with an accepted (``selected``) answer
ANSWER_FILE = "train-00000-of-00001.parquet"

README = """---
license: cc-by-sa-4.0
task_categories:
- question-answering
language:
- en
pretty_name: H4 Stack Exchange Preferences Dataset (generated local copy)
tags:
- RLHF
- preferences
- human-feedback
- Stack Exchange
configs:
- config_name: default
  data_files:
  - split: train
    path: data/*/train-*
---

# A generated local copy of HuggingFaceH4/stack-exchange-preferences

Written by `rcollapse.data.synthetic_stack_exchange.write_stack_exchange_copy`: the hub repo's
layout (`data/<site>/train-*.parquet`, one split `train`) and columns, with generated text.
Sites: {sites}. Questions per site: {num_questions}. Seed: {seed}.
"""


def stack_exchange_schema():
    """The hub data set's arrow schema (column order as on the hub)."""
    import pyarrow as pa

    answer = pa.struct([
        ("answer_id", pa.int64()),
        ("author", pa.string()),
        ("author_id", pa.int64()),
        ("author_profile", pa.string()),
        ("pm_score", pa.int64()),
        ("selected", pa.bool_()),
        ("text", pa.string()),
    ])
    return pa.schema([
        ("qid", pa.int64()),
        ("question", pa.string()),
        ("answers", pa.list_(answer)),
        ("date", pa.string()),
        ("metadata", pa.list_(pa.string())),
    ])


def write_stack_exchange_rows(directory: str | Path, rows_by_site: Mapping[str, Sequence[Mapping]],
                              readme: str | None = None) -> Path:
    """Write given rows (dicts with the hub's columns) in the hub layout: ``README.md`` and
    ``data/<site>/train-00000-of-00001.parquet`` per site, typed by :func:`stack_exchange_schema`
    (a missing column or answer field is written as null). Returns ``directory``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(directory)
    schema = stack_exchange_schema()
    for site, rows in rows_by_site.items():
        folder = root / "data" / site
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(list(rows), schema=schema), folder / ANSWER_FILE)
    text = readme or README.format(sites=", ".join(rows_by_site), num_questions="given", seed="none")
    (root / "README.md").write_text(text, encoding="utf-8")
    return root


def pm_score(net_votes: int, accepted: bool) -> int:
    """The card's preference score: ``round(log2(1 + net))`` (−1 when net < 0), +1 if accepted."""
    base = -1 if net_votes < 0 else int(round(float(np.log2(1 + net_votes))))
    return base + int(bool(accepted))


def _answer_html(rng: np.random.Generator, words: list[str], score: int, code_words: list[str]) -> str:
    """An answer whose length and detail grow with ``score``: ``6 + 7 (score + 1)`` words (± 2) in
    paragraphs, a ``<pre><code>`` block from score 2, a ``<ul>`` list from score 4."""
    length = max(3, 6 + 7 * (score + 1) + int(rng.integers(-2, 3)))
    body = words[:length]
    half = max(1, len(body) // 2)
    parts = [f"<p>{' '.join(body[:half])}</p>"]
    if score >= 2:
        a, b, c = (code_words[int(i)] for i in rng.integers(len(code_words), size=3))
        parts.append(f"<pre><code>{a} = {b}({c}) &amp;&amp; {c}.{a}\n</code></pre>")
    parts.append(f"<p>{' '.join(body[half:])}</p>" if body[half:] else "")
    if score >= 4:
        items = "".join(f"<li>{code_words[int(i)]}</li>" for i in rng.integers(len(code_words), size=3))
        parts.append(f"<ul>{items}</ul>")
    if rng.random() < 0.3:
        parts.append(f"<p>See <code>{code_words[int(rng.integers(len(code_words)))]}</code> &amp; the docs.</p>")
    return "\n\n".join(p for p in parts if p)


def _site_rows(site: str, num_questions: int, rng: np.random.Generator, seed: int, first_qid: int) -> list[dict]:
    counts = rng.choice(ANSWER_COUNTS, size=num_questions, p=ANSWER_COUNT_WEIGHTS).tolist()
    # one generated (instruction, answer) pair gives each question its text, and one more each answer
    pairs = generate_instruction_answer_pairs(num_questions + sum(counts), seed=seed, min_words=100,
                                              max_words=110)
    code_words = lexicon(seed=0)[:200]
    rows, cursor, answer_id = [], num_questions, first_qid * 10
    for q, n in enumerate(counts):
        qid = first_qid + q
        instruction, _ = pairs[q]
        snippet = code_words[int(rng.integers(len(code_words)))]
        question = f"<p>{instruction}</p>\n\n<p>I tried <code>{snippet}()</code> &amp; it did not work.</p>"
        quality = rng.normal(size=n)
        net = rng.poisson(np.exp(0.8 + 1.0 * quality))
        negative = (quality < -0.8) & (rng.random(n) < 0.5)
        net = np.where(negative, -1 - rng.poisson(1.0, size=n), net)
        accepted = -1
        if rng.random() < P_ACCEPTED:
            accepted = int(np.argmax(quality)) if rng.random() < 0.7 else int(rng.integers(n))
        answers = []
        for k in range(n):
            score = pm_score(int(net[k]), k == accepted)
            words = pairs[cursor][1].split(" ")
            cursor += 1
            answer_id += 1 + int(rng.integers(3))
            author_id = int(rng.integers(1, 100_000))
            answers.append({
                "answer_id": answer_id,
                "author": f"user{author_id}",
                "author_id": author_id,
                "author_profile": f"https://{site}/users/{author_id}",
                "pm_score": score,
                "selected": k == accepted,
                "text": _answer_html(rng, words, score, code_words),
            })
        year, month, day = 2009 + int(rng.integers(14)), 1 + int(rng.integers(12)), 1 + int(rng.integers(28))
        rows.append({
            "qid": qid,
            "question": question,
            "answers": answers,
            "date": f"{year}/{month:02d}/{day:02d}",
            "metadata": [f"https://{site}/questions/{qid}", f"https://{site}",
                         f"https://{site}/users/{int(rng.integers(1, 100_000))}/"],
        })
    return rows


def write_stack_exchange_copy(directory: str | Path, sites: Sequence[str] = ("apple.stackexchange.com",), num_questions: int = 600,
                              seed: int = 0) -> Path:
    """Write a local copy of ``HuggingFaceH4/stack-exchange-preferences`` under ``directory``:
    ``num_questions`` generated questions per site (2..8 answers each), deterministic for
    ``seed``. A site is named as the hub repo names its folder, by the site's domain
    (``apple.stackexchange.com``, ``askubuntu.com``). Returns ``directory`` (pass it as
    ``dataset.path``, a site as ``dataset.data_dir=data/<site>``)."""
    if num_questions < 1:
        raise ValueError(f"num_questions must be >= 1, got {num_questions}")
    sites = [str(s) for s in sites]
    if not sites or any(not s or "/" in s for s in sites):
        raise ValueError(f"sites must be non-empty folder names (the site's domain, e.g. ['apple.stackexchange.com']), got {sites}")
    rows_by_site = {}
    for k, site in enumerate(sites):
        rng = np.random.default_rng([seed, k])
        rows_by_site[site] = _site_rows(site, num_questions, rng, seed=seed * 1000 + k, first_qid=1 + 100_000 * k)
    readme = README.format(sites=", ".join(sites), num_questions=num_questions, seed=seed)
    return write_stack_exchange_rows(directory, rows_by_site, readme=readme)
