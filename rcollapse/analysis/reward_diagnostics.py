"""Per-prompt diagnostics of a ranking reward model (issue 18, item 3), pure functions on arrays.

Input: each prompt's reward vector ``R`` best first (``R = sigmoid(f)``, ``f`` the head's output,
as ``RankingRewardModule.eval_rewards`` keeps it), its openness (open > 0, closed ≤ 0) and,
optionally, each completion's length in words.

- **Calibration of the pairwise preferences.** For every pair ``i < j`` of a prompt (``i`` ranked
  better) the model's preference is the Bradley–Terry probability on the logit scale,
  ``P(i ≻ j) = sigmoid(f_i − f_j)`` with temperature 1, ``f = logit(R)`` (recovered from ``R``,
  with ``R`` clipped to ``[LOGIT_EPS, 1 − LOGIT_EPS]``, so ``|f| ≤ 16.1``: a float32 ``R`` keeps no
  more). The labelled order is the outcome, so every pair enters in both orders — ``(p, 1)`` and
  ``(1 − p, 0)`` — or a forecast that always says "the labelled winner" would only ever meet the
  outcome 1 and ``p → 1`` would look perfect
  (:func:`rcollapse.analysis.uncertainty_quality.pair_calibration`). ECE over ``ECE_BINS``
  equal-width bins of [0, 1]; with an even number of bins this is the usual top-label ECE
  (confidence ``max(p, 1 − p)`` against "the model orders the pair as labelled"). Brier: mean
  ``(1 − p)²`` over pairs (the same in either orientation). The ranking objective does not train
  ``f`` as a Bradley–Terry logit (it trains ``U(R_i − R_j)``), so this asks whether the head's
  logit differences can be read as preference probabilities as they stand, not whether the
  loss's own probability model is calibrated.
- **Margins.** ``R_i − R_j`` (labelled-better minus worse, on the reward scale [0, 1]) over every
  ``i < j`` pair, and over the adjacent pairs ``(k, k + 1)``, per prompt type.
- **Reward–length correlation.** Spearman between reward and completion length, pooled over
  every completion of the split, and within each prompt (the mean of the prompts' own Spearman
  coefficients; prompts whose lengths or rewards are all equal are left out). Beside it the same
  within-prompt number for the *labels* (quality = −rank) against length: what a model that
  learnt the labels exactly would score. In the length task longer *is* better, so that reference
  is 1 and a reward–length correlation near 1 is the task learnt; on human rankings the gap
  between the two says how much more the reward leans on length than the labels do.

Numbers undefined on the data (no pairs of a type, a constant input) are NaN here and left out
of :func:`diagnostics_metrics`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rcollapse.analysis.collapse_metrics import TYPES
from rcollapse.analysis.figures import pyplot, save_figure
from rcollapse.analysis.uncertainty_quality import (
    ECE_BINS,
    brier_score,
    calibration_curve,
    expected_calibration_error,
    pair_probability,
    spearman,
)
from rcollapse.runs.atomic_files import write_text_atomic

LOGIT_EPS = 1e-7  # R is clipped to [eps, 1 − eps] before logit: |f| ≤ 16.1
TYPE_COLOURS = {"all": "black", "open": "tab:blue", "closed": "tab:red"}


def prompt_type(openness: float) -> str:
    return "open" if openness > 0 else "closed"


def reward_logit(rewards) -> np.ndarray:
    """``f = logit(R)`` with ``R`` clipped to ``[LOGIT_EPS, 1 − LOGIT_EPS]`` (float64)."""
    r = np.clip(np.asarray(rewards, dtype=np.float64), LOGIT_EPS, 1 - LOGIT_EPS)
    return np.log(r) - np.log1p(-r)


def pair_indices(n: int, adjacent: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(i, j)`` of the pairs ``i < j`` of ``n`` completions (only ``j = i + 1`` if adjacent)."""
    if adjacent:
        i = np.arange(max(n - 1, 0))
        return i, i + 1
    i, j = np.triu_indices(n, k=1)
    return i, j


def pairwise(values: Sequence[np.ndarray], adjacent: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Better and worse values of every labelled pair of every prompt, concatenated."""
    better, worse = [], []
    for v in values:
        v = np.asarray(v, dtype=np.float64).ravel()
        i, j = pair_indices(v.size, adjacent)
        better.append(v[i])
        worse.append(v[j])
    if not better:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(better), np.concatenate(worse)


def pair_preference_calibration(reward_vectors: Sequence[np.ndarray], num_bins: int = ECE_BINS) -> dict:
    """Calibration of ``P(i ≻ j) = sigmoid(f_i − f_j)`` over every labelled pair (module docstring).

    Returns ``{"ece", "brier", "num_bins", "num_pairs", "prob", "curve"}``: ``prob`` the forecast
    for the labelled winner of each pair, ``curve`` the reliability curve of both orientations.
    """
    f_better, f_worse = pairwise([reward_logit(v) for v in reward_vectors])
    p = pair_probability(f_better, f_worse)
    prob = np.concatenate([p, 1 - p])
    outcome = np.concatenate([np.ones_like(p), np.zeros_like(p)])
    return {"ece": expected_calibration_error(prob, outcome, num_bins), "brier": brier_score(p, np.ones_like(p)),
            "num_bins": int(num_bins), "num_pairs": int(p.size), "prob": p,
            "curve": calibration_curve(prob, outcome, num_bins)}


def margins(reward_vectors: Sequence[np.ndarray], adjacent: bool = False) -> np.ndarray:
    """``R_i − R_j`` (better minus worse) of every ``i < j`` pair (adjacent pairs only if asked)."""
    better, worse = pairwise(reward_vectors, adjacent)
    return better - worse


def within_prompt_spearman(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray]) -> float:
    """The mean over prompts of Spearman(x, y) within the prompt, leaving out the prompts where
    it is undefined (fewer than two completions, a constant x or y). NaN if none is left."""
    values = [spearman(x, y) for x, y in zip(xs, ys, strict=True)]
    values = [v for v in values if np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if values.size else float("nan")


def reward_diagnostics(
    reward_vectors: Sequence[np.ndarray],
    openness,
    lengths: Sequence[np.ndarray] | None = None,
    num_bins: int = ECE_BINS,
) -> dict:
    """Every diagnostic of one split: ``{"numbers": {name: float}, "calibration": {type: ...},
    "margins": {type: array}, "adjacent_margins": {type: array}}``, types "all", "open", "closed".

    ``numbers``: ``ece``, ``brier``, ``margin_mean``, ``margin_median``, ``margin_adjacent_mean``
    overall and with ``_open`` / ``_closed``; with ``lengths`` (one array per prompt, the
    completions' lengths best first): ``length_spearman`` (pooled), ``length_spearman_within_prompt``,
    their ``_open`` / ``_closed`` versions, and ``label_length_spearman_within_prompt``.
    """
    vectors = [np.asarray(v, dtype=np.float64).ravel() for v in reward_vectors]
    openness = np.asarray(openness, dtype=np.float64).ravel()
    if openness.size != len(vectors):
        raise ValueError(f"reward_diagnostics: {len(vectors)} reward vectors but {openness.size} openness values")
    kinds = np.array([prompt_type(o) for o in openness])
    groups = {"all": np.ones(len(vectors), dtype=bool), **{kind: kinds == kind for kind in TYPES}}

    numbers: dict[str, float] = {}
    calibration, all_margins, adjacent = {}, {}, {}
    for group, chosen in groups.items():
        suffix = "" if group == "all" else f"_{group}"
        selected = [v for v, keep in zip(vectors, chosen) if keep]
        cal = pair_preference_calibration(selected, num_bins)
        calibration[group] = cal
        all_margins[group] = margins(selected)
        adjacent[group] = margins(selected, adjacent=True)
        numbers[f"ece{suffix}"] = cal["ece"]
        numbers[f"brier{suffix}"] = cal["brier"]
        numbers[f"margin_mean{suffix}"] = _mean(all_margins[group])
        numbers[f"margin_median{suffix}"] = (float(np.median(all_margins[group])) if all_margins[group].size
                                             else float("nan"))
        numbers[f"margin_adjacent_mean{suffix}"] = _mean(adjacent[group])

    if lengths is not None:
        lengths = [np.asarray(x, dtype=np.float64).ravel() for x in lengths]
        if len(lengths) != len(vectors) or any(x.size != v.size for x, v in zip(lengths, vectors)):
            raise ValueError("reward_diagnostics: lengths must give one length per completion of every prompt")
        for group, chosen in groups.items():
            suffix = "" if group == "all" else f"_{group}"
            r = [v for v, keep in zip(vectors, chosen) if keep]
            n = [x for x, keep in zip(lengths, chosen) if keep]
            known = [np.isfinite(x).all() for x in n]
            r = [v for v, ok in zip(r, known) if ok]
            n = [x for x, ok in zip(n, known) if ok]
            pooled = spearman(np.concatenate(n), np.concatenate(r)) if r else float("nan")
            numbers[f"length_spearman{suffix}"] = pooled
            numbers[f"length_spearman_within_prompt{suffix}"] = within_prompt_spearman(n, r)
            if group == "all":
                quality = [-np.arange(x.size, dtype=np.float64) for x in n]  # best first: higher is better
                numbers["label_length_spearman_within_prompt"] = within_prompt_spearman(n, quality)
    return {"numbers": numbers, "calibration": calibration, "margins": all_margins, "adjacent_margins": adjacent}


def diagnostics_metrics(diagnostics: dict, prefix: str) -> dict[str, float]:
    """``{prefix}/diag/{name}`` for every finite number of :func:`reward_diagnostics`."""
    return {f"{prefix}/diag/{name}": float(v) for name, v in diagnostics["numbers"].items() if np.isfinite(v)}


# ---------------------------------------------------------------- the score dump and the figures

SCORE_COLUMNS = ("prompt_id", "type", "openness", "rank", "length_words", "tokens", "reward", "logit")


def score_rows(
    reward_vectors: Sequence[np.ndarray],
    openness,
    prompt_ids: Sequence[str] | None = None,
    lengths: Sequence[np.ndarray] | None = None,
    tokens: Sequence[np.ndarray] | None = None,
) -> list[dict]:
    """One record per completion (``SCORE_COLUMNS``); rank 1 is the labelled best. Missing ids
    are the prompt's index, missing lengths/tokens empty."""
    records = []
    for k, (vector, o) in enumerate(zip(reward_vectors, np.asarray(openness, dtype=float).ravel(), strict=True)):
        vector = np.asarray(vector, dtype=np.float64).ravel()
        logit = reward_logit(vector)
        for rank in range(vector.size):
            records.append({
                "prompt_id": prompt_ids[k] if prompt_ids is not None else str(k),
                "type": prompt_type(o), "openness": float(o), "rank": rank + 1,
                "length_words": _count(lengths, k, rank), "tokens": _count(tokens, k, rank),
                "reward": float(vector[rank]), "logit": float(logit[rank]),
            })
    return records


def _count(per_prompt, k: int, rank: int) -> int | str:
    """``per_prompt[k][rank]`` as an int, or "" when absent or not finite."""
    if per_prompt is None:
        return ""
    value = float(per_prompt[k][rank])
    return int(value) if np.isfinite(value) else ""


def write_scores_csv(records: list[dict], path) -> Path:
    """``records`` (:func:`score_rows`) as CSV, written to a temporary sibling and renamed."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SCORE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, buffer.getvalue())
    return path


def plot_calibration(diagnostics: dict, path, title: str = "") -> Path:
    """Reliability diagram of ``P(i ≻ j) = sigmoid(f_i − f_j)`` (both orientations of every pair),
    one curve per prompt type and all together, the diagonal, and the forecasts' histogram."""
    plt = pyplot()
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5.0, 5.8), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    for group, cal in diagnostics["calibration"].items():
        curve = cal["curve"]
        filled = curve["count"] > 0
        if not filled.any():
            continue
        ax.plot(curve["mean_prob"][filled], curve["frequency"][filled], "o-", color=TYPE_COLOURS[group],
                alpha=1.0 if group == "all" else 0.7, lw=2 if group == "all" else 1,
                zorder=3 if group == "all" else 2,
                label=f"{group}: ECE {cal['ece']:.3f}, Brier {cal['brier']:.3f} ({cal['num_pairs']} pairs)")
        if group == "all":
            centres = (curve["edges"][:-1] + curve["edges"][1:]) / 2
            width = curve["edges"][1] - curve["edges"][0]
            hist.bar(centres, curve["count"], width=width * 0.9, color="tab:green")
    num_bins = diagnostics["calibration"]["all"]["num_bins"]
    ax.set(ylabel="frequency of the labelled order", xlim=(0, 1), ylim=(0, 1),
           title=f"pairwise preference calibration ({num_bins} equal-width bins)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    hist.set(xlabel="P(first ≻ second) = sigmoid(f_first − f_second), f = logit R", ylabel="forecasts")
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def plot_margins(diagnostics: dict, path, title: str = "") -> Path:
    """Histograms of ``R_i − R_j`` (labelled-better minus worse) per prompt type: every ``i < j``
    pair (left) and adjacent ranks only (right); x in [−1, 1], negative = ordered against the label."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.6), sharex=True)
    bins = np.linspace(-1, 1, 41)
    for ax, key, name in ((axes[0], "margins", "every i < j pair"), (axes[1], "adjacent_margins", "adjacent ranks")):
        for kind in TYPES:
            values = diagnostics[key][kind]
            if values.size:
                ax.hist(values, bins=bins, histtype="step", lw=1.5, color=TYPE_COLOURS[kind],
                        label=f"{kind}: mean {values.mean():.3f} ({values.size})")
        ax.axvline(0, color="k", lw=0.8)
        ax.set(xlabel="R(better) − R(worse)", ylabel="pairs", title=name)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)
