"""The uncertainty-quality measures against hand-computed examples, and the report they make."""

import itertools
import json

import numpy as np
import pytest
from scipy import stats

from rcollapse.analysis.uncertainty_quality import (
    auroc,
    brier_score,
    calibration_curve,
    expected_calibration_error,
    head_correlation,
    judged_samples_file_quality,
    judged_samples_quality,
    mean_off_diagonal,
    pair_calibration,
    percentile_ratio,
    ppo_samples_quality,
    spearman,
    standardised_abs_error,
    uncertainty_quality,
    uq_metrics,
)
from rcollapse.analysis.uncertainty_report import FIGURES, uncertainty_report
from rcollapse.data.preference_pairs import PreferencePair


def _logit(p):
    p = np.asarray(p, dtype=float)
    return np.log(p / (1 - p))


def test_auroc_is_the_share_of_positive_negative_pairs_ordered_right_with_ties_half():
    # positives 0.2, 0.5; negatives 0.5, 0.9, 0.1: (0.2>0.1) + ½ (0.5=0.5) + (0.5>0.1) = 2.5 of 6
    assert auroc([0.2, 0.5, 0.5, 0.9, 0.1], [True, True, False, False, False]) == pytest.approx(2.5 / 6)
    assert auroc([1, 2, 3, 4], [False, False, True, True]) == 1.0
    assert auroc([1, 2, 3, 4], [True, True, False, False]) == 0.0
    assert np.isnan(auroc([1, 2, 3], [True, True, True]))
    rng = np.random.default_rng(0)
    scores, labels = rng.integers(0, 5, size=40).astype(float), rng.random(40) < 0.4  # many ties
    pos, neg = scores[labels], scores[~labels]
    by_count = np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg)])
    assert auroc(scores, labels) == pytest.approx(by_count)


def test_spearman_matches_a_hand_count_and_scipy_with_ties():
    assert spearman([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)  # 1 − 6·(0 + 1 + 1) / (3·8)
    x, y = [1, 2, 2, 3, 5, 5, 5, 0], [3, 1, 4, 1, 5, 9, 2, 6]
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_ece_and_brier_on_four_bins_by_hand():
    prob = [0.1, 0.2, 0.3, 0.6, 0.7, 0.9, 0.95, 1.0]
    outcome = [0, 1, 0, 1, 0, 1, 1, 1]
    # bins [0, ¼): 0.1, 0.2 → mean 0.15, frequency ½; [¼, ½): 0.3 → 0; [½, ¾): 0.6, 0.7 → ½;
    # [¾, 1]: 0.9, 0.95, 1.0 → 1
    curve = calibration_curve(prob, outcome, num_bins=4)
    np.testing.assert_allclose(curve["count"], [2, 1, 2, 3])
    np.testing.assert_allclose(curve["mean_prob"], [0.15, 0.3, 0.65, 0.95])
    np.testing.assert_allclose(curve["frequency"], [0.5, 0.0, 0.5, 1.0])
    expected = (2 * 0.35 + 1 * 0.3 + 2 * 0.15 + 3 * 0.05) / 8
    assert expected_calibration_error(prob, outcome, num_bins=4) == pytest.approx(expected)
    expected_brier = (0.01 + 0.64 + 0.09 + 0.16 + 0.49 + 0.01 + 0.0025 + 0.0) / 8
    assert brier_score(prob, outcome) == pytest.approx(expected_brier)
    # empty bins weigh nothing
    assert expected_calibration_error([0.05, 0.05], [0, 0], num_bins=10) == pytest.approx(0.05)


def test_pair_calibration_symmetrises_and_equals_the_top_label_ece():
    p = np.array([0.9, 0.6, 0.3])
    cal = pair_calibration(_logit(p), np.zeros(3), num_bins=2)
    # both orders: bin [0, ½) holds (0.3, 1), (0.1, 0), (0.4, 0); bin [½, 1] (0.9, 1), (0.6, 1), (0.7, 0)
    assert cal["ece"] == pytest.approx(abs(1 / 3 - 0.8 / 3) / 2 + abs(2 / 3 - 2.2 / 3) / 2)
    # top-label: confidence 0.9, 0.6, 0.7 in one bin [½, 1], right on 2 of 3
    assert cal["ece"] == pytest.approx(abs(2 / 3 - 2.2 / 3))
    assert cal["brier"] == pytest.approx((0.01 + 0.16 + 0.49) / 3)
    assert cal["num_bins"] == 2 and cal["curve"]["count"].sum() == 6
    # a model that says ½ everywhere is calibrated on pairs shown in both orders
    assert pair_calibration(np.zeros(5), np.zeros(5))["ece"] == pytest.approx(0.0)


def test_spread_correlations_and_standardised_error():
    assert percentile_ratio(np.arange(1, 12)) == pytest.approx(10 / 2)
    assert np.isnan(percentile_ratio([0, 0, 1]))
    base = np.array([0.3, -1.0, 2.0, 0.5, 0.0])
    corr = head_correlation(np.stack([base, 2 * base + 5, -base], axis=1))
    np.testing.assert_allclose(corr, [[1, 1, -1], [1, 1, -1], [-1, -1, 1]], atol=1e-12)
    assert mean_off_diagonal(corr) == pytest.approx(-1 / 3)
    gold = np.array([0.1, -0.5, 0.9, 0.0])
    np.testing.assert_allclose(standardised_abs_error(3 * gold + 7, gold), 0, atol=1e-12)
    # z([3, 1, 1, 3]) = [1, −1, −1, 1] (mean 2, std 1), z([1, 0, 1, 0]) = [1, −1, 1, −1]
    err = standardised_abs_error(np.array([3.0, 1.0, 1.0, 3.0]), np.array([1.0, 0.0, 1.0, 0.0]))
    np.testing.assert_allclose(err, [0, 0, 2, 2], atol=1e-12)


def _toy():
    """4 pairs, 3 heads: pairs 0–1 right and quiet, pairs 2–3 wrong and noisy."""
    chosen = np.array([[1.0, 1.1, 0.9], [2.0, 2.1, 1.9], [0.0, 1.0, -1.5], [0.2, -2.0, 1.0]])
    rejected = np.array([[0.0, 0.1, -0.1], [0.0, 0.05, -0.05], [0.5, -0.5, 1.0], [1.0, 0.0, 0.5]])
    return chosen, rejected


def test_uncertainty_quality_on_a_toy_ensemble():
    chosen, rejected = _toy()
    gold_c, gold_r = np.array([0.5, 0.9, 0.6, 0.4]), np.array([-0.5, -0.8, -0.6, -0.2])
    q = uncertainty_quality(chosen, rejected, ["A", "A", "B", "B"], gold_c, gold_r)
    o = q["overall"]
    assert list(q["arrays"]["wrong"]) == [False, False, True, True]
    assert o["wrong_pair_rate"] == 0.5
    assert o["auroc_var_wrong_pair"] == 1.0 and o["auroc_vardiff_wrong_pair"] == 1.0  # wrong pairs are the noisy ones
    var = np.concatenate([chosen.var(1, ddof=1), rejected.var(1, ddof=1)])
    error = standardised_abs_error(np.concatenate([chosen.mean(1), rejected.mean(1)]), np.concatenate([gold_c, gold_r]))
    assert o["spearman_var_abs_error"] == pytest.approx(stats.spearmanr(var, error).statistic)
    assert o["var_p90_p10"] == pytest.approx(np.percentile(var, 90) / np.percentile(var, 10))
    cal = pair_calibration(chosen.mean(1), rejected.mean(1))
    assert o["ece"] == pytest.approx(cal["ece"]) and o["brier"] == pytest.approx(cal["brier"])
    assert o["head_corr_mean_offdiag"] == pytest.approx(mean_off_diagonal(np.corrcoef(np.concatenate([chosen, rejected]).T)))
    assert np.isnan(q["sections"]["A"]["auroc_var_wrong_pair"])  # no wrong pair in A
    metrics = uq_metrics(q)
    assert "ens/test/uq/a/auroc_var_wrong_pair" not in metrics  # undefined: left out
    assert metrics["ens/test/uq/b/wrong_pair_rate"] == 1.0 and metrics["ens/test/uq/ece_num_bins"] == 10
    assert {"ens/test/uq/spearman_var_abs_error", "ens/test/uq/auroc_var_wrong_pair", "ens/test/uq/ece",
            "ens/test/uq/brier", "ens/test/uq/var_p90_p10", "ens/test/uq/head_corr_mean_offdiag"} <= set(metrics)
    # heads normalised by s: with head_scale = s the calibration is that of the raw heads
    s = np.array([2.0, 0.5, 4.0])
    scaled = uncertainty_quality(chosen / s, rejected / s, head_scale=s)["overall"]
    assert scaled["ece"] == pytest.approx(o["ece"]) and scaled["brier"] == pytest.approx(o["brier"])


def test_the_report_writes_figures_and_json_and_skips_the_spearman_without_gold(tmp_path):
    chosen, rejected = _toy()
    with_gold = [PreferencePair(f"p{i}", "x", "a", "b", section=s, gold_chosen=0.5, gold_rejected=-0.1 * i)
                 for i, s in enumerate(["A", "A", "B", "B"])]
    metrics, figures = uncertainty_report(chosen, rejected, with_gold, tmp_path, title="toy")
    assert "ens/test/uq/spearman_var_abs_error" in metrics
    assert set(figures) == set(FIGURES)
    for path in figures.values():
        assert path.parent == tmp_path / "figures" and path.stat().st_size > 5000
    saved = json.loads((tmp_path / "uncertainty_quality.json").read_text())
    assert len(saved["head_corr"]) == 3 and len(saved["calibration"]["count"]) == 10
    assert saved["sections"]["A"]["auroc_var_wrong_pair"] is None  # NaN written as null

    no_gold = [PreferencePair(f"p{i}", "x", "a", "b", section="Chat") for i in range(4)]
    metrics, figures = uncertainty_report(chosen, rejected, no_gold, None)
    assert figures == {} and "ens/test/uq/spearman_var_abs_error" not in metrics
    assert metrics["ens/test/uq/auroc_var_wrong_pair"] == 1.0
    assert not any(k.startswith("ens/test/uq/chat/") for k in metrics)  # one section: overall only


def test_offline_pairs_carry_the_vader_gold_of_each_response():
    from rcollapse.data.preference_sources import PreferenceOfflineSource
    from rcollapse.data.sentiment_gold import vader_compound

    splits = PreferenceOfflineSource(num_train=12, num_val=4, num_test_per_section=3).load()
    for split in ("train", "test"):
        pairs = splits[split]
        assert vader_compound([p.chosen for p in pairs]) == [p.gold_chosen for p in pairs]
        assert vader_compound([p.rejected for p in pairs]) == [p.gold_rejected for p in pairs]
    assert all(p.gold_chosen > p.gold_rejected for p in splits["test"])  # test pairs are ordered by the gold


def test_ppo_samples_quality_reads_the_samples_csv(tmp_path):
    path = tmp_path / "ppo_samples.csv"
    rows = [(0, "p", "r0", 0.0, 0.1, 0.1), (0, "p", "r1", 1.0, 0.2, 0.2), (1, "p", "r2", 2.0, 0.4, 0.4),
            (1, "p", "r3", 3.0, 0.8, 0.8)]
    path.write_text("step,prompt,response,score,variance,weight\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    gold = {"r0": 0.0, "r1": 1.0, "r2": 1.0, "r3": 0.0}  # the proxy rises where the gold falls
    out = ppo_samples_quality(path, gold=lambda texts: [gold[t] for t in texts])
    error = standardised_abs_error([0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 1.0, 0.0])
    assert out["spearman_var_abs_error"] == pytest.approx(stats.spearmanr([0.1, 0.2, 0.4, 0.8], error).statistic)
    assert out["var_p90_p10"] == pytest.approx(np.percentile([0.1, 0.2, 0.4, 0.8], 90) / np.percentile([0.1, 0.2, 0.4, 0.8], 10))
    assert out["num_samples"] == 4


def test_standardising_on_the_reference_subset_keeps_the_drift_as_error():
    # reference responses 0–3: mean = 2·gold there; the policy's 4–5 drift (mean up, gold down)
    gold = np.array([0.0, 1.0, 0.0, 1.0, -1.0, -1.0])
    mean = np.array([0.0, 2.0, 0.0, 2.0, 4.0, 4.0])
    on = np.array([True] * 4 + [False] * 2)
    # on the reference: mean → (m − 1)/1, gold → (g − 0.5)/0.5: the reference is exact, the drift is |3 − (−3)| = 6
    np.testing.assert_allclose(standardised_abs_error(mean, gold, on), [0, 0, 0, 0, 6, 6], atol=1e-12)
    # standardised over every response, the same drift would look smaller than the reference's error
    over_all = standardised_abs_error(mean, gold)
    assert over_all[0] > 0 and over_all[4] < 6


def test_judged_samples_quality_by_hand(tmp_path):
    # two reference responses and, at steps 0 and 10, the policy's; σ² grows with the drift
    policy = ["reference", "reference", "policy", "policy", "policy", "policy"]
    step = [-1, -1, 0, 0, 10, 10]
    gold = [0.0, 1.0, 0.5, 0.0, -1.0, -0.5]
    mean = [0.0, 2.0, 1.0, 1.0, 4.0, 3.0]
    variance = [0.1, 0.1, 0.2, 0.3, 0.9, 0.8]
    out = judged_samples_quality(gold, mean, variance, proxy=mean, policy=policy, step=step)
    error = standardised_abs_error(mean, gold, np.array([True, True, False, False, False, False]))
    assert out["spearman_var_abs_error"] == pytest.approx(stats.spearmanr(variance, error).statistic)
    assert out["spearman_var_abs_error"] > 0.8
    assert out["var_median_ref"] == pytest.approx(0.1) and out["var_median_last"] == pytest.approx(0.85)
    assert out["var_last_over_ref"] == pytest.approx(8.5)
    path = tmp_path / "ppo_judged_samples.csv"
    path.write_text("step,policy,prompt,response,gold,proxy,mean,variance,kl\n" + "".join(
        f"{s},{p},x,y,{g},{m},{m},{v},0\n" for s, p, g, m, v in zip(step, policy, gold, mean, variance, strict=True)))
    assert judged_samples_file_quality(path) == pytest.approx(out)
