"""Completions that the tokenizer's ``max_length`` cuts (issue 16, item 7).

Two completions of one prompt that differ only after ``max_length`` tokens become the same input:
the reward model cannot order them, pair accuracy falls to 0 and the rewards of the row collapse
for a reason that has nothing to do with the utility. :func:`check_truncation` counts the
completions the cut shortens (a warning names how many), and refuses a row whose completions are
identical after it, or identical as texts, naming the row and ``model.max_length``.
"""

from __future__ import annotations

import warnings

from rcollapse.data.ranking_collator import pair_texts
from rcollapse.data.ranking_rows import MalformedRowError, RankingRow

MAX_LENGTH_KEY = "model.max_length"


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
            prompts, completions = pair_texts(tokenizer, [row.prompt] * len(row.completions), list(row.completions))
            full = tokenizer(prompts, completions, truncation=False)["input_ids"]
            cut = tokenizer(prompts, completions, truncation="longest_first", max_length=max_length)["input_ids"]
            truncated += sum(len(ids) > max_length for ids in full)
            inputs: dict[tuple, int] = {}
            for index, ids in enumerate(cut):
                ids = tuple(ids)
                if ids in inputs:
                    raise MalformedRowError(
                        f"{key}={max_length}: row {row.row_id} ({split}): completions {inputs[ids]} and {index} are "
                        f"identical after truncation to {max_length} tokens (they differ only after it), so the reward "
                        f"model could not tell them apart; raise {key} or shorten the prompt")
                inputs[ids] = index
        counts[split] = truncated
    total = sum(counts.values())
    if total:
        warnings.warn(f"{key}={max_length}: {total} completion(s) are truncated "
                      f"({', '.join(f'{s}: {n}' for s, n in counts.items())}); their rewards see only the first "
                      f"{max_length} tokens of prompt + completion", stacklevel=2)
    return counts
