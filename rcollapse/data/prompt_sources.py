"""Prompts for the PPO stage: ``load()`` gives ``{"train": [str], "test": [str]}``.

- :class:`PromptsOfflineSource`: the first 2–8 words of generated reviews (offline).
- :class:`ImdbPromptsSource`: ``stanfordnlp/imdb`` reviews cut to their first 2–8 tokens of the
  policy's tokenizer at random (the paper's prompts, as TRL's GPT-2 sentiment example draws them:
  train split for training, test split for the judge), ``<br />`` removed; ``unit="words"`` cuts
  whitespace-separated words instead.

``load(tokenizer)`` receives the policy's tokenizer (the data module passes it).
"""

from __future__ import annotations

import re

import numpy as np

from rcollapse.data.hub_access import DATASET_PATH_KEY, load_hub_dataset
from rcollapse.data.ranking_rows import MalformedRowError
from rcollapse.data.synthetic_reviews import review_prompt

OFFLINE_PROMPTS = "dataset=prompts_offline"
PROMPT_UNITS = ("tokens", "words")


def strip_markup(text: str) -> str:
    return re.sub(r"<br\s*/?>", " ", text)


def cut_prompt(text: str, rng: np.random.Generator, min_words: int = 2, max_words: int = 8) -> str:
    """The first k words of ``text``, k uniform in [min_words, max_words], markup removed."""
    words = strip_markup(text).split()
    return " ".join(words[: int(rng.integers(min_words, max_words + 1))])


def cut_prompt_tokens(text: str, tokenizer, rng: np.random.Generator, min_tokens: int = 2,
                      max_tokens: int = 8) -> str:
    """The text of the first k tokens of ``text`` under ``tokenizer``, k uniform in
    [min_tokens, max_tokens], markup removed (the paper's 2–8-token IMDB prompts)."""
    ids = tokenizer(strip_markup(text).strip(), add_special_tokens=False)["input_ids"]
    return tokenizer.decode(ids[: int(rng.integers(min_tokens, max_tokens + 1))]).strip()


class PromptsOfflineSource:
    def __init__(self, num_train: int = 2048, num_test: int = 128, seed: int = 0):
        self.num_train, self.num_test, self.seed = int(num_train), int(num_test), int(seed)

    def load(self, tokenizer=None) -> dict[str, list[str]]:
        rng = np.random.default_rng(self.seed)
        return {"train": [review_prompt(rng) for _ in range(self.num_train)],
                "test": [review_prompt(rng) for _ in range(self.num_test)]}


class ImdbPromptsSource:
    """``prompt_unit`` (tokens | words), ``prompt_min_length`` and ``prompt_max_length``: how the
    reviews are cut (the paper: 2-8 tokens). ``num_train`` / ``num_test``: that many reviews of the
    split in a seeded random order, or null for every review of it (the hub's ``train`` and ``test``
    hold 25,000 each); the first ``k`` of the whole split's prompts are the ``num_test=k`` prompts."""

    def __init__(self, path: str = "stanfordnlp/imdb", num_train: int | None = None, num_test: int | None = None,
                 seed: int = 0, path_key: str = DATASET_PATH_KEY, prompt_unit: str = "tokens",
                 prompt_min_length: int = 2, prompt_max_length: int = 8):
        self.path, self.path_key = str(path), path_key
        for key, value in (("dataset.num_train", num_train), ("dataset.num_test", num_test)):
            if value is not None and int(value) < 1:
                raise ValueError(f"{key} must be >= 1, or null for the whole split, got {value}")
        self.num_train = None if num_train is None else int(num_train)
        self.num_test = None if num_test is None else int(num_test)
        self.seed = int(seed)
        if prompt_unit not in PROMPT_UNITS:
            raise ValueError(f"dataset.prompt_unit must be one of {', '.join(PROMPT_UNITS)}, got {prompt_unit!r}")
        if not 1 <= int(prompt_min_length) <= int(prompt_max_length):
            raise ValueError(f"dataset.prompt_min_length and dataset.prompt_max_length must satisfy "
                             f"1 <= min <= max, got {prompt_min_length} and {prompt_max_length}")
        self.unit, self.min_length, self.max_length = prompt_unit, int(prompt_min_length), int(prompt_max_length)

    def _prompts(self, split: str, count: int | None, rng, tokenizer) -> list[str]:
        table = load_hub_dataset(self.path, self.path_key, split, alternative=OFFLINE_PROMPTS)
        if "text" not in table.column_names:
            raise MalformedRowError(f"{self.path} ({self.path_key}), split {split!r}: no 'text' column; "
                                    f"found {table.column_names}")
        order = rng.permutation(len(table))[: len(table) if count is None else count]
        if self.unit == "tokens":
            prompts = [cut_prompt_tokens(table[int(i)]["text"], tokenizer, rng, self.min_length, self.max_length)
                       for i in order]
        else:
            prompts = [cut_prompt(table[int(i)]["text"], rng, self.min_length, self.max_length) for i in order]
        return [p for p in prompts if p]

    def load(self, tokenizer=None) -> dict[str, list[str]]:
        if self.unit == "tokens" and tokenizer is None:
            raise ValueError("IMDB prompts cut by tokens need the policy's tokenizer "
                             "(PromptDataModule(tokenizer=...)), or dataset.prompt_unit=words")
        rng = np.random.default_rng(self.seed)
        return {"train": self._prompts("train", self.num_train, rng, tokenizer),
                "test": self._prompts("test", self.num_test, rng, tokenizer)}
