"""The maths of variance-weighted-KL PPO (Banerjee & Gopalan, Section 5), as pure functions.

Per-token rewards (the paper's adjusted reward, spread over the response tokens as in Ziegler et
al. 2019 and TRL's PPO):

    r_t = −β · w(x, y) · KL_t            for every response token t,
    r_T += R(x, y)                       on the last real response token T,

with ``w = σ²(x, y)`` (the ensemble variance; the paper's objective, Section 5), ``w = σ(x, y)``
(its experiment section's wording) or ``w = 1`` (vanilla PPO), and ``KL_t`` the k1 estimator
``log π(y_t|·) − log π0(y_t|·)`` or k3 ``(ρ − 1) − log ρ`` with ``ρ = π0/π`` (Schulman 2020).
Advantages by GAE (Schulman et al. 2016, eq. 16); the adaptive KL controller of Ziegler et al.
(2019, Section 2.2). Pure torch: no model, data or training code here.
"""

from __future__ import annotations

import torch

KL_ESTIMATORS = ("k1", "k3")
# the weight w of the KL penalty (stage.module.kl_weight): 1 (vanilla PPO), the ensemble's σ or σ²
KL_WEIGHTS = ("one", "std", "variance")
REWARD_COMBINATIONS = ("head", "mean", "min", "mean_minus_std")


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim=None) -> torch.Tensor:
    mask = mask.to(values.dtype)
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp_min(1)
    return (values * mask).sum(dim) / mask.sum(dim).clamp_min(1)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """(values − mean)/std over the masked entries (the mean kept if not ``shift_mean``); 0 elsewhere."""
    mean = masked_mean(values, mask)
    var = masked_mean((values - mean) ** 2, mask)
    whitened = (values - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask.to(values.dtype)


def kl_per_token(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(π‖π0) from the sampled tokens' log-probabilities."""
    log_ratio = logprobs - ref_logprobs
    if estimator == "k1":
        return log_ratio
    if estimator == "k3":
        return torch.expm1(-log_ratio) + log_ratio  # (ρ − 1) − log ρ, ρ = π0/π
    raise ValueError(f"stage.module.kl_estimator must be one of {KL_ESTIMATORS}, got {estimator!r}")


def kl_weight(variance: torch.Tensor, mode: str = "variance", scale: float | torch.Tensor = 1.0) -> torch.Tensor:
    """w(x, y) per sequence: the ensemble variance σ² (Theorem 3.6's weight), its square root σ (the
    paper's Section 5 wording), or 1 (``mode="one"``: vanilla PPO), divided by ``scale``.

    With ``scale`` the mean weight over the reference policy's rollouts, E_{π0}[w] = 1, so that β
    means the same average penalty for any ensemble (whatever the scale of its σ²) and for the
    vanilla arm: only how the penalty is spread over responses differs between the arms."""
    if mode == "variance":
        return variance / scale
    if mode == "std":
        return variance.clamp_min(0).sqrt() / scale
    if mode == "one":
        return torch.ones_like(variance) / scale
    raise ValueError(f"stage.module.kl_weight must be one of {KL_WEIGHTS}, got {mode!r}")


def combine_heads(scores: torch.Tensor, mode: str = "head", head: int = 0, penalty: float = 1.0) -> torch.Tensor:
    """The reward PPO optimises from an ensemble's scores [B, k]: one head (the paper), the mean,
    the worst case (minimum over heads), or mean − penalty·std (uncertainty-penalised, as in
    Coste et al. 2024)."""
    if mode == "head":
        if not 0 <= head < scores.size(1):
            raise ValueError(f"stage.module.reward_head must lie in [0, {scores.size(1) - 1}], got {head}")
        return scores[:, head]
    if mode == "mean":
        return scores.mean(1)
    if mode == "min":
        return scores.min(1).values
    if mode == "mean_minus_std":
        std = scores.std(1, unbiased=True) if scores.size(1) > 1 else torch.zeros_like(scores[:, 0])
        return scores.mean(1) - penalty * std
    raise ValueError(f"stage.module.reward_combination must be one of {REWARD_COMBINATIONS}, got {mode!r}")


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last 1 in each row of a response mask [B, T] (rows must have at least one)."""
    positions = torch.arange(mask.size(1), device=mask.device).expand_as(mask)
    return torch.where(mask.bool(), positions, -1).max(1).values


def per_token_rewards(scores: torch.Tensor, kl: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor,
                      beta: float) -> torch.Tensor:
    """r_t = −β·w·KL_t on response tokens, plus the score on each row's last real response token.

    ``scores`` [B], ``kl`` [B, T], ``weights`` [B], ``mask`` [B, T] (1 on real response tokens,
    0 on padding and after an early EOS). Padding gets 0; the score never lands on a pad.
    """
    mask = mask.to(kl.dtype)
    rewards = -beta * weights[:, None] * kl * mask
    last = last_token_index(mask)
    return rewards.scatter_add(1, last[:, None], scores[:, None].to(rewards.dtype))


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over each row's response tokens (Schulman et al. 2016).

    δ_t = r_t + γ V_{t+1} − V_t, A_t = δ_t + γλ A_{t+1}, with V and A zero past the last real
    token; returns (advantages, returns = advantages + values), zero on padding.
    """
    mask = mask.to(rewards.dtype)
    values = values * mask
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[:, 0])
    next_advantage = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.size(1))):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        advantage = (delta + gamma * lam * next_advantage) * mask[:, t]
        advantages[:, t] = advantage
        # a padded position passes the later values through unchanged (none exist after the end)
        next_value = torch.where(mask[:, t] > 0, values[:, t], next_value)
        next_advantage = torch.where(mask[:, t] > 0, advantage, next_advantage)
    return advantages, (advantages + values) * mask


def clipped_policy_loss(logprobs, old_logprobs, advantages, mask, clip_range: float):
    """PPO's clipped surrogate (Schulman et al. 2017, eq. 7), with its clip fraction and approx KL."""
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clipfrac = masked_mean((clipped > unclipped).to(logprobs.dtype), mask)
    approx_kl = masked_mean(0.5 * log_ratio**2, mask)
    return loss, clipfrac, approx_kl


def clipped_value_loss(values, old_values, returns, mask, clip_range: float):
    """The value loss with the old values' clip (as in the OpenAI baselines and TRL)."""
    clipped = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    return 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (clipped - returns) ** 2), mask)


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """1 − Var(returns − values)/Var(returns) over the masked entries."""
    var_returns = masked_mean((returns - masked_mean(returns, mask)) ** 2, mask)
    residual = returns - values
    var_residual = masked_mean((residual - masked_mean(residual, mask)) ** 2, mask)
    return float(1 - var_residual / var_returns) if float(var_returns) > 0 else float("nan")


class FixedKLController:
    """A constant β."""

    def __init__(self, beta: float):
        self.value = float(beta)

    def update(self, current_kl: float, num_steps: int) -> float:
        return self.value

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])


class AdaptiveKLController(FixedKLController):
    """Ziegler et al. (2019): β ← β·(1 + clip(KL/target − 1, −0.2, 0.2)·n/horizon), moving β
    toward the value at which the policy's KL sits at ``target``.

    ``freeze_after``: after that many updates β stays where the controller brought it, so the run
    ends with a fixed β, as the paper's arms have, calibrated to the shared KL target (KL matching:
    give both arms the same ``target``; the report gives the achieved gap of their final KLs)."""

    def __init__(self, beta: float, target: float, horizon: int = 10000, freeze_after: int | None = None):
        super().__init__(beta)
        if not target > 0:
            raise ValueError(f"stage.kl_controller.target must be > 0, got {target}")
        if freeze_after is not None and int(freeze_after) < 0:
            raise ValueError(f"stage.kl_controller.freeze_after must be >= 0 or null, got {freeze_after}")
        self.target, self.horizon = float(target), int(horizon)
        self.freeze_after = None if freeze_after is None else int(freeze_after)
        self.updates = 0

    @property
    def frozen(self) -> bool:
        return self.freeze_after is not None and self.updates >= self.freeze_after

    def update(self, current_kl: float, num_steps: int) -> float:
        if self.frozen:
            return self.value
        self.updates += 1
        error = min(max(current_kl / self.target - 1, -0.2), 0.2)
        self.value *= 1 + error * num_steps / self.horizon
        return self.value

    def state_dict(self) -> dict:
        return {"value": self.value, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.value, self.updates = float(state["value"]), int(state.get("updates", 0))
