"""Theorem 3.3's bandit: Monte-Carlo underperformance rates against the closed forms."""

import numpy as np
import pytest

from rcollapse.maths.bandit import (
    SETTINGS,
    closed_form_underperformance,
    equal_mean_std_ratio,
    kantorovich_bound,
    make_problem,
    policy_updates,
    simulate,
)


@pytest.mark.parametrize("setting", ["high", "low"])
def test_monte_carlo_rates_match_the_closed_forms_and_aware_is_safer(setting):
    # small true rewards against the noise, so that underperformance is common enough to measure
    r_star, variances = make_problem(200, SETTINGS[setting], reward_loc=0.05, reward_scale=0.3, seed=0)
    result = simulate(r_star, variances, epsilon=1.0, num_draws=20000, seed=1)
    for method in ("unaware", "aware"):
        p = result.underperformance_closed_form[method]
        tolerance = 4 * np.sqrt(p * (1 - p) / 20000) + 1e-3
        assert result.underperformance_mc[method] == pytest.approx(p, abs=tolerance)
    assert result.underperformance_closed_form["aware"] <= result.underperformance_closed_form["unaware"]


def test_updates_have_the_stated_sizes():
    rng = np.random.default_rng(0)
    variances = rng.uniform(3, 100, 50)
    r_hat = rng.normal(size=(4, 50))
    pi0 = np.full(50, 1 / 50)
    pi1, pi2 = policy_updates(r_hat, variances, pi0, epsilon=2.0)
    assert np.allclose(np.sum((pi1 - pi0) ** 2, 1), 2.0)  # ‖π1 − π0‖² = ε
    assert np.allclose(np.sum(variances * (pi2 - pi0) ** 2, 1), variances.min() * 2.0)  # ‖·‖²_Σ = ε̃


def test_closed_form_is_never_larger_for_the_aware_update():
    rng = np.random.default_rng(3)
    for _ in range(100):
        r_star, variances = rng.normal(size=20), rng.uniform(0.1, 50, 20)
        p = closed_form_underperformance(r_star, variances)
        assert p["aware"] <= p["unaware"] + 1e-12


def test_bad_variance_range_names_the_key():
    with pytest.raises(ValueError, match="stage.bandit.variance_range"):
        make_problem(10, (5.0, 1.0), 0.0, 1.0, 0)


@pytest.mark.parametrize("distribution", ["uniform", "log_uniform", "endpoints"])
@pytest.mark.parametrize("setting", ["high", "low"])
def test_matched_budget_equalises_means_and_the_std_ratio_follows_the_prediction(setting, distribution):
    r_star, variances = make_problem(1000, SETTINGS[setting], 0.0, 1.0, seed=0, variance_distribution=distribution)
    result = simulate(r_star, variances, epsilon=1.0, num_draws=4000, seed=1, epsilon_tilde="matched_mean")
    unaware, aware = result.returns["unaware"], result.returns["aware"]
    gain_u, gain_a = unaware.mean() - result.reference_return, aware.mean() - result.reference_return
    standard_error = np.sqrt(unaware.var() / unaware.size + aware.var() / aware.size)
    assert abs(gain_u - gain_a) < 4 * standard_error + 0.02 * gain_u  # equal means (pilot draws differ)
    predicted = equal_mean_std_ratio(r_star, variances)
    assert 1.0 <= predicted <= kantorovich_bound(SETTINGS[setting]) + 1e-12
    assert unaware.std() / aware.std() == pytest.approx(predicted, rel=0.15)


def test_high_variability_is_several_times_less_risky_at_equal_means_and_low_is_not():
    ratios = {}
    for setting in ("high", "low"):
        r_star, variances = make_problem(1000, SETTINGS[setting], 0.0, 1.0, seed=0, variance_distribution="endpoints")
        result = simulate(r_star, variances, 1.0, 4000, seed=1, epsilon_tilde="matched_mean")
        ratios[setting] = result.returns["unaware"].std() / result.returns["aware"].std()
    assert ratios["high"] > 2.5  # paper Fig. 3: 0.13 vs 0.04
    assert ratios["low"] < 1.1  # paper Fig. 4: 0.14 vs 0.12


def test_the_theorem_budget_is_the_default_and_numbers_are_accepted():
    r_star, variances = make_problem(50, SETTINGS["high"], 0.0, 1.0, seed=0)
    assert simulate(r_star, variances, 2.0, 10, seed=1).epsilon_tilde == pytest.approx(2.0 * variances.min())
    assert simulate(r_star, variances, 2.0, 10, seed=1, epsilon_tilde=0.5).epsilon_tilde == 0.5
    with pytest.raises(ValueError, match="stage.bandit.epsilon_tilde"):
        simulate(r_star, variances, 2.0, 10, seed=1, epsilon_tilde="largest")
    with pytest.raises(ValueError, match="stage.bandit.variance_distribution"):
        make_problem(10, (1.0, 2.0), 0.0, 1.0, 0, variance_distribution="beta")
