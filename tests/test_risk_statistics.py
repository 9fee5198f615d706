"""The risk statistics of the PPO study against plain references: hand computations, a one-way ANOVA
written out, scipy's bootstrap; NaN where a number is undefined."""

import math

import numpy as np
import pytest
from scipy import stats

from rcollapse.analysis.risk_statistics import (
    arm_comparison,
    bootstrap_variance_ratio_ci,
    levene_test,
    relative_kl_gap,
    share_below_reference,
    variance_ratio,
    worst_count,
    worst_fraction_mean,
)

A, B = [1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 2.0, 2.0]  # var(A) = (2 · 1.5² + 2 · 0.5²) / 3 = 5/3, var(B) = 4 · 0.5² / 3 = 1/3


def test_variance_ratio_by_hand():
    assert variance_ratio(A, B) == pytest.approx(5.0)
    assert variance_ratio(B, A) == pytest.approx(0.2)
    assert variance_ratio([1.0, 3.0], [0.0, 1.0, 2.0]) == pytest.approx(2.0 / 1.0)  # ddof=1 on both
    assert variance_ratio([5.0, 5.0, 5.0], B) == 0.0  # a constant numerator is a ratio of 0


@pytest.mark.parametrize("a, b", [([1.0], B), (A, [2.0]), (A, []), (A, [3.0, 3.0, 3.0]), (A, [np.nan, 1.0])])
def test_variance_ratio_is_nan_when_undefined(a, b):
    assert math.isnan(variance_ratio(a, b))


def test_missing_values_are_left_out():
    assert variance_ratio([*A, np.nan], [np.nan, *B]) == pytest.approx(5.0)
    assert levene_test([*A, np.nan], B) == pytest.approx(levene_test(A, B))


def anova_f_on_deviations(groups, center=np.mean):
    """One-way ANOVA F of |x − center(group)|, written out, and its p-value from F(k − 1, N − k)."""
    deviations = [np.abs(np.asarray(g, float) - center(g)) for g in groups]
    everything = np.concatenate(deviations)
    k, n = len(groups), everything.size
    between = sum(d.size * (d.mean() - everything.mean()) ** 2 for d in deviations) / (k - 1)
    within = sum(((d - d.mean()) ** 2).sum() for d in deviations) / (n - k)
    statistic = between / within
    return statistic, stats.f.sf(statistic, k - 1, n - k)


def test_levene_is_the_anova_f_on_absolute_deviations_from_the_mean():
    # by hand: |A − 2.5| = [1.5, .5, .5, 1.5] (mean 1), |B − 1.5| = [.5] * 4 (mean .5), grand mean .75;
    # between 4 · .25² · 2 = .5 over 1 df, within 4 · .5² + 0 = 1 over 6 df: W = .5 / (1/6) = 3
    statistic, p_value = levene_test(A, B)
    assert statistic == pytest.approx(3.0)
    assert p_value == pytest.approx(stats.f.sf(3.0, 1, 6))
    assert p_value == pytest.approx(2 * stats.t.sf(math.sqrt(3.0), 6))  # F(1, 6) is t(6)²
    rng = np.random.default_rng(1)
    wide, narrow = rng.normal(0, 2, 23), rng.normal(1, 1, 17)
    assert levene_test(wide, narrow) == pytest.approx(anova_f_on_deviations([wide, narrow]))
    assert levene_test(wide, narrow, center="median") == pytest.approx(
        anova_f_on_deviations([wide, narrow], center=np.median))  # Brown–Forsythe, on request only
    assert levene_test(wide, narrow)[0] != pytest.approx(levene_test(wide, narrow, center="median")[0])


@pytest.mark.parametrize("a, b", [([1.0], B), (A, []), ([1.0, 2.0], [3.0, 5.0]), ([2.0, 2.0, 2.0], [1.0, 1.0, 1.0])])
def test_levene_is_nan_when_undefined(a, b):
    # two values per group: both deviations from the mean are equal, so F's denominator is 0
    assert all(math.isnan(x) for x in levene_test(a, b))


def test_share_below_reference_pairs_each_policy_with_its_own_run():
    scores, references = [0.2, 0.4, 0.6, 0.8], [0.1, 0.5, 0.7, 0.9]
    assert share_below_reference(scores, references) == pytest.approx(0.75)
    # unpaired (against the mean reference, 0.55) it would be 0.5
    assert share_below_reference(scores, [np.mean(references)] * 4) == pytest.approx(0.5)
    assert share_below_reference([0.5, 0.4], [0.5, 0.5]) == pytest.approx(0.5)  # a tie is not worse
    assert share_below_reference([0.2, np.nan, 0.9], [0.5, 0.1, np.nan]) == 1.0  # incomplete pairs left out
    assert math.isnan(share_below_reference([], []))
    assert math.isnan(share_below_reference([np.nan], [0.5]))
    with pytest.raises(ValueError, match="pair up"):
        share_below_reference([0.1, 0.2], [0.3])


def test_worst_fraction_mean_takes_the_lowest_ceil_fraction_n():
    scores = np.arange(15.0)[::-1]  # 14, 13, ..., 0
    assert worst_count(15, 0.1) == 2 and worst_fraction_mean(scores) == pytest.approx(0.5)  # (0 + 1) / 2
    assert worst_count(30, 0.1) == 3 and worst_fraction_mean(np.arange(30.0)) == pytest.approx(1.0)
    assert worst_count(10, 0.1) == 1 and worst_count(11, 0.1) == 2
    assert worst_count(100, 0.07) == 7  # 0.07 · 100 is 7.000000000000001 in floating point
    assert worst_fraction_mean([3.0, 1.0, 2.0]) == 1.0  # at least one
    assert worst_fraction_mean([3.0, 1.0, 2.0, 6.0], fraction=0.5) == pytest.approx(1.5)
    assert worst_fraction_mean([3.0, 1.0, 2.0], fraction=1.0) == pytest.approx(2.0)
    assert worst_fraction_mean([3.0, np.nan, 2.0]) == 2.0
    assert math.isnan(worst_fraction_mean([]))
    for fraction in (0.0, 1.5):
        with pytest.raises(ValueError, match="fraction"):
            worst_fraction_mean([1.0], fraction)


def test_relative_kl_gap_is_the_gap_over_the_mean_of_the_means():
    assert relative_kl_gap([2.0, 2.0], [2.1, 2.3]) == pytest.approx(0.2 / 2.1)
    assert relative_kl_gap([2.1, 2.3], [2.0, 2.0]) == pytest.approx(0.2 / 2.1)
    assert relative_kl_gap([1.0], [3.0]) == pytest.approx(1.0)
    assert relative_kl_gap([1.0, np.nan], [1.0]) == 0.0
    assert math.isnan(relative_kl_gap([], [1.0]))
    assert math.isnan(relative_kl_gap([0.0], [0.0]))


def test_bootstrap_interval_contains_the_estimate_and_is_reproducible():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 2, 30), rng.normal(0, 1, 30)
    low, high = bootstrap_variance_ratio_ci(a, b)
    assert 0 < low < variance_ratio(a, b) < high
    assert bootstrap_variance_ratio_ci(a, b) == (low, high)
    assert bootstrap_variance_ratio_ci(a, b, seed=1) != (low, high)
    narrower = bootstrap_variance_ratio_ci(a, b, level=0.5)
    assert low < narrower[0] < narrower[1] < high


def test_bootstrap_interval_shrinks_with_bigger_samples():
    rng = np.random.default_rng(2)
    widths = []
    for n in (15, 60, 500):
        low, high = bootstrap_variance_ratio_ci(rng.normal(0, 2, n), rng.normal(0, 1, n), num_resamples=4000)
        assert low < 4.0 < high  # the true ratio
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]


def test_bootstrap_interval_agrees_with_scipy_percentile_bootstrap():
    rng = np.random.default_rng(3)
    a, b = rng.gamma(2.0, 1.5, 25), rng.normal(0, 1, 40)
    reference = stats.bootstrap((a, b), lambda x, y, axis: np.var(x, ddof=1, axis=axis) / np.var(y, ddof=1, axis=axis),
                                method="percentile", n_resamples=40000, vectorized=True, random_state=5)
    low, high = bootstrap_variance_ratio_ci(a, b, num_resamples=40000)
    ci = reference.confidence_interval
    assert low == pytest.approx(ci.low, rel=0.04) and high == pytest.approx(ci.high, rel=0.04)


def test_bootstrap_interval_nan_and_unbounded_cases():
    assert all(math.isnan(x) for x in bootstrap_variance_ratio_ci([1.0], B))
    assert all(math.isnan(x) for x in bootstrap_variance_ratio_ci(A, [2.0, 2.0, 2.0]))
    # two values in b: half the resamples repeat one of them (variance 0), so the ratio is unbounded above
    low, high = bootstrap_variance_ratio_ci(A, [1.0, 2.0], num_resamples=2000)
    assert np.isfinite(low) and high == math.inf
    with pytest.raises(ValueError, match="level"):
        bootstrap_variance_ratio_ci(A, B, level=95)


def test_arm_comparison_gathers_every_number():
    treatment, control = [0.4, 0.5, 0.5, 0.6], [0.2, 0.4, 0.6, 0.8]
    comparison = arm_comparison(treatment, control, [0.3, 0.45, 0.55, 0.5], [0.1, 0.5, 0.7, 0.9],
                                [2.2] * 4, [2.0] * 4, num_resamples=2000)
    aware, vanilla = comparison["arms"]["variance-aware"], comparison["arms"]["vanilla"]
    assert (comparison["treatment"], comparison["control"]) == ("variance-aware", "vanilla")
    assert aware["n"] == vanilla["n"] == 4
    assert aware["judge_mean"] == pytest.approx(0.5) and vanilla["judge_mean"] == pytest.approx(0.5)
    assert aware["judge_var"] == pytest.approx(0.02 / 3) and vanilla["judge_var"] == pytest.approx(0.2 / 3)
    assert aware["share_below_reference"] == 0.25 and vanilla["share_below_reference"] == 0.75
    assert aware["worst_fraction_mean"] == pytest.approx(0.4) and vanilla["worst_fraction_mean"] == pytest.approx(0.2)
    assert aware["worst_count"] == 1 and aware["reference_judge_mean"] == pytest.approx(0.45)
    assert aware["final_kl_mean"] == pytest.approx(2.2) and vanilla["final_kl_mean"] == pytest.approx(2.0)
    assert comparison["variance_ratio"] == pytest.approx(0.1)
    low, high = comparison["variance_ratio_ci"]
    assert low < 0.1 < high and (low, high) == bootstrap_variance_ratio_ci(treatment, control, num_resamples=2000)
    # |dev|: [.1, 0, 0, .1] (mean .05) and [.3, .1, .1, .3] (mean .2); between 4 · .075² · 2 = .045,
    # within 4 · .05² + 4 · .1² = .05 over 6 df: W = .045 / (.05 / 6) = 5.4
    assert comparison["levene_statistic"] == pytest.approx(5.4)
    assert comparison["levene_p"] == pytest.approx(stats.f.sf(5.4, 1, 6))
    assert comparison["levene_center"] == "mean"
    assert comparison["relative_kl_gap"] == pytest.approx(0.2 / 2.1) and comparison["kl_matched"] is True
    far = arm_comparison(treatment, control, [0.5] * 4, [0.5] * 4, [3.0] * 4, [2.0] * 4, num_resamples=100)
    assert far["relative_kl_gap"] == pytest.approx(0.4) and far["kl_matched"] is False


def test_arm_comparison_with_one_policy_per_arm_is_nan_not_an_error():
    comparison = arm_comparison([0.5], [0.6], [0.55], [0.5], [1.0], [], num_resamples=100)
    assert comparison["arms"]["variance-aware"]["share_below_reference"] == 1.0
    for key in ("variance_ratio", "levene_statistic", "levene_p", "relative_kl_gap"):
        assert math.isnan(comparison[key]), key
    assert all(math.isnan(x) for x in comparison["variance_ratio_ci"])
    assert math.isnan(comparison["arms"]["vanilla"]["judge_var"])
    assert math.isnan(comparison["arms"]["vanilla"]["final_kl_mean"])
    assert comparison["kl_matched"] is None
