"""Batches of ranking rows: every completion of every prompt tokenised together, once."""

from __future__ import annotations

import torch

from rcollapse.data.ranking_rows import RankingRow


class RankingCollator:
    """One tokenizer call over all (prompt, completion) pairs of a batch, row by row, best first.

    ``group_sizes`` [B] says how many completions each prompt has (OpenAssistant's ranking
    collator lays replies out the same way), so prompts may have different numbers.
    """

    def __init__(self, tokenizer, max_length: int = 512):
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, rows: list[RankingRow]) -> dict:
        prompts = [row.prompt for row in rows for _ in row.completions]
        completions = [text for row in rows for text in row.completions]
        encoded = self.tokenizer(
            prompts,
            completions,
            truncation="longest_first",
            max_length=self.max_length,
            padding=True,
            return_tensors="pt",
        )
        batch = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
        if "token_type_ids" in encoded:
            batch["token_type_ids"] = encoded["token_type_ids"]
        batch["group_sizes"] = torch.tensor(
            [len(row.completions) for row in rows], dtype=torch.long
        )
        batch["openness"] = torch.tensor([row.openness for row in rows], dtype=torch.float32)
        batch["row_ids"] = [row.row_id for row in rows]
        return batch
