"""Per-prompt diagnostics of the reward stage: the pure functions by hand, and a short run's outputs."""

import csv
import json
import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from rcollapse.analysis.reward_diagnostics import (
    diagnostics_metrics,
    margins,
    pair_preference_calibration,
    reward_diagnostics,
    reward_logit,
    score_rows,
    within_prompt_spearman,
)


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def vector_from_logits(*logits):
    return np.array([sigmoid(f) for f in logits])


def test_reward_logit_inverts_the_sigmoid_and_clips_saturated_rewards():
    f = np.array([-5.0, -0.3, 0.0, 2.0, 9.0])
    np.testing.assert_allclose(reward_logit(1 / (1 + np.exp(-f))), f, atol=1e-9)
    assert np.isfinite(reward_logit([0.0, 1.0])).all()
    assert reward_logit([1.0])[0] == pytest.approx(math.log((1 - 1e-7) / 1e-7))


def test_calibration_of_a_known_miscalibrated_set_by_hand():
    # one prompt of 3 completions, logits 2, 0, 0: pairs (0,1), (0,2) give p = σ(2), pair (1,2) p = ½.
    cal = pair_preference_calibration([vector_from_logits(2.0, 0.0, 0.0)], num_bins=10)
    s = sigmoid(2.0)  # 0.8808: bin 8; 1 − s: bin 1; ½ twice in bin 5 (both orientations)
    # bins: {s, s} with outcome 1, 1; {1 − s, 1 − s} with 0, 0; {½, ½} with 1, 0
    expected_ece = (2 / 6) * (1 - s) + (2 / 6) * (1 - s) + (2 / 6) * 0.0
    assert cal["ece"] == pytest.approx(expected_ece)
    assert cal["brier"] == pytest.approx((2 * (1 - s) ** 2 + 0.25) / 3)
    assert cal["num_pairs"] == 3


def test_calibration_of_a_perfectly_calibrated_toy_set_is_zero():
    # Half of the prompts rank a, b as labelled with p(a ≻ b) = 0.75 and the logits agree; the other
    # 1/4 have the label against the model: per bin, frequency = mean forecast.
    f = math.log(3)  # σ(log 3) = 0.75
    right = [vector_from_logits(f, 0.0)] * 3  # labelled order agrees with the model
    wrong = [vector_from_logits(0.0, f)]  # labelled better has the lower logit
    cal = pair_preference_calibration(right + wrong, num_bins=10)
    assert cal["ece"] == pytest.approx(0.0, abs=1e-12)
    assert cal["brier"] == pytest.approx(0.75 * 0.25**2 + 0.25 * 0.75**2)


def test_margins_every_pair_and_adjacent():
    v = np.array([0.9, 0.5, 0.6])
    np.testing.assert_allclose(margins([v]), [0.4, 0.3, -0.1])
    np.testing.assert_allclose(margins([v], adjacent=True), [0.4, -0.1])
    np.testing.assert_allclose(margins([v, np.array([0.2, 0.1])]), [0.4, 0.3, -0.1, 0.1])


def test_length_correlations_against_scipy_and_a_loop():
    rng = np.random.default_rng(0)
    vectors = [rng.random(n) for n in (8, 8, 5, 8, 3)]
    lengths = [rng.integers(5, 80, size=v.size).astype(float) for v in vectors]
    openness = np.array([1.0, -1.0, 0.5, -0.2, 1.0])
    numbers = reward_diagnostics(vectors, openness, lengths)["numbers"]
    pooled = spearmanr(np.concatenate(lengths), np.concatenate(vectors)).statistic
    assert numbers["length_spearman"] == pytest.approx(pooled)
    per_prompt = []
    for v, n in zip(vectors, lengths):
        per_prompt.append(spearmanr(n, v).statistic)
    assert numbers["length_spearman_within_prompt"] == pytest.approx(np.mean(per_prompt))
    opened = [k for k, o in enumerate(openness) if o > 0]
    assert numbers["length_spearman_within_prompt_open"] == pytest.approx(np.mean([per_prompt[k] for k in opened]))
    closed_pooled = spearmanr(np.concatenate([lengths[k] for k in (1, 3)]),
                              np.concatenate([vectors[k] for k in (1, 3)])).statistic
    assert numbers["length_spearman_closed"] == pytest.approx(closed_pooled)


def test_within_prompt_spearman_skips_undefined_prompts():
    xs = [np.array([1.0, 2.0, 3.0]), np.array([4.0, 4.0, 4.0]), np.array([1.0, 2.0])]
    ys = [np.array([3.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0])]
    assert within_prompt_spearman(xs, ys) == pytest.approx((-0.5 + 1.0) / 2)
    assert math.isnan(within_prompt_spearman([np.array([1.0])], [np.array([2.0])]))


def test_the_length_task_labels_correlate_fully_with_length():
    # longer is better: best-first completions get shorter, so label quality vs length is +1
    lengths = [np.array([80.0, 70, 60, 50]), np.array([74.0, 68, 34, 16])]
    vectors = [np.array([0.9, 0.7, 0.5, 0.1]), np.array([0.2, 0.4, 0.6, 0.8])]
    numbers = reward_diagnostics(vectors, [1.0, -1.0], lengths)["numbers"]
    assert numbers["label_length_spearman_within_prompt"] == pytest.approx(1.0)
    assert numbers["length_spearman_within_prompt_open"] == pytest.approx(1.0)
    assert numbers["length_spearman_within_prompt_closed"] == pytest.approx(-1.0)


def test_metrics_leave_out_undefined_numbers_and_per_type_keys_exist():
    diagnostics = reward_diagnostics([np.array([0.8, 0.3])], [1.0])  # no closed prompt, no lengths
    metrics = diagnostics_metrics(diagnostics, "rm/test")
    assert {"rm/test/diag/ece", "rm/test/diag/brier", "rm/test/diag/margin_mean", "rm/test/diag/ece_open"} <= set(metrics)
    assert "rm/test/diag/ece_closed" not in metrics and "rm/test/diag/length_spearman" not in metrics
    assert metrics["rm/test/diag/margin_mean"] == pytest.approx(0.5)


def test_score_rows_rank_one_is_best():
    records = score_rows([np.array([0.7, 0.2])], [-1.0], ["p0"], [np.array([10.0, np.nan])], None)
    assert [(r["prompt_id"], r["type"], r["rank"], r["length_words"], r["tokens"]) for r in records] == [
        ("p0", "closed", 1, 10, ""), ("p0", "closed", 2, "", "")]
    assert records[0]["logit"] == pytest.approx(math.log(0.7 / 0.3))


def test_short_reward_run_writes_the_diagnostics(fast_reward_run):
    out = fast_reward_run("x")  # stage=reward, utility=x, FAST_TRAINING (tests/conftest.py)
    metrics = json.loads((out / "metrics.json").read_text())
    for split in ("test", "train"):
        for name in ("ece", "brier", "margin_mean", "length_spearman", "length_spearman_within_prompt",
                     "label_length_spearman_within_prompt", "ece_open", "margin_mean_closed"):
            assert f"rm/{split}/diag/{name}" in metrics, name
        assert 0 <= metrics[f"rm/{split}/diag/ece"] <= 1 and 0 <= metrics[f"rm/{split}/diag/brier"] <= 1
        # the length task: longer is better, so the labels correlate fully with length
        assert metrics[f"rm/{split}/diag/label_length_spearman_within_prompt"] == pytest.approx(1.0)
        for name in (f"calibration_{split}.png", f"margins_{split}.png"):
            assert (out / "figures" / name).stat().st_size > 1000
        with open(out / f"scores_{split}.csv") as f:
            rows = list(csv.DictReader(f))
        vectors = json.loads((out / f"rewards_{split}.json").read_text())["rewards"]
        assert len(rows) == sum(len(v) for v in vectors)
        assert set(rows[0]) == {"prompt_id", "type", "openness", "rank", "length_words", "tokens", "reward", "logit"}
        assert all(r["length_words"] and r["tokens"] and r["type"] in ("open", "closed") for r in rows)
        first = [r for r in rows if r["prompt_id"] == rows[0]["prompt_id"]]
        assert [int(r["rank"]) for r in first] == list(range(1, len(first) + 1))
        np.testing.assert_allclose([float(r["reward"]) for r in first], vectors[0], rtol=1e-6)
        lengths = [int(r["length_words"]) for r in first]
        assert lengths == sorted(lengths, reverse=True)  # best first = longest first


def test_sequence_tokens_from_a_padded_or_a_packed_batch():
    import torch

    from rcollapse.stages.reward_diagnostics_callback import sequence_tokens

    padded = {"attention_mask": torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]])}
    np.testing.assert_array_equal(sequence_tokens(padded, 3), [3, 2, 4])
    packed = {"attention_mask": torch.ones(1, 9), "packed": {"sequence_lengths": torch.tensor([3, 2, 4])}}
    np.testing.assert_array_equal(sequence_tokens(packed, 3), [3, 2, 4])
    assert np.isnan(sequence_tokens({}, 2)).all()
