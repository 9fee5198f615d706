"""Judges of the PPO stage: a separate reward model that scores the trained policies' responses.

- :class:`VaderJudge` (``judge=vader``, offline): VADER's compound sentiment of the response.
- :class:`SequenceClassifierJudge` (``judge=fsfairx``): ``sfairXC/FsfairX-LLaMA3-RM-v0.1`` by hub
  name or local directory; each (prompt, response) is rendered with the tokenizer's chat template
  (user, assistant), the BOS token stripped, and the raw logit is the score (the model card's use).
  Batches are right-padded and the logit is read at each row's last attended token: Llama 3
  tokenizers have no pad token, and transformers' own pooling (the rightmost token that is not
  the pad id) reads the wrong token when the pad id also ends the chat template (e.g. EOS).
"""

from __future__ import annotations

import torch

from rcollapse.data.sentiment_gold import vader_compound
from rcollapse.runs.device import choose_device

# what the offline error of a hub judge suggests instead
OFFLINE_JUDGE = "`judge=vader` (the offline VADER sentiment judge)"


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
