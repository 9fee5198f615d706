"""Figures of the theory stages: the collapsed distribution (paper Fig. 2 style) and the bandit's
returns (uncertainty-aware paper, Fig. 5)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rcollapse.analysis.figures import pyplot, save_figure


def plot_collapsed_distribution(rewards: np.ndarray, limit, path: Path, title: str = "") -> Path:
    """Paper Fig. 2 style: the solution's empirical CDF and histogram with the limit overlaid."""
    plt = pyplot()

    fig, (ax_cdf, ax_hist) = plt.subplots(1, 2, figsize=(9, 3.6))
    x = np.sort(rewards)
    ax_cdf.step(x, np.arange(1, x.size + 1) / x.size, where="post", label=f"solution (n={x.size})")
    ax_hist.hist(rewards, bins=min(50, max(5, x.size // 10)), range=(0, 1), density=True, alpha=0.7)
    if limit is not None:
        t = np.linspace(0, 1, 501)
        ax_cdf.plot(t, limit.cdf(t), "k--", label=f"limit: {limit.name} {limit.params}")
    ax_cdf.set(xlabel="reward", ylabel="CDF", xlim=(0, 1))
    ax_hist.set(xlabel="reward", ylabel="density", xlim=(0, 1))
    ax_cdf.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def plot_bandit_returns(returns: dict[str, np.ndarray], reference: float, path: Path, title: str = "") -> Path:
    """Histograms of the true return of both updates over the draws of R̂ (paper Fig. 5)."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 3.6))
    labels = {"unaware": "Method 1 (variance-unaware)", "aware": "Method 2 (variance-aware)"}
    for method, values in returns.items():
        ax.hist(values, bins=60, alpha=0.6, label=f"{labels[method]}: {values.mean():.3f} ± {values.std():.3f}")
    ax.axvline(reference, color="k", linestyle="--", label="reference π0")
    ax.set(xlabel="true return πᵀr*", ylabel="draws", title=title)
    ax.legend(fontsize=7)
    return save_figure(fig, path)
