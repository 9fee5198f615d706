"""The PPO study's summary (Banerjee & Gopalan, Fig. 7): per arm, the spread of the policies'
mean judge scores, against the reference policy's, and the arms' final KLs side by side; and one
run's training curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rcollapse.analysis.figures import pyplot, save_figure

JUDGE, JUDGE_REF = "ppo/test/judge_mean", "ppo/test/judge_mean_ref"
# the final KL: its mean over a run's last iterations (ppo/final/kl), or the last iteration's
FINAL_KL, LAST_KL = "ppo/final/kl", "ppo/train/kl"
# the judge on a few test prompts during training
EVAL_JUDGE, EVAL_JUDGE_REF = "ppo/eval/judge_mean", "ppo/eval/judge_mean_ref"


def arm_of(run: dict) -> str:
    """``variance-aware`` or ``vanilla`` from a run's config (``config_resolved.yaml``)."""
    import yaml

    try:
        cfg = yaml.safe_load((Path(run["run_dir"]) / "config_resolved.yaml").read_text())
        weighted = cfg["stage"]["module"]["variance_weighted"]
    except (OSError, KeyError, TypeError):
        return "unknown"
    return "variance-aware" if weighted else "vanilla"


def ppo_summary(df: pd.DataFrame) -> pd.DataFrame | None:
    """One row per arm and one for the reference policy: n, mean and variance of the policies'
    mean judge scores, and the mean ± std of the final KL."""
    if JUDGE not in df.columns:
        return None
    runs = df[(df["status"] == "completed") & df[JUDGE].notna()].copy()
    if runs.empty:
        return None
    runs["arm"] = [arm_of(r) for r in runs.to_dict("records")]
    kl = FINAL_KL if FINAL_KL in runs.columns and runs[FINAL_KL].notna().all() else LAST_KL
    rows = [{"policy": "reference", "n": len(runs), "judge mean": runs[JUDGE_REF].mean(),
             "judge var": runs[JUDGE_REF].var(ddof=1), "final KL": np.nan, "final KL std": np.nan}]
    for arm, part in runs.groupby("arm"):
        rows.append({"policy": arm, "n": len(part), "judge mean": part[JUDGE].mean(),
                     "judge var": part[JUDGE].var(ddof=1), "final KL": part[kl].mean(),
                     "final KL std": part[kl].std(ddof=1)})
    summary = pd.DataFrame(rows).set_index("policy")
    summary.attrs["runs"] = runs
    summary.attrs["kl_metric"] = kl
    return summary


def kl_gap(summary: pd.DataFrame) -> float | None:
    """|KL_a − KL_b| / min(KL_a, KL_b) between the two arms' mean final KLs (None without both)."""
    if not {"vanilla", "variance-aware"} <= set(summary.index):
        return None
    a, b = summary.loc["vanilla", "final KL"], summary.loc["variance-aware", "final KL"]
    return float(abs(a - b) / min(a, b)) if min(a, b) > 0 else None


def plot_judge_distribution(summary: pd.DataFrame, path: Path) -> Path:
    """Paper Fig. 7: each policy's mean judge score, per arm, beside the reference policy's."""
    plt = pyplot()
    runs = summary.attrs["runs"]
    groups = {"reference": runs[JUDGE_REF].to_numpy()}
    groups.update({arm: part[JUDGE].to_numpy() for arm, part in runs.groupby("arm")})
    fig, ax = plt.subplots(figsize=(6, 3.8))
    everything = np.concatenate(list(groups.values()))
    edges = np.linspace(everything.min(), everything.max() + 1e-9, 31)  # shared bins: widths comparable
    for i, (name, values) in enumerate(groups.items()):
        spread = values.var(ddof=1) if values.size > 1 else 0.0
        ax.hist(values, bins=edges, alpha=0.5, color=f"C{i}",
                label=f"{name}: mean {values.mean():.3f}, var {spread:.2g} (n={values.size})")
        ax.plot(values, np.full(values.size, -0.04 * (i + 1)), "|", color=f"C{i}", markersize=8,
                transform=ax.get_xaxis_transform(), clip_on=False)  # one tick per policy under the axis
    ax.set_xlabel("mean judge score over the test prompts (ticks: one per policy)", labelpad=4 + 9 * len(groups))
    ax.set_ylabel("policies")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_training(history: list[dict], path: Path, judge: dict | None = None) -> Path:
    """Score, KL, β and the judge's mean score (policy against reference, where it ran) over a PPO
    run's iterations, with the final judge verdict in the title."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    steps = [h["step"] for h in history]
    for ax, key, label in ((axes[0], "ppo/train/score", "reward-model score"), (axes[1], "ppo/train/kl", "KL(π‖π0)"),
                           (axes[2], "ppo/train/beta", "β")):
        ax.plot(steps, [h.get(key, np.nan) for h in history])
        ax.set(xlabel="PPO iteration", ylabel=label)
    judged = [h for h in history if h.get(EVAL_JUDGE) is not None]
    if judged:
        axes[3].plot([h["step"] for h in judged], [h[EVAL_JUDGE] for h in judged], "o-", label="policy")
        axes[3].plot([h["step"] for h in judged], [h[EVAL_JUDGE_REF] for h in judged], "--", color="gray",
                     label="reference policy")
        axes[3].legend(fontsize=7)
    else:
        axes[3].text(0.5, 0.5, "judge not run during training\n(stage.judge_every_n_updates=0)",
                     ha="center", va="center", transform=axes[3].transAxes, fontsize=8)
    axes[3].set(xlabel="PPO iteration", ylabel="judge mean (eval prompts)")
    if judge:
        axes[0].set_title(f"judge: policy {judge['policy']:.3f}, reference {judge['reference']:.3f}", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
