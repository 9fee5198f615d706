"""Padding-free (packed) batches give the padded batches' rewards and gradients, and train end to end."""

import json

import pytest
import torch

from rcollapse.data.packed_batches import first_fit_decreasing, pack_batch
from rcollapse.data.ranking_collator import RankingCollator
from rcollapse.data.sources import LengthOfflineSource
from rcollapse.maths.ranking_objective import pad_groups, ranking_loss
from rcollapse.maths.utilities import LogSigmoidUtility
from rcollapse.models.reward_model import RewardModel, check_packing_supported
from rcollapse.models.tiny_encoder import (
    build_encoder_from_config,
    build_tiny_encoder,
    build_tiny_tokenizer,
)
from rcollapse.pipeline import run
from tests.conftest import FAST_TRAINING, compose_config

# DeBERTa-v3's layout (relative attention, no absolute positions) and DeBERTa-v2's (absolute
# positions added to the input too), both tiny
DEBERTA_V3 = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                  max_position_embeddings=512, relative_attention=True, position_buckets=256,
                  norm_rel_ebd="layer_norm", share_att_key=True, pos_att_type=["p2c", "c2p"],
                  position_biased_input=False, type_vocab_size=0)
DEBERTA_V2 = dict(DEBERTA_V3, position_biased_input=True, position_buckets=-1, type_vocab_size=2,
                  norm_rel_ebd="none", share_att_key=False)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


@pytest.fixture(scope="module")
def rows():
    return LengthOfflineSource(num_train=16, num_test=1, seed=0).load()["train"]


def backbone(name, tokenizer):
    torch.manual_seed(0)
    if name == "tiny":
        return build_tiny_encoder(tokenizer)
    return build_encoder_from_config(tokenizer, "DebertaV2Config", **(DEBERTA_V3 if name == "deberta_v3" else DEBERTA_V2))


def batches(tokenizer, rows, max_length=128, pack_length=None):
    padded = RankingCollator(tokenizer, max_length=max_length)(rows)
    packed = RankingCollator(tokenizer, max_length=max_length, packing=True, pack_length=pack_length)(rows)
    return padded, packed


def rewards_of(model, batch):
    out = model.packed_forward(batch["packed"]) if "packed" in batch else model(
        batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
    return out.scores


def test_packed_layout_restarts_positions_and_keeps_each_sequence(tokenizer, rows):
    padded, packed = batches(tokenizer, rows[:8])
    p = packed["packed"]
    num_seqs = padded["input_ids"].size(0)
    assert p["input_ids"].size(0) < num_seqs and p["input_ids"].size(1) <= 128
    assert "input_ids" not in packed and "token_type_ids" not in packed  # the padded layout is gone
    assert torch.equal(packed["attention_mask"], padded["attention_mask"])  # per-sequence token counts stay
    for key in ("group_sizes", "openness"):
        assert torch.equal(packed[key], padded[key])
    assert packed["row_ids"] == padded["row_ids"]
    shared = 0
    for s in range(num_seqs):
        r, start, n = (int(p[k][s]) for k in ("sequence_rows", "sequence_starts", "sequence_lengths"))
        real = padded["attention_mask"][s].bool()
        assert torch.equal(p["input_ids"][r, start:start + n], padded["input_ids"][s][real])
        assert torch.equal(p["token_type_ids"][r, start:start + n], padded["token_type_ids"][s][real])
        assert torch.equal(p["position_ids"][r, start:start + n], torch.arange(n))
        assert bool((p["sequence_index"][r, start:start + n] == s).all())
        assert p["input_ids"][r, start] == tokenizer.cls_token_id
        shared += int((p["sequence_rows"] == r).sum() > 1)
    assert shared > 0  # rows hold several sequences
    assert int(p["attention_mask"].sum()) == int(padded["attention_mask"].sum())
    assert bool(((p["sequence_index"] >= 0) == p["attention_mask"].bool()).all())


def test_first_fit_decreasing_fills_rows_and_refuses_an_overlong_sequence():
    bins = first_fit_decreasing([5, 3, 4, 2, 6], capacity=8)
    assert sorted(i for b in bins for i in b) == [0, 1, 2, 3, 4]
    assert all(sum([5, 3, 4, 2, 6][i] for i in b) <= 8 for b in bins) and len(bins) == 3
    with pytest.raises(ValueError, match="pack_length"):
        first_fit_decreasing([9], capacity=8)


def test_default_collator_output_is_unchanged(tokenizer, rows):
    old = RankingCollator(tokenizer, max_length=128)(rows[:4])
    new = RankingCollator(tokenizer, max_length=128, packing=False)(rows[:4])
    assert list(old) == ["input_ids", "attention_mask", "token_type_ids", "group_sizes", "openness", "row_ids"]
    assert list(old) == list(new) and all(
        torch.equal(old[k], new[k]) if torch.is_tensor(old[k]) else old[k] == new[k] for k in old)


def test_collator_checks_its_packing_arguments(tokenizer):
    with pytest.raises(ValueError, match="dataset.pack_length"):
        RankingCollator(tokenizer, max_length=128, packing=True, pack_length=64)
    with pytest.raises(ValueError, match="dataset.packing"):
        RankingCollator(tokenizer, max_length=128, packing="yes")


@pytest.mark.parametrize("name", ["tiny", "deberta_v3", "deberta_v2"])
@pytest.mark.parametrize("pooling", ["cls", "mean", "last"])
@pytest.mark.parametrize("max_length,pack_length", [(128, None), (48, 96)])
def test_packed_rewards_match_padded(name, pooling, max_length, pack_length, tokenizer, rows):
    model = RewardModel(backbone(name, tokenizer), pooling=pooling).eval()
    padded, packed = batches(tokenizer, rows[:8], max_length, pack_length)
    assert packed["packed"]["input_ids"].size(0) > 1  # the sequences do not fit one row together
    with torch.no_grad():
        a, b = rewards_of(model, padded), rewards_of(model, packed)
    assert a.shape == b.shape == (64, 1)
    torch.testing.assert_close(b, a, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["tiny", "deberta_v3"])
def test_packed_gradients_match_padded(name, tokenizer, rows):
    model = RewardModel(backbone(name, tokenizer), pooling="mean").eval()
    padded, packed = batches(tokenizer, rows[:4])
    utility = LogSigmoidUtility(scale=4.0)
    grads = []
    for batch in (padded, packed):
        model.zero_grad(set_to_none=True)
        rewards, mask = pad_groups(torch.sigmoid(rewards_of(model, batch)[:, 0]), batch["group_sizes"])
        ranking_loss(rewards, mask, batch["openness"], utility).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], atol=1e-5, rtol=1e-4, msg=n)


def test_unsupported_backbone_is_refused_naming_the_key():
    from transformers import GPT2Config, GPT2Model

    decoder = GPT2Model(GPT2Config(vocab_size=100, n_embd=16, n_layer=1, n_head=2, n_positions=32))
    with pytest.raises(ValueError, match=r"dataset\.packing"):
        check_packing_supported(decoder)
    model = RewardModel(decoder, pooling="last")
    packed = pack_batch({"input_ids": torch.ones(2, 4, dtype=torch.long), "attention_mask": torch.ones(2, 4)}, 8)
    with pytest.raises(ValueError, match=r"dataset\.packing=false"):
        model.packed_forward(packed["packed"])


def test_packing_trains_a_short_reward_run(tmp_path):
    cfg = compose_config([*FAST_TRAINING, "dataset.packing=true"], tmp_path)
    run(cfg)
    out = tmp_path / "run"
    assert json.loads((out / "status.json").read_text())["status"] == "completed"
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"rm/train/loss", "rm/test/pair_acc", "rm/test/open_closed_distance"} <= set(metrics)


def test_packing_with_an_unsupported_backbone_stops_before_training(tmp_path):
    cfg = compose_config([*FAST_TRAINING, "model=ngram", "dataset.packing=true"], tmp_path)
    with pytest.raises(ValueError, match=r"dataset\.packing"):
        run(cfg)
    assert not (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()


def test_benchmark_runs_on_a_few_prompts(capsys):
    from benchmarks.packed_vs_padded import main

    main(["--sizes", "tiny", "--repeats", "1", "--prompts", "8"])
    out = capsys.readouterr().out
    assert "padding" in out and "padded/packed" in out
