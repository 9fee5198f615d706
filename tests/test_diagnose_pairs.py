"""`diagnose` for models trained on pairs (a hub reward model, an ensemble): a Bradley–Terry model
fixes only score differences within a prompt, so its profile must not depend on a per-prompt
offset, and its verdict names no utility."""

from __future__ import annotations

import json

import numpy as np
import pytest
from omegaconf import OmegaConf

from rcollapse import diagnose as diagnose_module
from rcollapse.analysis.collapse_diagnosis import (
    TheoryCache,
    default_candidates,
    model_profile,
    nearest_profiles,
    score_spread,
)
from rcollapse.diagnose import diagnose, read_training
from tests.test_diagnose import FAST_DATA, compose_diagnose


def _scores_with_offsets(seed: int = 0, prompts: int = 12, n: int = 8):
    rng = np.random.default_rng(seed)
    raw = [rng.normal(0, 1.5, n) for _ in range(prompts)]
    offsets = rng.uniform(-6, 6, prompts)  # what a Bradley-Terry model leaves arbitrary per prompt
    return raw, [f + c for f, c in zip(raw, offsets, strict=True)]


def test_the_pairs_profile_is_free_of_a_per_prompt_offset_and_the_sigmoid_profile_is_not():
    raw, shifted = _scores_with_offsets()
    for f, g in zip(raw, shifted, strict=True):
        # the plain reference: (f - min f) / (max f - min f), sorted best first
        by_hand = np.sort((f - f.min()) / (f.max() - f.min()))[::-1]
        np.testing.assert_allclose(model_profile(f, "pairs", "raw"), by_hand, atol=1e-12)
        np.testing.assert_allclose(model_profile(g, "pairs", "raw"), by_hand, atol=1e-12)
        np.testing.assert_allclose(model_profile(3.0 * g, "pairs", "raw"), by_hand, atol=1e-12)  # and scale
        assert score_spread(g) == pytest.approx(f.max() - f.min())
    # the old profile, sigmoid(f) then min-max, moves with the offset: by hand on one prompt
    f = np.array([2.0, 0.0, -2.0])
    sig = 1 / (1 + np.exp(-f))
    np.testing.assert_allclose(model_profile(f, "rankings", "sigmoid"), (sig - sig.min()) / (sig.max() - sig.min()))
    np.testing.assert_allclose(model_profile(f, "rankings", "sigmoid"), [1, 0.5, 0], atol=1e-12)
    shifted_sig = 1 / (1 + np.exp(-(f + 4)))
    middle = (shifted_sig[1] - shifted_sig[2]) / (shifted_sig[0] - shifted_sig[2])
    assert model_profile(f + 4, "rankings", "sigmoid")[1] == pytest.approx(middle) and middle > 0.8
    # pooled over prompts, the old profile's nearest theory depends on the offsets; the new one's does not
    cache, cands = TheoryCache(), default_candidates()
    new = [nearest_profiles([model_profile(x, "pairs", "raw") for x in xs], cands, cache) for xs in (raw, shifted)]
    assert [r["w1"] for r in new[0]] == pytest.approx([r["w1"] for r in new[1]], abs=1e-12)
    old = [nearest_profiles([model_profile(x, "rankings", "sigmoid") for x in xs], cands, cache)
           for xs in (raw, shifted)]
    assert max(abs(a["w1"] - b["w1"]) for a, b in zip(old[0], old[1], strict=True)) > 0.02


def test_how_a_model_was_trained_defaults_by_source_and_refuses_sigmoid_for_pairs():
    def settings(**keys):
        return read_training(OmegaConf.create({"trained_on": "auto", "output": "auto", **keys}))

    assert settings(source="hub") == ("pairs", "raw") and settings(source="ensemble") == ("pairs", "raw")
    assert settings(source="run") == ("rankings", "sigmoid") and settings(source="model") == ("rankings", "sigmoid")
    assert settings(source="hub", trained_on="rankings") == ("rankings", "sigmoid")
    assert settings(source="run", trained_on="pairs") == ("pairs", "raw")
    assert settings(source="run", output="raw") == ("rankings", "raw")
    with pytest.raises(ValueError, match=r"^reward_model\.output=sigmoid with reward_model\.trained_on=pairs"):
        settings(source="hub", output="sigmoid")
    with pytest.raises(ValueError, match=r"^reward_model\.trained_on must be one of auto, rankings, pairs"):
        settings(source="hub", trained_on="triples")
    with pytest.raises(ValueError, match=r"^reward_model\.output must be one of auto, sigmoid, raw"):
        settings(source="hub", output="tanh")


class _Fixed:
    """A stand-in for a pair-trained model's scorer: fixed raw scores per row (seeded by the row's
    position), plus, with ``offset_seed``, a large constant per prompt."""

    description, raw_kind, trained_utility = "a fixed scorer", "logit 0", None

    def __init__(self, offset_seed: int | None):
        self.offset_seed = offset_seed

    def score(self, rows):
        offsets = np.random.default_rng(self.offset_seed).uniform(-8, 8, len(rows)) if self.offset_seed is not None \
            else np.zeros(len(rows))
        return [np.random.default_rng(100 + i).normal(0, 1.5, len(row.completions)) + c
                for i, (row, c) in enumerate(zip(rows, offsets, strict=True))]


def _diagnose_hub(tmp_path, monkeypatch, name, overrides=(), offset_seed=None):
    monkeypatch.setattr(diagnose_module, "build_scorer", lambda *a, **k: _Fixed(offset_seed))
    result = diagnose(compose_diagnose(["reward_model.source=hub", "reward_model.name_or_path=/some/rm",
                                        *FAST_DATA, "diagnose.bootstrap=50", *overrides], tmp_path / name))
    return result, (tmp_path / name / "summary.txt").read_text()


def test_a_hub_model_is_read_offset_free_and_its_verdict_names_no_utility(tmp_path, monkeypatch):
    """The whole diagnosis of a pair-trained (hub) model's scores, with and without per-prompt offsets
    (a stand-in scorer: a real tiny classifier's float32 noise would blur the comparison)."""
    plain, summary = _diagnose_hub(tmp_path, monkeypatch, "plain")
    shifted, _ = _diagnose_hub(tmp_path, monkeypatch, "shifted", offset_seed=1)
    # the whole diagnosis is unchanged by per-prompt offsets of the model's scores
    for key in ("collapse_index", "between_group_distance", "within_group_dispersion", "asymmetry"):
        assert shifted[key] == pytest.approx(plain[key], abs=1e-9), key
    assert [r["w1"] for r in shifted["nearest"]["overall"]] == pytest.approx(
        [r["w1"] for r in plain["nearest"]["overall"]], abs=1e-9)
    # ... where the old reading, sigmoid(f) then min-max, is not
    old = ["reward_model.trained_on=rankings", "reward_model.output=sigmoid"]
    old_plain, _ = _diagnose_hub(tmp_path, monkeypatch, "old_plain", old)
    old_shifted, _ = _diagnose_hub(tmp_path, monkeypatch, "old_shifted", old, offset_seed=1)
    assert abs(old_shifted["collapse_index"] - old_plain["collapse_index"]) > 0.01

    # the verdict: what the theory licenses for a Bradley-Terry model, and no utility claimed
    assert plain["reward_model"]["trained_on"] == "pairs" and plain["reward_model"]["score_kind"] == "raw logit 0"
    assert old_plain["reward_model"]["score_kind"].startswith("sigmoid(logit 0)")
    assert plain["nearest_utility"] is None and plain["nearest_utility_by_group"] is None
    assert plain["nearest_shape"] == plain["nearest"]["overall"][0]["label"]
    assert plain["nearest_logsigmoid"]["label"].startswith("logsigmoid(scale=")
    assert plain["score_spread_median"] > 0
    text = " ".join(plain["verdict"])
    assert "behaves as if trained with" not in summary and "trained with U" not in summary
    assert "behaves as if" not in text and "U = " not in text and "no utility" in text and "logsigmoid" in text
    assert "does not reveal a U it was trained with" in text and "Bradley-Terry" in summary
    written = json.loads((tmp_path / "plain" / "diagnose.json").read_text())
    assert written["verdict"] == plain["verdict"] and written["nearest_utility"] is None
    # a model trained on rankings keeps its verdict
    assert old_plain["nearest_utility"] == old_plain["nearest"]["overall"][0]["label"]
    assert old_plain["verdict"][0].startswith("this model behaves as if trained with U = ")
