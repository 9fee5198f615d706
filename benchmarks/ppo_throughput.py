"""PPO stage throughput against raw model calls, side by side, and the per-policy time at the
paper's settings projected from measured steps.

- rollout: ``VarianceKLPPOModule.rollout`` (prompt encoding + generate + EOS masking) against a
  raw ``generate`` on the same, pre-encoded prompts and settings, in responses/s (issue 8's
  target: ≥ 0.9×); decoding the responses for the reward model is part of scoring;
- update: one PPO epoch's forward + backward + step over minibatches (``policy_pass`` and the
  clipped losses) against a raw forward + backward + step of the same minibatches, in tokens/s;
- projection: one iteration = rollout + decoding + ensemble scoring + old/reference log-probs
  + ``ppo_epochs`` update epochs, measured at batch ``--batch`` and scaled to 192 iterations of 128 prompts
  (the paper: 3.86 h per policy on 4 A40s).

Models are built from configs (no download): ``--size tiny`` (default on CPU) or ``gpt2`` (GPT-2
small's shape, 124M parameters; use it on a GPU). The 10-head ensemble that scores every response
sits on ``--ensemble-backbone tiny`` (the offline one) or ``gemma-2b`` (Gemma-2B's shape, 2.5B
parameters, frozen, bf16 on a GPU: the paper's backbone, and the default with ``--size gpt2``).

    python -m benchmarks.ppo_throughput [--size tiny|gpt2] [--ensemble-backbone tiny|gemma-2b]
                                        [--batch 64] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from rcollapse.data.preference_collator import PreferenceCollator
from rcollapse.data.synthetic_reviews import review_prompt
from rcollapse.maths.ppo_objective import FixedKLController, clipped_policy_loss, clipped_value_loss
from rcollapse.models.policy import (
    PolicyWithValueHead,
    build_tiny_gpt2,
    build_tiny_tokenizer_for_generation,
    frozen_reference,
)
from rcollapse.models.reward_model import RewardModel
from rcollapse.models.tiny_encoder import build_tiny_encoder, build_tiny_tokenizer
from rcollapse.stages.ppo_module import VarianceKLPPOModule

# gpt2: GPT-2 small's shape, its 50,257-token vocabulary included (124M parameters): the LM head
# and the sampling softmax are a large part of a ten-token rollout's cost
SIZES = {"tiny": dict(n_embd=64, n_layer=2, n_head=4),
         "gpt2": dict(n_embd=768, n_layer=12, n_head=12, vocab_size=50257)}
# Gemma-2B (the paper's reward backbone): 18 layers of width 2048, multi-query attention, 256k vocabulary
GEMMA_2B = dict(hidden_size=2048, num_hidden_layers=18, num_attention_heads=8, num_key_value_heads=1, head_dim=256,
                intermediate_size=16384, vocab_size=256000)
PAPER_HOURS, PAPER_ITERATIONS, PAPER_BATCH = 3.86, 192, 128


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def _paired_median_times(ours, raw, device, repeats) -> tuple[float, float]:
    """Median times of ``ours`` and ``raw``, run alternately so that a slow spell of a noisy
    machine falls on both sides of the ratio."""
    pairs = [(_timed(ours, device), _timed(raw, device)) for _ in range(repeats)]
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def build_ensemble(backbone: str, tokenizer, device: torch.device) -> RewardModel:
    """A frozen 10-head reward ensemble on a backbone built from config (random weights: timing only)."""
    if backbone == "tiny":
        return RewardModel(build_tiny_encoder(tokenizer), num_heads=10).to(device).eval().requires_grad_(False)
    from transformers import GemmaConfig, GemmaModel

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    config = GemmaConfig(**GEMMA_2B, pad_token_id=tokenizer.pad_token_id, torch_dtype=dtype)
    with torch.device(device):
        model = RewardModel(GemmaModel(config).to(dtype), num_heads=10, pooling="last").to(dtype)
    return model.eval().requires_grad_(False)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default=None,
                        help="the policy's shape (default: tiny, and gpt2 too where a GPU is available)")
    parser.add_argument("--ensemble-backbone", choices=("tiny", "gemma-2b"), default=None,
                        help="the reward ensemble's backbone (default: tiny with --size tiny, gemma-2b with gpt2)")
    parser.add_argument("--batch", type=int, default=None, help="prompts per iteration (default: 64 tiny, 128 gpt2)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--ppo-epochs", type=int, default=4)
    parser.add_argument("--minibatches", type=int, default=4)
    args = parser.parse_args(argv)
    sizes = [args.size] if args.size else ["tiny"] + (["gpt2"] if torch.cuda.is_available() else [])
    for size in sizes:
        measure(size, args.ensemble_backbone or ("gemma-2b" if size == "gpt2" else "tiny"),
                args.batch or (128 if size == "gpt2" else 64), args)
    if not torch.cuda.is_available() and not args.size:
        print("no GPU here: the GPT-2-small projection needs one (python -m benchmarks.ppo_throughput --size gpt2)")


def measure(size: str, backbone: str, batch: int, args) -> dict[str, float]:
    """Time the rollout and update against raw calls at one policy shape, and project a policy
    (returned: the iteration's seconds and the projected minutes per policy)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    tokenizer = build_tiny_tokenizer_for_generation()
    lm = build_tiny_gpt2(tokenizer, n_positions=64, **SIZES[size]).to(device)
    policy = PolicyWithValueHead(lm).to(device)
    reference = frozen_reference(lm)
    rm_tokenizer = build_tiny_tokenizer()
    ensemble = build_ensemble(backbone, rm_tokenizer, device)
    collate = PreferenceCollator(rm_tokenizer, 64)

    @torch.no_grad()
    def scorer(prompts, responses):
        encoded = collate.encode(prompts, responses)
        return ensemble(input_ids=encoded["input_ids"].to(device), attention_mask=encoded["attention_mask"].to(device))

    module = VarianceKLPPOModule(policy, reference, tokenizer, scorer, lambda p: torch.optim.Adam(p, lr=1e-5),
                                 FixedKLController(0.05), batch_size=batch,
                                 ppo_epochs=args.ppo_epochs, num_minibatches=args.minibatches).to(device)
    rng = np.random.default_rng(0)
    prompts = [review_prompt(rng) for _ in range(batch)]
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)

    def raw_generate():
        with torch.no_grad():
            lm.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], do_sample=True, max_new_tokens=10,
                        top_k=0, top_p=1.0,
                        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)

    raw_generate()  # warm-up
    t_rollout, t_raw_gen = _paired_median_times(lambda: module.rollout(prompts), raw_generate, device, args.repeats)
    rollout = module.rollout(prompts)
    seq, attn, mask, p = rollout["sequences"], rollout["attention_mask"], rollout["response_mask"], rollout["prompt_length"]
    tokens = int(attn.sum())
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-5)

    minibatch = max(1, batch // args.minibatches)

    def raw_forward_backward():  # the same minibatches, each one plain forward + backward + step
        for start in range(0, batch, minibatch):
            out = lm(input_ids=seq[start:start + minibatch], attention_mask=attn[start:start + minibatch])
            optimizer.zero_grad()
            out.logits.float().mean().backward()
            optimizer.step()

    with torch.no_grad():
        old_logprobs, old_values, _ = module.policy_pass(seq, attn, p)
    advantages, returns = torch.randn_like(old_logprobs), torch.randn_like(old_values)

    def update_epoch():
        for start in range(0, batch, minibatch):
            mb = slice(start, start + minibatch)
            logprobs, values, _ = module.policy_pass(seq[mb], attn[mb], p)
            loss = clipped_policy_loss(logprobs, old_logprobs[mb], advantages[mb], mask[mb], 0.2)[0] \
                + 0.1 * clipped_value_loss(values, old_values[mb], returns[mb], mask[mb], 0.2)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def score_and_logprobs():
        module.score(prompts, module.decode_responses(rollout))
        with torch.no_grad():
            module.policy_pass(seq, attn, p)
            module.reference_logprobs(seq, attn, p)

    raw_forward_backward()
    t_update, t_raw_fb = _paired_median_times(update_epoch, raw_forward_backward, device, args.repeats)
    t_score = statistics.median(_timed(score_and_logprobs, device) for _ in range(args.repeats))
    iteration = t_rollout + t_score + args.ppo_epochs * t_update
    per_policy_h = iteration * (PAPER_BATCH / batch) * PAPER_ITERATIONS / 3600
    speedup = PAPER_HOURS / per_policy_h
    print(f"device {device}, policy {size} ({sum(q.numel() for q in lm.parameters()) / 1e6:.1f}M parameters), "
          f"10-head ensemble on {backbone} ({sum(q.numel() for q in ensemble.parameters()) / 1e6:.1f}M parameters), "
          f"batch {batch}, {tokens} tokens per batch")
    print(f"rollout   {batch / t_rollout:9.1f} responses/s   raw generate {batch / t_raw_gen:9.1f} responses/s"
          f"   ratio {t_raw_gen / t_rollout:.2f}x")
    print(f"update    {tokens / t_update:9.1f} tokens/s      raw fwd+bwd  {tokens / t_raw_fb:9.1f} tokens/s"
          f"      ratio {t_raw_fb / t_update:.2f}x")
    print(f"one iteration {iteration:.2f} s (rollout {t_rollout:.2f}, scoring + log-probs {t_score:.2f}, "
          f"{args.ppo_epochs} update epochs {args.ppo_epochs * t_update:.2f}); projected per policy at the paper's "
          f"settings ({PAPER_ITERATIONS} x {PAPER_BATCH} episodes): {per_policy_h * 60:.1f} min "
          f"(paper: {PAPER_HOURS} h on 4 A40s; " + (f"{speedup:.0f}x faster)" if speedup >= 1 else f"{1 / speedup:.1f}x slower)"))
    return {"iteration_s": iteration, "rollout_s": t_rollout, "score_s": t_score, "update_epoch_s": t_update,
            "per_policy_min": per_policy_h * 60, "batch": batch}


if __name__ == "__main__":
    main()
