"""The LongForm length task (reward-collapse paper, Section 5.2, its dataset_construction notebook).

From each instruction with a long answer (≥ 100 words, split on single spaces), a prompt is
open-ended or closed-ended with p = ½; its eight completions are the answer's first L words for
the type's lengths, and longer is better. The prompt carries the type's suffix.

A row whose completions become one input after ``model.max_length`` tokens (a long instruction
leaves too little room for the answers' cuts to differ) cannot be ranked: :func:`split_fitting`
skips it, takes the next row in its place and counts it (the data module's
:class:`~rcollapse.data.ranking_truncation.RowFit` decides).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from rcollapse.data.ranking_rows import RankingRow, validate_rows

OPEN_LENGTHS = (10, 20, 30, 40, 50, 60, 70, 80)
CLOSED_LENGTHS = (16, 22, 28, 34, 56, 62, 68, 74)
OPEN_SUFFIX = " Write the answer in an open-ended way."
CLOSED_SUFFIX = " Write either a short answer or a long answer."
MIN_ANSWER_WORDS = 100


def split_words(answer: str) -> list[str]:
    """Words as the paper's notebook counts them: ``answer.split(" ")``."""
    return answer.split(" ")


def keep_answer(answer: str, min_words: int = MIN_ANSWER_WORDS) -> bool:
    return len(split_words(answer)) >= min_words


def draw_prompt_types(num_prompts: int, seed: int, p_open: float = 0.5) -> np.ndarray:
    """Open-ended (True) with probability ``p_open``, seeded (the paper's notebook set no seed)."""
    if not 0.0 <= p_open <= 1.0:
        raise ValueError(f"dataset.p_open must lie in [0, 1], got {p_open}")
    return np.random.default_rng(seed).random(num_prompts) < p_open


def build_length_ranking(instruction: str, answer: str, is_open: bool, row_id: str) -> dict:
    """A raw ranking row: prompt + suffix, the 8 truncations, ``ranking`` longest-first."""
    words = split_words(answer)
    lengths = OPEN_LENGTHS if is_open else CLOSED_LENGTHS
    completions = [" ".join(words[:length]) for length in lengths]
    ranking = [len(lengths) - 1 - k for k in range(len(lengths))]  # longest (last) is rank 0
    return {
        "id": row_id,
        "prompt": instruction + (OPEN_SUFFIX if is_open else CLOSED_SUFFIX),
        "completions": completions,
        "ranking": ranking,
        "type": "open" if is_open else "closed",
    }


def build_length_rows(
    pairs: Sequence[tuple[str, str]],
    seed: int,
    p_open: float = 0.5,
    id_prefix: str = "row",
    min_words: int = MIN_ANSWER_WORDS,
) -> list[RankingRow]:
    """Keep the pairs with long answers, draw types, build and validate the ranking rows."""
    kept = [
        (k, instruction, answer)
        for k, (instruction, answer) in enumerate(pairs)
        if keep_answer(answer, min_words)
    ]
    types = draw_prompt_types(len(kept), seed, p_open)
    raws = [
        build_length_ranking(instruction, answer, bool(is_open), f"{id_prefix}-{k}")
        for (k, instruction, answer), is_open in zip(kept, types)
    ]
    return validate_rows(raws, source=id_prefix)


def split_fitting(
    rows: Sequence[RankingRow], num_train: int, num_test: int, fits: Callable[[RankingRow], bool] | None = None
) -> tuple[list, list, int]:
    """Train = the first ``num_train`` rows, test = the last ``num_test`` (as the paper), taking
    only rows for which ``fits`` is true (``None``: all). A row that does not fit is skipped and the
    next one taken in its place; returns (train, test, the number of rows skipped)."""
    if num_train < 1 or num_test < 1:
        raise ValueError(f"dataset.num_train and dataset.num_test must be >= 1, got {num_train} and {num_test}")
    train, test, dropped = [], [], 0
    front, back = 0, len(rows) - 1
    while len(train) < num_train and front <= back:
        if fits is None or fits(rows[front]):
            train.append(rows[front])
        else:
            dropped += 1
        front += 1
    while len(test) < num_test and back >= front:
        if fits is None or fits(rows[back]):
            test.append(rows[back])
        else:
            dropped += 1
        back -= 1
    if len(train) < num_train or len(test) < num_test:
        unfit = f" ({dropped} of them do not fit model.max_length)" if dropped else ""
        raise ValueError(
            f"only {len(rows)} prompts with answers of >= {MIN_ANSWER_WORDS} words{unfit}; "
            f"dataset.num_train={num_train} + dataset.num_test={num_test} needs more"
        )
    return train, test[::-1], dropped


def split_train_test(
    rows: Sequence[RankingRow], num_train: int, num_test: int
) -> tuple[list, list]:
    """Train = the first ``num_train`` rows, test = the last ``num_test`` (as the paper)."""
    train, test, _ = split_fitting(rows, num_train, num_test)
    return train, test
