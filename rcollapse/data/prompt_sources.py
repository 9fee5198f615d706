"""Prompts for the PPO stage: ``load()`` gives ``{"train": [str], "test": [str]}``.

- :class:`PromptsOfflineSource`: the first 2–8 words of generated reviews (offline).
- :class:`ImdbPromptsSource`: ``stanfordnlp/imdb`` reviews cut to their first 2–8 words at random
  (the paper's prompts: train split for training, test split for the judge), ``<br />`` removed.
"""

from __future__ import annotations

import re

import numpy as np

from rcollapse.data.hub_access import load_hub_dataset
from rcollapse.data.ranking_rows import MalformedRowError
from rcollapse.data.synthetic_reviews import review_prompt

OFFLINE_PROMPTS = "dataset=prompts_offline"


def cut_prompt(text: str, rng: np.random.Generator, min_words: int = 2, max_words: int = 8) -> str:
    """The first k words of ``text``, k uniform in [min_words, max_words], markup removed."""
    words = re.sub(r"<br\s*/?>", " ", text).split()
    return " ".join(words[: int(rng.integers(min_words, max_words + 1))])


class PromptsOfflineSource:
    def __init__(self, num_train: int = 2048, num_test: int = 128, seed: int = 0):
        self.num_train, self.num_test, self.seed = int(num_train), int(num_test), int(seed)

    def load(self) -> dict[str, list[str]]:
        rng = np.random.default_rng(self.seed)
        return {"train": [review_prompt(rng) for _ in range(self.num_train)],
                "test": [review_prompt(rng) for _ in range(self.num_test)]}


class ImdbPromptsSource:
    def __init__(self, path: str = "stanfordnlp/imdb", num_train: int | None = None, num_test: int = 1000,
                 seed: int = 0, path_key: str = "dataset.datamodule.source.path"):
        self.path, self.path_key = str(path), path_key
        self.num_train, self.num_test, self.seed = num_train, int(num_test), int(seed)

    def _prompts(self, split: str, count: int | None, rng) -> list[str]:
        table = load_hub_dataset(self.path, self.path_key, split, alternative=OFFLINE_PROMPTS)
        if "text" not in table.column_names:
            raise MalformedRowError(f"{self.path} ({self.path_key}), split {split!r}: no 'text' column; "
                                    f"found {table.column_names}")
        order = rng.permutation(len(table))[: count or len(table)]
        prompts = [cut_prompt(table[int(i)]["text"], rng) for i in order]
        return [p for p in prompts if p]

    def load(self) -> dict[str, list[str]]:
        rng = np.random.default_rng(self.seed)
        return {"train": self._prompts("train", self.num_train, rng), "test": self._prompts("test", self.num_test, rng)}
