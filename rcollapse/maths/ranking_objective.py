"""The ranking objective of the reward-collapse paper, computed for all pairs at once.

Song, Cai, Lee, Su (2023), eq. (1), and its prompt-aware form eq. (4):

    maximise  Σ_x  Σ_{1 ≤ i < j ≤ n_x}  U_x( R(x, y_i) − R(x, y_j) ),   y_1 ≻ y_2 ≻ … ≻ y_{n_x}

The loss is its negative, averaged over the pairs of each prompt and then over prompts, so that
every prompt counts equally whatever its number of completions. Pure torch: no model here.
"""

from __future__ import annotations

import torch


def pad_groups(values: torch.Tensor, group_sizes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scatter a flat [S] vector of per-completion values into [B, n_max] with a validity mask.

    ``group_sizes`` [B] gives each prompt's number of completions (S = its sum); values of one
    prompt are contiguous and best-first, as the ranking collator lays them out.
    """
    sizes = group_sizes.to(device=values.device, dtype=torch.long)
    n_max = int(sizes.max())
    positions = torch.arange(n_max, device=values.device)
    mask = positions.unsqueeze(0) < sizes.unsqueeze(1)
    padded = values.new_zeros(sizes.numel(), n_max)
    padded[mask] = values
    return padded, mask


def pairwise_utilities(
    rewards: torch.Tensor, mask: torch.Tensor, openness: torch.Tensor, utility
) -> tuple[torch.Tensor, torch.Tensor]:
    """``U_x(r_i − r_j)`` for every pair ``i < j`` of every prompt, by index (no loop).

    Returns ``utilities`` [B, P] and ``pair_mask`` [B, P] over the P = n_max(n_max−1)/2 index
    pairs of ``torch.triu_indices``; pairs touching a padded position are masked out.
    """
    n_max = rewards.size(1)
    i, j = torch.triu_indices(n_max, n_max, offset=1, device=rewards.device)
    diff = rewards[:, i] - rewards[:, j]
    pair_mask = mask[:, i] & mask[:, j]
    if getattr(utility, "prompt_aware", False):
        pair_openness = openness.to(diff.dtype).unsqueeze(1).expand_as(diff)
        values = utility(diff, pair_openness)
    else:
        values = utility(diff)
    return values, pair_mask


def per_prompt_objective(
    rewards: torch.Tensor, mask: torch.Tensor, openness: torch.Tensor, utility
) -> torch.Tensor:
    """Mean of ``U_x(r_i − r_j)`` over each prompt's pairs: [B]."""
    values, pair_mask = pairwise_utilities(rewards, mask, openness, utility)
    values = torch.where(pair_mask, values, torch.zeros_like(values))
    return values.sum(1) / pair_mask.sum(1).clamp_min(1)


def ranking_loss(rewards: torch.Tensor, mask: torch.Tensor, openness: torch.Tensor, utility) -> torch.Tensor:
    """Negative of eq. (1)/(4), averaged within each prompt, then across prompts."""
    return -per_prompt_objective(rewards, mask, openness, utility).mean()


def pair_accuracy(rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Share of valid pairs ``i < j`` ranked correctly, ``r_i > r_j`` strictly (a tie loses)."""
    n_max = rewards.size(1)
    i, j = torch.triu_indices(n_max, n_max, offset=1, device=rewards.device)
    pair_mask = mask[:, i] & mask[:, j]
    correct = (rewards[:, i] > rewards[:, j]) & pair_mask
    return correct.sum().float() / pair_mask.sum().clamp_min(1)
