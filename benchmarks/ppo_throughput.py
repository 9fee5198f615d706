"""PPO stage throughput against raw model calls, side by side, and the per-policy time at the
paper's settings projected from measured steps.

- rollout: ``VarianceKLPPOModule.rollout`` (generate + EOS masking + decoding) against a raw
  ``generate`` on the same prompts and settings, in responses/s (issue 8's target: ≥ 0.9×);
- update: one PPO epoch's forward + backward + step over minibatches (``policy_pass`` and the
  clipped losses) against one raw forward + backward of the same sequences, in tokens/s;
- projection: one iteration = rollout + ensemble scoring + old/reference log-probs + ``ppo_epochs``
  update epochs, measured at batch ``--batch`` and scaled to 192 iterations of 128 prompts
  (the paper: 3.86 h per policy on 4 A40s).

Models are built from configs (no download): ``--size tiny`` (default on CPU) or ``gpt2`` (GPT-2
small's shape, 124M parameters; use it on a GPU), with a tiny 10-head reward ensemble scoring.

    python -m benchmarks.ppo_throughput [--size tiny|gpt2] [--batch 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from rcollapse.data.preference_collator import PreferenceCollator
from rcollapse.data.synthetic_reviews import review_prompt
from rcollapse.models.policy import (
    PolicyWithValueHead,
    build_tiny_gpt2,
    build_tiny_tokenizer_for_generation,
    frozen_reference,
)
from rcollapse.models.reward_model import RewardModel
from rcollapse.models.tiny_encoder import build_tiny_encoder, build_tiny_tokenizer
from rcollapse.ppo_objective import FixedKLController, clipped_policy_loss, clipped_value_loss
from rcollapse.stages.ppo_module import VarianceKLPPOModule

SIZES = {"tiny": dict(n_embd=64, n_layer=2, n_head=4), "gpt2": dict(n_embd=768, n_layer=12, n_head=12)}
PAPER_HOURS, PAPER_ITERATIONS, PAPER_BATCH = 3.86, 192, 128


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median_time(fn, device, repeats):
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="tiny", choices=sorted(SIZES))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ppo-epochs", type=int, default=4)
    parser.add_argument("--minibatches", type=int, default=4)
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    tokenizer = build_tiny_tokenizer_for_generation()
    lm = build_tiny_gpt2(tokenizer, n_positions=64, **SIZES[args.size]).to(device)
    policy = PolicyWithValueHead(lm).to(device)
    reference = frozen_reference(lm)
    rm_tokenizer = build_tiny_tokenizer()
    ensemble = RewardModel(build_tiny_encoder(rm_tokenizer), num_heads=10).to(device).eval()
    collate = PreferenceCollator(rm_tokenizer, 64)

    @torch.no_grad()
    def scorer(prompts, responses):
        batch = {k: v.to(device) for k, v in collate.encode(prompts, responses).items()}
        return ensemble(**batch)

    module = VarianceKLPPOModule(policy, reference, tokenizer, scorer, lambda p: torch.optim.Adam(p, lr=1e-5),
                                 FixedKLController(0.05), ppo_epochs=args.ppo_epochs,
                                 num_minibatches=args.minibatches).to(device)
    rng = np.random.default_rng(0)
    prompts = [review_prompt(rng) for _ in range(args.batch)]
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)

    def raw_generate():
        with torch.no_grad():
            lm.generate(**enc, do_sample=True, max_new_tokens=10, min_new_tokens=1, top_k=0, top_p=1.0,
                        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)

    raw_generate()  # warm-up
    t_raw_gen = _median_time(raw_generate, device, args.repeats)
    t_rollout = _median_time(lambda: module.rollout(prompts), device, args.repeats)
    rollout = module.rollout(prompts)
    seq, attn, mask, p = rollout["sequences"], rollout["attention_mask"], rollout["response_mask"], rollout["prompt_length"]
    tokens = int(attn.sum())
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-5)

    def raw_forward_backward():
        out = lm(input_ids=seq, attention_mask=attn)
        optimizer.zero_grad()
        out.logits.float().mean().backward()
        optimizer.step()

    with torch.no_grad():
        old_logprobs, old_values, _ = module.policy_pass(seq, attn, p)
    advantages, returns = torch.randn_like(old_logprobs), torch.randn_like(old_values)

    def update_epoch():
        size = max(1, args.batch // args.minibatches)
        for start in range(0, args.batch, size):
            mb = slice(start, start + size)
            logprobs, values, _ = module.policy_pass(seq[mb], attn[mb], p)
            loss = clipped_policy_loss(logprobs, old_logprobs[mb], advantages[mb], mask[mb], 0.2)[0] \
                + 0.1 * clipped_value_loss(values, old_values[mb], returns[mb], mask[mb], 0.2)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def score_and_logprobs():
        module.score(rollout)
        with torch.no_grad():
            module.policy_pass(seq, attn, p)
            module.reference_logprobs(seq, attn, p)

    raw_forward_backward()
    t_raw_fb = _median_time(raw_forward_backward, device, args.repeats)
    t_update = _median_time(update_epoch, device, args.repeats)
    t_score = _median_time(score_and_logprobs, device, args.repeats)
    iteration = t_rollout + t_score + args.ppo_epochs * t_update
    per_policy_h = iteration * (PAPER_BATCH / args.batch) * PAPER_ITERATIONS / 3600
    print(f"device {device}, policy {args.size} ({sum(q.numel() for q in lm.parameters()) / 1e6:.1f}M parameters), "
          f"batch {args.batch}, {tokens} tokens per batch")
    print(f"rollout   {args.batch / t_rollout:9.1f} responses/s   raw generate {args.batch / t_raw_gen:9.1f} responses/s"
          f"   ratio {t_raw_gen / t_rollout:.2f}x")
    print(f"update    {tokens / t_update:9.1f} tokens/s      raw fwd+bwd  {tokens / t_raw_fb:9.1f} tokens/s"
          f"      ratio {t_raw_fb / t_update:.2f}x")
    print(f"one iteration {iteration:.2f} s (rollout {t_rollout:.2f}, scoring + log-probs {t_score:.2f}, "
          f"{args.ppo_epochs} update epochs {args.ppo_epochs * t_update:.2f}); projected per policy at the paper's "
          f"settings ({PAPER_ITERATIONS} x {PAPER_BATCH} episodes): {per_policy_h * 60:.1f} min "
          f"(paper: {PAPER_HOURS} h on 4 A40s, {PAPER_HOURS * 60 / (per_policy_h * 60):.0f}x)")


if __name__ == "__main__":
    main()
