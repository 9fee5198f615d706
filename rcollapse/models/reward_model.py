"""A reward model: one text encoder (the backbone) and ``k`` scalar linear heads.

``k = 1`` is the ordinary reward model of the ranking stage; the ensemble stage uses
``k > 1`` heads on one backbone, so that one forward gives every head's reward.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

POOLINGS = ("cls", "mean", "last")


class RewardOutput(NamedTuple):
    """Per-sequence head outputs ``scores`` [S, k], and their mean and sample variance over heads."""

    scores: torch.Tensor
    mean: torch.Tensor
    variance: torch.Tensor


def pool_hidden_states(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Reduce ``hidden`` [S, L, H] to [S, H]: first token, masked mean, or last real token (the
    last position the mask attends, whichever side the tokenizer pads)."""
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
    if pooling == "mean":
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
    if pooling == "last":
        positions = torch.arange(attention_mask.size(1), device=attention_mask.device)
        last = (attention_mask.long() * positions).argmax(1)
        return hidden[torch.arange(hidden.size(0), device=hidden.device), last]
    raise ValueError(f"model.pooling must be one of {POOLINGS}, got {pooling!r}")


class RewardModel(nn.Module):
    """``f_θ(x, y)``: backbone → pooled features → ``num_heads`` linear heads."""

    def __init__(self, backbone: nn.Module, num_heads: int = 1, pooling: str = "cls", head_init_std: float | None = None):
        super().__init__()
        if num_heads < 1:
            raise ValueError(f"model.num_heads must be >= 1, got {num_heads}")
        if pooling not in POOLINGS:
            raise ValueError(f"model.pooling must be one of {POOLINGS}, got {pooling!r}")
        self.backbone = backbone
        self.pooling = pooling
        hidden_size = backbone.config.hidden_size
        self.heads = nn.Linear(hidden_size, num_heads)
        if head_init_std is not None:
            nn.init.normal_(self.heads.weight, std=head_init_std)
            nn.init.zeros_(self.heads.bias)

    @property
    def num_heads(self) -> int:
        return self.heads.out_features

    def features(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        """Pooled backbone features [S, H]."""
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        hidden = self.backbone(**kwargs).last_hidden_state
        return pool_hidden_states(hidden, attention_mask, self.pooling)

    def forward(self, input_ids, attention_mask, token_type_ids=None) -> RewardOutput:
        scores = self.heads(self.features(input_ids, attention_mask, token_type_ids)).float()
        variance = scores.var(dim=1, unbiased=True) if scores.size(1) > 1 else torch.zeros_like(scores[:, 0])
        return RewardOutput(scores=scores, mean=scores.mean(dim=1), variance=variance)
