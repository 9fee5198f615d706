"""Theorem 3.3 of Banerjee & Gopalan (uncertainty-aware RLHF): a variance-aware update is less risky.

A d-armed bandit with true rewards ``r*`` and noisy estimates ``R̂ ~ N(r*, Σ)``, Σ = diag(σ²).
From a reference policy ``π0`` (uniform here), two updates (the paper's Appendix, eqs. for π1, π2):

    π1 = π0 + sqrt(ε / R̂ᵀR̂) R̂                       (variance-unaware, ‖π − π0‖² ≤ ε)
    π2 = π0 + sqrt(ε̃ / R̂ᵀΣ⁻¹R̂) Σ⁻¹R̂                (variance-aware, ‖π − π0‖²_Σ ≤ ε̃)

with ε̃ = λ_min(Σ) ε in the theorem. Each underperforms the reference (``πᵀr* ≤ π0ᵀr*``) with
probability

    P1 = Φ(−‖r*‖² / sqrt(r*ᵀΣr*)),   P2 = Φ(−sqrt(r*ᵀΣ⁻¹r*)),   and P2 ≤ P1 (Cauchy–Schwarz),

whatever ε and ε̃ (the step size does not change the sign of the gain).

Risk at equal mean return. The paper's Fig. 3 compares the two at equal mean returns
(``epsilon_tilde="matched_mean"``). With n = R̂ − r* ~ N(0, Σ), each gain is a ratio

    π1ᵀr* − π0ᵀr* = √ε  (A1 + X1) / √(A1 + D1 + 2 X1 + Y1),
    π2ᵀr* − π0ᵀr* = √ε̃ (A2 + X2) / √(A2 + D2 + 2 X2 + Y2),

A1 = ‖r*‖², X1 = r*ᵀn ~ N(0, r*ᵀΣr*), D1 = tr Σ, Y1 = ‖n‖² − tr Σ (variance 2 tr Σ²);
A2 = r*ᵀΣ⁻¹r*, X2 = r*ᵀΣ⁻¹n ~ N(0, A2), D2 = d, Y2 = nᵀΣ⁻¹n − d (variance 2d); X and Y are
uncorrelated. To first order in (X, Y) (the delta method, exact as d → ∞ at a fixed signal-to-noise
ratio A2/d) each gain's std over its mean is √(D² S + A² V/4) / (A (A + D)) with S = Var X,
V = Var Y, so at equal means (:func:`equal_mean_std_ratio_delta_method`)

    std(π1ᵀr*) / std(π2ᵀr*) = [√(D1² S1 + A1² V1/4) / (A1 (A1 + D1))] / [√(d² A2 + A2² d/2) / (A2 (A2 + d))].

Only when the noise swamps the signal in every normaliser (A1 ≪ tr Σ and r*ᵀΣ⁻¹r* ≪ d) does this
reduce to (:func:`equal_mean_std_ratio`)

    std(π1ᵀr*) / std(π2ᵀr*) ≈ sqrt(Σ w σ² · Σ w σ⁻²),   w_i = r*_i² / ‖r*‖²,

which the Kantorovich inequality bounds by (a + b) / (2 sqrt(ab)) for variances in (a, b):
2.97 for (3, 100), 1.01 for (70, 100). That bound holds for the low-signal approximation, not for
the measured ratio: at the paper's setting (r* ~ N(0, 1), variances at the ends of (3, 100),
r*ᵀΣ⁻¹r*/d ≈ 0.17) π2's normaliser R̂ᵀΣ⁻¹R̂ carries the signal's noise X2 and cancels part of it,
and the ratio is 3.3 (measured at d = 1,000 and 10,000; delta method 3.31 and 3.30) against the
first-order 2.97; with r* ~ N(0, 0.25²) (r*ᵀΣ⁻¹r*/d ≈ 0.01) it is 2.97-3.04 against 2.97 (the
numbers: tests/test_bandit_equal_means.py and docs/stages.md). More arms do not bring the ratio to
the bound: a smaller signal-to-noise ratio does. Uniformly drawn variances in (3, 100) give about
1.4; variances at the two ends of the range (``variance_distribution="endpoints"``) come near the
first-order bound.

Pure numpy/scipy. (As in the paper, π is treated as a vector: the update is not projected back
onto the simplex.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

SETTINGS = {"high": (3.0, 100.0), "low": (70.0, 100.0)}  # the paper's variance ranges (Figs. 3–5)
VARIANCE_DISTRIBUTIONS = ("uniform", "log_uniform", "endpoints")
EPSILON_TILDE_RULES = ("min_variance", "matched_mean")


@dataclass
class BanditResult:
    returns: dict[str, np.ndarray]  # true return πᵀr* of each draw, per method
    reference_return: float  # π0ᵀr*
    underperformance_mc: dict[str, float]
    underperformance_closed_form: dict[str, float]
    epsilon_tilde: float  # the aware update's budget that was used


def closed_form_underperformance(r_star: np.ndarray, variances: np.ndarray) -> dict[str, float]:
    """Theorem 3.3's probabilities that each update does worse than the reference."""
    unaware = stats.norm.cdf(-(r_star @ r_star) / np.sqrt(r_star @ (variances * r_star)))
    aware = stats.norm.cdf(-np.sqrt(r_star @ (r_star / variances)))
    return {"unaware": float(unaware), "aware": float(aware)}


def equal_mean_std_ratio(r_star: np.ndarray, variances: np.ndarray) -> float:
    """Low-signal ratio std(π1ᵀr*)/std(π2ᵀr*) when ε̃ equalises the mean returns: the first-order
    term as r*ᵀΣ⁻¹r*/d → 0, at most :func:`kantorovich_bound` (module docstring)."""
    w = r_star**2 / (r_star @ r_star)
    return float(np.sqrt((w @ variances) * (w @ (1 / variances))))


def equal_mean_std_ratio_delta_method(r_star: np.ndarray, variances: np.ndarray) -> float:
    """std(π1ᵀr*)/std(π2ᵀr*) at equal means to first order in the noise of both gains' numerators
    *and* normalisers (the delta method of the module docstring): the ratio the simulation measures
    at large d whatever the signal-to-noise ratio; :func:`equal_mean_std_ratio` is its limit as
    r*ᵀΣ⁻¹r*/d → 0."""
    d = r_star.size
    a1, s1, d1, v1 = r_star @ r_star, r_star @ (variances * r_star), variances.sum(), 2 * np.sum(variances**2)
    a2 = r_star @ (r_star / variances)
    relative1 = np.sqrt(d1**2 * s1 + a1**2 * v1 / 4) / (a1 * (a1 + d1))
    relative2 = np.sqrt(d**2 * a2 + a2**2 * d / 2) / (a2 * (a2 + d))
    return float(relative1 / relative2)


def kantorovich_bound(variance_range: tuple[float, float]) -> float:
    """The largest possible :func:`equal_mean_std_ratio` (the low-signal approximation) for
    variances in (a, b). The measured ratio may exceed it (module docstring)."""
    a, b = variance_range
    return (a + b) / (2 * math.sqrt(a * b))


def policy_updates(r_hat: np.ndarray, variances: np.ndarray, pi0: np.ndarray, epsilon: float,
                   epsilon_tilde: float | None = None):
    """π1 and π2 for each row of ``r_hat`` ([draws, d]); ε̃ defaults to λ_min(Σ)·ε."""
    if epsilon_tilde is None:
        epsilon_tilde = variances.min() * epsilon
    pi1 = pi0 + np.sqrt(epsilon / np.sum(r_hat**2, axis=1, keepdims=True)) * r_hat
    weighted = r_hat / variances
    pi2 = pi0 + np.sqrt(epsilon_tilde / np.sum(r_hat * weighted, axis=1, keepdims=True)) * weighted
    return pi1, pi2


def _draw(rng, r_star, variances, k):
    return r_star + rng.standard_normal((k, r_star.size)) * np.sqrt(variances)


def matched_epsilon_tilde(r_star: np.ndarray, variances: np.ndarray, epsilon: float, num_draws: int,
                          seed: int) -> float:
    """ε̃ at which the aware update's mean return equals the unaware one's (estimated on
    ``num_draws`` pilot draws independent of the evaluation draws; the aware gain scales as √ε̃)."""
    rng = np.random.default_rng(seed)
    r_hat = _draw(rng, r_star, variances, num_draws)
    pi0 = np.zeros(r_star.size)
    pi1, pi2_unit = policy_updates(r_hat, variances, pi0, epsilon, epsilon_tilde=1.0)
    gain1, unit_gain2 = float(np.mean(pi1 @ r_star)), float(np.mean(pi2_unit @ r_star))
    if gain1 <= 0 or unit_gain2 <= 0:
        raise ValueError("stage.bandit.epsilon_tilde=matched_mean needs positive expected gains "
                         f"(got {gain1:.3g} and {unit_gain2:.3g}); use min_variance or a number")
    return (gain1 / unit_gain2) ** 2


def simulate(r_star: np.ndarray, variances: np.ndarray, epsilon: float, num_draws: int, seed: int,
             chunk: int = 2000, epsilon_tilde: str | float = "min_variance") -> BanditResult:
    """Draw ``R̂ ~ N(r*, Σ)`` ``num_draws`` times; the true return of both updates for each draw.

    ``epsilon_tilde``: ``"min_variance"`` (Theorem 3.3: λ_min(Σ)·ε), ``"matched_mean"`` (equal
    mean returns, as the paper's Fig. 3 compares them) or a positive number.
    """
    if epsilon_tilde == "min_variance":
        eps_tilde = float(variances.min() * epsilon)
    elif epsilon_tilde == "matched_mean":
        eps_tilde = matched_epsilon_tilde(r_star, variances, epsilon, num_draws, seed + 7919)
    else:
        try:
            eps_tilde = float(epsilon_tilde)
        except (TypeError, ValueError):
            eps_tilde = float("nan")
        if not eps_tilde > 0:
            raise ValueError(f"stage.bandit.epsilon_tilde must be one of {EPSILON_TILDE_RULES} or a number > 0, "
                             f"got {epsilon_tilde!r}")
    rng = np.random.default_rng(seed)
    pi0 = np.full(r_star.size, 1.0 / r_star.size)
    returns = {"unaware": [], "aware": []}
    for start in range(0, num_draws, chunk):
        r_hat = _draw(rng, r_star, variances, min(chunk, num_draws - start))
        pi1, pi2 = policy_updates(r_hat, variances, pi0, epsilon, eps_tilde)
        returns["unaware"].append(pi1 @ r_star)
        returns["aware"].append(pi2 @ r_star)
    returns = {k: np.concatenate(v) for k, v in returns.items()}
    reference = float(pi0 @ r_star)
    mc = {k: float(np.mean(v <= reference)) for k, v in returns.items()}
    return BanditResult(returns, reference, mc, closed_form_underperformance(r_star, variances), eps_tilde)


def make_problem(d: int, variance_range: tuple[float, float], reward_loc: float, reward_scale: float,
                 seed: int, variance_distribution: str = "uniform") -> tuple[np.ndarray, np.ndarray]:
    """A fixed true reward vector r* ~ N(loc, scale²) and variances in ``variance_range``:
    ``uniform``, ``log_uniform``, or ``endpoints`` (each arm at one end, with probability ½)."""
    lo, hi = variance_range
    if not 0 < lo < hi:
        raise ValueError(f"stage.bandit.variance_range must satisfy 0 < low < high, got {variance_range}")
    rng = np.random.default_rng(seed)
    r_star = rng.normal(reward_loc, reward_scale, d)
    if variance_distribution == "uniform":
        variances = rng.uniform(lo, hi, d)
    elif variance_distribution == "log_uniform":
        variances = np.exp(rng.uniform(math.log(lo), math.log(hi), d))
    elif variance_distribution == "endpoints":
        variances = np.where(rng.random(d) < 0.5, lo, hi)
    else:
        raise ValueError(f"stage.bandit.variance_distribution must be one of {VARIANCE_DISTRIBUTIONS}, "
                         f"got {variance_distribution!r}")
    return r_star, variances
