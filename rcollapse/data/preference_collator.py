"""Batches of preference pairs: chosen and rejected responses tokenised together, once."""

from __future__ import annotations

import torch

from rcollapse.data.preference_pairs import PreferencePair


class PreferenceCollator:
    """One tokenizer call over a batch's 2B (prompt, response) texts: the B chosen responses
    first, then the B rejected ones, so a forward's scores split as ``scores[:B]``, ``scores[B:]``.

    A tokenizer with a chat template (a chat model's) gets each pair as a two-turn chat (user:
    prompt, assistant: response), the way RewardBench scores pairs; an encoder's tokenizer gets
    the text pair (prompt, response). Items are ``(index, pair)``; the batch keeps the indices.
    """

    def __init__(self, tokenizer, max_length: int = 512):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.chat = bool(getattr(tokenizer, "chat_template", None))

    def encode(self, prompts: list[str], responses: list[str]) -> dict:
        if self.chat:
            texts = [self.tokenizer.apply_chat_template(
                [{"role": "user", "content": p}, {"role": "assistant", "content": r}], tokenize=False)
                for p, r in zip(prompts, responses, strict=True)]
            encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length, padding=True,
                                     return_tensors="pt", add_special_tokens=False)
        else:
            encoded = self.tokenizer(prompts, responses, truncation="longest_first", max_length=self.max_length,
                                     padding=True, return_tensors="pt")
        batch = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
        if "token_type_ids" in encoded:
            batch["token_type_ids"] = encoded["token_type_ids"]
        return batch

    def __call__(self, items: list[tuple[int, PreferencePair]]) -> dict:
        pairs = [pair for _, pair in items]
        prompts = [p.prompt for p in pairs] * 2
        responses = [p.chosen for p in pairs] + [p.rejected for p in pairs]
        batch = self.encode(prompts, responses)
        batch["index"] = torch.tensor([index for index, _ in items], dtype=torch.long)
        return batch
