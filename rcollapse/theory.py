"""The reward-collapse program and its limits (Song, Cai, Lee, Su 2023, Sections 2 and 4).

Theorem 1: a reward model that (nearly) maximises the ranking objective gives every prompt the
reward vector solving

    maximise  S(r) = Σ_{1≤i<j≤n} U(r_i − r_j)   subject to  1 ≥ r_1 ≥ r_2 ≥ … ≥ r_n ≥ 0.

For strictly increasing U the optimum has r_1 = 1 and r_n = 0 (Lemma C.1), so we write
r_k = Σ_{m≥k} g_m with gaps g ≥ 0, Σ g = 1: S is concave in g when U is concave, and we maximise
it over the simplex by exponentiated-gradient (mirror) ascent, which keeps every gap positive —
so the singular utilities (log, x_inv, neg_power with eps = 0, where U(0) = −inf) are never
evaluated at a tie. The gradient costs O(n²) per step, computed in blocks of rows; a solution
for n is warm-started from the one for n/4 (interpolated), so large n needs few steps.
Optimality is certified by the Frank–Wolfe duality gap ``max_m ∂S/∂g_m − ⟨g, ∂S/∂g⟩``, which
bounds S(r*) − S(r) for concave U and is zero exactly at a KKT point.

Pure torch/numpy/scipy: no training code here. The same utility objects that training uses
(``rcollapse.utilities``) are passed in, extensions included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats


@dataclass
class CollapseSolution:
    rewards: np.ndarray  # sorted descending, r_1 = 1, r_n = 0
    objective: float  # S(r)
    duality_gap: float  # Frank–Wolfe gap: the KKT residual (0 at the optimum)
    iterations: int


def objective(utility, r: torch.Tensor, block: int = 256) -> float:
    """S(r) alone (no gradient): what a line search needs, at a third of the cost."""
    n = r.numel()
    total = 0.0
    cols = torch.arange(n)
    with torch.no_grad():
        for start in range(0, n - 1, block):
            rows = torch.arange(start, min(start + block, n - 1))
            diff = r[rows, None] - r[None, :]
            upper = cols[None, :] > rows[:, None]
            total += float(torch.where(upper, utility(diff), torch.zeros((), dtype=r.dtype)).sum())
    return total


def objective_and_gradient(utility, r: torch.Tensor, block: int = 256) -> tuple[float, torch.Tensor]:
    """S(r) and ∂S/∂r, over all pairs i < j, in blocks of rows (O(n²) time, O(block·n) memory)."""
    n = r.numel()
    total = torch.zeros((), dtype=r.dtype)
    grad = torch.zeros_like(r)
    cols = torch.arange(n)
    for start in range(0, n - 1, block):
        rows = torch.arange(start, min(start + block, n - 1))
        diff = (r[rows, None] - r[None, :]).detach().requires_grad_(True)
        upper = cols[None, :] > rows[:, None]
        values = torch.where(upper, utility(diff), torch.zeros((), dtype=r.dtype))
        (d,) = torch.autograd.grad(values.sum(), diff)
        d = torch.where(upper, d, torch.zeros((), dtype=r.dtype))
        total += values.sum().detach()
        grad[rows] += d.sum(1)
        grad -= d.sum(0)
    return float(total), grad


def _gaps_to_rewards(g: torch.Tensor) -> torch.Tensor:
    """r_k = Σ_{m ≥ k} g_m for k = 1..n (r_n = 0)."""
    tail = torch.flip(torch.cumsum(torch.flip(g, [0]), 0), [0])
    return torch.cat([tail, g.new_zeros(1)])


def _exponentiated_gradient(utility, g: torch.Tensor, tol: float, max_iter: int, block: int):
    r = _gaps_to_rewards(g)
    value, grad_r = objective_and_gradient(utility, r, block)
    step, it, gap = 1.0, 0, math.inf
    for it in range(1, max_iter + 1):
        grad_g = torch.cumsum(grad_r, 0)[:-1]  # ∂S/∂g_m = Σ_{k ≤ m} ∂S/∂r_k
        mean = float((g * grad_g).sum())
        gap = float(grad_g.max()) - mean
        scale = max(abs(value), 1.0)
        if gap <= tol * scale:
            break
        centred = (grad_g - mean) / float((grad_g - mean).abs().max())
        while True:  # backtracking: accept the largest step that increases S
            logits = torch.log(g) + step * centred
            candidate = torch.softmax(logits, 0)
            r_c = _gaps_to_rewards(candidate)
            v_c = objective(utility, r_c, block)
            if math.isfinite(v_c) and v_c >= value:
                g = candidate
                value, grad_r = objective_and_gradient(utility, r_c, block)
                step *= 1.5
                break
            step *= 0.5
            if step < 1e-12:
                return g, value, gap, it
    return g, value, gap, it


def solve_collapse(utility, n: int, tol: float = 1e-7, max_iter: int = 2000, block: int = 256,
                   warm_start_below: int = 200) -> CollapseSolution:
    """The collapsed reward vector for ``n`` completions under ``utility`` (sorted descending).

    Safe to call under ``torch.no_grad`` / ``inference_mode`` (e.g. from a Lightning test step):
    the gradients it needs are computed in their own autograd context.
    """
    with torch.inference_mode(False), torch.enable_grad():
        return _solve_collapse(utility, n, tol, max_iter, block, warm_start_below)


def _solve_collapse(utility, n, tol, max_iter, block, warm_start_below) -> CollapseSolution:
    if n < 2:
        raise ValueError(f"theory.n must be >= 2, got {n}")
    if getattr(utility, "prompt_aware", False):
        raise ValueError("pass a fixed utility: for a prompt-aware one, use utility.for_openness(s)")
    from rcollapse.utilities import LinearUtility

    if isinstance(utility, LinearUtility):
        # S is linear, Σ_k (n + 1 − 2k) r_k: top half at 1, bottom half at 0, the middle (odd n)
        # has coefficient 0 and any value is optimal; we take ½ (the symmetric solution).
        k = np.arange(1, n + 1)
        r = np.where(k < (n + 1) / 2, 1.0, np.where(k > (n + 1) / 2, 0.0, 0.5))
        value, _ = objective_and_gradient(utility, torch.tensor(r, dtype=torch.float64), block)
        return CollapseSolution(r, value, 0.0, 0)
    if n > warm_start_below:
        # the coarse levels only need to be good starting points
        coarse = _solve_collapse(utility, max(2, n // 4), tol, min(max_iter, 50), block, warm_start_below)
        grid = np.linspace(0, 1, n)
        r0 = np.interp(grid, np.linspace(0, 1, coarse.rewards.size), coarse.rewards)
        g0 = np.maximum(-np.diff(r0), 1e-12 / n)
    else:
        g0 = np.full(n - 1, 1.0 / (n - 1))
    g = torch.tensor(g0 / g0.sum(), dtype=torch.float64)
    g, value, gap, it = _exponentiated_gradient(utility, g, tol, max_iter, block)
    return CollapseSolution(_gaps_to_rewards(g).numpy(), value, gap, it)


# ---- limits as n → ∞ (Section 4) ----------------------------------------------------------------


@dataclass
class Limit:
    name: str
    params: dict
    cdf: object  # callable on numpy arrays


def limit_distribution(utility) -> Limit | None:
    """The known limit law of the collapsed rewards for the un-shifted utility, if any.

    Beta(½, ½) for log; Uniform for x_inv; Beta((1−γ)/2, (1−γ)/2) for class 1 (power) and the
    Box–Cox family; Beta((1+γ)/2, (1+γ)/2) for class 2 (neg_power), uniform for γ ≥ 1; two points
    for x. None where no closed form is known (logsigmoid: see :func:`logsigmoid_endpoint_mass`).
    """
    from rcollapse.utilities import LinearUtility

    if isinstance(utility, LinearUtility):
        return Limit("two_point", {"p0": 0.5, "p1": 0.5}, lambda x: np.where(np.asarray(x) < 1, 0.5, 1.0) * (np.asarray(x) >= 0))
    ab = utility.limit_beta() if hasattr(utility, "limit_beta") else None
    if ab is None:
        return None
    a, b = ab
    if a == b == 1:
        return Limit("uniform", {}, stats.uniform.cdf)
    return Limit("beta", {"a": a, "b": b}, stats.beta(a, b).cdf)


def logsigmoid_endpoint_mass(utility) -> float:
    """Theorem 4's asymptotic lower bound on the mass at 1 (and, by symmetry, at 0):
    ``U'(1) / (U'(0) + U'(1))``."""
    x = torch.tensor([0.0, 1.0], dtype=torch.float64, requires_grad=True)
    (d,) = torch.autograd.grad(utility(x).sum(), x)
    return float(d[1] / (d[0] + d[1]))


def ks_distance(sample, cdf) -> float:
    """Kolmogorov–Smirnov distance sup |F_n − F| between an empirical sample and a law's CDF."""
    x = np.sort(np.asarray(sample, float))
    n = x.size
    f = np.asarray(cdf(x), float)
    upper = np.arange(1, n + 1) / n - f
    lower = f - np.arange(0, n) / n
    return float(max(upper.max(), lower.max()))


def wasserstein1_to_cdf(sample, cdf, grid: int = 20001) -> float:
    """W1 = ∫₀¹ |F_n(t) − F(t)| dt between an empirical sample on [0, 1] and a law's CDF."""
    t = np.linspace(0, 1, grid)
    x = np.sort(np.asarray(sample, float))
    emp = np.searchsorted(x, t, side="right") / x.size
    return float(np.trapezoid(np.abs(emp - np.asarray(cdf(t), float)), t))
