"""The PPO study's summary (Banerjee & Gopalan, Fig. 7): per arm, the spread of the policies'
mean judge scores, against the reference policy's, and the arms' final KLs side by side; the risk
comparison of the two arms at matched KL (Theorem 3.3: analysis/risk_statistics.py); each
arm's over-optimisation curve (Gao et al. 2023: proxy and gold score against KL(π‖π0) over
training); and one run's training curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rcollapse.analysis.figures import pyplot, save_figure
from rcollapse.analysis.risk_statistics import (
    arm_comparison,
    relative_kl_gap,
    share_below_reference,
    worst_fraction_mean,
)
from rcollapse.analysis.tables import fmt
from rcollapse.runs.run_config import read_run_config

JUDGE, JUDGE_REF = "ppo/test/judge_mean", "ppo/test/judge_mean_ref"
# the final KL: its mean over a run's last iterations (ppo/final/kl), or the last iteration's
FINAL_KL, LAST_KL = "ppo/final/kl", "ppo/train/kl"
# the over-optimisation curve, every few iterations: the policy's responses to a few test prompts
# scored by the judge (gold) and by the optimised reward (proxy), and their KL(π‖π0); the reference
# policy's gold and proxy (its KL is 0) beside them
EVAL_JUDGE, EVAL_JUDGE_REF = "ppo/eval/judge_mean", "ppo/eval/judge_mean_ref"
EVAL_PROXY, EVAL_PROXY_REF = "ppo/eval/proxy_mean", "ppo/eval/proxy_mean_ref"
EVAL_KL = "ppo/eval/kl"
TREATMENT, CONTROL = "variance-aware", "vanilla"
WORST_FRACTION = 0.1  # the summary's "worst 10%" column and the risk comparison's worst policies
KL_TOLERANCE = 0.1  # the arms are KL-matched when their mean final KLs differ by at most 10 %


def arm_of(run: dict) -> str:
    """``variance-aware`` or ``vanilla`` from a run's config (``config_resolved.yaml``): its
    ``stage.module.kl_weight`` is ``one`` (vanilla) or ``std``/``variance`` (an older run's
    ``variance_weighted`` reads the same, through :func:`read_run_config`)."""
    import yaml

    try:
        cfg = read_run_config(run["run_dir"])
        weight = cfg["stage"]["module"]["kl_weight"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return "unknown"
    return CONTROL if weight == "one" else TREATMENT


def ppo_summary(df: pd.DataFrame) -> pd.DataFrame | None:
    """One row per arm and one for the reference policy: n, mean and variance of the policies'
    mean judge scores, ``below ref`` (the share of the arm's policies under their own run's
    reference policy; NaN for the reference), ``worst 10%`` (the mean of the lowest tenth, at least
    one) and the mean ± std of the final KL. ``attrs``: ``runs`` (the completed runs with their
    ``arm``) and ``kl_metric`` (the final KL's column)."""
    if JUDGE not in df.columns:
        return None
    runs = df[(df["status"] == "completed") & df[JUDGE].notna()].copy()
    if runs.empty:
        return None
    runs["arm"] = [arm_of(r) for r in runs.to_dict("records")]
    kl = FINAL_KL if FINAL_KL in runs.columns and runs[FINAL_KL].notna().all() else LAST_KL
    rows = [{"policy": "reference", "n": len(runs), "judge mean": runs[JUDGE_REF].mean(),
             "judge var": runs[JUDGE_REF].var(ddof=1), "below ref": np.nan,
             "worst 10%": worst_fraction_mean(runs[JUDGE_REF], WORST_FRACTION),
             "final KL": np.nan, "final KL std": np.nan}]
    for arm, part in runs.groupby("arm"):
        rows.append({"policy": arm, "n": len(part), "judge mean": part[JUDGE].mean(),
                     "judge var": part[JUDGE].var(ddof=1),
                     "below ref": share_below_reference(part[JUDGE], part[JUDGE_REF]),
                     "worst 10%": worst_fraction_mean(part[JUDGE], WORST_FRACTION),
                     "final KL": part[kl].mean(), "final KL std": part[kl].std(ddof=1)})
    summary = pd.DataFrame(rows).set_index("policy")
    summary.attrs["runs"] = runs
    summary.attrs["kl_metric"] = kl
    return summary


def kl_gap(summary: pd.DataFrame) -> float | None:
    """|KL_a − KL_b| / ((KL_a + KL_b) / 2) between the two arms' mean final KLs
    (``relative_kl_gap``'s convention; None without both arms or with an undefined gap)."""
    if not {CONTROL, TREATMENT} <= set(summary.index):
        return None
    gap = relative_kl_gap([summary.loc[CONTROL, "final KL"]], [summary.loc[TREATMENT, "final KL"]])
    return None if np.isnan(gap) else gap


def risk_comparison(summary: pd.DataFrame, num_resamples: int = 10000, seed: int = 0) -> dict | None:
    """Theorem 3.3's risk at matched KL, variance-aware arm (treatment) against vanilla (control),
    from ``summary.attrs["runs"]`` (``ppo_summary``): ``arm_comparison``'s dict (per arm n, judge
    mean and variance, share below the reference, worst-10 % mean, mean final KL; the variance ratio
    variance-aware / vanilla with its percentile-bootstrap 95 % interval, Levene's test with
    center=mean, the relative final-KL gap and whether it is within 10 %) plus ``kl_metric``.
    None unless both arms have runs."""
    runs = summary.attrs["runs"]
    arms = {arm: part for arm, part in runs.groupby("arm")}
    if not {TREATMENT, CONTROL} <= set(arms):
        return None
    kl = summary.attrs["kl_metric"]
    treatment, control = arms[TREATMENT], arms[CONTROL]
    comparison = arm_comparison(
        treatment[JUDGE], control[JUDGE], treatment[JUDGE_REF], control[JUDGE_REF], treatment[kl],
        control[kl], treatment_name=TREATMENT, control_name=CONTROL, fraction=WORST_FRACTION,
        kl_tolerance=KL_TOLERANCE, num_resamples=num_resamples, seed=seed)
    return {**comparison, "kl_metric": kl, "mechanism": mechanism_by_arm(summary)}


UQ_KEYS = ("ppo/test/uq/spearman_var_abs_error", "ppo/test/uq/var_last_over_ref")


def mechanism_by_arm(summary: pd.DataFrame) -> dict[str, dict[str, float]]:
    """The mechanism the risk claim relies on, per arm: the mean over its runs of
    ``ppo/test/uq/spearman_var_abs_error`` (does σ² track the reward's error on the judged
    responses) and ``ppo/test/uq/var_last_over_ref`` (how much σ² grew where the policy went);
    keys missing from the runs are left out."""
    runs = summary.attrs["runs"]
    out = {}
    for arm, part in runs.groupby("arm"):
        values = {key.split("/")[-1]: float(part[key].mean()) for key in UQ_KEYS
                  if key in part.columns and part[key].notna().any()}
        if values:
            out[str(arm)] = values
    return out


def _json_ready(value):
    """``value`` with NaN as None and ±inf as "inf"/"-inf" (``float()`` reads them back), so that
    the file is strict JSON; numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None if np.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def write_risk_comparison(comparison: dict, path: Path) -> Path:
    """``comparison`` (``risk_comparison``) as strict JSON: null where a number is undefined,
    "inf" where a bootstrap bound is unbounded."""
    import json

    path = Path(path)
    path.write_text(json.dumps(_json_ready(comparison), indent=2, allow_nan=False) + "\n")
    return path


def _percent(share: float, digits: int = 0) -> str:
    return "-" if np.isnan(share) else f"{100 * share:.{digits}f} %"


def format_risk_comparison(comparison: dict) -> str:
    """The report's block for ``risk_comparison``: the share below the reference, the worst-10 %
    mean, the variance ratio with its bootstrap interval, Levene's test, the final-KL gap, and a
    warning line when the arms are not KL-matched."""
    names = [comparison["treatment"], comparison["control"]]
    arms = [comparison["arms"][name] for name in names]
    low, high = comparison["variance_ratio_ci"]
    level = f"{100 * comparison['ci_level']:.0f} %"
    gap, tolerance = comparison["relative_kl_gap"], comparison["kl_tolerance"]
    lines = [
        f"Risk at matched KL: {names[0]} vs {names[1]} (Theorem 3.3; judge = each policy's mean test score)",
        "  below reference (share of policies under their own run's reference policy): "
        + ", ".join(f"{name} {_percent(arm['share_below_reference'])} of {arm['n']}"
                    for name, arm in zip(names, arms)),
        f"  worst {100 * comparison['worst_fraction']:.0f} % mean judge: "
        + ", ".join(f"{name} {fmt(arm['worst_fraction_mean'])} (lowest {arm['worst_count']} of {arm['n']})"
                    for name, arm in zip(names, arms)),
        f"  judge variance: {names[0]} {fmt(arms[0]['judge_var'])}, {names[1]} {fmt(arms[1]['judge_var'])}; "
        f"ratio {names[0]} / {names[1]} = {fmt(comparison['variance_ratio'])}, {level} percentile-bootstrap "
        f"CI [{fmt(low)}, {fmt(high)}] ({comparison['bootstrap_resamples']} resamples)",
        f"  Levene's test (center={comparison['levene_center']}): W = {fmt(comparison['levene_statistic'])}, "
        f"p = {fmt(comparison['levene_p'])}",
        f"  final KL ({comparison['kl_metric']}): {names[0]} {fmt(arms[0]['final_kl_mean'])}, "
        f"{names[1]} {fmt(arms[1]['final_kl_mean'])}; gap |a - b| / mean(a, b) = {_percent(gap, 1)}"
        + ("" if comparison["kl_matched"] is None
           else f" ({'within' if comparison['kl_matched'] else 'over'} {100 * tolerance:.0f} %)"),
    ]
    for arm, values in comparison.get("mechanism", {}).items():
        lines.append(f"  mechanism ({arm}): Spearman(sigma^2, |error|) on the judged responses "
                     f"{fmt(values.get('spearman_var_abs_error', float('nan')))}, sigma^2 last / reference "
                     f"{fmt(values.get('var_last_over_ref', float('nan')))} (mean over the arm's runs)")
    if comparison["kl_matched"] is False:
        lines.append(f"  WARNING: the arms are NOT KL-matched (final KLs {_percent(gap, 1)} apart, over "
                     f"{100 * tolerance:.0f} %): their risk and spread are not comparable at equal KL.")
    elif comparison["kl_matched"] is None:
        lines.append("  WARNING: the final-KL gap is undefined: whether the arms are KL-matched is unknown.")
    return "\n".join(lines)


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


def _present(value) -> bool:
    try:
        return value is not None and not bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


CURVE_COLUMNS = ["step", "kl", "proxy", "gold"]


def overoptimisation_curve(history: list[dict]) -> pd.DataFrame:
    """One run's over-optimisation curve from its history rows (``ppo_history.csv``): the reference
    policy π0 first (``step`` −1, KL 0, its ``*_ref`` scores), then each iteration where the judge
    ran: ``kl`` (``ppo/eval/kl``), ``proxy`` (``ppo/eval/proxy_mean``), ``gold``
    (``ppo/eval/judge_mean``), all three from the same responses. Empty for a history without them."""
    judged = [h for h in history if all(_present(h.get(k)) for k in (EVAL_KL, EVAL_PROXY, EVAL_JUDGE))]
    if not judged:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    points = []
    if _present(judged[0].get(EVAL_PROXY_REF)) and _present(judged[0].get(EVAL_JUDGE_REF)):
        points.append({"step": -1, "kl": 0.0, "proxy": float(judged[0][EVAL_PROXY_REF]),
                       "gold": float(judged[0][EVAL_JUDGE_REF])})
    points += [{"step": int(h["step"]), "kl": float(h[EVAL_KL]), "proxy": float(h[EVAL_PROXY]),
                "gold": float(h[EVAL_JUDGE])} for h in judged]
    return pd.DataFrame(points, columns=CURVE_COLUMNS)


def arm_curves(df: pd.DataFrame) -> pd.DataFrame | None:
    """Per arm (``arm_of``), the over-optimisation curve averaged over the arm's completed runs:
    at each judged iteration (``step``; −1 is π0 at KL 0) the number of runs ``n`` and the mean
    and standard deviation over them of the KL, the proxy and the gold. None without any run whose
    ``ppo_history.csv`` has the curve's columns."""
    if "run_dir" not in df.columns:
        return None
    done = df[df["status"] == "completed"] if "status" in df.columns else df
    frames = []
    for record in done.to_dict("records"):
        path = Path(record["run_dir"]) / "ppo_history.csv"
        if not path.exists():
            continue
        curve = overoptimisation_curve(pd.read_csv(path).to_dict("records"))
        if not curve.empty:
            frames.append(curve.assign(arm=arm_of(record)))
    if not frames:
        return None
    points = pd.concat(frames, ignore_index=True)
    table = points.groupby(["arm", "step"], sort=True).agg(
        n=("kl", "size"), kl=("kl", "mean"), kl_std=("kl", "std"), proxy=("proxy", "mean"),
        proxy_std=("proxy", "std"), gold=("gold", "mean"), gold_std=("gold", "std"))
    return table.reset_index()


def _curve_axes(ax, curves: list[tuple[str, str, pd.DataFrame]]):
    """Proxy (solid, circles, left axis) and gold (dashed, squares, right axis) against KL, one
    colour per curve: twin axes, because the two scores are on unrelated scales."""
    gold_ax = ax.twinx()
    for label, color, curve in curves:
        ax.plot(curve["kl"], curve["proxy"], "o-", color=color, label=f"{label}: proxy")
        # one curve alone: the gold in a second colour too; several: one colour per curve
        gold_ax.plot(curve["kl"], curve["gold"], "s--", color=color if len(curves) > 1 else "C3",
                     label=f"{label}: gold")
    ax.set_xlabel("KL(π‖π0) of the judged responses (π0 at 0)")
    ax.set_ylabel("proxy: optimised reward (solid, left axis)")
    gold_ax.set_ylabel("gold: judge score (dashed, right axis)")
    handles = [*ax.get_legend_handles_labels()[0], *gold_ax.get_legend_handles_labels()[0]]
    labels = [*ax.get_legend_handles_labels()[1], *gold_ax.get_legend_handles_labels()[1]]
    # under the axes, on the twin (drawn last) so that no line crosses it
    gold_ax.legend(handles, labels, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    return gold_ax


def plot_overoptimisation(curves: pd.DataFrame, path: Path) -> Path:
    """Each arm's over-optimisation curve (Gao et al. 2023, against KL rather than √KL): the mean
    over the arm's runs of the proxy and of the gold score at each judged iteration, against the
    mean KL(π‖π0) of the same responses, from π0 (KL 0) on. Twin axes, proxy left and gold right,
    each on its own scale (not standardised): over-optimisation shows as a solid line that keeps
    rising while the dashed line of the same colour falls."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    arms = [(f"{arm} (n={int(part['n'].max())})", f"C{i}", part.sort_values("step"))
            for i, (arm, part) in enumerate(curves.groupby("arm", sort=True))]
    _curve_axes(ax, arms)
    ax.set_title("over-optimisation: mean over each arm's runs at each judged iteration", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_training(history: list[dict], path: Path, judge: dict | None = None) -> Path:
    """Score, KL, β and the judge's mean score (policy against reference, where it ran) over a PPO
    run's iterations, with the final judge verdict in the title; and the over-optimisation curve
    (proxy and gold of the same judged responses against their KL(π‖π0), on twin axes: proxy left,
    gold right, each on its own scale)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 5, figsize=(20, 3.6), gridspec_kw={"width_ratios": [1, 1, 1, 1, 1.3]})
    steps = [h["step"] for h in history]
    for ax, key, label in ((axes[0], "ppo/train/score", "reward-model score"), (axes[1], "ppo/train/kl", "KL(π‖π0)"),
                           (axes[2], "ppo/train/beta", "β")):
        ax.plot(steps, [h.get(key, np.nan) for h in history])
        ax.set(xlabel="PPO iteration", ylabel=label)
    judged = [h for h in history if _present(h.get(EVAL_JUDGE))]
    if judged:
        axes[3].plot([h["step"] for h in judged], [h[EVAL_JUDGE] for h in judged], "o-", label="policy")
        axes[3].plot([h["step"] for h in judged], [h[EVAL_JUDGE_REF] for h in judged], "--", color="gray",
                     label="reference policy")
        axes[3].legend(fontsize=7)
    else:
        axes[3].text(0.5, 0.5, "judge not run during training\n(stage.judge_every_n_updates=0)",
                     ha="center", va="center", transform=axes[3].transAxes, fontsize=8)
    axes[3].set(xlabel="PPO iteration", ylabel="judge mean (eval prompts)")
    curve = overoptimisation_curve(history)
    if not curve.empty:
        _curve_axes(axes[4], [("policy", "C0", curve)])
        axes[4].set_title("over-optimisation (the same judged responses)", fontsize=8)
    else:
        axes[4].text(0.5, 0.5, "no over-optimisation curve\n(the judge did not run during training)",
                     ha="center", va="center", transform=axes[4].transAxes, fontsize=8)
        axes[4].set_axis_off()
    if judge:
        axes[0].set_title(f"judge: policy {judge['policy']:.3f}, reference {judge['reference']:.3f}", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
