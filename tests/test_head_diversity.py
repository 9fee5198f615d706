"""Heads that can disagree (issue 15, item 2): random feature subsets, the initial scale, and
phase 2's schedule (fractional epochs, cosine decay, a per-head loss threshold)."""

import math

import pytest
import torch
from torch import nn

from rcollapse.models.ensemble_artifact import load_ensemble, save_ensemble
from rcollapse.models.reward_model import RewardModel
from rcollapse.models.tiny_encoder import build_tiny_encoder, build_tiny_tokenizer
from rcollapse.stages.ensemble_stage import cosine_schedule, phase2_steps, widen_heads
from rcollapse.stages.preference_reward_module import PreferenceRewardModule


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


def one_head(tokenizer, hidden=16):
    torch.manual_seed(0)
    backbone = build_tiny_encoder(tokenizer, hidden_size=hidden, num_layers=1, num_heads=2, intermediate_size=32)
    return RewardModel(backbone, num_heads=1)


def test_each_extra_head_reads_its_own_subset_and_ignores_the_other_features(tokenizer):
    wide = widen_heads(one_head(tokenizer), 4, [1, 2, 3], feature_fraction=0.25)
    mask = wide.feature_mask
    assert mask[0].sum() == 16 and all(mask[j].sum() == 4 for j in (1, 2, 3))  # head 0 (phase 1's) reads all
    assert len({tuple(mask[j].tolist()) for j in (1, 2, 3)}) == 3
    features = torch.randn(5, 16)
    changed = features.clone()
    changed[:, mask[1] == 0] += 100.0  # features head 1 does not read
    before, after = wide.raw_head_scores(features), wide.raw_head_scores(changed)
    torch.testing.assert_close(before[:, 1], after[:, 1])
    assert not torch.allclose(before[:, 0], after[:, 0])
    # a plain reference: head j = x[mask_j] · w_j[mask_j] + b_j
    j, keep = 2, mask[2].bool()
    reference = features[:, keep] @ wide.heads.weight[j, keep] + wide.heads.bias[j]
    torch.testing.assert_close(before[:, j], reference)


def test_masked_weights_get_no_gradient(tokenizer):
    wide = widen_heads(one_head(tokenizer), 3, [1, 2], feature_fraction=0.5)
    wide.raw_head_scores(torch.randn(4, 16)).sum().backward()
    assert torch.all(wide.heads.weight.grad[wide.feature_mask == 0] == 0)


def test_fraction_one_and_scale_one_are_the_paper_heads(tokenizer):
    model = one_head(tokenizer)
    plain, scaled = widen_heads(model, 3, [1, 2]), widen_heads(model, 3, [1, 2], init_scale=3.0)
    assert bool(plain.feature_mask.bool().all())
    assert plain.heads.weight.abs()[1:].max() <= 1 / math.sqrt(16)
    torch.testing.assert_close(scaled.heads.weight[1:], 3.0 * plain.heads.weight[1:])
    torch.testing.assert_close(scaled.heads.weight[0], plain.heads.weight[0])
    with pytest.raises(ValueError, match="head_feature_fraction"):
        widen_heads(model, 3, [1, 2], feature_fraction=0.0)
    with pytest.raises(ValueError, match="head_init_scale"):
        widen_heads(model, 3, [1, 2], init_scale=-1.0)


def test_the_feature_subsets_round_trip_through_the_artifact(tokenizer, tmp_path):
    wide = widen_heads(one_head(tokenizer), 3, [1, 2], feature_fraction=0.5)
    wide.fit_normalisation(torch.randn(50, 16))
    save_ensemble(wide, tokenizer, tmp_path / "ens", 32, [1, 2])
    loaded = load_ensemble(tmp_path / "ens")
    torch.testing.assert_close(loaded.reward_model.feature_mask, wide.feature_mask)
    assert len(loaded.meta["head_features"][1]) == 8
    wide.eval()
    batch = loaded.collate.encode(["the movie"], ["was great ."])
    torch.testing.assert_close(loaded.score(["the movie"], ["was great ."]).scores, wide(**batch).scores)


def test_a_state_dict_without_the_mask_loads_with_every_feature(tokenizer):
    model = widen_heads(one_head(tokenizer), 3, [1, 2], feature_fraction=0.5)
    state = {k: v for k, v in model.state_dict().items() if k != "feature_mask"}
    fresh = widen_heads(one_head(tokenizer), 3, [1, 2], feature_fraction=0.5)
    fresh.load_state_dict(state)
    assert bool(fresh.feature_mask.bool().all())


@pytest.mark.parametrize(("pairs", "batch", "epochs", "expected"),
                         [(4000, 32, 0.5, (125, 62)), (4000, 32, 10, (125, 1250)), (10, 32, 0.01, (1, 1))])
def test_phase2_steps_allow_a_fraction_of_an_epoch(pairs, batch, epochs, expected):
    assert phase2_steps(pairs, batch, epochs) == expected


def test_phase2_refuses_no_epochs():
    with pytest.raises(ValueError, match="head_epochs"):
        phase2_steps(100, 32, 0)


def test_cosine_schedule_decays_to_zero_like_the_closed_form():
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=1e-5)
    scheduler = cosine_schedule(10)(optimizer)
    rates = []
    for _ in range(11):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [1e-5 * 0.5 * (1 + math.cos(math.pi * t / 10)) for t in range(11)]
    assert rates == pytest.approx(expected, abs=1e-12)


def test_the_module_tracks_every_heads_loss_and_steps_the_schedule(tokenizer):
    wide = widen_heads(one_head(tokenizer), 3, [1, 2])
    module = PreferenceRewardModule(wide, optimizer=lambda p: torch.optim.SGD(p, lr=0.1), freeze_backbone=True,
                                    lr_scheduler=cosine_schedule(4))
    configured = module.configure_optimizers()
    assert configured["lr_scheduler"]["interval"] == "step"
    module.log = lambda *a, **k: None
    batch = {"features": torch.randn(8, 16), "index": torch.arange(4)}
    module.training_step(batch, 0)
    chosen, rejected = module.scores(batch)
    per_head = torch.nn.functional.softplus(-(chosen - rejected)).mean(0)
    torch.testing.assert_close(module.loss_ema_heads, per_head.detach())
