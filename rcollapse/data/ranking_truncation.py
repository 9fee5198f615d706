"""Completions that the tokenizer's ``max_length`` cuts (issue 16, item 7).

Two completions of one prompt that differ only after ``max_length`` tokens become the same input:
the reward model cannot order them, pair accuracy falls to 0 and the rewards of the row collapse
for a reason that has nothing to do with the utility. :func:`check_truncation` counts the
completions the cut shortens (a warning names how many), and refuses a row whose completions are
identical after it, or identical as texts, naming the row and ``model.max_length``.

The refusal is for a user's own file (``dataset=rankings_jsonl``): the project cannot know which
row was meant. A task the project builds itself (the length task, the StackExchange task and their
offline twins) builds only rows that fit: the data module hands such a source a :class:`RowFit`
(through the source's ``fit_rows_to``), the source drops each row it rejects, takes the next one in
its place and counts it (``rows_dropped_too_long``, in ``metrics.json`` as
``rm/data/<source>/rows_dropped_too_long``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import warnings

from rcollapse.data.ranking_collator import is_decoder_tokenizer, pair_texts
from rcollapse.data.ranking_rows import MalformedRowError, RankingRow

MAX_LENGTH_KEY = "model.max_length"


def _model_inputs(row: RankingRow, tokenizer, max_length: int) -> tuple[list, list]:
    """The token ids of each (prompt, completion) pair of ``row``: whole, and cut to ``max_length``
    as the collator cuts them (``longest_first``)."""
    prompts, completions = pair_texts(tokenizer, [row.prompt] * len(row.completions), list(row.completions))
    full = tokenizer(prompts, completions, truncation=False)["input_ids"]
    cut = tokenizer(prompts, completions, truncation="longest_first", max_length=max_length)["input_ids"]
    return full, cut


def _first_clash(inputs: list) -> tuple[int, int] | None:
    """The first two indices whose token ids are the same, or None."""
    seen: dict[tuple, int] = {}
    for index, ids in enumerate(inputs):
        ids = tuple(ids)
        if ids in seen:
            return seen[ids], index
        seen[ids] = index
    return None


class RowFit:
    """Whether a ranking row fits ``max_length``: its completions are distinct texts and stay
    distinct model inputs after the collator's cut, which is what :func:`check_truncation` asks of
    every row. A source that builds its own rows drops a row for which this is false.

    ``key`` identifies the tokenizer (its class, name, size and a hash of its vocabulary) and
    ``max_length``, for the cache keys of the sources that store the rows they built.
    """

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer, self.max_length = tokenizer, int(max_length)

    def __call__(self, row: RankingRow) -> bool:
        if len(set(row.completions)) < len(row.completions):
            return False
        return _first_clash(_model_inputs(row, self.tokenizer, self.max_length)[1]) is None

    @functools.cached_property
    def key(self) -> list:
        tok = self.tokenizer
        vocab = tok.get_vocab() if hasattr(tok, "get_vocab") else {}
        digest = hashlib.sha256(json.dumps(sorted(vocab.items()), ensure_ascii=False).encode()).hexdigest()[:16]
        return [type(tok).__name__, str(getattr(tok, "name_or_path", "")), len(vocab), digest,
                is_decoder_tokenizer(tok), self.max_length]


def check_truncation(splits: dict[str, list[RankingRow]], tokenizer, max_length: int,
                     key: str = MAX_LENGTH_KEY) -> dict[str, int]:
    """The number of truncated completions per split; raises :class:`MalformedRowError` for a row
    with two identical completions (as texts, or as the model's inputs after the cut)."""
    counts = {}
    for split, rows in splits.items():
        truncated = 0
        for row in rows:
            seen: dict[str, int] = {}
            for index, text in enumerate(row.completions):
                if text in seen:
                    raise MalformedRowError(f"row {row.row_id} ({split}): completions {seen[text]} and {index} are the "
                                            "same text with different ranks; a ranking needs distinct completions")
                seen[text] = index
            full, cut = _model_inputs(row, tokenizer, max_length)
            truncated += sum(len(ids) > max_length for ids in full)
            clash = _first_clash(cut)
            if clash is not None:
                raise MalformedRowError(
                    f"{key}={max_length}: row {row.row_id} ({split}): completions {clash[0]} and {clash[1]} are "
                    f"identical after truncation to {max_length} tokens (they differ only after it), so the reward "
                    f"model could not tell them apart; raise {key} or shorten the prompt")
        counts[split] = truncated
    total = sum(counts.values())
    if total:
        warnings.warn(f"{key}={max_length}: {total} completion(s) are truncated "
                      f"({', '.join(f'{s}: {n}' for s, n in counts.items())}); their rewards see only the first "
                      f"{max_length} tokens of prompt + completion", stacklevel=2)
    return counts
