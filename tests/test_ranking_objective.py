"""The grouped all-pairs objective against a plain loop over pairs."""

import itertools

import pytest
import torch

from rcollapse.maths.ranking_objective import pad_groups, pair_accuracy, ranking_loss
from rcollapse.maths.utilities import (
    AdaptiveUtility,
    InverseUtility,
    LinearUtility,
    LogSigmoidUtility,
)


def brute_force_loss(vectors: list[list[float]], openness: list[float], utility) -> float:
    """−(1/B) Σ_x (1/#pairs) Σ_{i<j} U_x(r_i − r_j), one pair at a time."""
    per_prompt = []
    for r, s in zip(vectors, openness):
        total, count = 0.0, 0
        for i, j in itertools.combinations(range(len(r)), 2):
            diff = torch.tensor([r[i] - r[j]], dtype=torch.float64)
            fixed = utility.for_openness(s) if getattr(utility, "prompt_aware", False) else utility
            total += float(fixed(diff)[0])
            count += 1
        per_prompt.append(total / count)
    return -sum(per_prompt) / len(per_prompt)


@pytest.mark.parametrize(
    "utility",
    [LinearUtility(), InverseUtility(eps=0.1), LogSigmoidUtility(scale=4.0),
     AdaptiveUtility(open_utility=InverseUtility(), closed_utility=LinearUtility())],
    ids=["x", "x_inv", "logsigmoid", "adaptive"],
)
def test_grouped_loss_equals_loop_over_pairs_with_varying_sizes(utility):
    gen = torch.Generator().manual_seed(0)
    sizes = [2, 5, 8, 3]
    vectors = [torch.rand(n, generator=gen, dtype=torch.float64).tolist() for n in sizes]
    openness = [1.0, -1.0, 1.0, -1.0]
    flat = torch.tensor([v for r in vectors for v in r], dtype=torch.float64)
    rewards, mask = pad_groups(flat, torch.tensor(sizes))
    loss = ranking_loss(rewards, mask, torch.tensor(openness, dtype=torch.float64), utility)
    assert loss.item() == pytest.approx(brute_force_loss(vectors, openness, utility), rel=1e-10, abs=1e-12)


def test_pad_groups_layout_and_gradient():
    values = torch.arange(6, dtype=torch.float32, requires_grad=True)
    padded, mask = pad_groups(values, torch.tensor([2, 4]))
    assert padded.tolist() == [[0, 1, 0, 0], [2, 3, 4, 5]]
    assert mask.tolist() == [[True, True, False, False], [True, True, True, True]]
    padded.sum().backward()
    assert values.grad.tolist() == [1.0] * 6


def test_every_prompt_counts_equally():
    # A prompt with 8 completions must not outweigh one with 2: per-prompt averaging.
    utility = LinearUtility()
    small = torch.tensor([1.0, 0.0])  # mean pair utility 1
    big = torch.zeros(8)  # mean pair utility 0
    rewards, mask = pad_groups(torch.cat([small, big]), torch.tensor([2, 8]))
    loss = ranking_loss(rewards, mask, torch.zeros(2), utility)
    assert loss.item() == pytest.approx(-0.5)


def test_pair_accuracy_counts_ties_as_errors():
    rewards, mask = pad_groups(torch.tensor([0.9, 0.5, 0.5, 0.2, 0.8]), torch.tensor([3, 2]))
    # prompt 1 pairs: (0.9>0.5) ok, (0.9>0.5) ok, (0.5>0.5) tie; prompt 2: (0.2>0.8) wrong
    assert pair_accuracy(rewards, mask).item() == pytest.approx(2 / 4)
