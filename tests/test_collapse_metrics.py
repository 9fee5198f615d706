"""Collapse metrics against plain references, and the figures are written."""

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from rcollapse.analysis.collapse_metrics import (
    collapse_metrics,
    pair_accuracy,
    pooled_by_type,
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


@pytest.mark.parametrize("sizes", [(5, 5), (7, 30), (100, 3), (1, 1)])
def test_w1_matches_scipy(sizes):
    rng = np.random.default_rng(sum(sizes))
    a, b = rng.random(sizes[0]), rng.beta(0.5, 0.5, sizes[1])
    assert wasserstein1(a, b) == pytest.approx(wasserstein_distance(a, b), abs=1e-12)


def test_w1_with_ties_and_empty():
    a, b = np.array([0.0, 0.0, 1.0, 1.0]), np.array([0.5, 0.5, 0.5])
    assert wasserstein1(a, b) == pytest.approx(wasserstein_distance(a, b)) == pytest.approx(0.5)
    assert wasserstein1(a, a[::-1]) == 0.0
    with pytest.raises(ValueError):
        wasserstein1([], [1.0])


def test_w1_to_reference_laws():
    grid = (np.arange(1000) + 0.5) / 1000
    assert wasserstein1_to_quantiles(grid, uniform_quantile) == pytest.approx(0, abs=1e-3)
    assert wasserstein1_to_quantiles(np.zeros(10), uniform_quantile) == pytest.approx(0.5, abs=1e-6)
    assert wasserstein1_to_quantiles(np.r_[np.zeros(4), np.ones(4)], two_point_quantile) == 0.0
    assert wasserstein1_to_quantiles(np.full(8, 0.5), two_point_quantile) == pytest.approx(0.5)
    # agrees with scipy against a fine sample of the reference law
    rng = np.random.default_rng(3)
    sample = rng.beta(2, 5, 50)
    reference = (np.arange(20000) + 0.5) / 20000
    assert wasserstein1_to_quantiles(sample, uniform_quantile, grid=20000) == pytest.approx(
        wasserstein_distance(sample, reference), abs=1e-4)


def test_rank_profile_with_varying_sizes():
    profile, counts = rank_profile([np.array([1.0, 0.5, 0.0]), np.array([0.8, 0.2]), [0.6]])
    assert profile.tolist() == pytest.approx([0.8, 0.35, 0.0])
    assert counts.tolist() == [3, 2, 1]
    empty_profile, empty_counts = rank_profile([])
    assert empty_profile.size == 0 and empty_counts.size == 0


def test_pooled_by_type_and_pair_accuracy():
    vectors = [np.array([1.0, 0.0]), np.array([0.3, 0.2, 0.1]), np.array([0.5])]
    open_r, closed_r = pooled_by_type(vectors, [0.2, 0.0, -1.0])  # openness 0 counts as closed
    assert open_r.tolist() == [1.0, 0.0] and closed_r.tolist() == [0.3, 0.2, 0.1, 0.5]
    assert pair_accuracy([np.array([0.1, 0.5, 0.3]), np.array([1.0, 0.0])]) == pytest.approx(2 / 4)
    assert np.isnan(pair_accuracy([np.array([0.5])]))
    with pytest.raises(ValueError):
        pooled_by_type(vectors, [1.0, -1.0])


def test_collapse_metrics_on_handmade_examples():
    uniform = np.linspace(1, 0, 8)
    polar = np.r_[np.ones(4), np.zeros(4)]
    same = collapse_metrics([uniform, uniform], np.array([1.0, -1.0]), "rm/test")
    assert same["rm/test/open_closed_distance"] == pytest.approx(0)
    assert same["rm/test/pair_acc"] == pytest.approx(1.0)
    assert same["rm/test/open_w1_uniform"] == pytest.approx(same["rm/test/closed_w1_uniform"])
    assert all(type(v) is float for v in same.values())

    apart = collapse_metrics([uniform, polar, polar], np.array([1.0, -1.0, -0.5]), "rm/test")
    expected = {f"rm/test/{k}" for k in (
        "pair_acc", "open_closed_distance", "num_open", "num_closed",
        "open_reward_std", "closed_reward_std", "open_w1_uniform", "closed_w1_uniform",
        "open_w1_two_point", "closed_w1_two_point")}
    expected |= {f"rm/test/{t}_reward_rank{k}" for t in ("open", "closed") for k in range(1, 9)}
    assert set(apart) == expected
    assert apart["rm/test/open_closed_distance"] > 0.2
    assert apart["rm/test/open_closed_distance"] == pytest.approx(wasserstein_distance(uniform, polar))
    assert apart["rm/test/closed_w1_two_point"] == pytest.approx(0)
    assert apart["rm/test/closed_w1_uniform"] == pytest.approx(0.25, abs=1e-3)
    assert apart["rm/test/closed_reward_std"] == pytest.approx(0.5)
    assert apart["rm/test/open_reward_rank1"] == 1.0 and apart["rm/test/closed_reward_rank8"] == 0.0
    assert apart["rm/test/num_open"] == 1.0 and apart["rm/test/num_closed"] == 2.0
    # ties inside the polarised vectors are not correct pairs
    assert apart["rm/test/pair_acc"] == pytest.approx((28 + 2 * 16) / 84)

    only_open = collapse_metrics([uniform, uniform[:5]], np.array([1.0, 0.5]), "rm/val")
    assert "rm/val/open_closed_distance" not in only_open
    assert not [k for k in only_open if "closed" in k]
    assert only_open["rm/val/open_reward_rank8"] == pytest.approx(0.0)  # only the longer prompt
    assert only_open["rm/val/open_reward_rank1"] == 1.0


def test_figures_are_written(tmp_path):
    rng = np.random.default_rng(0)
    vectors = [np.sort(rng.random(int(n)))[::-1] for n in rng.integers(3, 9, size=12)]
    openness = np.tile([1.0, -1.0], 6)
    overlay = {"theory (open)": np.linspace(1, 0, 8), "theory (closed)": np.r_[np.ones(4), np.zeros(4)],
               "reference": np.full(8, 0.5)}
    p1 = plot_rewards_by_rank(vectors, openness, tmp_path / "a" / "fig3.png", title="t",
                              overlay=overlay)
    p1b = plot_rewards_by_rank(vectors[::2], openness[::2], tmp_path / "only_open.png")
    p2 = plot_rewards_over_training([(20, vectors, openness), (10, vectors[:4], openness[:4])],
                                    tmp_path / "b" / "fig4.png", title="t")
    p3 = plot_utility_comparison(
        [{"label": f"utility={u}", "open_profile": np.linspace(1, 0, 8), "closed_profile": np.ones(8)}
         for u in ("x", "log", "x_inv", "logsigmoid", "adaptive")], tmp_path / "grid.png")
    for p in (p1, p1b, p2, p3):
        assert p.exists() and p.read_bytes()[:4] == b"\x89PNG" and p.stat().st_size > 5000
