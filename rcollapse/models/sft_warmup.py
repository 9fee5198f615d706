"""A brief supervised fit of a policy built from a config, so that it writes text before PPO.

Offline the tiny GPT-2 starts from random weights; a few hundred causal-LM steps on the generated
review corpus (the same kind of text the offline ensemble and judge read) make its samples
review-like. The fitted weights are cached on disk, keyed by the model's initial weights, the
corpus and the settings, so that every job of a sweep reuses one fit.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from rcollapse.data.synthetic_reviews import review_prompt, review_text
from rcollapse.models.feature_cache import state_digest

# bumped when the warm-up's training changes, so that older cached weights are not reused
# (2: ids and mask only, no token_type_ids)
SFT_VERSION = 2


def review_corpus(num_texts: int, seed: int) -> list[str]:
    """Prompt + continuation texts like those the offline preference pairs hold."""
    rng = np.random.default_rng(seed)
    return [f"{review_prompt(rng)} {review_text(rng, rng.uniform(-1, 1), int(rng.integers(1, 4)), 0.2)}"
            for _ in range(num_texts)]


def sft_warmup(lm, tokenizer, steps: int, lr: float = 1e-3, batch_size: int = 32, num_texts: int = 4000,
               seed: int = 0, cache_dir: str | Path | None = None) -> bool:
    """Fit ``lm`` in place for ``steps`` steps (or load the cached fit); returns whether cached."""
    if steps <= 0:
        return False
    key = hashlib.sha256(json.dumps([SFT_VERSION, state_digest(lm), steps, lr, batch_size, num_texts, seed,
                                     len(tokenizer)]).encode()).hexdigest()[:24]
    path = Path(cache_dir) / f"sft-{key}.pt" if cache_dir else None
    if path is not None and path.exists():
        lm.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return True
    texts = review_corpus(num_texts, seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(lm.parameters(), lr=lr)
    lm.train()
    for _ in tqdm(range(steps), desc="SFT warm-up", leave=False):
        index = torch.randint(len(texts), (batch_size,), generator=generator).tolist()
        batch = tokenizer([texts[i] + f" {tokenizer.eos_token}" for i in index], return_tensors="pt", padding=True,
                          add_special_tokens=False)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        position_ids = (batch["attention_mask"].cumsum(-1) - 1).clamp_min(0)
        loss = lm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], position_ids=position_ids,
                  labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(lm.state_dict(), tmp)
        os.replace(tmp, path)
    return False
