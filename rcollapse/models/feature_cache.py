"""Pooled backbone features of preference pairs, computed once and cached on disk.

With the backbone frozen, a reward head only ever sees the backbone's pooled feature of each
(prompt, response): computing it once per data set makes every later epoch of head training a
few small matrix products. The cache key covers what changes the features: the backbone's
weights (a digest of every parameter and buffer), the pooling, the tokenizer (its class, vocabulary
size and name), the maximum length, and the pairs' texts.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from tqdm.auto import tqdm

from rcollapse.data.preference_pairs import PreferencePair

CACHE_VERSION = 1


def state_digest(module: torch.nn.Module) -> str:
    """A SHA-256 digest of a module's parameters and buffers (names, shapes, dtypes, bytes)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{tuple(t.shape)}|{t.dtype}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")  # 0-dim too
    return digest.hexdigest()


def pairs_digest(pairs: list[PreferencePair]) -> str:
    digest = hashlib.sha256()
    for p in pairs:
        digest.update(json.dumps([p.prompt, p.chosen, p.rejected]).encode())
    return digest.hexdigest()


def feature_cache_key(reward_model, tokenizer, max_length: int, pairs: list[PreferencePair]) -> str:
    parts = [CACHE_VERSION, state_digest(reward_model.backbone), reward_model.pooling, type(tokenizer).__name__,
             len(tokenizer), getattr(tokenizer, "name_or_path", ""), int(max_length), pairs_digest(pairs)]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:24]


@torch.no_grad()
def pair_features(reward_model, loader, device=None, desc: str = "features",
                  progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen [N, H], rejected [N, H]) pooled features, in pair order, from token batches of a
    :class:`~rcollapse.data.preference_collator.PreferenceCollator` (backbone in eval mode)."""
    backbone_was_training = reward_model.training
    reward_model.eval()
    device = device or next(reward_model.parameters()).device
    chosen, rejected, order = [], [], []
    for batch in tqdm(loader, desc=desc, leave=False, disable=not progress):
        inputs = {k: batch[k].to(device) for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
        features = reward_model.features(**inputs).float().cpu()
        half = features.size(0) // 2
        chosen.append(features[:half])
        rejected.append(features[half:])
        order.append(batch["index"])
    reward_model.train(backbone_was_training)
    index = torch.argsort(torch.cat(order))
    return torch.cat(chosen)[index], torch.cat(rejected)[index]


def cached_pair_features(reward_model, tokenizer, max_length: int, pairs: list[PreferencePair], loader,
                         cache_dir: str | Path | None, desc: str = "features") -> tuple[tuple[torch.Tensor, torch.Tensor], bool]:
    """:func:`pair_features`, read from ``cache_dir`` when a file with the same key is there,
    else computed and written (atomically: a crash never leaves a half file). Returns the
    features and whether they came from the cache."""
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"pair_features-{feature_cache_key(reward_model, tokenizer, max_length, pairs)}.pt"
        if path.exists():
            saved = torch.load(path, map_location="cpu", weights_only=True)
            return (saved["chosen"], saved["rejected"]), True
    features = pair_features(reward_model, loader, desc=desc)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save({"chosen": features[0], "rejected": features[1]}, tmp)
        os.replace(tmp, path)
    return features, False
