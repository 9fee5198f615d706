"""Utility design, the inverse problem: which ``U`` collapses to a given reward profile?

The forward problem (``rcollapse.maths.theory``) maps a utility to its collapsed reward profile. Here
a target profile (a Beta(a, b), a list of quantiles, one target per prompt type or per
open-endedness score) is mapped back to a utility family and parameter.

Every target is held as its quantile function ``Q: [0, 1] → [0, 1]``; W1 between two laws on
the line is ``∫₀¹ |Q₁(p) − Q₂(p)| dp``, and between the ``n`` collapsed rewards and a target "at
n" it is the mean of ``|r_(k) − Q(k/(n−1))|`` over the ranks k = 0..n−1 (the target's own
n-point rank profile: same endpoints 0 and 1 as every collapsed solution, so an exact match is
possible at any n).

**Symmetry.** For strictly concave U the collapsed profile is symmetric, ``r_i + r_{n+1−i} = 1``
(Theorem 1), so only laws with ``Q(p) + Q(1−p) = 1`` are attainable. The nearest symmetric law
in W1 is the quantile average ``Q_s(p) = (Q(p) + 1 − Q(1−p))/2`` (for each pair p, 1−p the
cost ``|Q(p) − x| + |Q(1−p) − (1−x)|`` is at least ``|Q(p) + Q(1−p) − 1|``, with equality at
the midpoint, which is monotone in p), and the irreducible gap is
``W1(Q, Q_s) = ½ ∫₀¹ |Q(p) + Q(1−p) − 1| dp``. The design then fits the symmetrised target;
its error is reported apart from the gap (total ≤ gap + design error).

**Closed forms** (n → ∞, un-shifted U, the paper's Appendix A.1): a symmetric Beta(c, c)
target is the limit of

* ``power`` γ = 1 − 2c for c < ½ (class 1), ``log`` at c = ½,
* ``neg_power`` γ = 2c − 1 for ½ < c < 1 (class 2), ``x_inv`` at c = 1,
* ``x`` as c → 0 (two points); c > 1 is not attained (class 2 stops at uniform),

i.e. the Box–Cox γ = 1 − 2c throughout. One continuous parameter θ covers the classes:
θ ∈ (0, 1) power γ = θ, θ = 0 log, θ < 0 neg_power γ = −θ (θ = −1: x_inv's limit; θ < −1 is
allowed at finite n, where neg_power with γ > 1 still differs from x_inv).

**Search.** At finite n, and with the shift ε > 0 that training needs, the limit is not exact:
θ is refined by a grid then a bounded Brent search of the solver's profile against the target
at n. ``logsigmoid`` has no closed-form limit: its ``scale`` is searched the same way (log axis).

Pure numpy/scipy/torch; no Hydra here (``rcollapse.design`` is the entry point).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

from rcollapse.maths.theory import solve_collapse
from rcollapse.maths.utilities import (
    BoxCoxUtility,
    InverseUtility,
    LinearUtility,
    LogSigmoidUtility,
    LogUtility,
    NegPowerUtility,
    PowerUtility,
)

# probability grid (midpoints) for W1 between two quantile functions
_GRID = (np.arange(4000) + 0.5) / 4000
THETA_MIN = -10.0  # most negative θ searched (neg_power γ = 10)
THETA_MAX = 0.995  # power γ below 1 (γ → 1 is x)
# the search's first pass over θ: with the shift eps > 0 the best θ at n = 512 lies far from the
# limit's (Beta(1, 1): θ ≈ −8 for eps = 0.1, against −1 in the limit), so the whole range is scanned
THETA_GRID = np.array([-10, -7, -5, -3.5, -2.5, -1.75, -1.25, -1, -0.75, -0.5, -0.25, 0, 0.25, 0.5, 0.75,
                       0.9, THETA_MAX])
SCALE_RANGE = (0.25, 400.0)  # logsigmoid scales searched
LOGSIGMOID_MARGIN = 2e-3  # W1 by which logsigmoid must beat the classes to be chosen (family=auto)
FAMILIES = ("auto", "classes", "logsigmoid")
_CLASS_TARGETS = {
    "x": "rcollapse.maths.utilities.LinearUtility",
    "log": "rcollapse.maths.utilities.LogUtility",
    "x_inv": "rcollapse.maths.utilities.InverseUtility",
    "power": "rcollapse.maths.utilities.PowerUtility",
    "neg_power": "rcollapse.maths.utilities.NegPowerUtility",
    "logsigmoid": "rcollapse.maths.utilities.LogSigmoidUtility",
}


# ---- targets ------------------------------------------------------------------------------------


@dataclass
class Target:
    """A reward profile on [0, 1], as its (vectorised, nondecreasing) quantile function."""

    name: str
    params: dict
    quantile: object  # Q(p), p in [0, 1] → [0, 1]

    def rank_profile(self, n: int) -> np.ndarray:
        """The target at n: Q(k/(n−1)), k = 0..n−1, ascending (endpoints Q(0), Q(1))."""
        return np.asarray(self.quantile(np.arange(n) / (n - 1)), float)


def beta_target(a: float, b: float | None = None) -> Target:
    b = a if b is None else b
    for key, v in (("a", a), ("b", b)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{key} must be a number > 0 for a Beta target, got {v!r}")
    law = stats.beta(float(a), float(b))
    return Target("beta", {"a": float(a), "b": float(b)}, lambda p: law.ppf(np.clip(p, 0, 1)))


def quantile_target(q, p=None) -> Target:
    """A target given by quantiles ``q`` (rewards in [0, 1], nondecreasing) at levels ``p``
    (default: equally spaced from 0 to 1, i.e. ``q`` is a reward-by-rank profile, worst first);
    linear in between, flat beyond the given levels."""
    q = np.asarray(list(q), float)
    if q.ndim != 1 or q.size < 2:
        raise ValueError(f"q must be a list of at least 2 quantiles, got {q.tolist()}")
    p = np.linspace(0, 1, q.size) if p is None else np.asarray(list(p), float)
    if p.shape != q.shape:
        raise ValueError(f"p must have as many levels as q ({q.size}), got {p.size}")
    if np.any(~np.isfinite(q)) or q.min() < 0 or q.max() > 1:
        raise ValueError(f"q must lie in [0, 1], got {q.tolist()}")
    if np.any(np.diff(q) < 0) or np.any(np.diff(p) <= 0) or p.min() < 0 or p.max() > 1:
        raise ValueError(f"q must be nondecreasing and p increasing in [0, 1], got q={q.tolist()}, p={p.tolist()}")
    return Target("quantiles", {"q": q.tolist(), "p": p.tolist()}, lambda x: np.interp(x, p, q))


def target_from_spec(spec) -> Target:
    """A target from a config value: ``[a, b]`` or ``[a]`` (Beta), ``{a:, b:}`` (Beta),
    ``{q: [...], p: [...]}`` (quantiles) or a number a (Beta(a, a))."""
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return beta_target(float(spec))
    if isinstance(spec, dict) or hasattr(spec, "keys"):
        spec = dict(spec)
        if spec.get("q") is not None:
            return quantile_target(spec["q"], spec.get("p"))
        if spec.get("a") is not None:
            return beta_target(float(spec["a"]), None if spec.get("b") is None else float(spec["b"]))
    elif spec is not None:
        values = list(spec)
        if len(values) in (1, 2):
            return beta_target(*(float(v) for v in values))
    raise ValueError(f"a target is [a, b], {{a: , b: }}, {{q: [...]}} or a number a; got {spec!r}")


def symmetrise(target: Target) -> Target:
    """The nearest symmetric law in W1: Q_s(p) = (Q(p) + 1 − Q(1−p))/2."""
    q = target.quantile
    return Target(f"symmetrised {target.name}", dict(target.params),
                  lambda p: 0.5 * (np.asarray(q(p)) + 1 - np.asarray(q(1 - np.asarray(p)))))


def w1(q1, q2) -> float:
    """W1 = ∫₀¹ |Q₁ − Q₂| dp between two quantile functions."""
    return float(np.mean(np.abs(np.asarray(q1(_GRID)) - np.asarray(q2(_GRID)))))


def symmetry_gap(target: Target) -> float:
    """W1(target, its symmetrisation) = ½ ∫ |Q(p) + Q(1−p) − 1| dp: what no concave U can remove."""
    return w1(target.quantile, symmetrise(target).quantile)


def w1_at_n(rewards: np.ndarray, target: Target) -> float:
    """W1 between the n collapsed rewards and the target's n-point rank profile."""
    return float(np.mean(np.abs(np.sort(rewards) - target.rank_profile(len(rewards)))))


def w1_to_law(rewards: np.ndarray, target: Target) -> float:
    """W1 between the n rewards' empirical law and the continuous target (∫|Q_n − Q| dp)."""
    x = np.sort(np.asarray(rewards, float))
    emp = x[np.minimum((_GRID * x.size).astype(int), x.size - 1)]
    return float(np.mean(np.abs(emp - np.asarray(target.quantile(_GRID)))))


def best_beta_shape(target: Target, c_max: float = 20.0) -> float:
    """The c of the symmetric Beta(c, c) nearest the (symmetrised) target in W1."""
    if target.name == "beta" and target.params["a"] == target.params["b"]:
        return target.params["a"]
    sym = symmetrise(target)

    def loss(log_c):
        law = stats.beta(math.exp(log_c), math.exp(log_c))
        return w1(law.ppf, sym.quantile)

    res = optimize.minimize_scalar(loss, bounds=(math.log(0.01), math.log(c_max)), method="bounded",
                                   options={"xatol": 1e-5})
    return float(math.exp(res.x))


# ---- the utility classes as one parameter -------------------------------------------------------


def theta_from_beta(c: float) -> float:
    """Box–Cox γ = 1 − 2c of the class whose un-shifted limit is Beta(c, c) (c ≤ 1; c > 1 is
    not attained: clipped to c = 1, uniform)."""
    return 1.0 - 2.0 * min(c, 1.0)


def limit_beta_of_theta(theta: float) -> float | None:
    """c of the limit Beta(c, c) of θ (n → ∞, eps = 0); None for θ ≥ 1 (two points)."""
    if theta >= 1:
        return None
    return min((1.0 - theta) / 2.0, 1.0)


def class_of(theta: float) -> tuple[str, dict]:
    """(config name, parameters) of the class with parameter θ."""
    if theta >= 1:
        return "x", {}
    if abs(theta) < 1e-6:
        return "log", {}
    if theta > 0:
        return "power", {"gamma": theta}
    if theta == -1:
        return "x_inv", {}
    return "neg_power", {"gamma": -theta}


def make_utility(family: str, params: dict, eps: float):
    """The utility object of a design (the same classes training instantiates)."""
    if family == "x":
        return LinearUtility(eps=eps)
    if family == "log":
        return LogUtility(eps=eps)
    if family == "x_inv":
        return InverseUtility(eps=eps)
    if family == "power":
        return PowerUtility(params["gamma"], eps=eps)
    if family == "neg_power":
        return NegPowerUtility(params["gamma"], eps=eps)
    if family == "logsigmoid":
        return LogSigmoidUtility(scale=params["scale"], eps=eps)
    if family == "box_cox":
        return BoxCoxUtility(params["gamma"], eps=eps)
    raise ValueError(f"unknown utility family {family!r}")


def profile(family: str, params: dict, eps: float, n: int) -> np.ndarray:
    """The collapsed rewards at n, ascending (cached: a search revisits its best point)."""
    return _profile(family, tuple(sorted(params.items())), float(eps), int(n)).copy()


@functools.lru_cache(maxsize=256)
def _profile(family: str, params: tuple, eps: float, n: int) -> np.ndarray:
    return np.sort(solve_collapse(make_utility(family, dict(params), eps), n).rewards)


# ---- the search ---------------------------------------------------------------------------------


def _search(loss, grid, x0: float | None, xatol: float, maxiter: int):
    """argmin of a 1-D loss: the grid points (and x0), then bounded Brent between the best
    point's neighbours."""
    xs = np.asarray(grid, float)
    if x0 is not None:
        xs = np.unique(np.append(xs, np.clip(x0, xs.min(), xs.max())))
    values = np.array([loss(x) for x in xs])
    best = int(np.argmin(values))
    left, right = xs[max(best - 1, 0)], xs[min(best + 1, xs.size - 1)]
    res = optimize.minimize_scalar(loss, bounds=(left, right), method="bounded",
                                   options={"xatol": xatol, "maxiter": maxiter})
    if res.fun <= values[best]:
        return float(res.x), float(res.fun)
    return float(xs[best]), float(values[best])


@dataclass
class Candidate:
    family: str  # config name of the utility group
    params: dict  # its parameters (rounded as printed)
    theta: float | None  # the classes' parameter, None for logsigmoid
    w1_at_n: float  # W1(profile at n, symmetrised target at n): the design error
    rewards: np.ndarray = field(repr=False)


def _round_params(family: str, params: dict) -> dict:
    return {k: float(f"{v:.4g}") for k, v in params.items()}


def fit_classes(sym: Target, n: int, eps: float, theta0: float, xatol: float = 2e-3, maxiter: int = 20,
                theta_min: float = THETA_MIN) -> Candidate:
    """Refine θ at n: the class whose collapsed profile at n is nearest the symmetric target."""

    def loss(theta):
        family, params = class_of(float(theta))
        return w1_at_n(profile(family, params, eps, n), sym)

    grid = np.unique(np.append(THETA_GRID[THETA_GRID > theta_min], theta_min))
    theta, _ = _search(loss, grid, theta0, xatol, maxiter)
    family, params = class_of(float(f"{theta:.4g}"))
    params = _round_params(family, params)
    rewards = profile(family, params, eps, n)
    best = Candidate(family, params, float(f"{theta:.4g}"), w1_at_n(rewards, sym), rewards)
    linear = profile("x", {}, eps, n)  # θ = 1, the end of the family
    if w1_at_n(linear, sym) < best.w1_at_n:
        best = Candidate("x", {}, 1.0, w1_at_n(linear, sym), linear)
    return best


def fit_logsigmoid(sym: Target, n: int, eps: float, grid: int = 9, xatol: float = 5e-3,
                   maxiter: int = 15) -> Candidate:
    """Search logsigmoid's ``scale`` (log axis) at n."""

    def loss(log_scale):
        return w1_at_n(profile("logsigmoid", {"scale": math.exp(log_scale)}, eps, n), sym)

    lo, hi = (math.log(s) for s in SCALE_RANGE)
    log_scale, _ = _search(loss, np.linspace(lo, hi, grid), None, xatol, maxiter)
    params = _round_params("logsigmoid", {"scale": math.exp(log_scale)})
    rewards = profile("logsigmoid", params, eps, n)
    return Candidate("logsigmoid", params, None, w1_at_n(rewards, sym), rewards)


def closed_form(c: float) -> dict:
    """The limit design (n → ∞, eps = 0) for a symmetric Beta(c, c) target."""
    for special in (0.5, 1.0):  # log and x_inv, where the fitted c is within 1e-3 of them
        if abs(c - special) < 1e-3:
            c = special
    theta = theta_from_beta(c)
    family, params = class_of(theta)
    note = None
    if c > 1:
        note = (f"Beta({c:.4g}, {c:.4g}) is more concentrated than uniform: no class attains it in the "
                "limit (class 2 stops at uniform, x_inv); the nearest limit is Uniform(0, 1)")
    return {"family": family, "params": _round_params(family, params), "box_cox_gamma": theta,
            "limit": {"a": limit_beta_of_theta(theta), "b": limit_beta_of_theta(theta)}, "note": note}


def design(target: Target, n: int = 8, eps: float = 0.1, family: str = "auto",
           large_n: int | None = 512, refine_large_n: bool = True, max_neg_gamma: float = -THETA_MIN) -> dict:
    """Design a fixed utility for ``target``: the closed form, the design refined at n, its profile
    at ``large_n`` (and a design refined there), with the symmetry gap and the design errors.

    ``max_neg_gamma`` caps neg_power's γ in the search (with eps = 0.1, γ = 10 puts U's slope at 0
    at γ ε^{−γ−1} = 1e12: an Adam-trained model does not mind the scale, a half-precision one may).
    """
    theta_min = -float(max_neg_gamma)
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    sym = symmetrise(target)
    gap = symmetry_gap(target)
    c = best_beta_shape(target)
    limit = closed_form(c)
    theta0 = limit["box_cox_gamma"]
    candidates = []
    big = n > 64  # slower solves: a looser Brent
    if family in ("auto", "classes"):
        candidates.append(fit_classes(sym, n, eps, theta0, theta_min=theta_min,
                                      **({"xatol": 5e-3, "maxiter": 10} if big else {})))
    if family in ("auto", "logsigmoid"):
        candidates.append(fit_logsigmoid(sym, n, eps, **({"grid": 7, "maxiter": 8} if big else {})))
    # the classes have a known limit: logsigmoid is chosen only if better by more than LOGSIGMOID_MARGIN
    best = candidates[0]
    for cand in candidates[1:]:
        if cand.w1_at_n < best.w1_at_n - LOGSIGMOID_MARGIN:
            best = cand
    result = {
        "target": {"name": target.name, "params": target.params},
        "symmetric": gap < 1e-9,
        "symmetry_gap_w1": gap,
        "symmetrised_beta_c": c,
        "w1_symmetrised_to_beta_c": w1(stats.beta(c, c).ppf, sym.quantile) if target.name != "beta"
        or target.params["a"] != target.params["b"] else 0.0,
        "closed_form": limit,
        "n": n,
        "eps": eps,
        "design": _summary(best, target, sym, n, eps),
        "candidates": [_summary(cand, target, sym, n, eps) for cand in candidates],
        "target_at_n": target.rank_profile(n).tolist(),
        "symmetrised_target_at_n": sym.rank_profile(n).tolist(),
    }
    # the classes' limits stop at uniform: a symmetrised target more concentrated than that (a
    # central bump, e.g. the symmetrisation of Beta(1, 0.25)) keeps a further error, at least about
    # W1(symmetrised target, uniform) in the limit
    result["beyond_classes"] = c > 1 + 1e-3
    if result["beyond_classes"]:
        result["uniform_floor_w1"] = w1(sym.quantile, lambda p: np.asarray(p, float))
    if not result["symmetric"]:
        result["message"] = (
            f"the target is not symmetric (Q(p) + Q(1−p) ≠ 1): for every strictly concave U the collapsed "
            f"profile is symmetric (r_i + r_(n+1−i) = 1, Theorem 1), so no single utility reaches it. "
            f"Designed for its nearest symmetric law (quantile average); irreducible W1 = {gap:.4f}")
    if large_n:
        rewards = profile(best.family, best.params, eps, large_n)
        at_large = {"n": large_n, "design_at_n": {
            "w1_to_target": w1_to_law(rewards, target), "w1_to_symmetrised": w1_to_law(rewards, sym),
            "rewards_quantiles": np.quantile(rewards, np.linspace(0, 1, 101)).tolist()}}
        if refine_large_n and best.theta is not None and best.family != "x":
            cand = fit_classes(sym, large_n, eps, theta0, xatol=5e-3, maxiter=10, theta_min=theta_min)
            at_large["refined"] = {**_summary(cand, target, sym, large_n, eps, full=False),
                                   "w1_to_target": w1_to_law(cand.rewards, target),
                                   "w1_to_symmetrised": w1_to_law(cand.rewards, sym)}
            at_large["refined_rewards_quantiles"] = np.quantile(cand.rewards, np.linspace(0, 1, 101)).tolist()
        result["large_n"] = at_large
    return result


def _summary(cand: Candidate, target: Target, sym: Target, n: int, eps: float, full: bool = True) -> dict:
    out = {"family": cand.family, "params": cand.params, "theta": cand.theta,
           "design_error_w1_at_n": cand.w1_at_n,
           "w1_to_target_at_n": w1_at_n(cand.rewards, target),
           "overrides": overrides(cand.family, cand.params, eps)}
    if full:
        out["rewards"] = cand.rewards.tolist()
    return out


# ---- Hydra overrides ----------------------------------------------------------------------------


def overrides(family: str, params: dict, eps: float | None) -> list[str]:
    """``utility=NAME utility.KEY=VALUE ...``: the overrides that train with this utility."""
    out = [f"utility={family}"] + [f"utility.{k}={v:.4g}" for k, v in params.items()]
    if eps is not None and family != "logsigmoid":
        out.append(f"utility.eps={eps:g}")
    return out


def adaptive_overrides(open_design: dict, closed_design: dict, eps: float) -> list[str]:
    """Overrides of ``utility=adaptive`` (conf/utility/adaptive.yaml) with designed sub-utilities."""
    out = ["utility=adaptive", f"utility.eps={eps:g}"]
    for side, d in (("open", open_design), ("closed", closed_design)):
        out.append(f"utility.{side}_utility._target_={_CLASS_TARGETS[d['family']]}")
        # adaptive.yaml's sub-utilities carry only _target_ and eps: parameters are added keys
        out += [f"+utility.{side}_utility.{k}={v:.4g}" for k, v in d["params"].items()]
    return out


def design_types(targets: dict[str, Target], n: int = 8, eps: float = 0.1, family: str = "auto",
                 large_n: int | None = 512, refine_large_n: bool = True,
                 max_neg_gamma: float = -THETA_MIN) -> dict:
    """One design per prompt type (``open``, ``closed``) and the ``adaptive`` overrides."""
    per_type = {side: design(targets[side], n, eps, family, large_n, refine_large_n, max_neg_gamma)
                for side in ("open", "closed")}
    over = adaptive_overrides(per_type["open"]["design"], per_type["closed"]["design"], eps)
    return {"types": per_type, "overrides": over, "n": n, "eps": eps}


def design_openness(scores, targets: list[Target], n: int = 8, eps: float = 0.1) -> dict:
    """``open_endedness`` (Box–Cox, γ linear in the score s) for targets at scores s_i.

    Each target is designed alone in the Box–Cox range γ ∈ [−1, 1) at n; γ(s) is then the
    least-squares line through those γ_i, read at s = −1 (gamma_closed) and +1 (gamma_open),
    clipped to [−1, 0.995], and each score's profile is solved with the line's γ(s_i).
    """
    scores = np.asarray(list(scores), float)
    if scores.size != len(targets) or scores.size < 1:
        raise ValueError(f"s and the targets must have the same length, got {scores.size} and {len(targets)}")
    if np.any(np.abs(scores) > 1):
        raise ValueError(f"s must lie in [-1, 1], got {scores.tolist()}")
    alone = []
    for target in targets:
        sym = symmetrise(target)
        theta0 = max(theta_from_beta(best_beta_shape(target)), -1.0)
        alone.append(fit_classes(sym, n, eps, theta0, theta_min=-1.0).theta)
    gammas = np.minimum(np.asarray(alone, float), THETA_MAX)
    if scores.size == 1 or np.ptp(scores) == 0:
        slope, intercept = 0.0, float(gammas.mean())
    else:
        slope, intercept = np.polyfit(scores, gammas, 1)
    g_closed = float(np.clip(intercept - slope, -1.0, THETA_MAX))
    g_open = float(np.clip(intercept + slope, -1.0, THETA_MAX))
    g_closed, g_open = float(f"{g_closed:.4g}"), float(f"{g_open:.4g}")
    rows = []
    for s, target, g_alone in zip(scores, targets, alone):
        g = g_closed + (s + 1) / 2 * (g_open - g_closed)
        rewards = profile("box_cox", {"gamma": g}, eps, n)
        sym = symmetrise(target)
        rows.append({"s": float(s), "target": {"name": target.name, "params": target.params},
                     "gamma_alone": g_alone, "gamma_line": g, "symmetry_gap_w1": symmetry_gap(target),
                     "design_error_w1_at_n": w1_at_n(rewards, sym), "w1_to_target_at_n": w1_at_n(rewards, target),
                     "rewards": rewards.tolist()})
    over = ["utility=open_endedness", f"utility.gamma_closed={g_closed:.4g}",
            f"utility.gamma_open={g_open:.4g}", f"utility.eps={eps:g}"]
    return {"scores": rows, "gamma_closed": g_closed, "gamma_open": g_open, "overrides": over, "n": n,
            "eps": eps}
