"""Figures of per-prompt reward distributions (the reward-collapse paper's Figs. 3 and 4).

Every function takes an output path, creates its parent dirs, saves a PNG (dpi 120), closes the
figure and returns the path. Matplotlib is imported inside the functions (Agg backend).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rcollapse.analysis.collapse_metrics import TYPES, rank_profile, split_by_type
from rcollapse.analysis.figures import pyplot, save_figure

TYPE_COLOURS = {"open": "tab:blue", "closed": "tab:red"}
OVERLAY_COLOURS = ("black", "tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:gray")
MAX_PROMPT_LINES = 1000  # more thin lines add nothing visible; an even subset is drawn


def _ranks(n: int) -> np.ndarray:
    return np.arange(1, n + 1)


def _integer_ranks(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def _legend(ax) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)


def _overlay_targets(name: str) -> tuple[str, ...]:
    """The panels a named overlay goes on: those whose type the name mentions, else both."""
    lowered = name.lower()
    chosen = tuple(kind for kind in TYPES if kind in lowered)
    return chosen or TYPES


def plot_rewards_by_rank(
    reward_vectors: Sequence[np.ndarray],
    openness,
    path,
    title: str = "",
    overlay: dict[str, np.ndarray] | None = None,
) -> Path:
    """Paper Fig. 3 style, one column per prompt type (open, closed).

    Top row: each prompt's reward vector over rank position (thin, translucent; x = rank 1..n,
    best first), the mean profile bold, y in [0, 1]. Bottom row: histogram of the type's pooled
    rewards. ``overlay`` maps names to predicted profiles drawn dashed: a name containing
    "open" / "closed" picks that panel, any other name goes on both.
    """
    plt = pyplot()
    from matplotlib.collections import LineCollection

    by_type = split_by_type(reward_vectors, openness)
    fig, axes = plt.subplots(
        2, 2, figsize=(10, 6.5), gridspec_kw={"height_ratios": [3, 1.6]}, sharex="row"
    )
    overlay = {name: np.asarray(v, float).ravel() for name, v in (overlay or {}).items()}
    for col, kind in enumerate(TYPES):
        ax, hist_ax = axes[0, col], axes[1, col]
        colour = TYPE_COLOURS[kind]
        vectors = [v for v in by_type[kind] if v.size]
        shown = vectors
        if len(vectors) > MAX_PROMPT_LINES:
            keep = np.linspace(0, len(vectors) - 1, MAX_PROMPT_LINES).round().astype(int)
            shown = [vectors[i] for i in keep]
        if shown:
            segments = [np.column_stack([_ranks(v.size), v]) for v in shown]
            alpha = float(np.clip(8.0 / len(shown), 0.05, 0.35))
            ax.add_collection(LineCollection(segments, colors=colour, alpha=alpha, linewidths=0.8))
            profile, _ = rank_profile(vectors)
            ax.plot(_ranks(profile.size), profile, color=colour, linewidth=2.5, marker="o",
                    markersize=4, label=f"mean over {len(vectors)} prompts")
        else:
            ax.text(0.5, 0.5, f"no {kind}-ended prompts", ha="center", va="center",
                    transform=ax.transAxes, color="gray")
        for i, (name, values) in enumerate(overlay.items()):
            if kind in _overlay_targets(name) and values.size:
                ax.plot(_ranks(values.size), values, linestyle="--", linewidth=1.6,
                        color=OVERLAY_COLOURS[i % len(OVERLAY_COLOURS)], label=name)
        n_max = max([v.size for v in vectors] + [v.size for v in overlay.values()] + [2])
        ax.set(title=f"{kind}-ended prompts", xlabel="rank (1 = best)", ylabel="reward",
               xlim=(0.7, n_max + 0.3), ylim=(-0.03, 1.03))
        _integer_ranks(ax)
        _legend(ax)
        pool = np.concatenate(vectors) if vectors else np.empty(0)
        if pool.size:
            hist_ax.hist(np.clip(pool, 0, 1), bins=25, range=(0, 1), color=colour, alpha=0.8,
                         weights=np.full(pool.size, 1.0 / pool.size))
        hist_ax.set(xlabel="reward", ylabel="share of rewards", xlim=(0, 1))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_rewards_over_training(history, path, title: str = "") -> Path:
    """Paper Fig. 4 style: the mean reward-by-rank profile at each evaluation, per type.

    ``history`` is a list of ``(step, reward_vectors, openness)``; one curve per step in each
    panel (open, closed), coloured by step (viridis, with a colorbar), so that one sees the
    profiles converge.
    """
    plt = pyplot()
    import matplotlib as mpl

    history = sorted(history, key=lambda item: item[0])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    cmap = mpl.colormaps["viridis"]
    steps = [int(step) for step, _, _ in history] or [0]
    norm = mpl.colors.Normalize(vmin=min(steps), vmax=max(max(steps), min(steps) + 1))
    for ax, kind in zip(axes, TYPES, strict=True):
        n_max = 2
        for step, vectors, openness in history:
            chosen = [v for v in split_by_type(vectors, openness)[kind] if v.size]
            if not chosen:
                continue
            profile, _ = rank_profile(chosen)
            n_max = max(n_max, profile.size)
            ax.plot(_ranks(profile.size), profile, color=cmap(norm(step)), linewidth=1.4,
                    marker="o", markersize=2.5)
        ax.set(title=f"{kind}-ended prompts", xlabel="rank (1 = best)",
               xlim=(0.7, n_max + 0.3), ylim=(-0.03, 1.03))
        _integer_ranks(ax)
    axes[0].set_ylabel("mean reward")
    fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=list(axes), label="training step")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_utility_comparison(rows: Sequence[dict], path, title: str = "") -> Path:
    """Paper Fig. 3 grid: one panel per row, that row's open vs closed mean reward profile.

    ``rows``: dicts ``{"label": str, "open_profile": array, "closed_profile": array}`` (a
    profile may be missing or hold NaN at ranks a run did not have).
    """
    plt = pyplot()
    n = max(1, len(rows))
    cols = min(n, 4)
    nrows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(3.4 * cols, 3.1 * nrows), squeeze=False,
                             sharey=True)
    for ax in axes.flat[len(rows):]:
        ax.axis("off")
    for ax, row in zip(axes.flat, rows, strict=False):
        n_max = 2
        for kind in TYPES:
            profile = np.asarray(row.get(f"{kind}_profile", ()), float).ravel()
            if profile.size:
                n_max = max(n_max, profile.size)
                ax.plot(_ranks(profile.size), profile, marker="o", markersize=3,
                        color=TYPE_COLOURS[kind], label=kind)
        ax.set_title(str(row.get("label", "")), fontsize=9)
        ax.set(xlabel="rank (1 = best)", xlim=(0.7, n_max + 0.3), ylim=(-0.03, 1.03))
        _integer_ranks(ax)
        _legend(ax)
    for r in range(nrows):
        axes[r, 0].set_ylabel("mean reward")
    if not rows:
        axes[0, 0].axis("on")
        axes[0, 0].text(0.5, 0.5, "no runs", ha="center", va="center")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_theory_by_class(theory_runs: Sequence[dict], path) -> Path:
    """Paper Fig. 2: one panel per utility class, the collapsed solutions' CDFs (one per run of
    a multirun, e.g. over γ) with each one's limit law dashed. ``theory_runs`` are the runs'
    ``theory.json`` payloads (``utility``, ``rewards``, ``limit``)."""
    from scipy import stats

    plt = pyplot()
    by_class: dict[str, list[dict]] = {}
    for run in theory_runs:
        by_class.setdefault(str(run["utility"]).split("(", 1)[0], []).append(run)
    fig, axes = plt.subplots(1, len(by_class), figsize=(4.2 * len(by_class), 3.6), squeeze=False)
    t = np.linspace(0, 1, 401)
    for ax, (name, runs) in zip(axes[0], sorted(by_class.items())):
        for k, run in enumerate(sorted(runs, key=lambda r: str(r["utility"]))):
            colour = plt.get_cmap("viridis")(k / max(1, len(runs) - 1))
            x = np.sort(np.asarray(run["rewards"], float))
            label = str(run["utility"]).split("(", 1)[1].rstrip(")")
            ax.step(x, np.arange(1, x.size + 1) / x.size, where="post", color=colour, label=label)
            limit = run.get("limit")
            if limit and limit["name"] == "beta":
                ax.plot(t, stats.beta(limit["params"]["a"], limit["params"]["b"]).cdf(t), "--", color=colour)
            elif limit and limit["name"] == "uniform":
                ax.plot(t, t, "--", color=colour)
        ax.set(title=name, xlabel="reward", ylabel="CDF", xlim=(0, 1), ylim=(0, 1))
        ax.legend(fontsize=6)
    fig.suptitle("collapsed reward distributions (solid) and their limits (dashed)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
