"""The diagnosis figure: normalised reward profiles by rank per group, with the nearest theory
(the reward-collapse paper's Fig. 1: observed vs predicted collapsed rewards)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from rcollapse.analysis.collapse_diagnosis import mean_profile_by_rank
from rcollapse.analysis.figures import pyplot, save_figure

GROUP_COLOURS = ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:gray")


def plot_profiles_by_group(profiles_by_group: Mapping[str, Sequence[np.ndarray]], path,
                           overlays: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                           title: str = "") -> Path:
    """One panel per group: each prompt's normalised profile (thin; x = rank 1..n by score, best
    first), the group's mean profile (bold), and ``overlays[group]``: ``{label: predicted
    profile}`` drawn dashed (the overall nearest theory, the group's own nearest)."""
    plt = pyplot()
    groups = list(profiles_by_group)
    fig, axes = plt.subplots(1, max(1, len(groups)), figsize=(4.6 * max(1, len(groups)), 4), sharey=True,
                             squeeze=False)
    for col, group in enumerate(groups):
        ax = axes[0, col]
        colour = GROUP_COLOURS[col % len(GROUP_COLOURS)]
        vectors = [np.asarray(v, float) for v in profiles_by_group[group]]
        alpha = float(np.clip(8.0 / max(1, len(vectors)), 0.05, 0.35))
        for v in vectors[:500]:
            ax.plot(np.arange(1, v.size + 1), v, color=colour, alpha=alpha, linewidth=0.8)
        mean, _ = mean_profile_by_rank(vectors)
        if mean.size:
            ax.plot(np.arange(1, mean.size + 1), mean, color=colour, linewidth=2.5, marker="o",
                    label=f"{group}: mean ({len(vectors)} prompts)")
        styles = ("--", ":", "-.")
        for k, (label, predicted) in enumerate((overlays or {}).get(group, {}).items()):
            predicted = np.asarray(predicted, float)
            ax.plot(np.arange(1, predicted.size + 1), predicted, color="black", linestyle=styles[k % 3],
                    linewidth=1.6, label=label)
        ax.set_title(str(group))
        ax.set_xlabel("rank by score (1 = highest)")
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=7)
    axes[0, 0].set_ylabel("normalised reward (min–max within prompt)")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
