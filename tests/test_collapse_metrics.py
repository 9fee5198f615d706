"""Collapse metrics and figures against plain references."""

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from rcollapse.analysis.collapse_metrics import (
    collapse_metrics,
    rank_profile,
    two_point_quantile,
    uniform_quantile,
    wasserstein1,
    wasserstein1_to_quantiles,
)
from rcollapse.analysis.collapse_plots import (
    plot_rewards_by_rank,
    plot_rewards_over_training,
    plot_utility_comparison,
)


@pytest.mark.parametrize("sizes", [(5, 5), (7, 30), (100, 3)])
def test_w1_matches_scipy(sizes):
    rng = np.random.default_rng(sum(sizes))
    a, b = rng.random(sizes[0]), rng.beta(0.5, 0.5, sizes[1])
    assert wasserstein1(a, b) == pytest.approx(wasserstein_distance(a, b), abs=1e-12)


def test_w1_to_reference_laws():
    grid = (np.arange(1000) + 0.5) / 1000
    assert wasserstein1_to_quantiles(grid, uniform_quantile) == pytest.approx(0, abs=1e-3)
    assert wasserstein1_to_quantiles(np.zeros(10), uniform_quantile) == pytest.approx(0.5, abs=1e-3)
    assert wasserstein1_to_quantiles(np.r_[np.zeros(4), np.ones(4)], two_point_quantile) == pytest.approx(0)
    assert wasserstein1_to_quantiles(np.full(8, 0.5), two_point_quantile) == pytest.approx(0.5)


def test_rank_profile_with_varying_sizes():
    profile, counts = rank_profile([np.array([1.0, 0.5, 0.0]), np.array([0.8, 0.2])])
    assert profile.tolist() == pytest.approx([0.9, 0.35, 0.0]) and counts.tolist() == [2, 2, 1]


def test_collapse_metrics_on_handmade_examples():
    uniform = np.linspace(1, 0, 8)
    polar = np.r_[np.ones(4), np.zeros(4)]
    same = collapse_metrics([uniform, uniform], np.array([1.0, -1.0]), "rm/test")
    assert same["rm/test/open_closed_distance"] == pytest.approx(0)
    assert same["rm/test/pair_acc"] == pytest.approx(1.0)
    apart = collapse_metrics([uniform, polar, polar], np.array([1.0, -1.0, -0.5]), "rm/test")
    assert apart["rm/test/open_closed_distance"] > 0.2
    assert apart["rm/test/closed_w1_two_point"] == pytest.approx(0)
    assert apart["rm/test/open_reward_rank1"] == 1.0 and apart["rm/test/closed_reward_rank8"] == 0.0
    assert apart["rm/test/num_closed"] == 2.0
    # ties inside the polarised vectors are not correct pairs
    assert apart["rm/test/pair_acc"] == pytest.approx((28 + 2 * 16) / 84)
    only_open = collapse_metrics([uniform], np.array([1.0]), "rm/val")
    assert "rm/val/open_closed_distance" not in only_open and "rm/val/closed_reward_std" not in only_open


def test_figures_are_written(tmp_path):
    rng = np.random.default_rng(0)
    vectors = [np.sort(rng.random(8))[::-1] for _ in range(6)]
    openness = np.array([1, -1, 1, -1, 1, -1.0])
    p1 = plot_rewards_by_rank(vectors, openness, tmp_path / "a" / "fig3.png", overlay={"theory (open)": np.linspace(1, 0, 8)})
    p2 = plot_rewards_over_training([(10, vectors, openness), (20, vectors, openness)], tmp_path / "fig4.png")
    p3 = plot_utility_comparison([{"label": "x", "open_profile": np.linspace(1, 0, 8), "closed_profile": np.ones(8)}],
                                 tmp_path / "grid.png")
    for p in (p1, p2, p3):
        assert p.stat().st_size > 5000
