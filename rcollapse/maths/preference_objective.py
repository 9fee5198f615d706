"""The Bradley–Terry reward-model loss and its per-head ensemble form (Banerjee & Gopalan, Section 4).

Pure torch: no model, data or training code here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss_per_head(chosen: torch.Tensor, rejected: torch.Tensor,
                                weights: torch.Tensor | None = None) -> torch.Tensor:
    """ℓ(θ_k) = mean over pairs of −log σ(r_k(x, y_w) − r_k(x, y_l)), one value per head.

    ``chosen``, ``rejected``: [B, k] rewards of each head; ``weights`` [B, k] (bootstrap counts,
    ≥ 0) weight the pairs of each head: the weighted mean Σ w ℓ / Σ w.
    """
    losses = -F.logsigmoid(chosen - rejected)
    if weights is None:
        return losses.mean(0)
    weights = weights.to(losses.dtype)
    return (weights * losses).sum(0) / weights.sum(0).clamp_min(1e-12)


def ensemble_loss(chosen: torch.Tensor, rejected: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The ensemble's training loss Σ_k ℓ(θ_k): the heads share nothing trainable, so the sum
    trains each head on its own loss."""
    return bradley_terry_loss_per_head(chosen, rejected, weights).sum()


def pair_wins(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """1 where the chosen response scores strictly higher (a tie loses, as in RewardBench)."""
    return (chosen > rejected).to(torch.float32)
