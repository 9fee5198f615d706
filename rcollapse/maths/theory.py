"""The reward-collapse program and its limits (Song, Cai, Lee, Su 2023, Sections 2 and 4).

Theorem 1: a reward model that (nearly) maximises the ranking objective gives every prompt the
reward vector solving

    maximise  S(r) = Σ_{1≤i<j≤n} U(r_i − r_j)   subject to  1 ≥ r_1 ≥ r_2 ≥ … ≥ r_n ≥ 0.

For strictly increasing U the optimum has r_1 = 1 and r_n = 0 (Lemma C.1), and it is symmetric,
r_k + r_{n+1−k} = 1 (the program is invariant under r ↦ 1 − reversed r). For concave U we solve
it by projected Newton on the top half (:func:`_projected_newton`): the Hessian of S is a dense
weighted Laplacian, factorised by Cholesky at size n/2; the variables are distances to the
nearer end, so the gaps of order n^{−1/a} next to r_1 of a Beta(a, a) profile keep their
precision; the singular utilities (log, x_inv, x^γ, −x^{−γ} with eps = 0: U(0) = −inf or
U'(0) = ∞) are never evaluated at a tie. A solution for n is warm-started from the one for n/4,
interpolated on log–log axes near the ends, so Newton needs about five steps at any n. The
exponentiated-gradient ascent on the gap simplex r_k = Σ_{m≥k} g_m, Σ g = 1, is kept for
utilities that are not concave and as an independent check.

Optimality is certified by the Frank–Wolfe duality gap ``max_m ∂S/∂g_m − ⟨g, ∂S/∂g⟩``, which
bounds S(r*) − S(r) for concave U and is zero exactly at a KKT point.

Pure torch/numpy/scipy: no training code here. The same utility objects that training uses
(``rcollapse.maths.utilities``) are passed in, extensions included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import stats


@dataclass
class CollapseSolution:
    rewards: np.ndarray  # sorted descending, r_1 = 1, r_n = 0
    # min(r_k, 1 − r_k) for each reward, never formed as 1 − r_k: next to r_1 = 1 the gaps fall
    # far below the spacing of doubles near 1 (≈ 1e−19 for x^0.75 at n = 512), where r_k rounds
    # to 1.0 but its distance to 1 keeps its precision
    distances_to_end: np.ndarray
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


def _gaps_to_distances_to_end(g: torch.Tensor) -> torch.Tensor:
    """min(r_k, 1 − r_k) from the gaps (Σ g = 1): 1 − r_k = Σ_{m < k} g_m, summed from the top
    so that it keeps its precision where r_k rounds to 1."""
    r = _gaps_to_rewards(g)
    head = torch.cat([g.new_zeros(1), torch.cumsum(g, 0)])
    return torch.where(r > 0.5, head, r)


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
                   warm_start_below: int = 50, method: str = "auto") -> CollapseSolution:
    """The collapsed reward vector for ``n`` completions under ``utility`` (sorted descending).

    Concave utilities are solved by projected Newton on the symmetric half (see
    :func:`_projected_newton`), warm-started from the solution for n/4 when n is large; a utility
    whose Hessian is not negative semi-definite (the convex ``x2``) falls back to exponentiated
    gradient on the gap simplex (``method="exponentiated_gradient"`` forces it: slower, kept as
    an independent check). ``max_iter`` caps the iterations at the top level; ``tol`` is the
    relative Frank–Wolfe duality gap to reach.

    Safe to call under ``torch.no_grad`` / ``inference_mode`` (e.g. from a Lightning test step):
    the gradients it needs are computed in their own autograd context.
    """
    if n < 2:
        raise ValueError(f"stage.theory.n must be >= 2, got {n}")
    if getattr(utility, "prompt_aware", False):
        raise ValueError("pass a fixed utility: for a prompt-aware one, use utility.for_openness(s)")
    if method not in ("auto", "exponentiated_gradient"):
        raise ValueError(f"method must be 'auto' or 'exponentiated_gradient', got {method!r}")
    with torch.inference_mode(False), torch.enable_grad():
        return _solve_collapse(utility, n, tol, max_iter, block, warm_start_below, method == "auto")


def _solve_collapse(utility, n, tol, max_iter, block, warm_start_below, newton=True) -> CollapseSolution:
    """:func:`solve_collapse` for one n, warm-started from its own solution for n/4."""
    from rcollapse.maths.utilities import LinearUtility

    h = n // 2
    if isinstance(utility, LinearUtility):
        # S is linear, Σ_k (n + 1 − 2k) r_k: top half at 1, bottom half at 0, the middle (odd n)
        # has coefficient 0 and any value is optimal; we take ½ (the symmetric solution).
        k = np.arange(1, n + 1)
        r = np.where(k < (n + 1) / 2, 1.0, np.where(k > (n + 1) / 2, 0.0, 0.5))
        value, _ = objective_and_gradient(utility, torch.tensor(r, dtype=torch.float64), block)
        return CollapseSolution(r, np.minimum(r, 1 - r), value, 0.0, 0)
    if n > warm_start_below:
        # the coarse levels only need to be good starting points
        coarse = _solve_collapse(utility, n // 4, tol, min(max_iter, 50), block, warm_start_below, newton)
        t0 = _interpolate_half(coarse.distances_to_end[: n // 4 // 2], n // 4, n)
    else:
        t0 = np.arange(h) / (n - 1)  # equally spaced
    if newton:
        try:
            return _projected_newton(utility, torch.tensor(t0, dtype=torch.float64), n, tol, max_iter, block)
        except _NotConcave:
            pass
    r0 = _rewards(torch.tensor(t0, dtype=torch.float64), n).numpy()
    g0 = np.maximum(-np.diff(r0), 1e-12 / n)
    g = torch.tensor(g0 / g0.sum(), dtype=torch.float64)
    g, value, gap, it = _exponentiated_gradient(utility, g, tol, max_iter, block)
    return CollapseSolution(_gaps_to_rewards(g).numpy(), _gaps_to_distances_to_end(g).numpy(), value, gap, it)


def _interpolate_half(coarse_t: np.ndarray, m: int, n: int) -> np.ndarray:
    """Top-half distances t for n from those for m < n, by position k/(n−1) in [0, ½].

    Near r = 1 a Beta(a, a) profile has t ∝ (k/n)^{1/a}: gaps as small as n^{−1/a} that linear
    interpolation would overestimate by (n/m)^{1/a}, so where no coarse point ties with r_1 we
    interpolate log t against log position (and extrapolate the first coarse slope below it).
    """
    coarse_p = np.append(np.arange(coarse_t.size) / (m - 1), 0.5)
    coarse_t = np.append(coarse_t, 0.5)
    p = np.arange(n // 2) / (n - 1)
    if coarse_t.size < 3 or np.any(coarse_t[1:] <= 0):
        return np.interp(p, coarse_p, coarse_t)
    log_p, log_t = np.log(coarse_p[1:]), np.log(coarse_t[1:])
    slope = (log_t[1] - log_t[0]) / (log_p[1] - log_p[0])
    t = np.zeros_like(p)
    inner = p[1:]
    below = inner < coarse_p[1]
    t[1:][below] = np.exp(log_t[0] + slope * (np.log(inner[below]) - log_p[0]))
    t[1:][~below] = np.exp(np.interp(np.log(inner[~below]), log_p, log_t))
    return np.maximum.accumulate(t)


class _NotConcave(Exception):
    """The Hessian of S is not negative semi-definite: Newton does not apply."""


def _derivatives(utility, x: torch.Tensor):
    """U(x), U'(x), U''(x) elementwise, by autograd."""
    x = x.detach().requires_grad_(True)
    value = utility(x)
    (d1,) = torch.autograd.grad(value.sum(), x, create_graph=True)
    if d1.requires_grad:
        (d2,) = torch.autograd.grad(d1.sum(), x)
    else:  # U' constant (no second-order graph)
        d2 = torch.zeros_like(x)
    return value.detach(), d1.detach(), d2


def _infinite_slope_at_zero(utility) -> bool:
    """U'(0+) = ∞ (log, x_inv, x^γ, −x^{−γ} with eps = 0): the optimum has no ties."""
    _, slope, _ = _derivatives(utility, torch.tensor([1e-200], dtype=torch.float64))
    return not bool(torch.isfinite(slope).all()) or float(slope[0]) > 1e30


def _rewards(t: torch.Tensor, n: int) -> torch.Tensor:
    """The full symmetric vector from the top half's distances: r_k = 1 − t_k, r_{n−1−k} = t_k."""
    return torch.cat([1 - t, t.new_full((n % 2,), 0.5), t.flip(0)])


def _distances_to_end(t: torch.Tensor, n: int) -> torch.Tensor:
    """min(r_k, 1 − r_k) of the symmetric vector :func:`_rewards` builds from t: t_k on both halves."""
    return torch.cat([t, t.new_full((n % 2,), 0.5), t.flip(0)])


@dataclass
class _HalfPass:
    objective: float
    grad: torch.Tensor  # ∂S/∂r_k for the top half k < n // 2
    curvature: torch.Tensor  # −U''(a_kj), rows k < n//2; columns: top half, middle, mirrors


def _half_pass(utility, t: torch.Tensor, n: int, block: int) -> _HalfPass:
    """S, ∂S/∂r and the pair curvatures of a symmetric r from the top half's rows only.

    For a symmetric r (r_k + r_{n−1−k} = 1) the pair (i, j) and its mirror (n−1−j, n−1−i) have
    the same argument r_i − r_j, so S = ½ Σ_k Σ_{j≠k} U(a_kj) needs only the top half's rows
    (each counted twice) and the middle one's. Each argument is formed from distances to the
    nearer end, so gaps far below the spacing of doubles near 1 keep their relative precision:
    r_k − r_l = t_l − t_k in the top half, ½ − t_k to the middle, 1 − t_k − t_l to the mirror
    of l. Columns: the top half by index, the middle (odd n), the mirrors ordered by l.
    """
    h = t.numel()
    odd = n % 2
    index = torch.arange(h)
    zero = torch.zeros((), dtype=t.dtype)
    grad = torch.empty(h, dtype=t.dtype)
    curvature = torch.empty(h, 2 * h + odd, dtype=t.dtype)
    total = 0.0
    for start in range(0, h, block):
        rows = torch.arange(start, min(start + block, h))
        later = index[None, :] > rows[:, None]  # within the top half: j > k in rank order
        same = index[None, :] == rows[:, None]
        tk = t[rows, None]
        top = torch.where(later, t[None, :] - tk, tk - t[None, :]).masked_fill(same, 1.0)
        args = torch.cat([top, (0.5 - tk).expand(-1, odd), 1 - tk - t[None, :]], 1)
        value, d1, d2 = _derivatives(utility, args)
        sign = torch.ones_like(args)
        sign[:, :h] = torch.where(later, 1.0, -1.0)
        keep = torch.ones_like(args, dtype=torch.bool)
        keep[:, :h] = ~same
        total += float(torch.where(keep, value, zero).sum())
        grad[rows] = torch.where(keep, sign * d1, zero).sum(1)
        curvature[rows] = torch.where(keep, -d2, zero)
    if odd:  # the middle row: 2 Σ_k U(½ − t_k), halved
        total += float(utility(0.5 - t).sum())
    return _HalfPass(total, grad, curvature)


def _frank_wolfe_gap(grad_top: torch.Tensor, t: torch.Tensor, n: int) -> float:
    """max_m ∂S/∂g_m − ⟨g, ∂S/∂g⟩ over the gaps g_m = r_m − r_{m+1} (0 exactly at the optimum)."""
    grad = torch.cat([grad_top, grad_top.new_zeros(n % 2), -grad_top.flip(0)])
    grad_g = torch.cumsum(grad, 0)[:-1]  # ∂S/∂g_m = Σ_{k ≤ m} ∂S/∂r_k
    top_gaps = t[1:] - t[:-1]
    middle = (0.5 - t[-1:]).repeat(2) if n % 2 else 1 - 2 * t[-1:]
    gaps = torch.cat([top_gaps, middle, top_gaps.flip(0)])
    return float(grad_g.max() - (gaps * grad_g).sum())


def _projected_newton(utility, t: torch.Tensor, n: int, tol: float, max_iter: int, block: int):
    """Projected Newton (Bertsekas 1982) on the symmetric half of the program.

    The optimum is symmetric, r_k + r_{n+1−k} = 1 (the program is invariant under
    r ↦ 1 − reversed r and, for concave U, an average of optima is optimal), so the variables
    are the top half's distances to 1, t_k = 1 − r_k, k = 2..⌊n/2⌋, in the box [0, ½] (t_1 = 0).
    The Hessian of S is the negated weighted Laplacian Σ_{i<j} U''(r_i − r_j)(e_i − e_j)(e_i −
    e_j)ᵀ; folded onto t it is dense and of size n/2, factorised by Cholesky each step (the
    pair pass over n²/2 pairs and the O(n³/24) factorisation are the costs). Bounds are handled
    by the ε-active set; where U'(0+) = ∞ no bound is active at the optimum and the step follows
    a path that keeps r strictly ordered (:func:`_retract`); a step is backtracked until S
    increases (Armijo); once the Newton decrement is at the rounding level of S, a full
    step is taken while it shrinks the Frank–Wolfe gap (judged by the gradient, not by S's last
    digits). Stops when the relative gap is below ``tol`` or stops shrinking.
    """
    h = t.numel()
    t = t.clone()
    t[0] = 0.0
    state = _half_pass(utility, t, n, block)
    if h <= 1:  # n = 2 or 3: nothing free
        return _solution(t, n, state, 0)
    if not math.isfinite(state.objective):
        raise _NotConcave  # the start is outside the domain; let the gap solver handle it
    var = torch.arange(1, h)
    mirror = h + n % 2 + var
    strict = _infinite_slope_at_zero(utility)
    it = 0
    for it in range(1, max_iter + 1):
        scale = max(abs(state.objective), 1.0)
        if _frank_wolfe_gap(state.grad, t, n) <= tol * scale:
            break
        x = t[1:]
        grad = -2 * state.grad[1:]  # ∂S/∂t_k = −∂S/∂r_k + ∂S/∂r_{n−1−k}
        w = state.curvature[1:]
        if bool((w < -1e-12 * w.abs().max().clamp_min(1e-300)).any()):
            raise _NotConcave
        hess = 2 * (torch.diag(w.sum(1)) - w[:, var] + w[:, mirror])  # −∂²S/∂t², PSD
        step = _newton_step(x, grad, hess, 0.0, 0.5, bounded=not strict)
        decrement = float(grad @ step)  # the Newton decrement λ², ≈ 2 (S* − S)
        alpha = 1.0
        while True:
            x_new = _retract(x, step, alpha) if strict else (x + alpha * step).clamp(0.0, 0.5)
            predicted = float((grad * (x_new - x)).sum())
            t_new = torch.cat([t[:1], x_new])
            ordered = not strict or bool((t_new[1:] > t_new[:-1]).all() and t_new[-1] < 0.5)
            trial = _half_pass(utility, t_new, n, block) if ordered and predicted > 0 else None
            finite = trial is not None and math.isfinite(trial.objective) and bool(torch.isfinite(trial.grad).all())
            if decrement <= 1e-11 * scale:
                # S cannot see the step any more: take it in full if it shrinks the gap, else stop
                if finite and (_frank_wolfe_gap(trial.grad, t_new, n) < _frank_wolfe_gap(state.grad, t, n)):
                    t, state = t_new, trial
                    break
                return _solution(t, n, state, it)
            if finite and trial.objective >= state.objective + 1e-4 * predicted:
                t, state = t_new, trial
                break
            alpha *= 0.5 if finite else 0.1
            if alpha < 1e-20:  # no ascent along this direction at any step: at rounding level
                return _solution(t, n, state, it)
    return _solution(t, n, state, it)


def _retract(x: torch.Tensor, step: torch.Tensor, alpha: float) -> torch.Tensor:
    """x + α·step along a path that keeps r strictly ordered.

    In gaps: those of the top half, t_{k+1} − t_k (t_1 = 0), and the distance ½ − t_last to
    the middle, which sum to ½. A shrinking gap g moves as g·exp(α·Δg/g) instead of
    g + α·Δg, a growing one additively, and all are rescaled to sum to ½: the same first-order
    step, so Newton's quadratic convergence is kept, but gaps of 1e−13 next to r_1 (x^γ with
    eps = 0 at large n) cannot cross zero, which would force a tiny step on every coordinate.
    """
    gaps = torch.diff(x, prepend=x.new_zeros(1))
    change = alpha * torch.diff(step, prepend=step.new_zeros(1))
    gaps = torch.cat([gaps, 0.5 - x[-1:]])
    change = torch.cat([change, -change.sum().reshape(1)])
    ratio = (change / gaps).clamp_max(0.0)
    moved = torch.where(change < 0, gaps * torch.exp(ratio), gaps + change)
    moved = moved * (0.5 / moved.sum())
    return torch.cumsum(moved[:-1], 0)


def _newton_step(x, grad, hess, lower: float, upper: float, bounded: bool = True) -> torch.Tensor:
    """The projected-Newton direction: Newton on the free variables, scaled gradient on the
    ε-active bounds (those at a bound whose gradient points outward); plain Newton if not
    ``bounded``."""
    diag = hess.diagonal().clamp_min(1e-300)
    eps = min(1e-3, float(((x + grad / diag).clamp(lower, upper) - x).norm()))
    active = ((x <= lower + eps) & (grad < 0)) | ((x >= upper - eps) & (grad > 0))
    if not bounded:
        active = torch.zeros_like(active)
    free = ~active
    step = torch.zeros_like(x)
    step[active] = grad[active] / diag[active]
    if bool(free.any()):
        sub = hess[free][:, free]
        chol, info = torch.linalg.cholesky_ex(sub)
        top = float(sub.diagonal().max())
        damping = 1e-12 * top
        while int(info) != 0:  # singular (flat directions): Levenberg damping
            if damping > 1e6 * top:
                raise _NotConcave
            chol, info = torch.linalg.cholesky_ex(sub + damping * torch.eye(sub.shape[0], dtype=sub.dtype))
            damping *= 100
        step[free] = torch.cholesky_solve(grad[free, None], chol)[:, 0]
    return step


def _solution(t: torch.Tensor, n: int, state: _HalfPass, iterations: int) -> CollapseSolution:
    return CollapseSolution(_rewards(t, n).numpy(), _distances_to_end(t, n).numpy(), state.objective,
                            _frank_wolfe_gap(state.grad, t, n), iterations)


# ---- limits as n → ∞ (Section 4) ----------------------------------------------------------------


@dataclass
class Limit:
    """A limit law of the collapsed rewards: a law on [0, 1], symmetric about ½ like every
    solution of the program (Theorem 5: the symmetric measure maximising E U(|X − X'|));
    :func:`ks_distance_to_limit` reads it near 1 through that symmetry."""

    name: str
    params: dict
    cdf: object  # F(x) = P(X ≤ x), callable on numpy arrays
    atoms: dict = field(default_factory=dict)  # point masses {location: mass}; {} if continuous

    def cdf_left(self, x: np.ndarray) -> np.ndarray:
        """F(x−) = P(X < x): F less the atoms at x."""
        x = np.asarray(x, float)
        return np.asarray(self.cdf(x), float) - sum(mass * (x == at) for at, mass in self.atoms.items())


def _two_point_cdf(x) -> np.ndarray:
    """½ δ₀ + ½ δ₁: F = 0 below 0, ½ on [0, 1), 1 from 1 on."""
    x = np.asarray(x, float)
    return np.where(x < 0, 0.0, np.where(x < 1, 0.5, 1.0))


def limit_distribution(utility) -> Limit | None:
    """The known limit law of the collapsed rewards for the un-shifted utility, if any.

    Beta(½, ½) for log; Uniform for x_inv; Beta((1−γ)/2, (1−γ)/2) for class 1 (power) and the
    Box–Cox family; Beta((1+γ)/2, (1+γ)/2) for class 2 (neg_power), uniform for γ ≥ 1; two points
    for x. None where no closed form is known (logsigmoid: see :func:`logsigmoid_endpoint_mass`).
    """
    from rcollapse.maths.utilities import LinearUtility

    if isinstance(utility, LinearUtility):
        return Limit("two_point", {"p0": 0.5, "p1": 0.5}, _two_point_cdf, atoms={0.0: 0.5, 1.0: 0.5})
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
    """Kolmogorov–Smirnov distance sup |F_n − F| between an empirical sample and a continuous law's
    CDF. For a collapse solution use :func:`ks_distance_to_limit`, exact where rewards round to
    0 or 1 and for laws with atoms."""
    x = np.sort(np.asarray(sample, float))
    n = x.size
    f = np.asarray(cdf(x), float)
    upper = np.arange(1, n + 1) / n - f
    lower = f - np.arange(0, n) / n
    return float(max(upper.max(), lower.max()))


def ks_distance_to_limit(solution: CollapseSolution, limit: Limit) -> float:
    """Kolmogorov–Smirnov distance sup_x |F_n(x) − F(x)| between a solution's rewards and a limit law.

    Exact where the rewards round: each reward is placed by its side of ½ and its distance d to
    that end (``solution.distances_to_end``), and near 1 the law is read through its symmetry,
    F(1 − d) = 1 − F(d−) and F((1 − d)−) = 1 − F(d), so 1 − d is never formed (for x^0.75 at
    n = 512, d ≈ 1e−19 next to r_1: rounded to 1.0, such rewards would double the distance).
    Exact for laws with atoms (the two-point limit of ``x``): between the jumps of F_n and of F,
    F_n is constant and F monotone, so the supremum is attained at a jump p, from the right or
    from the left; it is taken over |F_n(p) − F(p)| and |F_n(p−) − F(p−)| at every reward and
    every atom p.
    """
    near_one = solution.rewards > 0.5
    d = np.asarray(solution.distances_to_end, float)
    low, high = np.sort(d[~near_one]), np.sort(d[near_one])  # the rewards d, and 1 − d
    n = d.size
    atoms = np.array(sorted(limit.atoms), float)
    p_near_one = np.concatenate([near_one, atoms > 0.5])
    p_d = np.concatenate([d, np.minimum(atoms, 1 - atoms)])
    # counts of rewards ≤ p and < p; a reward near 0 lies below every one near 1
    at_most = np.where(p_near_one, n - np.searchsorted(high, p_d, "left"), np.searchsorted(low, p_d, "right"))
    below = np.where(p_near_one, n - np.searchsorted(high, p_d, "right"), np.searchsorted(low, p_d, "left"))
    f, f_left = np.asarray(limit.cdf(p_d), float), limit.cdf_left(p_d)
    law_at = np.where(p_near_one, 1 - f_left, f)  # F(p)
    law_below = np.where(p_near_one, 1 - f, f_left)  # F(p−)
    return float(max(np.abs(at_most / n - law_at).max(), np.abs(below / n - law_below).max()))


def wasserstein1_to_cdf(sample, cdf, grid: int = 20001) -> float:
    """W1 = ∫₀¹ |F_n(t) − F(t)| dt between an empirical sample on [0, 1] and a law's CDF."""
    t = np.linspace(0, 1, grid)
    x = np.sort(np.asarray(sample, float))
    emp = np.searchsorted(x, t, side="right") / x.size
    return float(np.trapezoid(np.abs(emp - np.asarray(cdf(t), float)), t))
