"""The collapse program: optimality, endpoints, symmetry, the exact answer for x, Beta limits."""

import numpy as np
import pytest
import torch

from rcollapse.maths.theory import (
    CollapseSolution,
    Limit,
    ks_distance,
    ks_distance_to_limit,
    limit_distribution,
    logsigmoid_endpoint_mass,
    objective_and_gradient,
    solve_collapse,
    wasserstein1_to_cdf,
)
from rcollapse.maths.utilities import (
    BoxCoxUtility,
    InverseUtility,
    LinearUtility,
    LogSigmoidUtility,
    LogUtility,
    NegPowerUtility,
    PowerUtility,
    SquareUtility,
)

STRICTLY_CONCAVE = {
    "log_eps0": LogUtility(eps=0),
    "x_inv_eps0": InverseUtility(eps=0),
    "neg_power_eps0": NegPowerUtility(gamma=0.5, eps=0),
    "power_eps0": PowerUtility(gamma=0.5, eps=0),
    "x_inv_shifted": InverseUtility(eps=0.1),
    "logsigmoid": LogSigmoidUtility(scale=4.0),
}


def brute_objective(utility, r) -> float:
    r = torch.tensor(r, dtype=torch.float64)
    i, j = torch.triu_indices(r.numel(), r.numel(), 1)
    return float(utility(r[i] - r[j]).sum())


@pytest.mark.parametrize("name", STRICTLY_CONCAVE)
@pytest.mark.parametrize("n", [2, 7, 40])
def test_solution_is_optimal_with_endpoints_and_symmetry(name, n):
    u = STRICTLY_CONCAVE[name]
    sol = solve_collapse(u, n)
    r = sol.rewards
    assert r[0] == pytest.approx(1.0) and r[-1] == pytest.approx(0.0, abs=1e-15)
    assert np.all(np.diff(r) <= 1e-12)  # sorted descending
    assert np.max(np.abs(r + r[::-1] - 1)) < 1e-4  # r_i + r_{n+1-i} = 1
    assert sol.duality_gap <= 1e-6 * max(1.0, abs(sol.objective))  # KKT residual
    assert sol.objective == pytest.approx(brute_objective(u, r), rel=1e-10)
    # no feasible perturbation does better (a few random sorted vectors near the solution)
    rng = np.random.default_rng(n)
    for _ in range(5):
        other = np.clip(np.sort(r + rng.normal(0, 1e-3, n))[::-1], 0, 1)
        other[0], other[-1] = 1.0, 0.0
        assert brute_objective(u, other) <= sol.objective + 1e-9 * abs(sol.objective)


def test_gradient_matches_autograd_on_all_pairs():
    u = NegPowerUtility(gamma=0.7, eps=0.05)
    r = torch.tensor(np.sort(np.random.default_rng(0).random(30))[::-1].copy(), dtype=torch.float64)
    value, grad = objective_and_gradient(u, r, block=7)
    x = r.clone().requires_grad_(True)
    i, j = torch.triu_indices(30, 30, 1)
    total = u(x[i] - x[j]).sum()
    (expected,) = torch.autograd.grad(total, x)
    assert value == pytest.approx(float(total.detach()))
    torch.testing.assert_close(grad, expected)


@pytest.mark.parametrize("n", [2, 5, 8, 101])
def test_x_gives_the_exact_two_point_answer(n):
    r = solve_collapse(LinearUtility(), n).rewards
    half = n // 2
    assert np.all(r[:half] == 1.0) and np.all(r[n - half:] == 0.0)
    if n % 2:
        assert r[half] == 0.5


@pytest.mark.parametrize(
    ("utility", "name"),
    [(PowerUtility(gamma=0.5, eps=0), "beta"), (NegPowerUtility(gamma=0.5, eps=0), "beta"),
     (InverseUtility(eps=0), "uniform")],
    ids=["class1_power", "class2_neg_power", "x_inv"],
)
def test_ks_distance_to_the_limit_decreases_with_n(utility, name):
    limit = limit_distribution(utility)
    assert limit.name == name
    distances = [ks_distance_to_limit(solve_collapse(utility, n), limit) for n in (8, 32, 128)]
    assert distances[0] > distances[1] > distances[2]
    assert wasserstein1_to_cdf(solve_collapse(utility, 128).rewards, limit.cdf) < 0.02


def test_limit_parameters():
    assert limit_distribution(PowerUtility(gamma=0.4, eps=0)).params == pytest.approx({"a": 0.3, "b": 0.3})
    assert limit_distribution(NegPowerUtility(gamma=0.4, eps=0)).params == pytest.approx({"a": 0.7, "b": 0.7})
    assert limit_distribution(LogUtility(eps=0)).params == pytest.approx({"a": 0.5, "b": 0.5})
    assert limit_distribution(LinearUtility()).name == "two_point"
    assert limit_distribution(LogSigmoidUtility()) is None


def test_logsigmoid_mass_at_one_respects_theorem_4():
    u = LogSigmoidUtility(scale=4.0)
    bound = logsigmoid_endpoint_mass(u)  # U'(1)/(U'(0)+U'(1)) = (1−σ(4))/(½ + 1−σ(4))
    s4 = 1 / (1 + np.exp(-4.0))
    assert bound == pytest.approx((1 - s4) / (0.5 + 1 - s4))
    r = solve_collapse(u, 200).rewards
    assert np.mean(r > 1 - 1e-3) >= bound - 0.02


def test_ks_distance_against_scipy():
    from scipy import stats

    x = np.random.default_rng(1).beta(0.5, 0.5, 300)
    assert ks_distance(x, stats.beta(0.5, 0.5).cdf) == pytest.approx(
        stats.kstest(x, stats.beta(0.5, 0.5).cdf).statistic)


def high_precision_ks_to_beta(solution, a: float) -> float:
    """The textbook KS formula, max_i max(i/n − F(x_(i)), F(x_(i)) − (i−1)/n), on the rewards
    placed exactly in 60-digit arithmetic (1 − d for those near 1) with mpmath's Beta CDF
    evaluated at them directly (no symmetry)."""
    mp = pytest.importorskip("mpmath")
    with mp.workdps(60):
        x = sorted(1 - mp.mpf(d) if r > 0.5 else mp.mpf(d)
                   for r, d in zip(solution.rewards, solution.distances_to_end, strict=True))
        a = mp.mpf(a)
        cdf = [mp.betainc(a, a, 0, xi, regularized=True) for xi in x]
        n = len(x)
        return float(max(max(mp.mpf(i + 1) / n - f, f - mp.mpf(i) / n) for i, f in enumerate(cdf)))


@pytest.mark.parametrize("n", [512, 1024])
def test_ks_distance_is_exact_where_rewards_round_to_one(n):
    # x^0.75: Beta(1/8, 1/8) profile, 1 − r_2 ≈ 1e−19 at n = 512: r_2 rounds to 1.0
    solution = solve_collapse(PowerUtility(gamma=0.75, eps=0), n)
    assert solution.rewards[1] == 1.0 and 0 < solution.distances_to_end[1] < 1e-18
    limit = limit_distribution(PowerUtility(gamma=0.75, eps=0))
    exact = high_precision_ks_to_beta(solution, 0.125)
    assert ks_distance_to_limit(solution, limit) == pytest.approx(exact, rel=1e-9)


@pytest.mark.parametrize("n", [2, 8, 512, 5, 9])
def test_ks_distance_to_the_two_point_limit_of_x_is_exact(n):
    # the solution for x is the two-point law itself; an odd n puts 1/n of the mass at ½, which
    # the law does not have: F_n − F = ±1/(2n) around ½
    solution = solve_collapse(LinearUtility(), n)
    expected = 0.0 if n % 2 == 0 else 1 / (2 * n)
    assert ks_distance_to_limit(solution, limit_distribution(LinearUtility())) == pytest.approx(expected, abs=1e-15)


def test_ks_distance_to_a_law_with_atoms_takes_both_sides_of_each_jump():
    # rewards 1, ½, ½, 0 against ½ δ₀ + ½ δ₁: F_n(½) − F(½) = ¾ − ½ and F_n(½−) − F(½−) = ¼ − ½
    rewards = np.array([1.0, 0.5, 0.5, 0.0])
    solution = CollapseSolution(rewards, np.minimum(rewards, 1 - rewards), 0.0, 0.0, 0)
    assert ks_distance_to_limit(solution, limit_distribution(LinearUtility())) == pytest.approx(0.25)
    # an atom inside (0, 1): ⅓ δ_½ + ⅓ δ₀ + ⅓ δ₁ against the same rewards: F_n(0) − F(0) = ¼ − ⅓
    law = Limit("three_point", {}, lambda x: (np.asarray(x) >= 0) / 3 + (np.asarray(x) >= 0.5) / 3
                + (np.asarray(x) >= 1) / 3, atoms={0.0: 1 / 3, 0.5: 1 / 3, 1.0: 1 / 3})
    assert ks_distance_to_limit(solution, law) == pytest.approx(1 / 12)


@pytest.mark.parametrize(
    ("utility", "n"),
    [(PowerUtility(gamma=0.5, eps=0), 64), (InverseUtility(eps=0), 40), (NegPowerUtility(gamma=0.5, eps=0), 33)],
    ids=["power", "x_inv", "neg_power_odd_n"],
)
def test_ks_distance_to_limit_agrees_with_scipy_where_nothing_rounds(utility, n):
    from scipy import stats

    solution = solve_collapse(utility, n)
    limit = limit_distribution(utility)
    assert ks_distance_to_limit(solution, limit) == pytest.approx(
        stats.kstest(solution.rewards, limit.cdf).statistic, rel=1e-12)


@pytest.mark.parametrize("method", ["auto", "exponentiated_gradient"])
def test_distances_to_end_are_the_rewards_distances_to_the_nearer_end(method):
    for solution in (solve_collapse(PowerUtility(gamma=0.5, eps=0), n, method=method) for n in (7, 40)):
        r = solution.rewards
        np.testing.assert_allclose(solution.distances_to_end, np.minimum(r, 1 - r), rtol=0, atol=1e-15)
        assert np.all(solution.distances_to_end >= 0)


@pytest.mark.parametrize("n", [512, 1024])
def test_w1_distance_matches_the_exact_integral(n):
    # W1 = ∫₀¹ |F_n − F| exactly: between the rewards and the crossings F = k/n the sign is fixed,
    # and ∫₀ˣ F = x F(x) − E[X; X ≤ x] = x F(x) − ½ I_x(a + 1, a) for Beta(a, a). A reward rounded
    # to 1 moves W1 by its distance to 1 over n (below 1e−16/n): W1 has no rounding problem.
    from scipy import special, stats

    a = 0.125
    solution = solve_collapse(PowerUtility(gamma=0.75, eps=0), n)
    x = np.sort(solution.rewards)
    crossings = stats.beta(a, a).ppf(np.arange(1, n) / n)
    edges = np.unique(np.concatenate([[0.0, 1.0], x, crossings]))

    def integral_of_cdf(t):
        return t * special.betainc(a, a, t) - 0.5 * special.betainc(a + 1, a, t)

    left, right = edges[:-1], edges[1:]
    empirical = np.searchsorted(x, left, side="right") / n
    pieces = empirical * (right - left) - (integral_of_cdf(right) - integral_of_cdf(left))
    exact = float(np.abs(pieces).sum())
    limit = limit_distribution(PowerUtility(gamma=0.75, eps=0))
    assert wasserstein1_to_cdf(solution.rewards, limit.cdf) == pytest.approx(exact, rel=1e-3)


AGREEMENT = {
    "log": LogUtility(eps=0),
    "power_0.3": PowerUtility(gamma=0.3, eps=0),
    "neg_power_1.5": NegPowerUtility(gamma=1.5, eps=0),
    "box_cox": BoxCoxUtility(gamma=-0.5, eps=0),
    "x_inv_shifted": InverseUtility(eps=0.1),  # U'(0) finite: ties possible
    "logsigmoid_2": LogSigmoidUtility(scale=2.0),  # ties at the ends
}


@pytest.mark.parametrize(
    ("name", "n"),
    [(name, n) for name in AGREEMENT for n in (9, 40)]
    + [(name, 300) for name in ("log", "power_0.3", "neg_power_1.5", "box_cox")],
)
def test_newton_agrees_with_the_independent_gradient_solver(name, n):
    utility = AGREEMENT[name]
    newton = solve_collapse(utility, n)
    reference = solve_collapse(utility, n, method="exponentiated_gradient", tol=1e-9, max_iter=20000)
    assert newton.objective >= reference.objective - 1e-9 * abs(reference.objective)
    assert newton.duality_gap <= 1e-7 * max(1.0, abs(newton.objective))
    np.testing.assert_allclose(newton.rewards, reference.rewards, atol=2e-3)


@pytest.mark.parametrize("extension", ["paper", "c1"])
def test_convex_utility_falls_back_to_the_gradient_solver(extension):
    utility = SquareUtility(eps=0.1, extension=extension)
    sol = solve_collapse(utility, 30)
    r = sol.rewards
    assert r[0] == pytest.approx(1.0) and r[-1] == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.diff(r) <= 1e-12)
    assert sol.objective == pytest.approx(brute_objective(utility, r), rel=1e-10)
    np.testing.assert_allclose(sol.distances_to_end, np.minimum(r, 1 - r), rtol=0, atol=1e-15)


def test_large_n_keeps_the_tiny_gaps_next_to_the_ends():
    # x^0.5: Beta(1/4, 1/4) profile, 1 − r_2 ≈ (a·B(a, a)/n)^{1/a} ≈ 1e−10 at n = 1,000
    sol = solve_collapse(PowerUtility(gamma=0.5, eps=0), 1000)
    r = sol.rewards
    assert np.all(np.diff(r) < 0)  # strictly ordered
    assert 0 < 1 - r[1] < 1e-8 and 0 < r[-2] < 1e-8
    assert sol.duality_gap <= 1e-7 * abs(sol.objective)
    assert sol.iterations <= 20


@pytest.mark.parametrize("gamma", [0.25, 0.5, 0.75])
def test_un_shifted_box_cox_collapses_exactly_like_the_power_utility_it_is_a_multiple_of(gamma):
    """(x^γ − 1)/γ = x^γ/γ − 1/γ has the maximiser of x^γ. Measured before the fix (γ ½, n 512):
    W1 0.0126 to the Beta(¼, ¼) limit against 0.0005 for x^γ, because the slope at tiny gaps
    came out 0 (torch.expm1's backward) and the solver read U'(0+) = ∞ as finite."""
    for n in (8, 64):
        box = solve_collapse(BoxCoxUtility(gamma, eps=0), n)
        power = solve_collapse(PowerUtility(gamma, eps=0), n)
        np.testing.assert_allclose(box.rewards, power.rewards, atol=1e-6)
