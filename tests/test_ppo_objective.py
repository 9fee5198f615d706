"""The PPO maths against plain references: a loop GAE, the reward placement, the controller."""

import math

import pytest
import torch

from rcollapse.maths.ppo_objective import (
    AdaptiveKLController,
    clipped_policy_loss,
    combine_heads,
    gae,
    kl_per_token,
    kl_weight,
    last_token_index,
    masked_whiten,
    per_token_rewards,
)


def loop_gae(rewards, values, length, gamma, lam):
    """GAE for one sequence of ``length`` real tokens, in plain Python."""
    adv = [0.0] * length
    last = 0.0
    for t in reversed(range(length)):
        next_v = values[t + 1] if t + 1 < length else 0.0
        delta = rewards[t] + gamma * next_v - values[t]
        last = delta + gamma * lam * last
        adv[t] = last
    return adv


@pytest.mark.parametrize(("gamma", "lam"), [(1.0, 0.95), (0.9, 0.5), (1.0, 1.0)])
def test_gae_equals_a_python_loop_with_padding(gamma, lam):
    g = torch.Generator().manual_seed(0)
    rewards, values = torch.randn(4, 7, generator=g, dtype=torch.float64), torch.randn(4, 7, generator=g, dtype=torch.float64)
    lengths = [7, 3, 1, 5]
    mask = torch.tensor([[1.0] * n + [0.0] * (7 - n) for n in lengths], dtype=torch.float64)
    advantages, returns = gae(rewards * mask, values, mask, gamma, lam)
    for i, n in enumerate(lengths):
        expected = loop_gae(rewards[i].tolist(), values[i].tolist(), n, gamma, lam)
        torch.testing.assert_close(advantages[i, :n], torch.tensor(expected, dtype=torch.float64))
        assert torch.all(advantages[i, n:] == 0) and torch.all(returns[i, n:] == 0)
        torch.testing.assert_close(returns[i, :n], advantages[i, :n] + values[i, :n])


def test_score_on_the_last_real_token_and_weighted_kl_on_every_token():
    kl = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.0, 0.0], [0.7, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])  # row 2: early EOS, then pads
    scores, weights = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 0.5, 2.0])
    rewards = per_token_rewards(scores, kl, weights, mask, beta=0.1)
    expected = torch.tensor([[-0.01, -0.02, -0.03, -0.04 + 1.0],
                             [-0.025, -0.03 + 2.0, 0.0, 0.0],
                             [-0.14 + 3.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(rewards, expected)
    assert last_token_index(mask).tolist() == [3, 1, 0]  # never the first pad after the response


def test_unit_weights_give_the_standard_kl_penalised_rewards():
    g = torch.Generator().manual_seed(1)
    kl, scores = torch.rand(3, 5, generator=g), torch.randn(3, generator=g)
    mask = torch.ones(3, 5)
    weights = kl_weight(torch.rand(3, generator=g), "one")
    standard = -0.2 * kl
    standard[:, -1] += scores
    torch.testing.assert_close(per_token_rewards(scores, kl, weights, mask, 0.2), standard)


def test_kl_estimators_and_weights():
    logp, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.0])
    torch.testing.assert_close(kl_per_token(logp, ref, "k1"), torch.tensor([0.5, -1.0]))
    rho = torch.exp(ref - logp)
    torch.testing.assert_close(kl_per_token(logp, ref, "k3"), rho - 1 - torch.log(rho))
    assert torch.all(kl_per_token(logp, ref, "k3") >= 0)
    var = torch.tensor([4.0, 0.25])
    torch.testing.assert_close(kl_weight(var, "std"), torch.tensor([2.0, 0.5]))
    with pytest.raises(ValueError, match=r"^stage\.module\.kl_estimator must be one of"):
        kl_per_token(logp, ref, "k2")


def test_head_combinations():
    scores = torch.tensor([[1.0, 3.0, 2.0], [0.0, 0.0, 3.0]])
    assert combine_heads(scores, "head", head=1).tolist() == [3.0, 0.0]
    assert combine_heads(scores, "mean").tolist() == [2.0, 1.0]
    assert combine_heads(scores, "min").tolist() == [1.0, 0.0]
    torch.testing.assert_close(combine_heads(scores, "mean_minus_std", penalty=2.0),
                               torch.tensor([2.0 - 2.0, 1.0 - 2.0 * math.sqrt(3.0)]))
    with pytest.raises(ValueError, match=r"^stage\.module\.reward_head must lie in \[0, 2\]"):
        combine_heads(scores, "head", head=3)


def test_adaptive_controller_moves_beta_toward_its_target():
    too_far = AdaptiveKLController(beta=0.1, target=1.0, horizon=100)
    for _ in range(20):
        too_far.update(current_kl=3.0, num_steps=10)  # KL above target: β grows
    assert too_far.value == pytest.approx(0.1 * 1.02**20)  # error clipped at +0.2
    too_close = AdaptiveKLController(beta=0.1, target=1.0, horizon=100)
    too_close.update(current_kl=0.9, num_steps=10)  # KL below target: β shrinks
    assert too_close.value == pytest.approx(0.1 * (1 - 0.1 * 10 / 100))
    state = too_far.state_dict()
    fresh = AdaptiveKLController(beta=1.0, target=1.0)
    fresh.load_state_dict(state)
    assert fresh.value == too_far.value


def test_clipped_policy_loss_and_whitening():
    adv = torch.tensor([[1.0, -1.0]])
    mask = torch.ones(1, 2)
    old = torch.zeros(1, 2)
    loss, clipfrac, approx_kl = clipped_policy_loss(torch.tensor([[0.5, 0.5]]), old, adv, mask, clip_range=0.2)
    # ratio e^0.5 = 1.65: positive advantage clipped at 1.2, negative advantage not (−(−1)·1.65)
    assert float(loss) == pytest.approx(((-1.2) + 1.6487) / 2, rel=1e-4)
    assert float(clipfrac) == 0.5 and float(approx_kl) == pytest.approx(0.125)
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    m = torch.tensor([[1, 1, 1, 0]])
    w = masked_whiten(x, m)
    assert float(w[0, :3].mean()) == pytest.approx(0, abs=1e-6) and float(w[0, 3]) == 0
