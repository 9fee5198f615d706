"""The ensemble stage's uncertainty-quality report on its test pairs: the ``ens/test/uq/*`` metrics,
the figures (reliability diagram, σ² against the error and by correct and wrong pair, the heads'
correlation heatmap) and ``uncertainty_quality.json`` (curve, correlation matrix, numbers). The
numbers are :mod:`rcollapse.analysis.uncertainty_quality`'s.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rcollapse.analysis.figures import pyplot, save_figure
from rcollapse.analysis.uncertainty_quality import (
    ECE_BINS,
    mean_off_diagonal,
    sections_in_order,
    uncertainty_quality,
    uq_metrics,
)


def _json_number(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def plot_reliability(calibration: dict, path: Path, title: str = "") -> Path:
    """Reliability diagram: per bin the observed frequency against the mean forecast
    P(chosen ≻ rejected) (both orders of every pair), the diagonal, and the forecasts' histogram."""
    plt = pyplot()
    curve = calibration["curve"]
    centres = (curve["edges"][:-1] + curve["edges"][1:]) / 2
    width = curve["edges"][1] - curve["edges"][0]
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(4.8, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    filled = curve["count"] > 0
    ax.bar(centres[filled], curve["frequency"][filled], width=width * 0.9, alpha=0.6, label="observed frequency")
    ax.plot(curve["mean_prob"][filled], curve["frequency"][filled], "o-", color="C1", label="mean forecast → frequency")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set(ylabel="frequency of the first ≻ second", xlim=(0, 1), ylim=(0, 1),
           title=f"ECE {calibration['ece']:.3f} ({calibration['num_bins']} bins), Brier {calibration['brier']:.3f}")
    ax.legend(fontsize=7)
    hist.bar(centres, curve["count"], width=width * 0.9, color="C2")
    hist.set(xlabel="P(first ≻ second) = sigmoid(mean reward difference)", ylabel="forecasts")
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def plot_variance_error(quality: dict, path: Path, title: str = "") -> Path:
    """σ² against the ensemble mean's |error| per response, by section (with a gold), and the
    pairs' σ² for correctly and wrongly ordered pairs."""
    plt = pyplot()
    a = quality["arrays"]
    panels = 2 if a["abs_error"] is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.8), squeeze=False)
    axes = axes[0]
    if a["abs_error"] is not None:
        ax = axes[0]
        for section in sections_in_order(a["section_response"].tolist()):
            m = a["section_response"] == section
            ax.scatter(a["var_response"][m], a["abs_error"][m], s=6, alpha=0.5, label=section)
        ax.set(xlabel="σ² over heads (response)", ylabel="|z(mean) − z(gold)|", xscale="log",
               title=f"Spearman {quality['overall'].get('spearman_var_abs_error', float('nan')):.3f}")
        ax.legend(fontsize=7)
    ax = axes[-1]
    groups = [a["var_pair"][~a["wrong"]], a["var_pair"][a["wrong"]]]
    labels = [f"correct ({groups[0].size})", f"wrong ({groups[1].size})"]
    present = [(g, lab) for g, lab in zip(groups, labels, strict=True) if g.size]
    ax.boxplot([g for g, _ in present], showfliers=True)
    ax.set_xticks(range(1, len(present) + 1), [lab for _, lab in present])
    ax.set(ylabel="σ² of the pair (mean of its two responses)", yscale="log",
           title=f"AUROC(σ² → wrong pair) {quality['overall'].get('auroc_var_wrong_pair', float('nan')):.3f}")
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def plot_head_correlation(corr, path: Path, title: str = "") -> Path:
    """Heatmap of the heads' correlation matrix with its mean off-diagonal value."""
    plt = pyplot()
    corr = np.asarray(corr, dtype=float)
    k = corr.shape[0]
    fig, ax = plt.subplots(figsize=(0.45 * k + 2.5, 0.45 * k + 2))
    low = float(np.nanmin(corr)) if np.isfinite(corr).any() else 0.0
    # the colours span the matrix's own range: near-identical heads still show their differences
    image = ax.imshow(corr, vmin=min(low, 1 - 1e-6), vmax=1, cmap="viridis")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set(xticks=range(k), yticks=range(k), xlabel="head", ylabel="head",
           title=f"heads' correlation over test responses\nmean off-diagonal {mean_off_diagonal(corr):.6g}")
    if title:
        fig.suptitle(title, fontsize=9, y=1.02)
    return save_figure(fig, path)


FIGURES = {"ens/test/uq/reliability": "uq_reliability.png",
           "ens/test/uq/variance_error": "uq_variance_error.png",
           "ens/test/uq/head_correlation": "uq_head_correlation.png"}


def uncertainty_report(chosen, rejected, pairs: Sequence, output_dir: Path | None, title: str = "",
                       num_bins: int = ECE_BINS, head_scale=None) -> tuple[dict[str, float], dict[str, Path]]:
    """The ensemble stage's uncertainty-quality report on its test pairs.

    ``pairs``: the N test pairs in the order of ``chosen``/``rejected`` (their ``section`` and,
    where every pair has one, ``gold_chosen``/``gold_rejected``; RewardBench has none, so the
    Spearman is left out and the wrong-pair AUROC is the measure); ``head_scale``: see
    :func:`uncertainty_quality`. With ``output_dir`` (None on
    non-zero ranks) the figures go to ``output_dir/figures`` (:data:`FIGURES`) and the curve,
    correlation matrix and numbers to ``output_dir/uncertainty_quality.json``.

    Returns (``ens/test/uq/*`` metrics, ``{W&B image key: figure path}``).
    """
    sections = [p.section for p in pairs]
    golds = [(getattr(p, "gold_chosen", None), getattr(p, "gold_rejected", None)) for p in pairs]
    has_gold = bool(golds) and all(c is not None and r is not None for c, r in golds)
    quality = uncertainty_quality(np.asarray(chosen), np.asarray(rejected), sections,
                                  [c for c, _ in golds] if has_gold else None,
                                  [r for _, r in golds] if has_gold else None, num_bins,
                                  None if head_scale is None else np.asarray(head_scale, dtype=float))
    metrics = uq_metrics(quality)
    if output_dir is None:
        return metrics, {}
    output_dir = Path(output_dir)
    figures = output_dir / "figures"
    paths = {key: figures / name for key, name in FIGURES.items()}
    plot_reliability(quality["calibration"], paths["ens/test/uq/reliability"], title)
    plot_variance_error(quality, paths["ens/test/uq/variance_error"], title)
    plot_head_correlation(quality["head_corr"], paths["ens/test/uq/head_correlation"], title)
    curve = quality["calibration"]["curve"]
    (output_dir / "uncertainty_quality.json").write_text(json.dumps({
        "gold": "VADER compound per response (z-scored with the ensemble mean over the test responses)"
                if has_gold else None,
        "overall": {k: _json_number(v) for k, v in quality["overall"].items()},
        "sections": {s: {k: _json_number(v) for k, v in values.items()} for s, values in quality["sections"].items()},
        "calibration": {"num_bins": quality["calibration"]["num_bins"], "ece": _json_number(quality["calibration"]["ece"]),
                        "brier": _json_number(quality["calibration"]["brier"]),
                        **{key: [_json_number(v) for v in curve[key]] for key in curve}},
        "head_corr": [[_json_number(v) for v in row] for row in quality["head_corr"]],
    }, indent=1))
    return metrics, paths
