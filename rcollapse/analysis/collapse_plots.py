"""Figures of per-prompt reward distributions (the reward-collapse paper's Figs. 3 and 4)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rcollapse.analysis.collapse_metrics import pooled_by_type, rank_profile

TYPE_COLOURS = {"open": "tab:blue", "closed": "tab:red"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def _split(reward_vectors, openness):
    openness = np.asarray(openness, float)
    return {
        "open": [np.asarray(v, float) for v, o in zip(reward_vectors, openness) if o > 0],
        "closed": [np.asarray(v, float) for v, o in zip(reward_vectors, openness) if o <= 0],
    }


def plot_rewards_by_rank(reward_vectors: Sequence[np.ndarray], openness, path, title: str = "",
                         overlay: dict[str, np.ndarray] | None = None) -> Path:
    """Fig. 3 style: each prompt's rewards over rank (thin), the mean profile (bold), per type;
    below, histograms of the pooled rewards. ``overlay`` adds named profiles as dashed lines
    (a key containing "open"/"closed" picks that panel; others go on both)."""
    plt = _pyplot()
    by_type = _split(reward_vectors, openness)
    pools = dict(zip(("open", "closed"), pooled_by_type(reward_vectors, openness)))
    fig, axes = plt.subplots(2, 2, figsize=(9, 6), gridspec_kw={"height_ratios": [3, 2]})
    for col, kind in enumerate(("open", "closed")):
        ax, hist_ax = axes[0, col], axes[1, col]
        colour = TYPE_COLOURS[kind]
        vectors = by_type[kind]
        for v in vectors:
            ax.plot(np.arange(1, len(v) + 1), v, color=colour, alpha=0.25, linewidth=0.8)
        if vectors:
            profile, _ = rank_profile(vectors)
            ax.plot(np.arange(1, len(profile) + 1), profile, color=colour, linewidth=2.5, marker="o",
                    label=f"mean of {len(vectors)} prompts")
        for name, values in (overlay or {}).items():
            other = "closed" if kind == "open" else "open"
            if other in name and kind not in name:
                continue
            values = np.asarray(values, float)
            ax.plot(np.arange(1, len(values) + 1), values, "k--", linewidth=1.5, label=name)
        ax.set(title=f"{kind}-ended prompts", xlabel="rank (1 = best)", ylabel="reward", ylim=(-0.03, 1.03))
        ax.legend(loc="upper right", fontsize=8)
        if pools[kind].size:
            hist_ax.hist(pools[kind], bins=20, range=(0, 1), color=colour, alpha=0.8)
        hist_ax.set(xlabel="reward", ylabel="count", xlim=(0, 1))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_rewards_over_training(history, path, title: str = "") -> Path:
    """Fig. 4 style: the mean reward-by-rank profile at each evaluation, coloured by step."""
    plt = _pyplot()
    from matplotlib import cm, colors

    steps = [step for step, _, _ in history]
    norm = colors.Normalize(vmin=min(steps), vmax=max(max(steps), min(steps) + 1))
    cmap = cm.get_cmap("viridis") if hasattr(cm, "get_cmap") else plt.get_cmap("viridis")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, kind in zip(axes, ("open", "closed")):
        for step, vectors, openness in history:
            chosen = _split(vectors, openness)[kind]
            if chosen:
                profile, _ = rank_profile(chosen)
                ax.plot(np.arange(1, len(profile) + 1), profile, color=cmap(norm(step)), linewidth=1.5)
        ax.set(title=f"{kind}-ended prompts", xlabel="rank (1 = best)", ylim=(-0.03, 1.03))
    axes[0].set_ylabel("mean reward")
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=list(axes), label="training step")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_utility_comparison(rows: Sequence[dict], path) -> Path:
    """Fig. 3 grid: one panel per run label, open vs closed mean reward profile."""
    plt = _pyplot()
    n = max(1, len(rows))
    cols = min(n, 5)
    nrows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 3.0 * nrows), squeeze=False, sharey=True)
    for ax in axes.flat[len(rows):]:
        ax.axis("off")
    for ax, row in zip(axes.flat, rows):
        for kind in ("open", "closed"):
            profile = np.asarray(row.get(f"{kind}_profile", []), float)
            if profile.size:
                ax.plot(np.arange(1, profile.size + 1), profile, marker="o", color=TYPE_COLOURS[kind], label=kind)
        ax.set(title=row["label"], xlabel="rank", ylim=(-0.03, 1.03))
        ax.legend(fontsize=8)
    axes[0, 0].set_ylabel("mean reward")
    fig.tight_layout()
    return _save(fig, path)
