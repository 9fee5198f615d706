"""The risk study's arm statistics on constructed scores where the right answer is known (issue 27,
"Must show"): the Clopper–Pearson interval against its closed forms and its coverage; identical
arms give p-values that are uniform (Fisher's: no smaller than uniform) over seeds; a known
difference is detected; clustered draws widen the interval, and only the cluster bootstrap keeps
its coverage."""

import functools
import math

import numpy as np
import pytest
from scipy import stats

from rcollapse.analysis.arm_statistics import (
    cluster_bootstrap_interval,
    cluster_permutation_test,
    exact_binomial_interval,
    log_variance_ratio,
    pooled_reference,
    share_below,
    share_below_difference,
    shares_test,
    two_arm_cluster_bootstrap_interval,
    worst_fraction_mean_difference,
    worst_fraction_mean_interval,
)


def _mean_difference(a, b):
    return float(np.mean(a) - np.mean(b))


def _clustered(rng, num_clusters, per_cluster, cluster_sd, within_sd):
    """Scores with a shared effect per cluster: ``(values, cluster ids)``."""
    effects = rng.normal(0.0, cluster_sd, num_clusters)
    ids = np.repeat(np.arange(num_clusters), per_cluster)
    return effects[ids] + rng.normal(0.0, within_sd, ids.size), ids


# --- Clopper–Pearson -------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 5, 16, 40])
def test_clopper_pearson_closed_forms_at_the_ends(n):
    alpha = 0.05
    assert exact_binomial_interval(0, n) == pytest.approx((0.0, 1 - (alpha / 2) ** (1 / n)))
    assert exact_binomial_interval(n, n) == pytest.approx(((alpha / 2) ** (1 / n), 1.0))


def test_clopper_pearson_inner_ends_are_the_binomial_tails():
    """low solves P(X ≥ k | low) = α/2 and high solves P(X ≤ k | high) = α/2."""
    low, high = exact_binomial_interval(7, 16, level=0.9)
    assert stats.binom.sf(6, 16, low) == pytest.approx(0.05)
    assert stats.binom.cdf(7, 16, high) == pytest.approx(0.05)
    assert exact_binomial_interval(3, 0 + 3) == exact_binomial_interval(3, 3)


def test_clopper_pearson_undefined_and_invalid():
    assert all(math.isnan(x) for x in exact_binomial_interval(0, 0))
    with pytest.raises(ValueError):
        exact_binomial_interval(5, 4)
    with pytest.raises(ValueError):
        exact_binomial_interval(1, 4, level=1.0)


def test_clopper_pearson_covers_by_simulation_and_exactly():
    """2,000 studies of 16 policies at p = 0.3 cover p at least 95 % of the time; computed exactly
    over a grid of true shares, the coverage never drops below 95 %."""
    n = 16
    intervals = [exact_binomial_interval(k, n) for k in range(n + 1)]
    draws = np.random.default_rng(0).binomial(n, 0.3, size=2000)
    covered = np.mean([intervals[k][0] <= 0.3 <= intervals[k][1] for k in draws])
    assert covered >= 0.95
    for p in np.linspace(0.01, 0.99, 99):
        inside = [k for k, (low, high) in enumerate(intervals) if low <= p <= high]
        assert stats.binom.pmf(inside, n, p).sum() >= 0.95 - 1e-12


# --- pooled reference, share below -----------------------------------------------------------

def test_pooled_reference_is_the_plain_mean_with_a_wider_clustered_se():
    values, ids = _clustered(np.random.default_rng(1), 6, 20, cluster_sd=1.0, within_sd=0.2)
    plain = pooled_reference(values)
    clustered = pooled_reference(values, ids)
    assert plain["mean"] == clustered["mean"] == pytest.approx(values.mean())
    assert plain["se"] == pytest.approx(values.std(ddof=1) / math.sqrt(values.size))
    assert clustered["naive_se"] == plain["se"] and clustered["n"] == 120
    assert clustered["num_clusters"] == 6
    # equal cluster sizes: the sandwich SE is the SE of the mean over the cluster means
    cluster_means = values.reshape(6, 20).mean(axis=1)
    assert clustered["se"] == pytest.approx(cluster_means.std(ddof=1) / math.sqrt(6))
    assert clustered["se"] > 2 * plain["se"]


def test_pooled_reference_sandwich_by_hand_and_undefined():
    values, ids = [1.0, 2.0, 3.0, 10.0, np.nan], ["a", "a", "a", "b", "b"]  # mean 4
    # cluster sums of deviations: a: -3 -2 -1 = -6, b: 6; √(2 · 72) / 4 = 3
    assert pooled_reference(values, ids)["se"] == pytest.approx(3.0)
    assert math.isnan(pooled_reference([1.0, 2.0], [0, 0])["se"])  # one cluster
    empty = pooled_reference([])
    assert math.isnan(empty["mean"]) and empty["n"] == 0


def test_share_below_is_strict_and_skips_missing():
    assert share_below([1.0, 2.0, 3.0, np.nan], 2.0) == (1, 3, pytest.approx(1 / 3))
    k, n, share = share_below([], 0.0)
    assert (k, n) == (0, 0) and math.isnan(share)


# --- Fisher's exact test ---------------------------------------------------------------------

def test_shares_test_detects_a_known_difference():
    result = shares_test(14, 16, 2, 16)
    assert result["p_value"] < 0.001
    assert result["difference"] == pytest.approx(0.75)
    assert result["odds_ratio"] == pytest.approx(14 * 14 / (2 * 2))
    # the 7/16 against 14/16, "about 0.02": the two-sided p written out as the sum of the
    # hypergeometric probabilities (21 below of 32, 16 in the first arm) no larger than the observed
    pmf = stats.hypergeom.pmf(np.arange(22), 32, 21, 16)
    by_hand = pmf[pmf <= pmf[7] * (1 + 1e-7)].sum()
    assert shares_test(7, 16, 14, 16)["p_value"] == pytest.approx(by_hand)
    assert 0.02 < by_hand < 0.025
    assert math.isnan(shares_test(0, 0, 1, 2)["p_value"])


def test_fisher_on_identical_arms_is_not_smaller_than_uniform():
    """200 studies of two identical arms (16 policies each, share 0.3): the p-values are not
    stochastically smaller than uniform (one-sided Kolmogorov–Smirnov at 1 %; Fisher's test is
    conservative, so it is larger) and at most the binomial 99 % bound of 5 % fall below 0.05."""
    rng = np.random.default_rng(2)
    counts = rng.binomial(16, 0.3, size=(200, 2))
    p_values = np.array([shares_test(k1, 16, k2, 16)["p_value"] for k1, k2 in counts])
    assert stats.kstest(p_values, "uniform", alternative="greater").pvalue > 0.01
    assert np.mean(p_values < 0.05) <= stats.binom.ppf(0.99, 200, 0.05) / 200


# --- the stratified permutation test ---------------------------------------------------------

def _identical_arms(rng, num_clusters=4, per_arm=2):
    """Two arms that share ``num_clusters`` clusters with a strong cluster effect and no arm
    effect: ``(a, b, ids_a, ids_b)``."""
    effects = rng.normal(0.0, 3.0, num_clusters)
    ids = np.repeat(np.arange(num_clusters), per_arm)
    a = effects[ids] + rng.normal(0.0, 1.0, ids.size)
    b = effects[ids] + rng.normal(0.0, 1.0, ids.size)
    return a, b, ids, ids


def test_permutation_p_values_are_uniform_for_identical_arms():
    """200 seeds, arms of 8 policies in 4 shared clusters, 199 permutations each: a two-sided
    Kolmogorov–Smirnov test against uniform does not reject at 1 %, and the share of p < 0.05 lies
    within the binomial 99 % bounds of 5 %."""
    rng = np.random.default_rng(3)
    p_values = []
    for seed in range(200):
        a, b, ids_a, ids_b = _identical_arms(rng)
        p_values.append(cluster_permutation_test(a, b, ids_a, ids_b, _mean_difference,
                                                 num_permutations=199, seed=seed)[1])
    p_values = np.array(p_values)
    assert stats.kstest(p_values, "uniform").pvalue > 0.01
    rejected = np.sum(p_values < 0.05)
    assert stats.binom.ppf(0.005, 200, 0.05) <= rejected <= stats.binom.ppf(0.995, 200, 0.05)


def test_permutation_detects_a_large_effect():
    a, b, ids_a, ids_b = _identical_arms(np.random.default_rng(4), per_arm=4)
    observed, p_value = cluster_permutation_test(a + 4.0, b, ids_a, ids_b, _mean_difference,
                                                 num_permutations=999, seed=0)
    assert observed > 3.0 and p_value < 0.01
    # the smallest possible p-value with the +1 correction
    assert p_value >= 1 / 1000


def test_permutation_with_the_share_below_a_fixed_reference():
    """14 of 16 against 2 of 16 below the reference, the policies in 4 heads both arms share."""
    ids = np.repeat(np.arange(4), 4)
    a = np.where(np.arange(16) < 14, -1.0, 1.0)
    b = np.where(np.arange(16) < 2, -1.0, 1.0)
    statistic = functools.partial(share_below_difference, reference_value=0.0)
    observed, p_value = cluster_permutation_test(a, b, ids, ids, statistic, 999, seed=0)
    assert observed == pytest.approx(0.75) and p_value < 0.01


def test_permutation_keeps_policies_in_their_cluster():
    """With every cluster in one arm only, no permutation moves a policy to the other arm: p = 1
    (the design cannot tell the arm from the cluster). Without cluster ids, the plain permutation
    test sees the difference (the smallest two-sided p of 3 against 3 is 2/20)."""
    a, b = np.array([0.0, 0.1, 0.2]), np.array([5.0, 5.1, 5.2])
    assert cluster_permutation_test(a, b, [0, 0, 0], [1, 1, 1], _mean_difference, 99)[1] == 1.0
    assert cluster_permutation_test(a, b, None, None, _mean_difference, 999)[1] < 0.2


def test_permutation_with_tail_and_spread_statistics():
    rng = np.random.default_rng(5)
    ids = np.repeat(np.arange(4), 6)
    a, b = rng.normal(0, 4.0, 24), rng.normal(0, 1.0, 24)
    observed, p_value = cluster_permutation_test(a, b, ids, ids, log_variance_ratio, 499)
    assert observed > 1.0 and p_value < 0.01
    observed, p_value = cluster_permutation_test(a, b, ids, ids, worst_fraction_mean_difference,
                                                 499)
    assert observed < 0 and 0 < p_value <= 1
    assert math.isnan(cluster_permutation_test([1.0], [2.0], None, None, log_variance_ratio, 9)[1])
    with pytest.raises(ValueError):
        cluster_permutation_test(a, b, ids, None, log_variance_ratio, 9)


# --- the cluster bootstrap -------------------------------------------------------------------

def test_clustered_draws_widen_the_interval():
    """4 clusters × 8 policies, cluster sd 1 against within sd 0.1: the cluster bootstrap interval
    of the mean is more than twice as wide as the one that treats the 32 policies as independent."""
    values, ids = _clustered(np.random.default_rng(6), 4, 8, cluster_sd=1.0, within_sd=0.1)
    estimate, low, high = cluster_bootstrap_interval(values, ids, num_resamples=500)
    naive_estimate, naive_low, naive_high = cluster_bootstrap_interval(values, None,
                                                                       num_resamples=500)
    assert estimate == naive_estimate == pytest.approx(values.mean())
    assert high - low > 2 * (naive_high - naive_low)


def test_cluster_bootstrap_keeps_its_coverage_where_the_naive_one_fails():
    """200 simulated studies (10 clusters × 8 policies, cluster sd 1, within sd 0.2, true mean 0),
    200 resamples each: the cluster bootstrap's 95 % interval covers 0 in at least 82 % of them
    (the percentile interval of 10 cluster means covers about 90 %: its spread is √(9/10) of the
    cluster means' and its tails normal), the naive one in at most 65 % (about 50 % expected: its
    standard error is √8 times too small)."""
    rng = np.random.default_rng(7)
    cluster_hits = naive_hits = 0
    for seed in range(200):
        values, ids = _clustered(rng, 10, 8, cluster_sd=1.0, within_sd=0.2)
        _, low, high = cluster_bootstrap_interval(values, ids, num_resamples=200, seed=seed)
        cluster_hits += low <= 0.0 <= high
        _, low, high = cluster_bootstrap_interval(values, None, num_resamples=200, seed=seed)
        naive_hits += low <= 0.0 <= high
    assert cluster_hits / 200 >= 0.82
    assert naive_hits / 200 <= 0.65


def test_cluster_bootstrap_takes_whole_clusters():
    """Each cluster holds three copies of its id: every resample holds whole triples."""
    ids = np.repeat(np.arange(5), 3)

    def whole_triples(values):
        return float(np.all(np.unique(values, return_counts=True)[1] % 3 == 0))

    assert cluster_bootstrap_interval(ids.astype(float), ids, whole_triples, 200) == (1.0, 1.0, 1.0)
    assert cluster_bootstrap_interval([], None) == (pytest.approx(math.nan, nan_ok=True),) * 3


def test_two_arm_bootstrap_shared_clusters_cancel_in_a_difference():
    """Both arms use the same 6 heads, whose effect (sd 2) moves both arms' policies alike: joint
    resampling of the heads keeps it out of the difference of means (narrow interval around the
    true 1.0), independent resampling of each arm's heads does not."""
    rng = np.random.default_rng(8)
    effects, ids = rng.normal(0, 2.0, 6), np.repeat(np.arange(6), 4)
    a = effects[ids] + 1.0 + rng.normal(0, 0.1, 24)
    b = effects[ids] + rng.normal(0, 0.1, 24)
    estimate, low, high = two_arm_cluster_bootstrap_interval(a, b, ids, ids, _mean_difference, 400,
                                                             shared_clusters=True)
    _, ind_low, ind_high = two_arm_cluster_bootstrap_interval(a, b, ids, ids, _mean_difference, 400)
    assert low <= 1.0 <= high and high - low < 0.3
    assert ind_high - ind_low > 5 * (high - low)
    assert estimate == pytest.approx(a.mean() - b.mean())
    with pytest.raises(ValueError):
        two_arm_cluster_bootstrap_interval(a, b, statistic=_mean_difference, shared_clusters=True)


def test_two_arm_bootstrap_of_the_variance_ratio():
    rng = np.random.default_rng(9)
    a, b = rng.normal(0, 3.0, 32), rng.normal(0, 1.0, 32)
    estimate, low, high = two_arm_cluster_bootstrap_interval(a, b, num_resamples=400)
    assert estimate == pytest.approx(np.var(a, ddof=1) / np.var(b, ddof=1))
    assert 1.0 < low < estimate < high


def test_worst_fraction_mean_interval():
    values, ids = _clustered(np.random.default_rng(10), 4, 8, cluster_sd=1.0, within_sd=0.1)
    estimate, low, high = worst_fraction_mean_interval(values, ids, num_resamples=300)
    assert estimate == pytest.approx(np.sort(values)[:4].mean())  # ceil(0.1 · 32) = 4
    assert low <= estimate <= high
    _, naive_low, naive_high = worst_fraction_mean_interval(values, num_resamples=300)
    assert high - low > naive_high - naive_low
