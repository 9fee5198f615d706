"""Diagnosing reward collapse in a trained reward model: pure functions on per-prompt scores.

A reward model scores every completion of every prompt. For prompt ``p`` with scores
``s_1..s_n`` its **normalised profile** is

    q_p = sort_desc((s − min s) / (max s − min s))          (all ½ when max s = min s)

a sample of ``n`` points in [0, 1] with max 1 and min 0: the shape of the prompt's reward
vector, free of the prompt's offset and scale (the quantity reward collapse is about: Theorem 1
of Song et al. 2023 says a collapsed model gives every prompt the solution of the collapse
program, which has r_1 = 1 and r_n = 0, so its normalised profile is the solution itself).

The **pooled profile** of a set ``G`` of prompts is the empirical law of all their normalised
scores together, ``P_G = concat(q_p : p ∈ G)`` (each prompt weighs by its ``n``).

**Dispersion** of ``G``: ``D(G) = mean_{p∈G} W1(q_p, P_G)``, W1 the 1-D Wasserstein-1 distance
between empirical laws (:func:`rcollapse.analysis.collapse_metrics.wasserstein1`, exact, sizes may
differ). ``D(G) = 0`` iff every prompt of ``G`` has the same normalised profile (for equal ``n``).

**Collapse index** (overall): ``D(all prompts)``: how much the prompts' profiles differ.
**Within-group dispersion**: ``Σ_g |g| D(g) / Σ_g |g|`` over the groups of a prompt attribute
(open/closed, an openness bin, a named column). **Between-group distance**: ``W1(P_g, P_h)``
for each pair of groups (for open/closed: ``W1(P_open, P_closed)``), and its maximum over pairs.
A model trained with one fixed ``U`` collapses: within-group dispersion ≈ 0 *and* between-group
distance ≈ 0 (open and closed prompts get the same shape); a prompt-aware model keeps the
within-group dispersion small but separates the groups (between-group distance large).

**Nearest theoretical profile**: for a candidate utility ``U`` the predicted pooled profile of
``G`` is ``concat(solve_collapse(U, n_p).rewards : p ∈ G)`` (the same ``n`` as each prompt);
the candidate minimising ``W1(P_G, predicted)`` is the utility the model behaves as if trained
with.

**Symmetrised matching.** Every candidate's solution is symmetric, ``r_i + r_{n+1−i} = 1``
(Theorem 1: the collapse program is invariant under ``r ↦ 1 − reverse(r)`` and its solution is
unique), so the antisymmetric part of an observed profile is error no candidate can explain.
The comparison therefore uses each prompt's **symmetrised profile**
``(q_p + 1 − reverse(q_p)) / 2``, the W1-nearest symmetric profile, and reports what it
removed, the **asymmetry** ``mean_p W1(q_p, symmetrised q_p)``, on its own. It is the
projection of each prompt onto the set every candidate's solution lies in: per prompt it never
increases the distance to a solution (W1 is the L1 distance of sorted vectors, and the mirror is
an isometry fixing the solution), and it halves the antisymmetric part of the noise. Pooled,
``w1`` may exceed ``w1_raw`` when prompts lean opposite ways and cancel in the raw pool. It can
change the order: a model whose middle ranks sit uniformly high (measured: +0.04 on an x_inv run
at n = 8) otherwise reads as a flatter utility. (Symmetrising the pool instead, which can never
increase the pooled distance, was measured too: it keeps the prompts' noise and roughly doubled
the residuals, 0.005–0.007 → 0.010–0.021, so that `log` was no longer told apart from power(¼).)

**Confidence**: the fraction of bootstrap resamples of the prompts in which a candidate is the
nearest; a best candidate below the confidence level is reported as not told apart from the
runner-up. Resampling prompts does not see the spread between trainings, which for a small
model is as large as the distance between some candidates' predictions (x_inv(ε=0.1) and
logsigmoid(scale=8) are 0.0096 apart at n = 8, while a 400-step run's profile moves by 0.003–0.010
between validations 50 steps apart from step 200 on). So the **consistent set** lists every candidate whose distance
is within ``factor`` (2) times the nearest's: the utilities the model's profile cannot tell from the
nearest. Numpy, plus :mod:`rcollapse.maths.theory` / :mod:`rcollapse.maths.utilities` for the candidates.

**Which scores make the profile** (:func:`model_profile`). The collapse theorems are about a
model trained on rankings: the overall utility (Song et al. 2023, Eq. 1) sums ``U(R(x, y_i) −
R(x, y_j))`` over all pairs ``i < j`` of each prompt's ranked completions, with ``R = sigmoid(f)``
in [0, 1] (their Section 2.2); for such a model the profile is that of ``R``. A model trained on
pairs with the Bradley–Terry loss (a hub reward model, each head of an ensemble) maximises
``log sigmoid(f(x, y_w) − f(x, y_l))``, which is the logsigmoid utility applied to the raw,
unbounded ``f``, one pair at a time: it fixes only differences of ``f`` within a prompt, and
``f + c(x)`` is as good a model for any per-prompt offset ``c(x)``. ``sigmoid(f)`` followed by
min–max normalisation depends on that arbitrary offset (the sigmoid is not affine), so for such a
model the profile is that of the raw ``f``: min–max within the prompt, invariant to ``f + c(x)``
(and to a positive per-prompt scale). Its utility is not inferred (it is logsigmoid by
construction, and the theorems' premises, all pairs of a ranking and a bounded ``R``, do not hold);
what the candidates' distances then describe is the profile's shape.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from rcollapse.analysis.collapse_metrics import wasserstein1

__all__ = [
    "normalised_profile", "pooled_profile", "dispersion", "collapse_report", "Candidate",
    "default_candidates", "candidates_from_grid", "TheoryCache", "nearest_profiles", "group_labels",
    "symmetrised_profile", "profile_asymmetry", "nearest_confidence", "consistent_candidates",
    "TRAINED_ON", "OUTPUTS", "model_profile", "score_spread",
]

# how the reward model was trained (diagnose's reward_model.trained_on) and which of its outputs is
# read (reward_model.output): sigmoid(f) or the raw f
TRAINED_ON = ("rankings", "pairs")
OUTPUTS = ("sigmoid", "raw")


# ---- profiles and the collapse index --------------------------------------------------------


def normalised_profile(scores) -> np.ndarray:
    """The prompt's scores sorted best first and min–max normalised within the prompt.

    ``(s − min s) / (max s − min s)``, sorted descending; a prompt whose scores are all equal
    (no spread at all) gives ``½`` everywhere. NaN or infinite scores raise.
    """
    s = np.asarray(scores, float).ravel()
    if s.size < 2:
        raise ValueError(f"a reward profile needs at least 2 scores, got {s.size}")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"scores must be finite, got {s.tolist()}")
    low, high = s.min(), s.max()
    if high - low <= 1e-12 * max(1.0, abs(high), abs(low)):
        return np.full(s.size, 0.5)
    return np.sort((s - low) / (high - low))[::-1].copy()


def model_profile(raw_scores, trained_on: str = "rankings", output: str = "sigmoid") -> np.ndarray:
    """The normalised profile of one prompt from the model's raw outputs ``f`` (a logit, head 0,
    the heads' mean), as the model was trained (module docstring, "Which scores make the profile").

    ``output="sigmoid"``: the profile of ``R = sigmoid(f)``, the reward a ranking model is trained
    on (Song et al. 2023, Eq. 1 with ``R = sigmoid(f)``); allowed for ``trained_on="rankings"``
    only. ``output="raw"``: the profile of ``f`` itself, ``(f − min f) / (max f − min f)``: unchanged
    by ``f + c`` for any per-prompt constant ``c`` (and by ``a·f``, ``a > 0``), the only profile a
    Bradley–Terry model (``trained_on="pairs"``) determines.
    """
    if trained_on not in TRAINED_ON:
        raise ValueError(f"reward_model.trained_on must be one of {', '.join(TRAINED_ON)}, got {trained_on!r}")
    if output not in OUTPUTS:
        raise ValueError(f"reward_model.output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    if trained_on == "pairs" and output == "sigmoid":
        raise ValueError("reward_model.output=sigmoid with reward_model.trained_on=pairs: a model trained on "
                         "pairs fixes only score differences within a prompt, and sigmoid(f) followed by min-max "
                         "normalisation depends on the arbitrary per-prompt offset it leaves free; use "
                         "reward_model.output=raw (or auto)")
    f = np.asarray(raw_scores, float).ravel()
    if output == "sigmoid":
        f = 0.5 * (1.0 + np.tanh(0.5 * f))  # sigmoid(f), without overflow
    return normalised_profile(f)


def score_spread(raw_scores) -> float:
    """``max f − min f`` of one prompt's raw scores: the width a pair-trained model gives its
    completions. The Bradley–Terry objective on the normalised profile ``q`` of these scores is
    ``Σ log sigmoid(S·(q_i − q_j))`` with ``S`` this spread (logsigmoid with ``scale = S``)."""
    f = np.asarray(raw_scores, float).ravel()
    return float(f.max() - f.min())


def symmetrised_profile(profile) -> np.ndarray:
    """``(q + 1 − reverse(q)) / 2`` for a profile ``q`` sorted best first: the nearest symmetric
    profile in W1 (every collapse solution is symmetric, ``r_i + r_{n+1−i} = 1``)."""
    q = np.asarray(profile, float).ravel()
    return (q + 1.0 - q[::-1]) / 2.0


def profile_asymmetry(profiles: Sequence[np.ndarray]) -> float:
    """``mean_p W1(q_p, symmetrised q_p)``: the part of the profiles no collapse solution has."""
    if not profiles:
        return float("nan")
    return float(np.mean([np.mean(np.abs(np.asarray(p, float) - symmetrised_profile(p))) for p in profiles]))


def pooled_profile(profiles: Sequence[np.ndarray]) -> np.ndarray:
    """All normalised scores of the prompts together, sorted best first (the group's pooled law)."""
    if not profiles:
        return np.empty(0)
    return np.sort(np.concatenate([np.asarray(p, float).ravel() for p in profiles]))[::-1].copy()


def dispersion(profiles: Sequence[np.ndarray]) -> float:
    """``mean_p W1(q_p, P)``: mean W1 between each profile and the pooled profile of them all."""
    if not profiles:
        return float("nan")
    pool = pooled_profile(profiles)
    return float(np.mean([wasserstein1(p, pool) for p in profiles]))


def mean_profile_by_rank(profiles: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean normalised score at each rank position (0 = highest score) and how many prompts have it."""
    n_max = max((len(p) for p in profiles), default=0)
    sums, counts = np.zeros(n_max), np.zeros(n_max, int)
    for p in profiles:
        sums[: len(p)] += p
        counts[: len(p)] += 1
    return sums / np.maximum(counts, 1), counts


def collapse_report(profiles: Sequence[np.ndarray], groups: Sequence[str]) -> dict:
    """The collapse index, per-group dispersions and the between-group distances.

    Returns ``{"collapse_index", "within_group_dispersion", "between_group_distance" (max over
    pairs; NaN with fewer than two groups), "groups": {g: {"num_prompts", "dispersion"}},
    "pairwise": {"g|h": W1(P_g, P_h)}}``; the definitions are in the module docstring.
    """
    if len(profiles) != len(groups):
        raise ValueError(f"{len(profiles)} profiles but {len(groups)} group labels")
    if not profiles:
        raise ValueError("no prompts to diagnose")
    by_group: dict[str, list[np.ndarray]] = {}
    for p, g in zip(profiles, groups, strict=True):
        by_group.setdefault(str(g), []).append(np.asarray(p, float))
    per_group = {g: {"num_prompts": len(ps), "dispersion": dispersion(ps)} for g, ps in sorted(by_group.items())}
    total = sum(v["num_prompts"] for v in per_group.values())
    within = sum(v["num_prompts"] * v["dispersion"] for v in per_group.values()) / total
    pools = {g: pooled_profile(ps) for g, ps in by_group.items()}
    pairwise = {f"{g}|{h}": wasserstein1(pools[g], pools[h]) for g, h in itertools.combinations(sorted(pools), 2)}
    return {
        "collapse_index": dispersion(profiles),
        "within_group_dispersion": float(within),
        "between_group_distance": float(max(pairwise.values())) if pairwise else float("nan"),
        "groups": per_group,
        "pairwise": pairwise,
    }


# ---- group labels ----------------------------------------------------------------------------


def group_labels(openness: Sequence[float], by: str = "type", bins: Sequence[float] | None = None,
                 column: Sequence | None = None) -> list[str]:
    """One label per prompt.

    ``type``: ``open`` if openness > 0 else ``closed`` (the reward stage's rule); ``openness_bin``:
    the openness score's bin ``[a, b)`` among the edges ``bins`` (the last bin closed);
    ``column``: the given values as strings; ``none``: every prompt in ``all``.
    """
    if by == "type":
        return ["open" if float(o) > 0 else "closed" for o in openness]
    if by == "none":
        return ["all"] * len(openness)
    if by == "openness_bin":
        edges = np.asarray(bins if bins is not None else [-1.0, -0.5, 0.0, 0.5, 1.0], float)
        if edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError(f"diagnose.openness_bins must be at least 2 increasing edges, got {edges.tolist()}")
        index = np.clip(np.searchsorted(edges, np.asarray(openness, float), side="right") - 1, 0, edges.size - 2)
        return [f"[{edges[i]:g},{edges[i + 1]:g}{']' if i == edges.size - 2 else ')'}" for i in index]
    if by == "column":
        if column is None or len(column) != len(openness):
            raise ValueError("diagnose.group_by=column needs one value per prompt (diagnose.group_column)")
        return [str(v) for v in column]
    raise ValueError(f"diagnose.group_by must be one of type, openness_bin, column, none; got {by!r}")


# ---- the nearest theoretical profile ---------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Candidate:
    """A candidate utility: its config name (``x``, ``log``, ...) and its parameters."""

    name: str
    params: Mapping = field(default_factory=dict)

    @property
    def label(self) -> str:
        args = ", ".join(f"{k}={v:g}" if isinstance(v, float | int) else f"{k}={v}" for k, v in self.params.items())
        return f"{self.name}({args})" if args else self.name

    def build(self):
        from rcollapse.maths import utilities as u

        classes = {"x": u.LinearUtility, "log": u.LogUtility, "x_inv": u.InverseUtility, "power": u.PowerUtility,
                   "neg_power": u.NegPowerUtility, "logsigmoid": u.LogSigmoidUtility,
                   "box_cox": u.BoxCoxUtility}
        if self.name not in classes:
            raise ValueError(f"diagnose.candidates: unknown utility {self.name!r} (one of {', '.join(classes)})")
        return classes[self.name](**dict(self.params))


def candidates_from_grid(grid: Mapping) -> list[Candidate]:
    """Candidates from ``{name: {param: [values] | value, ...} | null}``; every combination of the lists."""
    out = []
    for name, params in grid.items():
        params = dict(params or {})
        keys = list(params)
        values = [v if isinstance(v, list | tuple) else [v] for v in (params[k] for k in keys)]
        for combo in itertools.product(*values):
            out.append(Candidate(str(name), {k: (float(v) if isinstance(v, int | float) else v)
                                             for k, v in zip(keys, combo, strict=True)}))
    return out


DEFAULT_GRID = {
    "x": {},
    "log": {"eps": 0.1},
    "x_inv": {"eps": 0.1},
    "power": {"gamma": [0.25, 0.5, 0.75], "eps": 0.1},
    # γ = 1 with the same ε is x_inv itself (ε^{−1} − (x+ε)^{−1}), so it is left out
    "neg_power": {"gamma": [0.5, 2.0], "eps": 0.1},
    "logsigmoid": {"scale": [1.0, 2.0, 4.0, 8.0, 16.0]},
}


def default_candidates() -> list[Candidate]:
    """x; log and x_inv (ε = 0.1, the training default); power γ ∈ {¼, ½, ¾}; neg_power γ ∈ {½, 2};
    logsigmoid scale ∈ {1, 2, 4, 8, 16}."""
    return candidates_from_grid(DEFAULT_GRID)


class TheoryCache:
    """``solve_collapse(U, n).rewards`` per (candidate, n), solved once."""

    def __init__(self):
        self._solved: dict[tuple, np.ndarray] = {}

    def profile(self, candidate: Candidate, n: int) -> np.ndarray:
        key = (candidate.name, tuple(sorted(candidate.params.items())), int(n))
        if key not in self._solved:
            from rcollapse.maths.theory import solve_collapse

            self._solved[key] = np.asarray(solve_collapse(candidate.build(), int(n)).rewards, float)
        return self._solved[key]

    def predicted_pool(self, candidate: Candidate, sizes: Iterable[int]) -> np.ndarray:
        """The predicted pooled profile of prompts with these numbers of completions."""
        return np.concatenate([self.profile(candidate, n) for n in sizes])

    def __len__(self) -> int:
        return len(self._solved)


def nearest_profiles(profiles: Sequence[np.ndarray], candidates: Sequence[Candidate],
                     cache: TheoryCache | None = None, symmetrise: bool = True) -> list[dict]:
    """Every candidate with its distance, nearest first (ties keep the candidates' order).

    ``w1`` ranks: ``W1(P, predicted)`` with ``P`` the pooled profile of the prompts, each
    symmetrised first when ``symmetrise`` (see the module docstring); ``w1_raw`` is the same
    distance without symmetrising. The prediction pools the collapse program's solution for
    each prompt's own ``n``. A candidate whose solver fails is listed last with distance NaN
    and its error.
    """
    if not profiles:
        raise ValueError("no prompts to compare with the theory")
    cache = cache if cache is not None else TheoryCache()
    raw_pool = pooled_profile(profiles)
    pool = pooled_profile([symmetrised_profile(p) for p in profiles]) if symmetrise else raw_pool
    sizes = [len(p) for p in profiles]
    rows = []
    for order, cand in enumerate(candidates):
        try:
            predicted = cache.predicted_pool(cand, sizes)
            rows.append({"utility": cand.name, "params": dict(cand.params), "label": cand.label,
                         "w1": float(wasserstein1(pool, predicted)),
                         "w1_raw": float(wasserstein1(raw_pool, predicted)), "_order": order})
        except Exception as err:  # a candidate outside the solver's reach must not hide the others
            rows.append({"utility": cand.name, "params": dict(cand.params), "label": cand.label,
                         "w1": float("nan"), "w1_raw": float("nan"), "error": f"{type(err).__name__}: {err}",
                         "_order": order})
    rows.sort(key=lambda r: (math.isnan(r["w1"]), r["w1"] if not math.isnan(r["w1"]) else 0.0, r["_order"]))
    for r in rows:
        del r["_order"]
    return rows


def nearest_confidence(profiles: Sequence[np.ndarray], candidates: Sequence[Candidate],
                       cache: TheoryCache | None = None, symmetrise: bool = True, resamples: int = 500,
                       seed: int = 0) -> dict[str, float]:
    """For each candidate label, the fraction of ``resamples`` bootstrap resamples of the prompts
    (drawn with replacement, as many as there are) in which it is the nearest, as ranked by
    :func:`nearest_profiles`. Candidates whose solver fails never win. Labels sum to 1."""
    if not profiles:
        raise ValueError("no prompts to resample")
    if resamples < 1:
        raise ValueError(f"diagnose.bootstrap must be at least 1, got {resamples}")
    cache = cache if cache is not None else TheoryCache()
    matched = [symmetrised_profile(p) if symmetrise else np.asarray(p, float) for p in profiles]
    usable = []
    for cand in candidates:
        try:
            predicted = [cache.profile(cand, len(p)) for p in matched]
        except Exception:  # reported by nearest_profiles; it cannot win here
            continue
        usable.append((cand.label, predicted))
    wins = {cand.label: 0 for cand in candidates}
    if not usable:
        return {label: 0.0 for label in wins}
    rng = np.random.default_rng(seed)
    for _ in range(int(resamples)):
        index = rng.integers(0, len(matched), len(matched))
        pool = np.concatenate([matched[i] for i in index])
        distances = [wasserstein1(pool, np.concatenate([predicted[i] for i in index])) for _, predicted in usable]
        wins[usable[int(np.argmin(distances))][0]] += 1
    return {label: count / int(resamples) for label, count in wins.items()}


def consistent_candidates(ranked: Sequence[dict], factor: float = 2.0, floor: float = 1e-3) -> list[str]:
    """Labels of the candidates in ``ranked`` (:func:`nearest_profiles`' rows, nearest first) whose
    ``w1`` is at most ``max(factor · nearest's w1, floor)``: those the observed profile does not tell
    apart from the nearest (``floor`` keeps an exact fit's rounding-level ties). Failed ones never."""
    if factor < 1:
        raise ValueError(f"diagnose.consistent_factor must be at least 1, got {factor}")
    usable = [r for r in ranked if not math.isnan(r["w1"])]
    if not usable:
        return []
    bound = max(factor * usable[0]["w1"], floor)
    return [r["label"] for r in usable if r["w1"] <= bound]
