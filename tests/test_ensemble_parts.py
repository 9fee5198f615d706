"""The ensemble's pieces: the loss against a loop, the variance over heads, frozen phase 2,
cached = uncached heads, the feature cache, head seeds, bootstrap counts, the artifact."""

import math

import lightning as L
import pytest
import torch

from rcollapse.data.preference_datamodule import PairFeatureDataModule, PreferenceDataModule
from rcollapse.data.preference_sources import OFFLINE_SECTIONS, PreferenceOfflineSource
from rcollapse.data.sentiment_gold import vader_compound
from rcollapse.maths.preference_objective import bradley_terry_loss_per_head, ensemble_loss
from rcollapse.models.ensemble_artifact import load_ensemble, save_ensemble
from rcollapse.models.feature_cache import cached_pair_features, feature_cache_key
from rcollapse.models.reward_model import RewardModel
from rcollapse.models.tiny_encoder import build_tiny_encoder, build_tiny_tokenizer
from rcollapse.stages.ensemble_stage import bootstrap_counts, head_init_seeds, widen_heads
from rcollapse.stages.preference_reward_module import PreferenceRewardModule


def test_bradley_terry_loss_matches_a_loop_with_and_without_weights():
    g = torch.Generator().manual_seed(0)
    chosen, rejected = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    weights = torch.randint(0, 3, (6, 3), generator=g).float()
    for w in (None, weights):
        expected = []
        for k in range(3):
            num = den = 0.0
            for i in range(6):
                wi = 1.0 if w is None else float(w[i, k])
                num += wi * -math.log(1 / (1 + math.exp(-(float(chosen[i, k]) - float(rejected[i, k])))))
                den += wi
            expected.append(num / den)
        torch.testing.assert_close(bradley_terry_loss_per_head(chosen, rejected, w), torch.tensor(expected))
    assert float(ensemble_loss(chosen, rejected)) == pytest.approx(float(bradley_terry_loss_per_head(chosen, rejected).sum()))


def _tiny_model(num_heads=1, seed=0):
    torch.manual_seed(seed)
    tokenizer = build_tiny_tokenizer()
    return tokenizer, RewardModel(build_tiny_encoder(tokenizer, hidden_size=32, num_layers=1, num_heads=2,
                                                     intermediate_size=64), num_heads=num_heads)


def test_variance_is_the_sample_variance_over_heads():
    tokenizer, model = _tiny_model(num_heads=5)
    batch = tokenizer(["the film"] * 3, ["was great", "was awful .", "i found the plot dull"], return_tensors="pt",
                      padding=True)
    with torch.no_grad():
        out = model(**batch)
    for i in range(3):
        s = out.scores[i].tolist()
        mean = sum(s) / 5
        assert float(out.mean[i]) == pytest.approx(mean, rel=1e-6)
        assert float(out.variance[i]) == pytest.approx(sum((x - mean) ** 2 for x in s) / 4, rel=1e-5)


@pytest.fixture(scope="module")
def small_pairs():
    return PreferenceOfflineSource(num_train=96, num_val=16, num_test_per_section=8, seed=3)


def _datamodule(tokenizer, source, batch_size=16):
    dm = PreferenceDataModule(source, tokenizer, batch_size=batch_size, eval_batch_size=32, max_length=64,
                              shuffle_seed=0)
    dm.setup()
    return dm


def _fit(module, data, epochs=2):
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        use_distributed_sampler=False, deterministic=True)
    trainer.fit(module, datamodule=data)
    return trainer


def test_phase2_leaves_the_backbone_untouched_and_the_heads_differ(small_pairs):
    tokenizer, base = _tiny_model()
    wide = widen_heads(base, 4, head_init_seeds(0, 4))
    before = {k: v.clone() for k, v in wide.backbone.state_dict().items()}
    heads_before = wide.heads.weight.detach().clone()
    module = PreferenceRewardModule(wide, lambda p: torch.optim.AdamW(p, lr=1e-2), freeze_backbone=True)
    _fit(module, _datamodule(tokenizer, small_pairs))
    assert all(p.grad is None and not p.requires_grad for p in wide.backbone.parameters())
    for k, v in wide.backbone.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not torch.allclose(wide.heads.weight, heads_before)  # the heads trained
    w = wide.heads.weight.detach()
    assert min(float((w[i] - w[j]).norm()) for i in range(4) for j in range(i + 1, 4)) > 1e-3  # and differ


def test_cached_and_uncached_training_give_the_same_heads(small_pairs, tmp_path):
    results = []
    for cached in (True, False):
        tokenizer, base = _tiny_model(seed=1)
        wide = widen_heads(base, 3, head_init_seeds(7, 3))
        dm = _datamodule(tokenizer, small_pairs)
        if cached:
            features = {s: cached_pair_features(wide, tokenizer, 64, dm.pairs(s), dm.loader(s), tmp_path)[0]
                        for s in ("train", "val", "test")}
            data = PairFeatureDataModule(features, batch_size=16, eval_batch_size=32, shuffle_seed=0)
        else:
            data = dm
        torch.manual_seed(0)
        module = PreferenceRewardModule(wide, lambda p: torch.optim.AdamW(p, lr=1e-2), freeze_backbone=True)
        _fit(module, data, epochs=3)
        results.append(wide.heads.state_dict())
    for key in results[0]:
        torch.testing.assert_close(results[0][key], results[1][key], atol=1e-5, rtol=1e-4)


def test_feature_cache_hits_and_its_key_follows_weights_and_data(small_pairs, tmp_path):
    tokenizer, model = _tiny_model()
    dm = _datamodule(tokenizer, small_pairs)
    pairs = dm.pairs("val")
    first, hit1 = cached_pair_features(model, tokenizer, 64, pairs, dm.loader("val"), tmp_path)
    second, hit2 = cached_pair_features(model, tokenizer, 64, pairs, dm.loader("val"), tmp_path)
    assert (hit1, hit2) == (False, True)
    torch.testing.assert_close(first, second)
    key = feature_cache_key(model, tokenizer, 64, pairs)
    assert key != feature_cache_key(model, tokenizer, 64, pairs[:-1])
    assert key != feature_cache_key(model, tokenizer, 32, pairs)
    with torch.no_grad():
        next(model.backbone.parameters()).add_(1e-3)
    assert key != feature_cache_key(model, tokenizer, 64, pairs)


def test_widened_heads_keep_head_zero_and_are_reproducible_from_their_seeds():
    _, base = _tiny_model()
    a = widen_heads(base, 5, head_init_seeds(3, 5))
    b = widen_heads(base, 5, head_init_seeds(3, 5))
    c = widen_heads(base, 5, head_init_seeds(4, 5))
    torch.testing.assert_close(a.heads.weight[0], base.heads.weight[0])
    torch.testing.assert_close(a.heads.weight, b.heads.weight)
    assert not torch.allclose(a.heads.weight[1:], c.heads.weight[1:])
    assert head_init_seeds(3, 4) == [3001, 3002, 3003]


def test_bootstrap_counts_resample_every_pair_set_per_head():
    counts = bootstrap_counts(50, 4, seed=0)
    assert counts.shape == (50, 4) and torch.all(counts.sum(0) == 50)
    assert not torch.equal(counts[:, 0], counts[:, 1])
    torch.testing.assert_close(counts, bootstrap_counts(50, 4, seed=0))


def test_artifact_round_trips(tmp_path):
    tokenizer, model = _tiny_model(num_heads=3)
    model.fit_normalisation(torch.randn(64, 32))
    save_ensemble(model, tokenizer, tmp_path / "ens", max_length=64, head_seeds=[1, 2])
    loaded = load_ensemble(tmp_path / "ens")
    prompts, responses = ["the movie", "i saw"], ["was great .", "the plot felt dull and boring ."]
    out = loaded.score(prompts, responses)
    batch = tokenizer(prompts, responses, return_tensors="pt", padding=True, truncation="longest_first", max_length=64)
    with torch.no_grad():
        expected = model.eval()(**batch)
    torch.testing.assert_close(out.scores, expected.scores)
    torch.testing.assert_close(out.variance, expected.variance)
    assert loaded.meta["head_seeds"] == [1, 2] and loaded.num_heads == 3
    with pytest.raises(FileNotFoundError, match="stage=ensemble"):
        load_ensemble(tmp_path)


def test_offline_pairs_follow_the_gold_reward_and_the_sections_hold():
    data = PreferenceOfflineSource(num_train=400, num_val=8, num_test_per_section=20, seed=1).load()
    gold_c = vader_compound([p.chosen for p in data["train"]])
    gold_r = vader_compound([p.rejected for p in data["train"]])
    agree = sum(c > r for c, r in zip(gold_c, gold_r, strict=True)) / len(gold_c)
    assert 0.75 < agree < 1.0  # Bradley–Terry labels: mostly, not always, the higher gold reward
    test = data["test"]
    # every section but "Unseen words" (only when adjectives are held out), in order
    assert [s for s in OFFLINE_SECTIONS if s != "Unseen words"] == list(dict.fromkeys(p.section for p in test))
    gc, gr = vader_compound([p.chosen for p in test]), vader_compound([p.rejected for p in test])
    assert all(c > r for c, r in zip(gc, gr, strict=True))  # test pairs are ordered by gold
    for p, c, r in zip(test, gc, gr, strict=True):
        if p.section == "Clear":
            assert c - r >= 0.6
        if p.section == "Subtle":
            assert 0.05 <= c - r < 0.3
        if p.section == "Length trap":
            assert len(p.chosen) < len(p.rejected)
        if p.section == "Negation":
            assert "not" in p.chosen or "never" in p.chosen


def test_a_response_scored_alone_and_inside_a_padded_batch_gets_the_same_score(tmp_path):
    tokenizer, model = _tiny_model(num_heads=3)
    model.fit_normalisation(torch.randn(64, 32))
    save_ensemble(model, tokenizer, tmp_path / "ens", max_length=64, head_seeds=[1, 2])
    ensemble = load_ensemble(tmp_path / "ens")
    prompts = ["the movie", "i watched this film last night with my friends"]
    responses = ["was great .", "and the plot felt extremely dull but the acting was wonderful ."]
    batch = ensemble.score(prompts, responses)
    for i in range(2):
        alone = ensemble.score(prompts[i:i + 1], responses[i:i + 1])
        torch.testing.assert_close(alone.scores[0], batch.scores[i], atol=1e-5, rtol=1e-5)
