"""Does the ensemble's uncertainty know where its reward is wrong? (issue 15, item 3)

Pure functions on arrays (numpy/scipy; no Lightning, no stage), on the per-pair scores of every
head (``module.test_scores``: chosen and rejected ``[N, k]``):

- :func:`spearman`: rank correlation (average ranks for ties), e.g. between σ² and the ensemble
  mean's absolute error against a gold reward.
- :func:`auroc`: the probability that a random positive scores above a random negative (ties
  count ½), e.g. how well σ² picks out wrongly ordered pairs.
- :func:`calibration_curve`, :func:`expected_calibration_error`, :func:`brier_score` and
  :func:`pair_calibration`: calibration of P(chosen ≻ rejected) = sigmoid(mean_c − mean_r).
- :func:`percentile_ratio`: the spread of σ² across inputs (90th over 10th percentile).
- :func:`head_correlation`, :func:`mean_off_diagonal`: how alike the heads are.
- :func:`standardised_abs_error`: |mean − gold| with both put on one scale (z-scores).
- :func:`uncertainty_quality`: every number above for a set of test pairs (overall and per
  section); :func:`uq_metrics`: those numbers as ``ens/test/uq/*`` metrics (the figures and
  ``uncertainty_quality.json`` the ensemble stage writes from them:
  :mod:`rcollapse.analysis.uncertainty_report`).
- :func:`ppo_samples_quality`: the spread and Spearman of a PPO run's ``ppo_samples.csv``
  (σ² against |score − gold|, gold = VADER compound of the response, the offline judge);
  :func:`judged_samples_quality`: the same on its judged responses (``ppo_judged_samples.csv``,
  π0's and the policy's every few iterations, gold = the judge), and whether σ² grows as the
  policy moves away from π0.

Conventions: σ² of a response is the heads' sample variance of its reward (unbiased, k − 1 in
the denominator, as :func:`rcollapse.analysis.ensemble_report.variance_by_section`); a pair is
*wrong* when the ensemble mean does not score chosen strictly above rejected (the accuracy
table's rule); a number that is undefined on the data (one class empty, a constant input) is
NaN in the functions and left out of the metrics.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.stats import rankdata, spearmanr

from rcollapse.analysis.ensemble_report import slug

PREFIX = "ens/test/uq"
ECE_BINS = 10  # equal-width bins over [0, 1] of the (symmetrised) pair probability
SPREAD_PERCENTILES = (90, 10)


# ---------------------------------------------------------------- the measures, one function each


def spearman(x, y) -> float:
    """Spearman's rank correlation of ``x`` and ``y`` (``scipy.stats.spearmanr``: tied values share
    their average rank). NaN for fewer than two points or a constant input."""
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"spearman: x and y differ in length ({x.size} vs {y.size})")
    if x.size < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    return float(spearmanr(x, y).statistic)


def auroc(scores, positive) -> float:
    """Area under the ROC curve of ``scores`` for the boolean labels ``positive``: the share of
    (positive, negative) pairs in which the positive scores higher, a tie counting ½ (the
    Mann–Whitney U statistic over n₊·n₋). 0.5 is chance, 1 a perfect ranking. NaN when either
    class is empty."""
    scores = np.asarray(scores, dtype=float).ravel()
    positive = np.asarray(positive, dtype=bool).ravel()
    if scores.shape != positive.shape:
        raise ValueError(f"auroc: scores and labels differ in length ({scores.size} vs {positive.size})")
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def _bin_index(prob: np.ndarray, num_bins: int) -> np.ndarray:
    """Equal-width bins over [0, 1]: bin b holds [b/B, (b+1)/B), the last one also 1."""
    return np.clip(np.floor(prob * num_bins).astype(int), 0, num_bins - 1)


def calibration_curve(prob, outcome, num_bins: int = ECE_BINS) -> dict[str, np.ndarray]:
    """The reliability curve of probability forecasts ``prob`` of binary ``outcome`` with
    ``num_bins`` equal-width bins over [0, 1]: per bin its ``edges`` (B + 1), the ``count`` of
    forecasts, their ``mean_prob`` and the ``frequency`` of the outcome (NaN in empty bins)."""
    prob = np.asarray(prob, dtype=float).ravel()
    outcome = np.asarray(outcome, dtype=float).ravel()
    if prob.shape != outcome.shape:
        raise ValueError(f"calibration: prob and outcome differ in length ({prob.size} vs {outcome.size})")
    if num_bins < 1:
        raise ValueError(f"calibration: num_bins must be >= 1, got {num_bins}")
    index = _bin_index(prob, num_bins)
    count = np.bincount(index, minlength=num_bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_prob = np.bincount(index, weights=prob, minlength=num_bins) / count
        frequency = np.bincount(index, weights=outcome, minlength=num_bins) / count
    return {"edges": np.linspace(0, 1, num_bins + 1), "count": count, "mean_prob": mean_prob, "frequency": frequency}


def expected_calibration_error(prob, outcome, num_bins: int = ECE_BINS) -> float:
    """ECE: Σ_b (n_b / n) · |frequency_b − mean_prob_b| over ``num_bins`` equal-width bins of
    [0, 1] (empty bins weigh nothing). 0 is perfectly calibrated. NaN with no forecasts."""
    curve = calibration_curve(prob, outcome, num_bins)
    n = curve["count"].sum()
    if n == 0:
        return float("nan")
    filled = curve["count"] > 0
    gaps = np.abs(curve["frequency"][filled] - curve["mean_prob"][filled])
    return float((curve["count"][filled] / n * gaps).sum())


def brier_score(prob, outcome) -> float:
    """Brier score: mean of (prob − outcome)²; 0 is perfect, 0.25 a constant forecast of ½."""
    prob, outcome = np.asarray(prob, dtype=float).ravel(), np.asarray(outcome, dtype=float).ravel()
    return float(np.mean((prob - outcome) ** 2)) if prob.size else float("nan")


def pair_probability(mean_chosen, mean_rejected) -> np.ndarray:
    """P(chosen ≻ rejected) = sigmoid(mean_chosen − mean_rejected), the Bradley–Terry
    probability the ensemble mean's rewards give."""
    diff = np.asarray(mean_chosen, dtype=float) - np.asarray(mean_rejected, dtype=float)
    return 0.5 * (1 + np.tanh(diff / 2))  # = 1 / (1 + e^−diff), without overflow


def pair_calibration(mean_chosen, mean_rejected, num_bins: int = ECE_BINS) -> dict:
    """Calibration of p = P(chosen ≻ rejected) (:func:`pair_probability`) on test pairs whose
    true order is known (chosen is preferred).

    Every pair enters in both orders, (p, outcome 1) and (1 − p, outcome 0), since a forecast
    that is always about the true winner has only the outcome 1 and its ECE would reward
    p → 1 alone. With an even number of equal-width bins over [0, 1] this equals the usual
    classification (top-label) ECE: confidence max(p, 1 − p) against correctness (p > ½), in
    the upper half of the bins (except for pairs at exactly p = ½, which count as half right
    here and as wrong there). The Brier score is the same either way, mean (1 − p)².

    Returns ``{"ece", "brier", "num_bins", "curve"}`` (curve: :func:`calibration_curve` of the
    symmetrised forecasts).
    """
    p = pair_probability(mean_chosen, mean_rejected).ravel()
    prob = np.concatenate([p, 1 - p])
    outcome = np.concatenate([np.ones_like(p), np.zeros_like(p)])
    return {"ece": expected_calibration_error(prob, outcome, num_bins), "brier": brier_score(p, np.ones_like(p)),
            "num_bins": int(num_bins), "curve": calibration_curve(prob, outcome, num_bins)}


def percentile_ratio(values, high: float = SPREAD_PERCENTILES[0], low: float = SPREAD_PERCENTILES[1]) -> float:
    """The spread of positive ``values`` (σ² across inputs): the ``high``-th percentile over
    the ``low``-th (linear interpolation). 1 means σ² is nearly constant. NaN when the low
    percentile is not positive or there are no values."""
    values = np.asarray(values, dtype=float).ravel()
    if values.size == 0:
        return float("nan")
    hi, lo = np.percentile(values, [high, low])
    return float(hi / lo) if lo > 0 else float("nan")


def head_correlation(scores) -> np.ndarray:
    """[k, k] Pearson correlations between the heads' rewards, ``scores`` [n, k] (rows: inputs,
    e.g. every test response). A head's offset and scale do not enter. NaN entries for a
    constant head."""
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2 or scores.shape[1] < 1:
        raise ValueError(f"head_correlation: expected scores [n, k], got shape {scores.shape}")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.atleast_2d(np.corrcoef(scores, rowvar=False))


def mean_off_diagonal(matrix) -> float:
    """The mean of a square matrix's off-diagonal entries (NaN for a 1 × 1 matrix)."""
    matrix = np.asarray(matrix, dtype=float)
    k = matrix.shape[0]
    if k < 2:
        return float("nan")
    return float(matrix[~np.eye(k, dtype=bool)].mean())


def standardise(values, on=None) -> np.ndarray:
    """(values − m) / s with m and the population std s taken over ``values[on]`` (``on``: a
    boolean mask; None: all of them); all zeros when s is 0."""
    values = np.asarray(values, dtype=float)
    basis = values if on is None else values[np.asarray(on, dtype=bool)]
    std = basis.std()
    return (values - basis.mean()) / std if std > 0 else np.zeros_like(values)


def standardised_abs_error(mean, gold, on=None) -> np.ndarray:
    """|z(mean) − z(gold)|: the ensemble mean's absolute error against a gold reward, both
    standardised (mean 0, std 1) over the given responses, or over the subset ``on`` (a boolean
    mask: e.g. the reference policy's responses, where the reward model is in its training
    distribution; then the map is fitted there and a policy's drift away from it shows as error
    instead of being absorbed into the standardisation).

    A Bradley–Terry reward is defined only up to an additive constant and learns the gold's
    scale only up to the label temperature, so the raw difference has no meaning. Standardising
    both is the affine map that matches their first two moments: offline the ideal reward is
    affine in the gold (labels are drawn with P(a ≻ b) = σ((g_a − g_b)/T)), so the error left is
    how far the model departs from that line. Only ranks of the error matter to Spearman.
    """
    return np.abs(standardise(mean, on) - standardise(gold, on))


# ---------------------------------------------------------------- an ensemble's test pairs


def sections_in_order(sections: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(sections))


def uncertainty_quality(chosen, rejected, sections: Sequence[str] | None = None, gold_chosen=None,
                        gold_rejected=None, num_bins: int = ECE_BINS, head_scale=None) -> dict:
    """Every uncertainty-quality number of an ensemble on test pairs.

    ``chosen``, ``rejected``: [N, k] rewards of the k heads; ``sections``: N labels (per-section
    numbers); ``gold_chosen``, ``gold_rejected``: N gold rewards, or None (e.g. RewardBench);
    ``head_scale``: [k] factors that take each head's scores back to the scale its Bradley–Terry
    loss was trained on (a normalised head's std; None: the scores are on that scale). Only the
    calibration uses it: P(chosen ≻ rejected) is a probability only on the trained scale, while
    σ², the correlations and the rank measures are taken on the scores as given.

    Per response (the 2N chosen and rejected responses): σ² over heads, the ensemble mean and,
    with a gold, :func:`standardised_abs_error` (z-scores over all 2N test responses). Per pair:
    wrong (mean chosen ≤ mean rejected), σ²_pair = mean of its two responses' σ² (the quantity
    PPO weighs per response, summarised per pair) and σ²_diff = the heads' variance of
    chosen − rejected.

    Returns ``{"overall": numbers, "sections": {section: numbers}, "calibration": the overall
    :func:`pair_calibration`, "head_corr": [k, k], "arrays": per-response and per-pair arrays}``
    with numbers:

    - ``spearman_var_abs_error``: :func:`spearman` of σ² and |z(mean) − z(gold)| over responses
      (only with a gold);
    - ``auroc_var_wrong_pair``, ``auroc_vardiff_wrong_pair``: :func:`auroc` of σ²_pair and of
      σ²_diff for predicting a wrong pair;
    - ``ece``, ``brier``: :func:`pair_calibration` of the ensemble mean (heads × ``head_scale``);
    - ``var_p90_p10``: :func:`percentile_ratio` of the responses' σ²;
    - ``wrong_pair_rate``: the share of wrong pairs;
    - overall only: ``head_corr_mean_offdiag`` (:func:`mean_off_diagonal` of the heads'
      correlations over the 2N responses) and ``head_corr_diff_mean_offdiag`` (the same over
      the pairs' chosen − rejected differences).
    """
    chosen, rejected = np.asarray(chosen, dtype=float), np.asarray(rejected, dtype=float)
    if chosen.ndim != 2 or chosen.shape != rejected.shape:
        raise ValueError(f"uncertainty_quality: chosen and rejected must be [N, k] alike, got {chosen.shape} "
                         f"and {rejected.shape}")
    n, k = chosen.shape
    sections = list(sections) if sections is not None else ["all"] * n
    if len(sections) != n:
        raise ValueError(f"uncertainty_quality: {len(sections)} section labels for {n} pairs")
    has_gold = gold_chosen is not None and gold_rejected is not None
    ddof = 1 if k > 1 else 0
    var_c, var_r = chosen.var(axis=1, ddof=ddof), rejected.var(axis=1, ddof=ddof)
    mean_c, mean_r = chosen.mean(axis=1), rejected.mean(axis=1)
    wrong = ~(mean_c > mean_r)
    scale = np.ones(k) if head_scale is None else np.asarray(head_scale, dtype=float).reshape(k)
    cal_c, cal_r = (chosen * scale).mean(axis=1), (rejected * scale).mean(axis=1)
    var_pair = (var_c + var_r) / 2
    var_diff = (chosen - rejected).var(axis=1, ddof=ddof)
    var_resp = np.concatenate([var_c, var_r])
    error = None
    if has_gold:
        gold = np.concatenate([np.asarray(gold_chosen, dtype=float), np.asarray(gold_rejected, dtype=float)])
        if gold.shape != (2 * n,) or not np.all(np.isfinite(gold)):
            raise ValueError("uncertainty_quality: gold_chosen and gold_rejected must be N finite numbers each")
        error = standardised_abs_error(np.concatenate([mean_c, mean_r]), gold)

    def numbers(mask: np.ndarray) -> dict[str, float]:
        resp = np.concatenate([mask, mask])
        out = {"auroc_var_wrong_pair": auroc(var_pair[mask], wrong[mask]),
               "auroc_vardiff_wrong_pair": auroc(var_diff[mask], wrong[mask]),
               "var_p90_p10": percentile_ratio(var_resp[resp]),
               "wrong_pair_rate": float(wrong[mask].mean())}
        cal = pair_calibration(cal_c[mask], cal_r[mask], num_bins)
        out.update(ece=cal["ece"], brier=cal["brier"])
        if error is not None:
            out["spearman_var_abs_error"] = spearman(var_resp[resp], error[resp])
        return out

    sections_arr = np.asarray(sections)
    overall = numbers(np.ones(n, dtype=bool))
    corr = head_correlation(np.concatenate([chosen, rejected])) if k > 1 else np.ones((1, 1))
    overall["head_corr_mean_offdiag"] = mean_off_diagonal(corr)
    if k > 1:
        overall["head_corr_diff_mean_offdiag"] = mean_off_diagonal(head_correlation(chosen - rejected))
    return {"overall": overall,
            "sections": {s: numbers(sections_arr == s) for s in sections_in_order(sections)},
            "calibration": pair_calibration(cal_c, cal_r, num_bins), "head_corr": corr,
            "arrays": {"var_response": var_resp, "abs_error": error, "var_pair": var_pair, "wrong": wrong,
                       "section_response": np.concatenate([sections_arr, sections_arr]), "section_pair": sections_arr}}


def uq_metrics(quality: dict, prefix: str = PREFIX) -> dict[str, float]:
    """Flat metric keys of :func:`uncertainty_quality`: ``{prefix}/{name}`` overall,
    ``{prefix}/{section}/{name}`` per section (only with more than one section), and
    ``{prefix}/ece_num_bins``. Undefined (NaN) numbers are left out."""
    metrics = {f"{prefix}/{name}": v for name, v in quality["overall"].items()}
    if len(quality["sections"]) > 1:
        for section, values in quality["sections"].items():
            metrics.update({f"{prefix}/{slug(section)}/{name}": v for name, v in values.items()})
    metrics[f"{prefix}/ece_num_bins"] = float(quality["calibration"]["num_bins"])
    return {key: float(v) for key, v in metrics.items() if np.isfinite(v)}


# ---------------------------------------------------------------- a PPO run's samples


def ppo_samples_quality(samples_csv: Path, gold=None) -> dict[str, float]:
    """Uncertainty quality of a PPO run's sampled responses (``ppo_samples.csv``: step, prompt,
    response, score, variance, weight): ``spearman_var_abs_error``, the Spearman of the
    ensemble's σ² (``variance``) against |z(score) − z(gold)| (:func:`standardised_abs_error`,
    z-scores over the samples), ``var_p90_p10`` (:func:`percentile_ratio` of σ²), ``weight_p90_p10``
    and ``num_samples``. ``score`` is the proxy reward the policy optimised (one head's);
    ``gold(responses) → rewards`` defaults to the offline gold/judge, VADER's compound of the
    response (:func:`rcollapse.data.sentiment_gold.vader_compound`)."""
    with Path(samples_csv).open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{samples_csv}: no samples")
    if gold is None:
        from rcollapse.data.sentiment_gold import vader_compound as gold
    score = np.array([float(r["score"]) for r in rows])
    variance = np.array([float(r["variance"]) for r in rows])
    weight = np.array([float(r["weight"]) for r in rows])
    reference = np.asarray(gold([r["response"] for r in rows]), dtype=float)
    return {"spearman_var_abs_error": spearman(variance, standardised_abs_error(score, reference)),
            "var_p90_p10": percentile_ratio(variance), "weight_p90_p10": percentile_ratio(weight),
            "num_samples": float(len(rows))}


def judged_samples_quality(gold, mean, variance, proxy=None, policy=None, step=None) -> dict[str, float]:
    """Uncertainty quality on a PPO run's judged responses (``ppo_judged_samples.csv``: the
    reference policy's and, every few iterations, the policy's responses to the judge prompts,
    each with the judge's gold, the ensemble's mean and σ², and the proxy PPO optimised):

    - ``spearman_var_abs_error``: :func:`spearman` of σ² and |z(mean) − z(gold)| over all of them
      (:func:`standardised_abs_error`, the held-out pairs' measure, with the z-scores fitted on the
      reference policy's responses when ``policy`` names them: the map from reward to gold is
      the one that holds where the reward model was trained, and the policy's drift is error);
    - ``spearman_var_abs_error_proxy``: the same against the proxy's error |z(proxy) − z(gold)|;
    - ``var_p90_p10``: :func:`percentile_ratio` of σ²;
    - with ``policy`` and ``step``: ``var_median_ref`` and ``var_median_last`` (median σ² of the
      reference policy's responses and of the last judged iteration's) and their ratio
      ``var_last_over_ref``: does σ² grow where the policy has moved?
    """
    gold, mean, variance = (np.asarray(a, dtype=float).ravel() for a in (gold, mean, variance))
    on = None
    if policy is not None and (np.asarray(policy) == "reference").sum() > 1:
        on = np.asarray(policy) == "reference"
    out = {"spearman_var_abs_error": spearman(variance, standardised_abs_error(mean, gold, on)),
           "var_p90_p10": percentile_ratio(variance), "num_samples": float(variance.size)}
    if proxy is not None:
        out["spearman_var_abs_error_proxy"] = spearman(variance, standardised_abs_error(np.asarray(proxy, float), gold, on))
    if policy is not None and step is not None:
        policy, step = np.asarray(policy), np.asarray(step, dtype=float)
        ref, mine = policy == "reference", policy != "reference"
        if ref.any() and mine.any():
            last = mine & (step == step[mine].max())
            out["var_median_ref"] = float(np.median(variance[ref]))
            out["var_median_last"] = float(np.median(variance[last]))
            out["var_last_over_ref"] = (out["var_median_last"] / out["var_median_ref"]
                                        if out["var_median_ref"] > 0 else float("nan"))
    return out


def judged_samples_file_quality(path: Path) -> dict[str, float]:
    """:func:`judged_samples_quality` of a ``ppo_judged_samples.csv``."""
    with Path(path).open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: no judged samples")

    def column(name, kind=float):
        return [kind(r[name]) for r in rows]

    return judged_samples_quality(column("gold"), column("mean"), column("variance"), column("proxy"),
                                  column("policy", str), column("step"))


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m rcollapse.analysis.uncertainty_quality RUN_DIR [...]``: the uncertainty
    quality of each PPO run's judged responses (``ppo_judged_samples.csv``, gold = the judge's
    score), or of its ``ppo_samples.csv`` (offline VADER gold) when the run judged nothing, as JSON."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("runs", nargs="+", help="PPO run directories (or ppo_samples.csv files)")
    args = parser.parse_args(argv)
    out = {}
    for run in args.runs:
        path = Path(run)
        if path.is_dir() and (path / "ppo_judged_samples.csv").exists():
            out[str(run)] = judged_samples_file_quality(path / "ppo_judged_samples.csv")
            continue
        path = path / "ppo_samples.csv" if path.is_dir() else path
        out[str(run)] = (judged_samples_file_quality(path) if path.name == "ppo_judged_samples.csv"
                         else ppo_samples_quality(path))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":  # pragma: no cover
    main()
