"""Grouped forward vs pair-expanded forward for the ranking loss: time per epoch, side by side.

Grouped (this project): each prompt's n completions are encoded once per step and all
n(n−1)/2 pairs are formed by index. Pair-expanded (TRL's RewardTrainer, the paper's trainer):
each pair's two sequences are encoded separately, 2·n(n−1)/2 encodings per prompt.
Both compute the same loss on the same model, data and utility; we time full training
epochs (forward, backward, optimiser step), alternating the two so that machine noise hits
both alike, and print the ratio of the medians.

    python -m benchmarks.grouped_vs_pair_forward [--prompts 32] [--repeats 3] [--sizes tiny,small]

With a GPU (or ``--throughput`` on any device) it also reports the raw forward+backward
throughput, in sequences/s, of an encoder of deberta-v3-base's size built from its config
(no download): length 512, batch 32, bf16 autocast on CUDA.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from rcollapse.data.ranking_collator import RankingCollator
from rcollapse.data.sources import LengthOfflineSource
from rcollapse.maths.ranking_objective import pad_groups, ranking_loss
from rcollapse.maths.utilities import LogSigmoidUtility
from rcollapse.models.reward_model import RewardModel
from rcollapse.models.tiny_encoder import build_tiny_encoder, build_tiny_tokenizer

SIZES = {
    "tiny": dict(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128),
    "small": dict(hidden_size=256, num_layers=4, num_heads=4, intermediate_size=1024),
}


def grouped_step(model, batch, utility) -> torch.Tensor:
    out = model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
    rewards, mask = pad_groups(torch.sigmoid(out.scores[:, 0]), batch["group_sizes"])
    return ranking_loss(rewards, mask, batch["openness"], utility)


def pair_expanded_batch(batch) -> dict:
    """Re-lay a grouped batch as (chosen, rejected) sequences, one pair per row, as TRL does."""
    offsets = torch.cumsum(batch["group_sizes"], 0) - batch["group_sizes"]
    chosen, rejected, prompt_of_pair = [], [], []
    for p, (start, n) in enumerate(zip(offsets.tolist(), batch["group_sizes"].tolist())):
        for i in range(n):
            for j in range(i + 1, n):
                chosen.append(start + i)
                rejected.append(start + j)
                prompt_of_pair.append(p)
    index = torch.tensor(chosen + rejected)
    expanded = {k: batch[k][index] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
    expanded["num_pairs"] = len(chosen)
    expanded["prompt_of_pair"] = torch.tensor(prompt_of_pair)
    expanded["openness"] = batch["openness"]
    return expanded


def pair_expanded_step(model, expanded, utility) -> torch.Tensor:
    out = model(expanded["input_ids"], expanded["attention_mask"], expanded.get("token_type_ids"))
    r = torch.sigmoid(out.scores[:, 0])
    k = expanded["num_pairs"]
    values = utility(r[:k] - r[k:])
    num_prompts = expanded["openness"].numel()
    per_prompt = torch.zeros(num_prompts).index_add(0, expanded["prompt_of_pair"], values)
    counts = torch.bincount(expanded["prompt_of_pair"], minlength=num_prompts).clamp_min(1)
    return -(per_prompt / counts).mean()


def time_epoch(model, optimizer, batches, step_fn, utility) -> float:
    start = time.perf_counter()
    for batch in batches:
        optimizer.zero_grad(set_to_none=True)
        loss = step_fn(model, batch, utility)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


DEBERTA_V3_BASE = dict(
    config_class="DebertaV2Config", hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
    intermediate_size=3072, max_position_embeddings=512, relative_attention=True, position_buckets=256,
    norm_rel_ebd="layer_norm", share_att_key=True, pos_att_type=["p2c", "c2p"], position_biased_input=False,
    type_vocab_size=0,
)


def side_by_side(size: str, tokenizer, first: tuple, second: tuple, utility, repeats: int) -> tuple[int, float, float]:
    """Times two layouts of the same epoch on one model of ``SIZES[size]``, alternating.

    ``first`` and ``second`` are ``(batches, step_fn)``. Their losses on the first batch must
    agree (same weights, no grad) before anything is timed. Each layout gets one warm-up batch,
    then ``repeats`` epochs each. Returns the parameter count and both median seconds per epoch.
    """
    (batches_a, step_a), (batches_b, step_b) = first, second
    model = RewardModel(build_tiny_encoder(tokenizer, **SIZES[size]))
    with torch.no_grad():  # the same loss both ways, on the same weights
        a = step_a(model.eval(), batches_a[0], utility)
        b = step_b(model, batches_b[0], utility)
    assert torch.allclose(a, b, atol=1e-5), (a, b)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    times_a, times_b = [], []
    time_epoch(model, optimizer, batches_a[:1], step_a, utility)  # warm-up
    time_epoch(model, optimizer, batches_b[:1], step_b, utility)
    for _ in range(repeats):
        times_a.append(time_epoch(model, optimizer, batches_a, step_a, utility))
        times_b.append(time_epoch(model, optimizer, batches_b, step_b, utility))
    params = sum(t.numel() for t in model.parameters())
    return params, statistics.median(times_a), statistics.median(times_b)


def deberta_throughput(tokenizer, seq_len: int = 512, batch: int = 32, steps: int = 10, shape: dict | None = None,
                       vocab_size: int = 128_100) -> float:
    """Sequences/s of forward+backward at deberta-v3-base size (vocabulary 128k as the real one;
    ``shape`` and ``vocab_size`` shrink it for a smoke test)."""
    from rcollapse.models.tiny_encoder import build_encoder_from_config

    device = "cuda" if torch.cuda.is_available() else "cpu"

    class Vocab:  # build_encoder_from_config only needs len(tokenizer)
        def __len__(self):
            return vocab_size

    model = RewardModel(build_encoder_from_config(Vocab(), **(shape or DEBERTA_V3_BASE))).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(min(1000, vocab_size - 1), min(20000, vocab_size), (batch, seq_len), device=device)
    mask = torch.ones_like(ids)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda")

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = model(ids, mask).scores.float().sum()
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=32, help="prompts per epoch (8 completions each)")
    parser.add_argument("--batch-prompts", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="tiny,small")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--throughput", action="store_true",
                        help="also measure deberta-v3-base-size throughput (default: only with CUDA)")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    tokenizer = build_tiny_tokenizer()
    rows = LengthOfflineSource(num_train=args.prompts, num_test=1, seed=0).load()["train"]
    collate = RankingCollator(tokenizer, max_length=args.max_length)
    batches = [collate(rows[i:i + args.batch_prompts]) for i in range(0, len(rows), args.batch_prompts)]
    expanded = [pair_expanded_batch(b) for b in batches]
    utility = LogSigmoidUtility(scale=4.0)
    seqs = sum(int(b["group_sizes"].sum()) for b in batches)
    pair_seqs = sum(int(e["input_ids"].size(0)) for e in expanded)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {len(rows)} prompts x 8 "
          f"completions per epoch; grouped encodes {seqs} sequences, pair-expanded {pair_seqs}")
    print(f"{'model':<8}{'params':>10}{'grouped s/epoch':>18}{'pairs s/epoch':>16}{'ratio':>8}")
    for size in args.sizes.split(","):
        params, g, p = side_by_side(size, tokenizer, (batches, grouped_step), (expanded, pair_expanded_step), utility,
                                    args.repeats)
        print(f"{size:<8}{params:>10,}{g:>18.3f}{p:>16.3f}{p / g:>7.1f}x")
    if args.throughput or torch.cuda.is_available():
        rate = deberta_throughput(tokenizer)
        device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
        print(f"deberta-v3-base size (from config), length 512, batch 32: {rate:.1f} sequences/s on {device}")


if __name__ == "__main__":
    main()
