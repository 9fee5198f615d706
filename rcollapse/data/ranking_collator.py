"""Batches of ranking rows: every completion of every prompt tokenised together, once."""

from __future__ import annotations

import torch

from rcollapse.data.ranking_rows import RankingRow


def is_decoder_tokenizer(tokenizer) -> bool:
    """A decoder's tokenizer (GPT-2, GPT-Neo, Gemma) has no separator or class token: it joins a
    text pair with nothing between, so the pair must say where the answer starts."""
    if not (hasattr(tokenizer, "sep_token") and hasattr(tokenizer, "cls_token")):  # not a Hugging Face tokenizer
        return False
    return tokenizer.sep_token is None and tokenizer.cls_token is None


def pair_texts(tokenizer, prompts: list[str], completions: list[str]) -> tuple[list[str], list[str]]:
    """The (prompt, completion) text pairs as the tokenizer gets them. An encoder's tokenizer puts
    its separator between them; for a decoder they become "Question: ...\n\nAnswer: ..." ending
    with its EOS token (the StackLLaMA reward model's layout), so that the last token, which a
    decoder's reward model reads, closes the answer."""
    if not is_decoder_tokenizer(tokenizer):
        return prompts, completions
    eos = getattr(tokenizer, "eos_token", None) or ""
    return [f"Question: {p}\n\nAnswer:" for p in prompts], [f" {c}{eos}" for c in completions]


class RankingCollator:
    """One tokenizer call over all (prompt, completion) pairs of a batch, row by row, best first.

    ``group_sizes`` [B] says how many completions each prompt has (OpenAssistant's ranking
    collator lays replies out the same way), so prompts may have different numbers.
    """

    def __init__(self, tokenizer, max_length: int = 512, packing: bool = False, pack_length: int | None = None):
        self.tokenizer = tokenizer
        self.max_length = max_length
        # packing: padding-free batches (rcollapse/data/packed_batches.py); off by default
        if not isinstance(packing, bool):
            raise ValueError(f"dataset.packing must be true or false, got {packing!r}")
        if pack_length is not None and (not isinstance(pack_length, int) or pack_length < max_length):
            raise ValueError(f"dataset.pack_length must be null or an integer >= model.max_length "
                             f"({max_length}), got {pack_length!r}")
        self.packing = packing
        self.pack_length = pack_length if pack_length is not None else max_length

    def __call__(self, rows: list[RankingRow]) -> dict:
        prompts, completions = pair_texts(self.tokenizer, [row.prompt for row in rows for _ in row.completions],
                                          [text for row in rows for text in row.completions])
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
        if self.packing:  # padding-free layout under batch["packed"] (rcollapse/data/packed_batches.py)
            from rcollapse.data.packed_batches import pack_batch

            return pack_batch(batch, self.pack_length, self.tokenizer.pad_token_id or 0)
        return batch
