"""The benchmarks still run: each at its smallest size (their ratios are read from `make bench`,
never asserted here)."""

import re

import pytest


def test_ppo_throughput_benchmark_prints_the_ratios_and_the_projection(capsys):
    from benchmarks import ppo_throughput

    ppo_throughput.main(["--size", "tiny", "--batch", "8", "--repeats", "1", "--minibatches", "2"])
    printed = capsys.readouterr().out
    assert re.search(r"rollout .* ratio \d+\.\d\dx", printed), printed
    assert re.search(r"update .* ratio \d+\.\d\dx", printed), printed
    assert re.search(r"projected per policy .*: \d+\.\d min \(paper: 3\.86 h on 4 A40s; ", printed), printed


@pytest.mark.parametrize("backbone", ["tiny", "gemma-2b"])
def test_the_benchmark_ensemble_is_frozen_and_scores_ten_heads(backbone, monkeypatch):
    import torch

    from benchmarks import ppo_throughput
    from rcollapse.models.tiny_encoder import build_tiny_tokenizer

    # Gemma-2B's code path at a width that fits a test (the real shape takes 10 GB in fp32)
    monkeypatch.setattr(ppo_throughput, "GEMMA_2B", dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                                         num_key_value_heads=1, head_dim=8, intermediate_size=64,
                                                         vocab_size=1000))
    tokenizer = build_tiny_tokenizer()
    ensemble = ppo_throughput.build_ensemble(backbone, tokenizer, torch.device("cpu"))
    assert not any(p.requires_grad for p in ensemble.parameters()) and not ensemble.training
    enc = tokenizer(["a good film", "bad"], return_tensors="pt", padding=True)
    out = ensemble(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    assert out.scores.shape == (2, 10) and torch.isfinite(out.variance).all()


def test_the_gpu_check_runs_at_smoke_sizes_and_writes_its_projections(tmp_path, capsys):
    import json

    from benchmarks import gpu_check, ppo_throughput

    original = ppo_throughput.GEMMA_2B
    try:
        results = gpu_check.main(["--smoke", "--out", str(tmp_path)])
    finally:
        ppo_throughput.GEMMA_2B = original
    printed = capsys.readouterr().out
    assert re.search(r"ranking RM fwd\+bwd\s+\d+\.\d sequences/s \(target > 238\)", printed), printed
    assert re.search(r"one PPO policy\s+\d+\.\d\d min \(target < 2\)", printed), printed
    saved = json.loads((tmp_path / "gpu_check.json").read_text())
    for section in ("collapse_longform", "ensemble_phase2", "ppo_policy"):
        assert saved[section]["check_s"] > 0 and section in results
    assert saved["ensemble_phase2"]["projected_phase2_min"] > 0
    # the judge over IMDB's 25,000 test prompts (the policy's and the reference's responses) per policy
    assert saved["judge_imdb_test"]["per_policy_min"] == pytest.approx(
        2 * 25_000 / saved["judge_imdb_test"]["sequences_per_s"] / 60)
