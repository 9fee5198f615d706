"""The GPU check: the three expensive steps of the papers at their real shapes, timed on one GPU and
projected to a whole run, against the targets (`make bench-gpu`; at most 10 minutes on an H100/H200).

Models are built from their published configurations with random weights (no hub is reachable on
a lent device): the timings are the real ones, the outputs meaningless.

1. ``experiment=collapse_longform``: forward + backward of the DeBERTa-v3-base-shaped ranking
   reward model over one step's 8 prompts x 8 completions (64 sequences of 512 tokens, bf16
   autocast); target above 238 sequences/s (eager Hugging Face forward + backward on an H100);
   projected: the paper's 1,000 steps.
2. ``experiment=ensemble_gemma`` phase 2: the frozen Gemma-2B-shaped backbone's feature pass
   (forward only, bf16) over the run's 132k pairs (timed on a few batches, scaled), then the 10
   heads' 2,062 steps of 32 pairs (the experiment's plan: half an epoch of 132k) on the cached
   2,048-wide features (timed in full); target: the whole phase 2 under 30 minutes.
3. ``experiment=ppo_study``: one PPO iteration at batch 128 (GPT-2-small policy, 10-token
   responses, scoring by the 10-head Gemma-2B-shaped ensemble, 4 update epochs), projected to one
   policy's 192 iterations (``benchmarks.ppo_throughput``); target under 2 minutes per policy.
4. The PPO judge over IMDB's whole test split: the FsfairX-LLaMA3-RM shape (Llama-3-8B, a one-label
   classifier, bf16, all 32 layers) scoring chat-formatted (prompt, 10-token response) pairs in
   batches of ``judge.batch_size``; projected: 25,000 prompts x 2 (the policy and the reference) per
   policy, and the study's 80 policies.
5. Every real experiment end to end (``benchmarks.real_shapes --device cuda``): ``python run.py
   experiment=...`` on local copies at the real widths with 2 layers, the experiments' own precision,
   batch sizes and schedules, a few steps each (skipped with ``--smoke`` and ``--no-real-shapes``).

    python -m benchmarks.gpu_check [--out DIR]     # on a GPU; writes DIR/gpu_check.json
    python -m benchmarks.gpu_check --smoke         # the same code at toy sizes, on any CPU
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from benchmarks import grouped_vs_pair_forward, ppo_throughput
from rcollapse.maths.preference_objective import ensemble_loss

TARGETS = {"collapse_sequences_per_s": 238.0, "phase2_minutes": 30.0, "ppo_policy_minutes": 2.0}
# the judge: IMDB's test split, both the trained and the reference policy judged, 80 policies
JUDGE = {"test_prompts": 25_000, "policies": 80, "batch_size": 8, "tokens": 48, "timed_batches": 10}
SMOKE_JUDGE = {"test_prompts": 25_000, "policies": 80, "batch_size": 8, "tokens": 24, "timed_batches": 2}
PAPER = {"collapse_steps": 1000, "sequences_per_step": 64, "seq_len": 512, "pairs": 132_000, "phase2_steps": 2062,
         "head_batch": 32, "feature_width": 2048, "num_heads": 10}
SMOKE = {"collapse_steps": 1000, "sequences_per_step": 8, "seq_len": 32, "pairs": 256, "phase2_steps": 20,
         "head_batch": 32, "feature_width": 32, "num_heads": 10}
SMOKE_DEBERTA = dict(config_class="DebertaV2Config", hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=64, relative_attention=True, position_buckets=16,
                     norm_rel_ebd="layer_norm", share_att_key=True, pos_att_type=["p2c", "c2p"],
                     position_biased_input=False, type_vocab_size=0)
SMOKE_GEMMA = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1, head_dim=8,
                   intermediate_size=64, vocab_size=1000)


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def collapse_check(sizes: dict, smoke: bool) -> dict:
    """Sequences/s of the ranking reward model's training step, and the projected run."""
    sps = grouped_vs_pair_forward.deberta_throughput(
        None, seq_len=sizes["seq_len"], batch=sizes["sequences_per_step"], steps=3 if smoke else 10,
        shape=SMOKE_DEBERTA if smoke else None, vocab_size=1000 if smoke else 128_100)
    minutes = sizes["collapse_steps"] * sizes["sequences_per_step"] / sps / 60
    return {"sequences_per_s": sps, "projected_run_min": minutes, "target_sequences_per_s": TARGETS["collapse_sequences_per_s"],
            "meets_target": sps > TARGETS["collapse_sequences_per_s"]}


def phase2_check(sizes: dict, smoke: bool) -> dict:
    """The feature pass (timed on a few batches, scaled to every pair) and the heads' steps (timed)."""
    from rcollapse.models.tiny_encoder import build_tiny_tokenizer

    device = _device()
    if smoke:
        ppo_throughput.GEMMA_2B = SMOKE_GEMMA  # the same code path at a test's width
    tokenizer = build_tiny_tokenizer()
    ensemble = ppo_throughput.build_ensemble("gemma-2b", tokenizer, device)
    batch, seq_len = 2 * sizes["head_batch"], sizes["seq_len"]
    ids = torch.randint(5, min(1000, len(tokenizer)), (batch, seq_len), device=device)
    mask = torch.ones_like(ids)

    @torch.no_grad()
    def features():
        return ensemble.features(ids, mask)

    features()  # warm-up
    repeats = 2 if smoke else 5
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        features()
    _sync(device)
    per_batch = (time.perf_counter() - start) / repeats
    feature_pass_s = per_batch * 2 * sizes["pairs"] / batch

    heads = torch.nn.Linear(sizes["feature_width"], sizes["num_heads"]).to(device)
    optimizer = torch.optim.AdamW(heads.parameters(), lr=1e-5, weight_decay=0.001)
    cached = torch.randn(2, sizes["pairs"], sizes["feature_width"], device=device)
    _sync(device)
    start = time.perf_counter()
    for _ in range(sizes["phase2_steps"]):
        rows = torch.randint(0, sizes["pairs"], (sizes["head_batch"],), device=device)
        loss = ensemble_loss(heads(cached[0, rows]), heads(cached[1, rows]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    _sync(device)
    heads_s = time.perf_counter() - start
    minutes = (feature_pass_s + heads_s) / 60
    return {"feature_sequences_per_s": batch / per_batch, "feature_pass_min": feature_pass_s / 60,
            "heads_min": heads_s / 60, "projected_phase2_min": minutes, "target_min": TARGETS["phase2_minutes"],
            "meets_target": minutes < TARGETS["phase2_minutes"]}


def ppo_check(smoke: bool) -> dict:
    """One PPO iteration, projected to a policy (benchmarks.ppo_throughput's measurement)."""
    args = argparse.Namespace(repeats=1 if smoke else 3, ppo_epochs=4, minibatches=2 if smoke else 4)
    measured = ppo_throughput.measure("tiny" if smoke else "gpt2", "tiny" if smoke else "gemma-2b",
                                      8 if smoke else 128, args)
    return {**measured, "target_min": TARGETS["ppo_policy_minutes"],
            "meets_target": measured["per_policy_min"] < TARGETS["ppo_policy_minutes"]}


def judge_check(smoke: bool) -> dict:
    """Sequences/s of the FsfairX judge's forward (Llama-3-8B shape, bf16 on a GPU), projected to
    IMDB's 25,000 test prompts judged for the policy and the reference, per policy and for 80."""
    from rcollapse.models.architectures import build_from_architecture

    device, sizes = _device(), SMOKE_JUDGE if smoke else JUDGE
    shrink = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2,
                  num_hidden_layers=2, vocab_size=1000) if smoke else {}
    dtype = "bfloat16" if device.type == "cuda" else "float32"
    judge = build_from_architecture("fsfairx-llama3-rm", device=device.type, dtype=dtype, **shrink).eval()
    vocab = judge.config.vocab_size
    ids = torch.randint(5, vocab, (sizes["batch_size"], sizes["tokens"]), device=device)
    mask = torch.ones_like(ids)

    def score():  # as rcollapse.models.judges reads it: the score head at the last token
        return judge.score(judge.model(input_ids=ids, attention_mask=mask).last_hidden_state[:, -1])[:, 0]

    with torch.no_grad():
        score()  # warm-up
        _sync(device)
        start = time.perf_counter()
        for _ in range(sizes["timed_batches"]):
            score()
        _sync(device)
    per_s = sizes["batch_size"] * sizes["timed_batches"] / (time.perf_counter() - start)
    per_policy_min = 2 * sizes["test_prompts"] / per_s / 60
    return {"sequences_per_s": per_s, "per_policy_min": per_policy_min,
            "study_h": sizes["policies"] * per_policy_min / 60, "batch_size": sizes["batch_size"],
            "tokens": sizes["tokens"]}


def real_shapes_check(out: Path | None) -> dict:
    """The real experiments end to end on this GPU (benchmarks.real_shapes --device cuda, 2 layers)."""
    from benchmarks import real_shapes

    summary = real_shapes.main(["--device", "cuda", "--layers", "2", "--steps-scale", "2",
                                "--out", str((out or Path("outputs/gpu_check")) / "real_shapes"), "--timeout", "240"])
    return {r["experiment"]: {"per_step_s": r["per_step_s"], "steps": r["steps"], "returncode": r["returncode"],
                              "peak_gpu_mem_gb": r["peak_gpu_mem_gb"]} for r in summary["results"]}


def device_name() -> str:
    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="toy sizes: checks the code on any CPU")
    parser.add_argument("--out", default=None, help="write gpu_check.json here")
    parser.add_argument("--no-real-shapes", action="store_true", help="skip the real experiments' end-to-end runs")
    args = parser.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit("benchmarks.gpu_check: no GPU here (use --smoke to check the code on a CPU)")
    sizes = SMOKE if args.smoke else PAPER
    started = time.perf_counter()
    results = {"device": device_name(), "torch": torch.__version__, "smoke": args.smoke, "sizes": sizes}
    for name, check in (("collapse_longform", lambda: collapse_check(sizes, args.smoke)),
                        ("ensemble_phase2", lambda: phase2_check(sizes, args.smoke)),
                        ("ppo_policy", lambda: ppo_check(args.smoke)),
                        ("judge_imdb_test", lambda: judge_check(args.smoke)),
                        ("real_shapes", lambda: {} if args.smoke or args.no_real_shapes
                         else real_shapes_check(Path(args.out) if args.out else None))):
        t0 = time.perf_counter()
        results[name] = check()
        results[name]["check_s"] = time.perf_counter() - t0
        print(f"[{name}] " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                       for k, v in results[name].items()), flush=True)
    results["total_s"] = time.perf_counter() - started
    c, e, p, j = (results[k] for k in ("collapse_longform", "ensemble_phase2", "ppo_policy", "judge_imdb_test"))
    print(f"\n{results['device']}{' (smoke sizes)' if args.smoke else ''}:\n"
          f"  ranking RM fwd+bwd   {c['sequences_per_s']:8.1f} sequences/s (target > {TARGETS['collapse_sequences_per_s']:.0f}); "
          f"collapse_longform run {c['projected_run_min']:.1f} min per utility\n"
          f"  ensemble phase 2     {e['projected_phase2_min']:8.1f} min (feature pass {e['feature_pass_min']:.1f}, "
          f"heads {e['heads_min']:.2f}; target < {TARGETS['phase2_minutes']:.0f})\n"
          f"  one PPO policy       {p['per_policy_min']:8.2f} min (target < {TARGETS['ppo_policy_minutes']:.0f}); "
          f"80 policies {80 * p['per_policy_min'] / 60:.1f} h\n"
          f"  judge, IMDB test     {j['per_policy_min']:8.2f} min per policy ({j['sequences_per_s']:.0f} sequences/s, "
          f"25,000 prompts x 2); 80 policies {j['study_h']:.1f} h\n"
          + "".join(f"  real shape {k:24} {v['per_step_s'] or float('nan'):8.3f} s/step over {v['steps']} steps "
                    f"(rc {v['returncode']})\n" for k, v in results["real_shapes"].items() if isinstance(v, dict)) +
          f"  this check took {results['total_s']:.0f} s")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu_check.json").write_text(json.dumps(results, indent=2, default=float))
        print(f"wrote {out / 'gpu_check.json'}")
    return results


if __name__ == "__main__":
    main()
