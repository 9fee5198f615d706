"""Judges of the PPO stage: a separate reward model that scores the trained policies' responses.

- :class:`VaderJudge` (``judge=vader``, offline): VADER's compound sentiment of the response.
- :class:`SequenceClassifierJudge` (``judge=fsfairx``): ``sfairXC/FsfairX-LLaMA3-RM-v0.1`` by hub
  name or local directory; each (prompt, response) is rendered with the tokenizer's chat template
  (user, assistant), the BOS token stripped, and the raw logit is the score (the model card's use).
  Batches are right-padded and the logit is read at each row's last attended token: Llama 3
  tokenizers have no pad token, and transformers' own pooling (the rightmost token that is not
  the pad id) reads the wrong token when the pad id also ends the chat template (e.g. EOS).

:func:`judge_in_batches` scores many (prompt, response) pairs ``judge.batch_size`` at a time with
a progress bar (the real PPO study judges IMDB's whole test split, 25,000 prompts, for the policy
and the reference policy of every run); each pair's score is the one a single call gives it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from rcollapse.data.sentiment_gold import vader_compound
from rcollapse.runs.device import choose_device

# what the offline error of a hub judge suggests instead
OFFLINE_JUDGE = "`judge=vader` (the offline VADER sentiment judge)"
# a progress bar for judging (and generating for the judge) from this many items on
PROGRESS_FROM = 2000


def batch_ranges(total: int, batch_size: int, desc: str = "", progress: bool | None = None) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of consecutive batches of ``batch_size`` over ``total`` items, with a
    progress bar over the batches (``progress=None``: when ``total`` >= ``PROGRESS_FROM``)."""
    if int(batch_size) < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    starts = range(0, int(total), int(batch_size))
    if progress is None:
        progress = total >= PROGRESS_FROM
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=desc or "batches", unit="batch", mininterval=10.0, leave=False)
    for start in starts:
        yield start, min(start + int(batch_size), int(total))


def judge_in_batches(judge, prompts: list[str], responses: list[str], batch_size: int | None = None,
                     desc: str = "judging", progress: bool | None = None) -> np.ndarray:
    """The judge's scores of every (prompt, response) pair, ``batch_size`` pairs per call of
    ``judge.score`` (None: the judge's own ``batch_size``, the config's ``judge.batch_size``; all at
    once for a judge without one, e.g. VADER), with a progress bar for long judging. Each pair is
    scored as a call of its own would score it (the judge pools each row under its own mask)."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses to judge")
    size = int(batch_size or getattr(judge, "batch_size", 0) or max(len(prompts), 1))
    scores: list[float] = []
    for start, stop in batch_ranges(len(prompts), size, desc, progress):
        scores += list(judge.score(prompts[start:stop], responses[start:stop]))
    return np.asarray(scores, dtype=float)


class VaderJudge:
    name = "vader"

    def score(self, prompts: list[str], responses: list[str]) -> list[float]:
        return vader_compound(responses)


class SequenceClassifierJudge:
    def __init__(self, name_or_path: str = "sfairXC/FsfairX-LLaMA3-RM-v0.1", batch_size: int = 8,
                 key: str = "judge.name_or_path", dtype: str = "bfloat16", device: str = "auto"):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from rcollapse.models.hub_models import (
            ModelUnavailableError,
            _offline_message,
            require_local_or_hub,
        )

        source = require_local_or_hub(name_or_path, key, OFFLINE_JUDGE)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            self.model = AutoModelForSequenceClassification.from_pretrained(source, torch_dtype=getattr(torch, dtype))
        except OSError as err:
            raise ModelUnavailableError(
                _offline_message(name_or_path, key, str(err).splitlines()[0], OFFLINE_JUDGE)) from err
        if self.tokenizer.pad_token is None:
            # padding only: the score is read under the attention mask, not at the pad id
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "right"
        if device == "auto":  # the judge is given no accelerator: cuda when there is one
            device = str(choose_device("auto"))
        self.model.to(device).eval()
        self.device, self.batch_size, self.name = device, int(batch_size), name_or_path

    @torch.no_grad()
    def score(self, prompts: list[str], responses: list[str]) -> list[float]:
        texts = []
        for prompt, response in zip(prompts, responses, strict=True):
            chat = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
            text = self.tokenizer.apply_chat_template(chat, tokenize=False)
            if self.tokenizer.bos_token and text.startswith(self.tokenizer.bos_token):
                text = text[len(self.tokenizer.bos_token):]
            texts.append(text)
        scores = []
        for start in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(texts[start:start + self.batch_size], return_tensors="pt", padding=True,
                                 add_special_tokens=True).to(self.device)
            scores += self.last_token_logits(enc["input_ids"], enc["attention_mask"]).float().cpu().tolist()
        return scores

    def last_token_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The classifier's first logit at each right-padded row's last attended token.

        Decoder classifiers (a ``score`` head on the base model: Llama, Mistral, Gemma, Qwen) are
        pooled here; any other classifier pools itself under the attention mask (e.g. [CLS])."""
        base = getattr(self.model, self.model.base_model_prefix, None)
        head = getattr(self.model, "score", None)
        if not isinstance(base, torch.nn.Module) or not isinstance(head, torch.nn.Module):
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits[:, 0]
        hidden = base(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        last = attention_mask.sum(1) - 1
        return head(hidden[torch.arange(hidden.size(0), device=hidden.device), last])[:, 0]
