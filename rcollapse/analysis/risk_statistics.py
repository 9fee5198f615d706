"""The statistics of the PPO study's risk claim (Banerjee & Gopalan, Theorem 3.3 and Fig. 7): at
matched KL, the variance-aware arm's policies spread less around their mean judge score than the
vanilla arm's, and fewer of them end up worse than the reference policy π0.

Each function takes plain sequences of numbers, one per policy (a PPO run): its mean judge score on
the test prompts, its run's reference-policy score, or its final KL. Conventions shared by all:

- non-finite entries (a run without the number) are left out (pairwise, for paired inputs);
- a number that is undefined comes back as NaN, never as an exception: fewer than 2 policies
  where a variance is needed, a zero variance in a denominator, an empty group;
- variances are sample variances (``ddof=1``);
- a higher judge score is better, so the "worst" policies are those with the lowest scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

ArrayLike = Sequence[float] | np.ndarray


def _finite(values: ArrayLike) -> np.ndarray:
    """``values`` as a flat float array without its non-finite entries."""
    array = np.asarray(values, dtype=float).ravel()
    return array[np.isfinite(array)]


def _sample_variance(values: np.ndarray) -> float:
    """The sample variance (ddof=1); NaN with fewer than 2 values."""
    return float(np.var(values, ddof=1)) if values.size > 1 else math.nan


def variance_ratio(a: ArrayLike, b: ArrayLike) -> float:
    """``var(a) / var(b)``, both sample variances (ddof=1).

    NaN when either group has fewer than 2 values or ``var(b)`` is 0 (0 when only ``var(a)`` is)."""
    var_a, var_b = _sample_variance(_finite(a)), _sample_variance(_finite(b))
    if math.isnan(var_a) or math.isnan(var_b) or var_b == 0:
        return math.nan
    return var_a / var_b


def _percentile(sorted_values: np.ndarray, q: float) -> float:
    """The ``q`` quantile (0 ≤ q ≤ 1) of ascending ``sorted_values`` by linear interpolation between
    order statistics (numpy's default, "linear"), +inf as soon as either neighbour is +inf (numpy
    would give NaN for inf − inf)."""
    position = q * (sorted_values.size - 1)
    below, above = sorted_values[math.floor(position)], sorted_values[math.ceil(position)]
    if math.isinf(above) or math.isinf(below):
        return math.inf
    return float(below + (above - below) * (position - math.floor(position)))


def bootstrap_variance_ratio_ci(a: ArrayLike, b: ArrayLike, num_resamples: int = 10000,
                                level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval ``(low, high)`` for ``var(a) / var(b)`` (sample variances).

    Each resample draws ``len(a)`` values of ``a`` and, independently, ``len(b)`` values of ``b``
    with replacement (``numpy.random.default_rng(seed)``, all resamples at once); the interval is
    the ``(1 − level) / 2`` and ``(1 + level) / 2`` quantiles of the resampled ratios (linear
    interpolation between order statistics). A resample in which ``b``'s values are all equal has
    ratio +inf (``a``'s are not) or none at all (both all equal: left out), so with 3 or fewer
    values in ``b`` the upper end may be +inf: the data then bound the ratio from below only.

    ``(NaN, NaN)`` where :func:`variance_ratio` is undefined (fewer than 2 values in a group, zero
    variance in ``b``)."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    if num_resamples < 1:
        raise ValueError(f"num_resamples must be at least 1, got {num_resamples}")
    a, b = _finite(a), _finite(b)
    if math.isnan(variance_ratio(a, b)):
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    var_a = np.var(a[rng.integers(0, a.size, size=(num_resamples, a.size))], axis=1, ddof=1)
    var_b = np.var(b[rng.integers(0, b.size, size=(num_resamples, b.size))], axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = var_a / var_b  # b constant in the resample: +inf, or NaN when a is too
    ratios = np.sort(ratios[~np.isnan(ratios)])
    if ratios.size == 0:
        return math.nan, math.nan
    tail = (1 - level) / 2
    return _percentile(ratios, tail), _percentile(ratios, 1 - tail)


def levene_test(a: ArrayLike, b: ArrayLike, center: str = "mean") -> tuple[float, float]:
    """Levene's test that ``a`` and ``b`` have equal variances: ``(statistic W, p-value)``.

    The default ``center="mean"`` is Levene's original test (the one-way ANOVA F statistic of the
    absolute deviations ``|x − mean of x's group|``, against F(1, n_a + n_b − 2));
    ``center="median"`` is the Brown–Forsythe variant (scipy's default, robust to heavy tails).
    Computed by ``scipy.stats.levene``. NaN for both when a group has fewer than 2 values or the
    deviations do not vary within the groups (F's denominator 0; always so with 2 values per group,
    whose two deviations from the mean are equal)."""
    a, b = _finite(a), _finite(b)
    if a.size < 2 or b.size < 2:
        return math.nan, math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic, p_value = stats.levene(a, b, center=center)
    if not np.isfinite(statistic):
        return math.nan, math.nan
    return float(statistic), float(p_value)


def share_below_reference(scores: ArrayLike, reference_scores: ArrayLike) -> float:
    """The share of policies whose score is strictly below their own run's reference-policy score:
    ``mean(scores[i] < reference_scores[i])``, paired elementwise (Theorem 3.3's risk, the
    probability that the trained policy does worse than the reference; a tie counts as not
    worse). Pairs with a non-finite member are left out; NaN when none is left."""
    scores = np.asarray(scores, dtype=float).ravel()
    reference_scores = np.asarray(reference_scores, dtype=float).ravel()
    if scores.shape != reference_scores.shape:
        raise ValueError(f"scores and reference_scores pair up elementwise: {scores.size} against "
                         f"{reference_scores.size} values")
    both = np.isfinite(scores) & np.isfinite(reference_scores)
    if not both.any():
        return math.nan
    return float(np.mean(scores[both] < reference_scores[both]))


def worst_count(n: int, fraction: float) -> int:
    """How many of ``n`` policies are the worst ``fraction``: ``ceil(fraction · n)``, at least 1 (0
    for ``n`` = 0). A rounding guard keeps ``0.07 · 100`` at 7 (in floating point it is 7.000000000000001)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    return min(n, max(1, math.ceil(fraction * n - 1e-9))) if n else 0


def worst_fraction_mean(scores: ArrayLike, fraction: float = 0.1) -> float:
    """The mean of the worst (lowest) ``ceil(fraction · n)`` of ``n`` scores, at least one of them
    (:func:`worst_count`); NaN without scores."""
    scores = np.sort(_finite(scores))
    count = worst_count(scores.size, fraction)
    return float(scores[:count].mean()) if count else math.nan


def relative_kl_gap(kl_a: ArrayLike, kl_b: ArrayLike) -> float:
    """``|mean(kl_a) − mean(kl_b)| / ((mean(kl_a) + mean(kl_b)) / 2)``: the gap between two arms'
    mean final KLs as a share of their average (symmetric in the arms); "KL-matched" is a gap of at
    most 0.1. NaN when an arm has no KL or both means are 0."""
    kl_a, kl_b = _finite(kl_a), _finite(kl_b)
    if kl_a.size == 0 or kl_b.size == 0:
        return math.nan
    mean_a, mean_b = float(kl_a.mean()), float(kl_b.mean())
    average = (mean_a + mean_b) / 2
    return abs(mean_a - mean_b) / average if average > 0 else math.nan


def arm_summary(scores: ArrayLike, reference_scores: ArrayLike, kls: ArrayLike,
                fraction: float = 0.1) -> dict:
    """One arm's numbers: ``n`` (policies with a judge score), ``judge_mean``, ``judge_var``
    (ddof=1), ``reference_judge_mean`` (its runs' reference policy), ``share_below_reference``,
    ``worst_fraction_mean`` (the mean of its worst ``fraction``; ``worst_count`` of them) and
    ``final_kl_mean``."""
    judged = _finite(scores)
    reference, kls = _finite(reference_scores), _finite(kls)
    return {
        "n": int(judged.size),
        "judge_mean": float(judged.mean()) if judged.size else math.nan,
        "judge_var": _sample_variance(judged),
        "reference_judge_mean": float(reference.mean()) if reference.size else math.nan,
        "share_below_reference": share_below_reference(scores, reference_scores),
        "worst_fraction_mean": worst_fraction_mean(judged, fraction),
        "worst_count": worst_count(judged.size, fraction),
        "final_kl_mean": float(kls.mean()) if kls.size else math.nan,
    }


def arm_comparison(treatment: ArrayLike, control: ArrayLike, reference_treatment: ArrayLike,
                   reference_control: ArrayLike, kl_treatment: ArrayLike, kl_control: ArrayLike, *,
                   treatment_name: str = "variance-aware", control_name: str = "vanilla",
                   fraction: float = 0.1, kl_tolerance: float = 0.1, num_resamples: int = 10000,
                   level: float = 0.95, seed: int = 0, center: str = "mean") -> dict:
    """The risk comparison of two arms of policies (treatment: variance-aware PPO; control: vanilla),
    from each policy's mean judge score, its run's reference-policy score and its final KL.

    Returns ``treatment``, ``control`` (the names), ``arms`` ({name: :func:`arm_summary`}),
    ``variance_ratio`` (treatment / control), ``variance_ratio_ci`` ([low, high], the percentile
    bootstrap at ``ci_level`` with ``bootstrap_resamples`` and ``bootstrap_seed``),
    ``levene_statistic``, ``levene_p`` and ``levene_center``, ``relative_kl_gap`` and
    ``kl_matched`` (gap ≤ ``kl_tolerance``; None when the gap is undefined), ``kl_tolerance`` and
    ``worst_fraction``. Undefined numbers are NaN (see the module's docstring)."""
    low, high = bootstrap_variance_ratio_ci(treatment, control, num_resamples, level, seed)
    statistic, p_value = levene_test(treatment, control, center=center)
    gap = relative_kl_gap(kl_treatment, kl_control)
    return {
        "treatment": treatment_name,
        "control": control_name,
        "arms": {treatment_name: arm_summary(treatment, reference_treatment, kl_treatment, fraction),
                 control_name: arm_summary(control, reference_control, kl_control, fraction)},
        "variance_ratio": variance_ratio(treatment, control),
        "variance_ratio_ci": [low, high],
        "ci_level": level,
        "bootstrap_resamples": num_resamples,
        "bootstrap_seed": seed,
        "levene_statistic": statistic,
        "levene_p": p_value,
        "levene_center": center,
        "relative_kl_gap": gap,
        "kl_matched": None if math.isnan(gap) else bool(gap <= kl_tolerance),
        "kl_tolerance": kl_tolerance,
        "worst_fraction": fraction,
    }
