"""The heads' normalisation: a head's reward is defined only up to an additive constant under the
pairwise loss, so the ensemble scores z_k = (s_k − mean_k) / std_k with each head's mean and std
over the training responses, fitted after phase 2, saved in the artifact and applied on scoring."""

import json

import pytest
import torch

from rcollapse.data.preference_datamodule import PairFeatureDataModule, PreferenceDataModule
from rcollapse.data.preference_sources import PreferenceOfflineSource
from rcollapse.models.ensemble_artifact import (
    ARTIFACT_VERSION,
    OutdatedArtifactError,
    load_ensemble,
    save_ensemble,
)
from rcollapse.models.feature_cache import pair_features
from rcollapse.models.reward_model import RewardModel
from rcollapse.models.tiny_encoder import build_tiny_encoder, build_tiny_tokenizer
from rcollapse.stages.ensemble_stage import fit_head_normalisation, head_init_seeds, widen_heads
from rcollapse.stages.preference_reward_module import PreferenceRewardModule

PROMPTS = ["the movie", "i saw", "this film", "the plot"]
RESPONSES = ["was great .", "the plot felt dull and boring .", "was not bad at all", "dragged on and on ."]


def _tiny_model(num_heads=4, seed=0):
    torch.manual_seed(seed)
    tokenizer = build_tiny_tokenizer()
    model = RewardModel(build_tiny_encoder(tokenizer, hidden_size=32, num_layers=1, num_heads=2,
                                           intermediate_size=64), num_heads=num_heads).eval()
    with torch.no_grad():  # offsets and scales as different as trained heads' can be
        model.heads.bias.copy_(torch.linspace(-2.0, 3.0, num_heads))
        model.heads.weight.mul_(torch.linspace(0.5, 4.0, num_heads).unsqueeze(1))
    return tokenizer, model


def _batch(tokenizer, prompts=PROMPTS, responses=RESPONSES):
    return tokenizer(prompts, responses, return_tensors="pt", padding=True, truncation="longest_first", max_length=64)


def _sample_variance(scores):
    return scores.var(dim=1, unbiased=True)


def test_the_normalisation_is_the_identity_until_fitted_so_phase_two_trains_raw_heads():
    tokenizer, model = _tiny_model()
    features = torch.randn(8, 32)
    torch.testing.assert_close(model.head_scores(features), model.raw_head_scores(features), rtol=0, atol=0)
    module = PreferenceRewardModule(model, optimizer=None, freeze_backbone=True)
    chosen, rejected = module.scores({"features": features})
    torch.testing.assert_close(torch.cat([chosen, rejected]), model.raw_head_scores(features), rtol=0, atol=0)
    assert not bool(model.normalisation.fitted)


def test_after_normalisation_each_head_has_mean_zero_and_std_one_over_the_training_responses():
    tokenizer, model = _tiny_model()
    source = PreferenceOfflineSource(num_train=64, num_val=8, num_test_per_section=4, seed=2)
    dm = PreferenceDataModule(source, tokenizer, batch_size=16, eval_batch_size=32, max_length=64, shuffle_seed=0)
    dm.setup()
    features = {s: pair_features(model, dm.loader(s), progress=False) for s in ("train", "val", "test")}
    cached = PairFeatureDataModule(features, batch_size=16, eval_batch_size=32)
    summary = fit_head_normalisation(model, cached, dm)
    train = torch.cat(features["train"])  # every chosen and every rejected response
    assert summary["ens/phase2/normalisation_responses"] == train.size(0) == 128
    z = model.head_scores(train).detach().double()
    torch.testing.assert_close(z.mean(0), torch.zeros(4, dtype=torch.float64), atol=1e-3, rtol=0)
    torch.testing.assert_close(z.std(0, correction=0), torch.ones(4, dtype=torch.float64), atol=1e-3, rtol=0)
    raw = model.raw_head_scores(train).detach().double()
    assert summary["ens/phase2/head_std_min"] == pytest.approx(float(raw.std(0, correction=0).min()), rel=1e-5)
    assert summary["ens/phase2/head_mean_var"] == pytest.approx(float(raw.mean(0).var()), rel=1e-4)
    # the token path (no cached features) fits the same normalisation; refitting starts from the raw heads
    mean, std = model.normalisation.mean.clone(), model.normalisation.std.clone()
    fit_head_normalisation(model, dm, dm)
    torch.testing.assert_close(model.normalisation.mean, mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.normalisation.std, std, atol=1e-5, rtol=1e-5)
    # normalise_heads=false: the identity, recorded as fitted
    off = fit_head_normalisation(model, cached, dm, normalise=False)
    assert off["ens/phase2/normalised"] == 0.0 and bool(model.normalisation.fitted)
    torch.testing.assert_close(model.head_scores(train), model.raw_head_scores(train), rtol=0, atol=0)


def test_the_variance_over_heads_does_not_depend_on_a_heads_offset():
    tokenizer, model = _tiny_model()
    train = torch.randn(256, 32)  # stands in for the pooled features of the training responses
    batch = _batch(tokenizer)
    with torch.no_grad():
        raw_before = model.raw_head_scores(model.features(**batch))
        model.fit_normalisation(train)
        before = model(**batch)
        mean_before = model.normalisation.mean.clone()
        model.heads.bias[2] += 0.75  # the constant the Bradley–Terry loss cannot see
        raw_after = model.raw_head_scores(model.features(**batch))
        model.fit_normalisation(train)
        after = model(**batch)
    # without the normalisation the heads' variance moves with the offset (so this test can fail) ...
    assert (_sample_variance(raw_after) - _sample_variance(raw_before)).abs().min() > 1e-3
    # ... with it, nothing does
    torch.testing.assert_close(after.variance, before.variance, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(after.mean, before.mean, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(after.scores, before.scores, atol=1e-6, rtol=1e-6)
    assert float(model.normalisation.mean[2] - mean_before[2]) == pytest.approx(0.75, abs=1e-5)  # it absorbed it


def test_the_normalisation_round_trips_through_the_artifact(tmp_path):
    tokenizer, model = _tiny_model(num_heads=3)
    model.fit_normalisation(torch.randn(128, 32))
    save_ensemble(model, tokenizer, tmp_path / "ens", max_length=64, head_seeds=[1, 2])
    meta = json.loads((tmp_path / "ens" / "ensemble.json").read_text())
    assert meta["version"] == ARTIFACT_VERSION == 2
    assert meta["normalisation"]["mean"] == model.normalisation.mean.tolist()
    loaded = load_ensemble(tmp_path / "ens")
    assert torch.equal(loaded.reward_model.normalisation.mean, model.normalisation.mean)
    assert torch.equal(loaded.reward_model.normalisation.std, model.normalisation.std)
    out = loaded.score(PROMPTS, RESPONSES)
    with torch.no_grad():
        expected = model(**_batch(tokenizer))
        raw = model.raw_head_scores(model.features(**_batch(tokenizer)))
    torch.testing.assert_close(out.scores, expected.scores, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.mean, expected.mean, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.variance, expected.variance, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.scores, (raw - model.normalisation.mean) / model.normalisation.std,
                               atol=1e-6, rtol=0)
    assert (out.scores - raw).abs().max() > 0.1  # the normalisation is applied, not the identity


def test_an_unfitted_model_is_not_saved(tmp_path):
    tokenizer, model = _tiny_model(num_heads=2)
    with pytest.raises(ValueError, match="normalisation is not fitted"):
        save_ensemble(model, tokenizer, tmp_path / "ens", max_length=64, head_seeds=[1])


def test_a_head_with_no_spread_cannot_be_normalised():
    _, model = _tiny_model(num_heads=2)
    with torch.no_grad():
        model.heads.weight[1].zero_()
    with pytest.raises(ValueError, match="every std must be finite and > 0"):
        model.fit_normalisation(torch.randn(16, 32))


def test_a_version_1_artifact_is_refused_saying_how_to_make_a_new_one(tmp_path):
    tokenizer, model = _tiny_model(num_heads=3)
    model.fit_normalisation(torch.randn(64, 32))
    save_ensemble(model, tokenizer, tmp_path / "ens", max_length=64, head_seeds=[1, 2])
    meta_file = tmp_path / "ens" / "ensemble.json"
    meta = json.loads(meta_file.read_text())
    del meta["normalisation"]
    meta["version"] = 1  # what the code before the normalisation wrote
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(OutdatedArtifactError, match=r"version-1 .*without the per-head normalisation") as error:
        load_ensemble(tmp_path / "ens")
    assert "re-run `python run.py stage=ensemble`" in str(error.value)
    meta["version"] = ARTIFACT_VERSION + 1
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(OutdatedArtifactError, match="newer than this code reads"):
        load_ensemble(tmp_path / "ens")


def test_a_checkpoint_from_before_the_normalisation_loads_as_the_identity():
    _, model = _tiny_model(num_heads=3)
    old = {k: v for k, v in model.state_dict().items() if not k.startswith("normalisation.")}
    _, fresh = _tiny_model(num_heads=3, seed=1)
    fresh.fit_normalisation(torch.randn(32, 32))
    fresh.load_state_dict(old)  # strict: the missing normalisation is not an error
    assert not bool(fresh.normalisation.fitted)
    features = torch.randn(4, 32)
    torch.testing.assert_close(fresh.head_scores(features), model.raw_head_scores(features))


def test_widened_heads_start_unnormalised():
    _, base = _tiny_model(num_heads=1)
    base.fit_normalisation(torch.randn(32, 32))
    wide = widen_heads(base, 3, head_init_seeds(0, 3))
    assert not bool(wide.normalisation.fitted) and wide.normalisation.mean.shape == (3,)
