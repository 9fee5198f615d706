"""Phase 2 of the ensemble stage: cached features vs an uncached frozen pass vs 10 fine-tunes.

On the same pairs, model and batch size we measure, side by side in one run:

- the one-off feature pass (the frozen backbone over every pair, once);
- a head epoch on cached features (what ``cache_features: true`` trains on);
- an epoch through the frozen backbone, uncached (``cache_features: false``): a forward per step;
- an epoch of 10 independent full fine-tunes (10 × forward + backward + step of the backbone),
  the ensemble without a shared frozen backbone.

Cached epochs are timed in full; the backbone epochs are timed over ``--batches`` batches and
scaled to the epoch (the per-batch cost is flat; tokenisation is left out of them, which
favours the uncached path). Issue 5's target: a cached head epoch is at
least 100× cheaper than an uncached epoch.

    python -m benchmarks.ensemble_phase2 [--sizes tiny,small] [--pairs 4000] [--batches 8]
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from rcollapse.data.preference_datamodule import PreferenceDataModule
from rcollapse.data.preference_sources import PreferenceOfflineSource
from rcollapse.maths.preference_objective import ensemble_loss
from rcollapse.models.feature_cache import pair_features
from rcollapse.models.reward_model import RewardModel
from rcollapse.models.tiny_encoder import build_tiny_encoder, build_tiny_tokenizer

SIZES = {
    "tiny": dict(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128),
    "small": dict(hidden_size=256, num_layers=4, num_heads=4, intermediate_size=1024),
    "base": dict(hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072),
}


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(size: str, num_pairs: int, batch_size: int, num_batches: int, num_heads: int = 10) -> dict[str, float]:
    torch.manual_seed(0)
    tokenizer = build_tiny_tokenizer()
    dm = PreferenceDataModule(PreferenceOfflineSource(num_train=num_pairs, num_val=8, num_test_per_section=4),
                              tokenizer, batch_size=batch_size, eval_batch_size=batch_size, max_length=128)
    dm.setup()
    loader = dm.loader("train")
    model = RewardModel(build_tiny_encoder(tokenizer, **SIZES[size]), num_heads=num_heads).eval()
    model.backbone.requires_grad_(False)
    steps = len(loader)
    batches = [b for _, b in zip(range(num_batches), loader, strict=False)]

    feature_pass = _timed(lambda: pair_features(model, loader, progress=False))
    chosen, rejected = pair_features(model, loader, progress=False)
    optimizer = torch.optim.AdamW(model.heads.parameters(), lr=1e-3)

    def cached_epoch():
        for start in range(0, chosen.size(0), batch_size):
            scores = model.heads(torch.cat([chosen[start:start + batch_size], rejected[start:start + batch_size]]))
            half = scores.size(0) // 2
            optimizer.zero_grad()
            ensemble_loss(scores[:half], scores[half:]).backward()
            optimizer.step()

    def uncached_batches():
        for batch in batches:
            inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
            with torch.no_grad():
                features = model.features(**inputs)
            scores = model.heads(features)
            half = scores.size(0) // 2
            optimizer.zero_grad()
            ensemble_loss(scores[:half], scores[half:]).backward()
            optimizer.step()

    single = RewardModel(copy.deepcopy(model.backbone).requires_grad_(True), num_heads=1).train()
    single_opt = torch.optim.AdamW(single.parameters(), lr=1e-5)

    def finetune_batches():  # one of the 10 fine-tunes; the ten cost ten times this
        for batch in batches:
            inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
            scores = single(**inputs).scores
            half = scores.size(0) // 2
            single_opt.zero_grad()
            ensemble_loss(scores[:half], scores[half:]).backward()
            single_opt.step()

    cached_epoch()  # warm-up
    cached = min(_timed(cached_epoch) for _ in range(3))
    uncached = _timed(uncached_batches) / len(batches) * steps
    finetunes = num_heads * _timed(finetune_batches) / len(batches) * steps
    return {"steps": steps, "feature_pass": feature_pass, "cached": cached, "uncached": uncached,
            "finetunes": finetunes}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="tiny,small")
    parser.add_argument("--pairs", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=8, help="batches timed for the backbone epochs")
    args = parser.parse_args(argv)
    print(f"{'size':<7}{'pairs':>7}{'steps':>7}{'feature pass':>14}{'head epoch':>12}{'uncached':>11}"
          f"{'10 fine-tunes':>15}{'uncached/cached':>17}{'fine-tunes/cached':>19}")
    for size in args.sizes.split(","):
        m = measure(size, args.pairs, args.batch_size, args.batches)
        print(f"{size:<7}{args.pairs:>7}{m['steps']:>7}{m['feature_pass']:>13.2f}s{m['cached']:>11.3f}s"
              f"{m['uncached']:>10.1f}s{m['finetunes']:>14.1f}s{m['uncached'] / m['cached']:>16.0f}x"
              f"{m['finetunes'] / m['cached']:>18.0f}x", flush=True)


if __name__ == "__main__":
    main()
