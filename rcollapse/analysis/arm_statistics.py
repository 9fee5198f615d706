"""The statistics that the risk study's claims need (issue 27): per arm, the share of policies below
the reference with an exact interval and the worst-10 % mean with an interval; between arms, tests
of the shares and of the spread; every interval and test fitting the study's design.

The design. A policy is one PPO run, scored by its mean gold (judge) score. Policies are not
independent when they share something that moves their scores together: a reward head (an ensemble
member that several runs optimise), a seed (the same initialisation or prompt order in both arms).
Treating such policies as independent makes an interval too narrow and a test too eager, since
``n`` policies in ``G`` clusters carry the information of somewhere between ``G`` and ``n``
independent ones. What each function fits:

- :func:`exact_binomial_interval` (Clopper & Pearson 1934, "The use of confidence or fiducial
  limits illustrated in the case of the binomial", Biometrika 26): the exact interval of a share
  ``k / n`` of *independent* policies; its coverage is at least ``level`` for every true share.
- :func:`pooled_reference`: the paper's reference value π0ᵀr* (the reference policy's expected gold
  reward) estimated once per study by pooling every run's reference draws, with the cluster-robust
  (sandwich) standard error of the mean when draws share a cluster (e.g. a run, a seed).
- :func:`share_below` counts policies strictly below that one fixed number.
- :func:`shares_test`: Fisher's exact test (Fisher 1922; two-sided as in ``scipy.stats.fisher_exact``)
  of two shares of *independent* policies, conditional on the margins (conservative).
- :func:`cluster_permutation_test`: a stratified permutation test (e.g. Good 2005, "Permutation,
  Parametric and Bootstrap Tests of Hypotheses"; Rosenbaum 2002, "Observational Studies", on
  randomisation within strata) for arms whose
  policies share clusters *across* arms (a reward head or a seed that both arms use): the arm
  labels are permuted only *within* each cluster, so every permuted study keeps the cluster
  structure of the real one, and the null hypothesis is that, within each cluster, a policy's
  score does not depend on its arm. Any statistic of the two arms works that is 0 when the arms do
  not differ: :func:`share_below_difference` (shares below a fixed reference),
  :func:`worst_fraction_mean_difference`, :func:`log_variance_ratio`.
- :func:`cluster_bootstrap_interval`, :func:`two_arm_cluster_bootstrap_interval` and
  :func:`worst_fraction_mean_interval`: the percentile bootstrap that resamples *whole clusters*
  (Davison & Hinkley 1997, "Bootstrap Methods and their Application", §3.8; Field & Welsh 2007,
  "Bootstrapping clustered data", JRSS B 69): all the policies of a drawn cluster go into the
  resample together, which keeps the correlation within a cluster and is what makes the interval
  honest. With few clusters (fewer than about 10) the percentile interval still covers less than
  ``level`` (its spread is that of ``G`` cluster means, with the normal's tails rather than
  Student's): read it as a lower bound on the uncertainty, and say how many clusters it had.

Conventions (those of :mod:`rcollapse.analysis.risk_statistics`): non-finite scores are left out
(with their cluster ids); a number that is undefined comes back as NaN, never as an exception; a
higher score is better, so the worst policies are those with the lowest scores. Every random draw
comes from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

from rcollapse.analysis.risk_statistics import _percentile, variance_ratio, worst_fraction_mean

ArrayLike = Sequence[float] | np.ndarray
Statistic = Callable[[np.ndarray], float]
TwoArmStatistic = Callable[[np.ndarray, np.ndarray], float]


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")


def _check_count(name: str, count: int) -> None:
    if count < 1:
        raise ValueError(f"{name} must be at least 1, got {count}")


def _finite_with_clusters(values: ArrayLike, clusters: Sequence | np.ndarray | None
                          ) -> tuple[np.ndarray, np.ndarray]:
    """The finite ``values`` and their cluster ids; without ``clusters`` each value is its own
    cluster (ids ``0 … n − 1`` of the input)."""
    values = np.asarray(values, dtype=float).ravel()
    ids = np.arange(values.size) if clusters is None else np.asarray(clusters).ravel()
    if ids.size != values.size:
        raise ValueError(f"one cluster id per value: {values.size} values, {ids.size} ids")
    keep = np.isfinite(values)
    return values[keep], ids[keep]


def exact_binomial_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The Clopper–Pearson (1934) exact interval ``(low, high)`` of a binomial share from ``k``
    successes in ``n`` independent trials: ``low`` is the ``α/2`` quantile of Beta(k, n − k + 1),
    ``high`` the ``1 − α/2`` quantile of Beta(k + 1, n − k), with ``α = 1 − level``; ``low`` = 0
    when ``k`` = 0 and ``high`` = 1 when ``k`` = ``n`` (then the other end has the closed form
    ``1 − (α/2)^(1/n)``, resp. ``(α/2)^(1/n)``). Its coverage is at least ``level`` whatever the
    true share. ``(NaN, NaN)`` when ``n`` = 0."""
    _check_level(level)
    if not 0 <= k <= n:
        raise ValueError(f"need 0 ≤ k ≤ n, got k={k}, n={n}")
    if n == 0:
        return math.nan, math.nan
    tail = (1 - level) / 2
    low = 0.0 if k == 0 else float(stats.beta.ppf(tail, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(1 - tail, k + 1, n - k))
    return low, high


def pooled_reference(reference_scores: ArrayLike, clusters: Sequence | np.ndarray | None = None
                     ) -> dict:
    """The reference policy's expected gold reward (the paper's π0ᵀr*, one fixed number per study),
    estimated by pooling every run's reference draws: ``mean`` (the plain mean of all finite draws),
    ``se`` (its standard error), ``naive_se`` (``sd / √n``, ddof=1, as if the draws were
    independent), ``n`` (draws) and ``num_clusters``.

    With ``clusters`` (one id per draw: the run or seed a draw came from), ``se`` is the
    cluster-robust sandwich standard error of the mean (Liang & Zeger 1986; CR1, with the
    small-sample factor ``G / (G − 1)``): ``√(G/(G−1) · Σ_g (Σ_{i∈g} (x_i − mean))²) / n``; with
    clusters of equal size it is the standard error of the mean over the ``G`` cluster means. NaN
    with fewer than 2 clusters. Without ``clusters``, ``se`` is ``naive_se``."""
    draws, ids = _finite_with_clusters(reference_scores, clusters)
    n = int(draws.size)
    mean = float(draws.mean()) if n else math.nan
    naive_se = float(draws.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    _, group = np.unique(ids, return_inverse=True)
    num_clusters = int(group.max()) + 1 if n else 0
    if clusters is None:
        se = naive_se
    elif num_clusters < 2:
        se = math.nan
    else:
        sums = np.bincount(group, weights=draws - mean, minlength=num_clusters)
        se = float(math.sqrt(num_clusters / (num_clusters - 1) * np.sum(sums**2)) / n)
    return {"mean": mean, "se": se, "naive_se": naive_se, "n": n, "num_clusters": num_clusters}


def share_below(scores: ArrayLike, reference_value: float) -> tuple[int, int, float]:
    """``(k, n, k / n)``: how many of the ``n`` finite scores are strictly below one fixed
    ``reference_value`` (a tie is not below); the share is NaN when ``n`` = 0."""
    scores, _ = _finite_with_clusters(scores, None)
    k, n = int(np.sum(scores < reference_value)), int(scores.size)
    return k, n, (k / n if n else math.nan)


def shares_test(k1: int, n1: int, k2: int, n2: int) -> dict:
    """Fisher's exact test that two shares ``k1 / n1`` and ``k2 / n2`` of independent policies are
    equal, two-sided (``scipy.stats.fisher_exact`` on the table [[k1, n1 − k1], [k2, n2 − k2]]):
    ``p_value``, ``odds_ratio`` (the sample odds ratio ``k1 (n2 − k2) / ((n1 − k1) k2)``, 0 or inf
    at a zero cell, NaN when it is 0/0), ``share_1``, ``share_2`` and ``difference``
    (``share_1 − share_2``). Conditional on both margins, the test is conservative: its size is at
    most the nominal level. All NaN when either ``n`` is 0."""
    for k, n in ((k1, n1), (k2, n2)):
        if not 0 <= k <= n:
            raise ValueError(f"need 0 ≤ k ≤ n, got k={k}, n={n}")
    if n1 == 0 or n2 == 0:
        return {"p_value": math.nan, "odds_ratio": math.nan, "share_1": math.nan,
                "share_2": math.nan, "difference": math.nan}
    with np.errstate(divide="ignore", invalid="ignore"):
        odds_ratio, p_value = stats.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]])
    return {"p_value": float(p_value), "odds_ratio": float(odds_ratio), "share_1": k1 / n1,
            "share_2": k2 / n2, "difference": k1 / n1 - k2 / n2}


def share_below_difference(a: np.ndarray, b: np.ndarray, reference_value: float) -> float:
    """``share(a < reference_value) − share(b < reference_value)``, one fixed reference for both
    arms (a statistic for :func:`cluster_permutation_test`; bind the reference with
    ``functools.partial``)."""
    return share_below(a, reference_value)[2] - share_below(b, reference_value)[2]


def worst_fraction_mean_difference(a: np.ndarray, b: np.ndarray, fraction: float = 0.1) -> float:
    """The mean of ``a``'s worst ``fraction`` minus ``b``'s (:func:`worst_fraction_mean`)."""
    return worst_fraction_mean(a, fraction) - worst_fraction_mean(b, fraction)


def log_variance_ratio(a: np.ndarray, b: np.ndarray) -> float:
    """``log(var(a) / var(b))`` (sample variances); NaN where the ratio is undefined or 0."""
    ratio = variance_ratio(a, b)
    return math.log(ratio) if ratio > 0 and math.isfinite(ratio) else math.nan


def _within_cluster_permutations(ids: np.ndarray, num_permutations: int,
                                 rng: np.random.Generator) -> np.ndarray:
    """``(num_permutations, n)`` index arrays, each a random permutation of ``0 … n − 1`` that
    moves every position only to a position with the same cluster id."""
    n = ids.size
    permuted = np.broadcast_to(np.arange(n), (num_permutations, n)).copy()
    for cluster in np.unique(ids):
        members = np.flatnonzero(ids == cluster)
        if members.size > 1:
            order = np.argsort(rng.random((num_permutations, members.size)), axis=1)
            permuted[:, members] = members[order]
    return permuted


def cluster_permutation_test(a: ArrayLike, b: ArrayLike, clusters_a: Sequence | None = None,
                             clusters_b: Sequence | None = None,
                             statistic: TwoArmStatistic = log_variance_ratio,
                             num_permutations: int = 9999, seed: int = 0) -> tuple[float, float]:
    """A stratified permutation test of a difference between two arms whose policies share
    clusters: ``(observed statistic, two-sided p-value)``.

    ``clusters_a`` / ``clusters_b`` give each policy's cluster (a reward head or a seed that both
    arms use; ids comparable across the arms). Each permutation shuffles the pooled policies' arm
    labels *within* each cluster (a cluster keeps how many of its policies each arm has), so the
    null distribution keeps the cluster structure; a cluster that only one arm has contributes no
    randomness. Without cluster ids (both None) all policies form one stratum: the plain
    two-sample permutation test. ``statistic(a, b)`` must be 0 when the arms do not differ (a
    difference, a log ratio): the p-value is ``(1 + #{|T*| ≥ |T|}) / (1 + m)`` over the ``m``
    permutations whose statistic is defined (Phipson & Smyth 2010's +1, which keeps the test valid;
    ties within 1e-12 count as extreme, so a discrete statistic is not anti-conservative).
    The p-value is NaN when the observed statistic is undefined (NaN) or infinite."""
    _check_count("num_permutations", num_permutations)
    if (clusters_a is None) != (clusters_b is None):
        raise ValueError("give cluster ids for both arms or for neither")
    values_a, ids_a = _finite_with_clusters(a, np.zeros(np.size(a), int) if clusters_a is None
                                            else clusters_a)
    values_b, ids_b = _finite_with_clusters(b, np.zeros(np.size(b), int) if clusters_b is None
                                            else clusters_b)
    observed = float(statistic(values_a, values_b))
    if not math.isfinite(observed):
        return observed, math.nan
    values = np.concatenate([values_a, values_b])
    in_a = np.arange(values.size) < values_a.size
    rng = np.random.default_rng(seed)
    permuted = values[_within_cluster_permutations(np.concatenate([ids_a, ids_b]),
                                                   num_permutations, rng)]
    null = np.array([statistic(row[in_a], row[~in_a]) for row in permuted], dtype=float)
    null = null[~np.isnan(null)]
    threshold = abs(observed) - 1e-12 * max(1.0, abs(observed))
    return observed, float((1 + np.sum(np.abs(null) >= threshold)) / (1 + null.size))


def _cluster_members(ids: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The distinct cluster ids (sorted) and, for each, the positions of its members."""
    unique, group = np.unique(ids, return_inverse=True)
    return unique, [np.flatnonzero(group == g) for g in range(unique.size)]


def _percentile_interval(estimate: float, replicates: list[float], level: float
                         ) -> tuple[float, float, float]:
    """``(estimate, low, high)``: the ``(1 ∓ level) / 2`` quantiles of the defined replicates."""
    resampled = np.sort(np.asarray(replicates, dtype=float))
    resampled = resampled[~np.isnan(resampled)]
    if resampled.size == 0 or math.isnan(estimate):
        return estimate, math.nan, math.nan
    tail = (1 - level) / 2
    return estimate, _percentile(resampled, tail), _percentile(resampled, 1 - tail)


def cluster_bootstrap_interval(values: ArrayLike, clusters: Sequence | None = None,
                               statistic: Statistic = np.mean, num_resamples: int = 2000,
                               level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """The cluster (block) percentile bootstrap of ``statistic(values)``: ``(estimate, low, high)``.

    Each resample draws ``G`` of the ``G`` clusters with replacement and takes *all* the policies of
    every drawn cluster (Davison & Hinkley 1997, §3.8, "strategy 1"; Field & Welsh 2007), so the
    interval carries the correlation among policies that share a reward head or a seed. Without
    ``clusters`` each policy is its own cluster: the ordinary bootstrap of independent policies.
    The interval is the ``(1 − level) / 2`` and ``(1 + level) / 2`` quantiles of the resampled
    statistics (resamples where it is NaN left out). NaN ends when the estimate is undefined."""
    _check_level(level)
    _check_count("num_resamples", num_resamples)
    values, ids = _finite_with_clusters(values, clusters)
    if values.size == 0:
        return math.nan, math.nan, math.nan
    estimate = float(statistic(values))
    _, members = _cluster_members(ids)
    draws = np.random.default_rng(seed).integers(0, len(members), size=(num_resamples, len(members)))
    replicates = [statistic(values[np.concatenate([members[g] for g in row])]) for row in draws]
    return _percentile_interval(estimate, replicates, level)


def two_arm_cluster_bootstrap_interval(a: ArrayLike, b: ArrayLike, clusters_a: Sequence | None = None,
                                       clusters_b: Sequence | None = None,
                                       statistic: TwoArmStatistic = variance_ratio,
                                       num_resamples: int = 2000, level: float = 0.95,
                                       seed: int = 0, shared_clusters: bool = False
                                       ) -> tuple[float, float, float]:
    """The cluster percentile bootstrap of a two-arm ``statistic(a, b)`` (e.g. the variance ratio):
    ``(estimate, low, high)``.

    ``shared_clusters=False`` (the arms' clusters are their own, or the arms are independent):
    each resample draws the clusters of ``a`` and, independently, those of ``b``, each arm's
    clusters with replacement and whole (without ids, each policy is its own cluster).
    ``shared_clusters=True`` (the design where both arms use the same reward heads or seeds, ids
    comparable across the arms): each resample draws from the union of the cluster ids once, and a
    drawn cluster brings its policies of *both* arms, which keeps the correlation between the arms
    within a cluster (a shared head's effect then cancels from a difference, as it does in the
    data). NaN ends when the estimate is undefined."""
    _check_level(level)
    _check_count("num_resamples", num_resamples)
    values_a, ids_a = _finite_with_clusters(a, clusters_a)
    values_b, ids_b = _finite_with_clusters(b, clusters_b)
    estimate = float(statistic(values_a, values_b))
    rng = np.random.default_rng(seed)
    if shared_clusters:
        if clusters_a is None or clusters_b is None:
            raise ValueError("shared_clusters needs the cluster ids of both arms")
        union = np.unique(np.concatenate([ids_a, ids_b]))
        members_a = [np.flatnonzero(ids_a == c) for c in union]
        members_b = [np.flatnonzero(ids_b == c) for c in union]
        draws = rng.integers(0, union.size, size=(num_resamples, union.size))
        replicates = [statistic(values_a[np.concatenate([members_a[g] for g in row])],
                                values_b[np.concatenate([members_b[g] for g in row])])
                      for row in draws]
    else:
        _, members_a = _cluster_members(ids_a)
        _, members_b = _cluster_members(ids_b)
        if not members_a or not members_b:
            return estimate, math.nan, math.nan
        draws_a = rng.integers(0, len(members_a), size=(num_resamples, len(members_a)))
        draws_b = rng.integers(0, len(members_b), size=(num_resamples, len(members_b)))
        replicates = [statistic(values_a[np.concatenate([members_a[g] for g in row_a])],
                                values_b[np.concatenate([members_b[g] for g in row_b])])
                      for row_a, row_b in zip(draws_a, draws_b)]
    return _percentile_interval(estimate, replicates, level)


def worst_fraction_mean_interval(scores: ArrayLike, clusters: Sequence | None = None,
                                 fraction: float = 0.1, num_resamples: int = 2000,
                                 level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """The mean of the worst ``fraction`` of the policies (:func:`worst_fraction_mean`, at least one
    policy) with its cluster percentile bootstrap interval (:func:`cluster_bootstrap_interval`):
    ``(estimate, low, high)``. The worst-fraction mean is a tail statistic: with few policies (its
    worst 10 % of 16 is 2 policies) the bootstrap interval is rough and its low end is near the
    sample minimum."""
    def statistic(values: np.ndarray) -> float:
        return worst_fraction_mean(values, fraction)

    return cluster_bootstrap_interval(scores, clusters, statistic, num_resamples, level, seed)
