"""Theorem 3.3 of Banerjee & Gopalan (uncertainty-aware RLHF): a variance-aware update is less risky.

A d-armed bandit with true rewards ``r*`` and noisy estimates ``R̂ ~ N(r*, Σ)``, Σ = diag(σ²).
From a reference policy ``π0`` (uniform here), two updates of the same size:

    π1 = π0 + sqrt(ε / R̂ᵀR̂) R̂                       (variance-unaware, ‖π − π0‖² ≤ ε)
    π2 = π0 + sqrt(ε̃ / R̂ᵀΣ⁻¹R̂) Σ⁻¹R̂,  ε̃ = λ_min(Σ) ε  (variance-aware, ‖π − π0‖²_Σ ≤ ε̃)

Each underperforms the reference (``πᵀr* ≤ π0ᵀr*``) with probability

    P1 = Φ(−‖r*‖² / sqrt(r*ᵀΣr*)),   P2 = Φ(−sqrt(r*ᵀΣ⁻¹r*)),   and P2 ≤ P1 (Cauchy–Schwarz).

Pure numpy/scipy. (As in the paper, π is treated as a vector: the update is not projected back
onto the simplex.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

SETTINGS = {"high": (3.0, 100.0), "low": (70.0, 100.0)}  # the paper's variance ranges (Figs. 3–5)


@dataclass
class BanditResult:
    returns: dict[str, np.ndarray]  # true return πᵀr* of each draw, per method
    reference_return: float  # π0ᵀr*
    underperformance_mc: dict[str, float]
    underperformance_closed_form: dict[str, float]


def closed_form_underperformance(r_star: np.ndarray, variances: np.ndarray) -> dict[str, float]:
    """Theorem 3.3's probabilities that each update does worse than the reference."""
    unaware = stats.norm.cdf(-(r_star @ r_star) / np.sqrt(r_star @ (variances * r_star)))
    aware = stats.norm.cdf(-np.sqrt(r_star @ (r_star / variances)))
    return {"unaware": float(unaware), "aware": float(aware)}


def policy_updates(r_hat: np.ndarray, variances: np.ndarray, pi0: np.ndarray, epsilon: float):
    """π1 and π2 for each row of ``r_hat`` ([draws, d])."""
    eps_tilde = variances.min() * epsilon
    pi1 = pi0 + np.sqrt(epsilon / np.sum(r_hat**2, axis=1, keepdims=True)) * r_hat
    weighted = r_hat / variances
    pi2 = pi0 + np.sqrt(eps_tilde / np.sum(r_hat * weighted, axis=1, keepdims=True)) * weighted
    return pi1, pi2


def simulate(r_star: np.ndarray, variances: np.ndarray, epsilon: float, num_draws: int, seed: int,
             chunk: int = 2000) -> BanditResult:
    """Draw ``R̂ ~ N(r*, Σ)`` ``num_draws`` times; the true return of both updates for each draw."""
    rng = np.random.default_rng(seed)
    d = r_star.size
    pi0 = np.full(d, 1.0 / d)
    returns = {"unaware": [], "aware": []}
    for start in range(0, num_draws, chunk):
        k = min(chunk, num_draws - start)
        r_hat = r_star + rng.standard_normal((k, d)) * np.sqrt(variances)
        pi1, pi2 = policy_updates(r_hat, variances, pi0, epsilon)
        returns["unaware"].append(pi1 @ r_star)
        returns["aware"].append(pi2 @ r_star)
    returns = {k: np.concatenate(v) for k, v in returns.items()}
    reference = float(pi0 @ r_star)
    mc = {k: float(np.mean(v <= reference)) for k, v in returns.items()}
    return BanditResult(returns, reference, mc, closed_form_underperformance(r_star, variances))


def make_problem(d: int, variance_range: tuple[float, float], reward_loc: float, reward_scale: float,
                 seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed true reward vector r* ~ N(loc, scale²) and variances ~ Uniform(variance_range)."""
    lo, hi = variance_range
    if not 0 < lo < hi:
        raise ValueError(f"bandit.variance_range must satisfy 0 < low < high, got {variance_range}")
    rng = np.random.default_rng(seed)
    return rng.normal(reward_loc, reward_scale, d), rng.uniform(lo, hi, d)
