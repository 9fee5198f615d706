"""Completions that the tokenizer's ``max_length`` cuts (issue 16, item 7).

Two completions of one prompt that differ only after ``max_length`` tokens become the same input:
the reward model cannot order them, pair accuracy falls to 0 and the rewards of the row collapse
for a reason that has nothing to do with the utility. :func:`check_truncation` counts the
completions the cut shortens (a warning names how many), and refuses a row whose completions are
identical after it (naming the row and ``model.max_length``), identical as tokens though not as
texts (the tokenizer maps them to its unknown token, or normalises them alike), or identical as
texts; the completions are numbered as the row lists them (before its ``ranking`` sorts them).

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


def _shown(text: str, width: int = 60, tail: bool = False) -> str:
    """``text`` quoted, its start (``tail``: its end) when it is longer than ``width``."""
    if len(text) <= width:
        return repr(text)
    return "..." + repr(text[-width:]) if tail else repr(text[:width]) + "..."


NUMBERED = "completions are numbered from 0 in the row's own order, as in its file"


def _pair(row: RankingRow, first: int, second: int, tail: bool = False) -> tuple[str, str]:
    """Two best-first completions of ``row``: "A and B" (their numbers in the row's own list) and
    their texts (``tail``: their ends)."""
    a, b = sorted((first, second), key=row.raw_position)
    return (f"completions {row.raw_position(a)} and {row.raw_position(b)}",
            f"{_shown(row.completions[a], tail=tail)} and {_shown(row.completions[b], tail=tail)}")


def _duplicate_text(row: RankingRow, split: str) -> MalformedRowError | None:
    seen: dict[str, int] = {}
    for index, text in enumerate(row.completions):
        if text in seen:
            which, _ = _pair(row, seen[text], index)
            return MalformedRowError(f"{row.name(split)}: {which} are the same text with different ranks "
                                     f"({_shown(text)}); a ranking needs distinct completions ({NUMBERED})")
        seen[text] = index
    return None


def _same_input(row: RankingRow, split: str, clash: tuple[int, int], full: list, tokenizer, max_length: int,
                key: str) -> MalformedRowError:
    """Why two different completions of ``row`` became one model input: the cut at ``max_length``
    removed what told them apart, or the tokenizer gives them the same tokens (characters it maps to
    its unknown token, or a normalisation)."""
    which, texts = _pair(row, *clash, tail=full[clash[0]] != full[clash[1]])
    if full[clash[0]] != full[clash[1]]:
        return MalformedRowError(
            f"{key}={max_length}: {row.name(split)}: {which} are identical after truncation to {max_length} tokens "
            f"(they differ only after it, in their ends {texts}), so the reward model could not tell them apart; raise {key} or "
            f"shorten the prompt ({NUMBERED})")
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is not None and unk in full[clash[0]]:
        cause = (f"the tokenizer maps the characters where they differ to its unknown token "
                 f"{getattr(tokenizer, 'unk_token', '')!r} (they are outside its vocabulary)")
    else:
        cause = "the tokenizer normalises what tells them apart (case, accents, spaces)"
    return MalformedRowError(
        f"{row.name(split)}: {which} differ as texts ({texts}) but their tokens are identical: {cause}, so the "
        "reward model could not tell them apart; use a model whose tokenizer covers these texts (model=...), or "
        f"rewrite the completions so that they differ in words it knows ({NUMBERED})")


def check_truncation(splits: dict[str, list[RankingRow]], tokenizer, max_length: int,
                     key: str = MAX_LENGTH_KEY) -> dict[str, int]:
    """The number of truncated completions per split; raises :class:`MalformedRowError` for a row
    with two identical completions (as texts, as tokens, or as the model's inputs after the cut),
    naming the completions as the row lists them."""
    counts = {}
    for split, rows in splits.items():
        truncated = 0
        for row in rows:
            duplicate = _duplicate_text(row, split)
            if duplicate is not None:
                raise duplicate
            full, cut = _model_inputs(row, tokenizer, max_length)
            truncated += sum(len(ids) > max_length for ids in full)
            clash = _first_clash(cut)
            if clash is not None:
                raise _same_input(row, split, clash, full, tokenizer, max_length, key)
        counts[split] = truncated
    total = sum(counts.values())
    if total:
        warnings.warn(f"{key}={max_length}: {total} completion(s) are truncated "
                      f"({', '.join(f'{s}: {n}' for s, n in counts.items())}); their rewards see only the first "
                      f"{max_length} tokens of prompt + completion", stacklevel=2)
    return counts
