"""Packed (padding-free) vs padded batches for the ranking reward model: time per epoch, side by side.

Padded (the default): a batch's B·n sequences laid out [S, L], L the longest; the length task's
completions of 10–80 words leave much of that padding. Packed (``dataset.packing=true``):
the same sequences concatenated into rows of at most ``--pack-length`` tokens (default
``--max-length``), positions restarting per sequence, a block-diagonal attention mask
(rcollapse/data/packed_batches.py). Both give the same rewards and loss on the same model, data
and utility (checked first); we time full training epochs (forward, backward, optimiser step),
alternating the two so that machine noise hits both alike, and print the ratio of the medians.

    python -m benchmarks.packed_vs_padded [--sizes tiny,small] [--repeats 3] [--prompts 32]

Besides the times it prints what each layout computes: token slots (what the embeddings, the
FFNs and the projections cost, ∝ rows·length) and attention-score entries (∝ rows·length²). A
dense block-diagonal mask saves the padding in the first, but in the second every packed row
pays for its whole length squared, the masked-out cross-sequence blocks included; only
variable-length attention kernels (FlashAttention's varlen, on GPUs) skip those.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from benchmarks.grouped_vs_pair_forward import side_by_side
from rcollapse.data.packed_batches import padding_fraction
from rcollapse.data.ranking_collator import RankingCollator
from rcollapse.data.sources import LengthOfflineSource
from rcollapse.maths.ranking_objective import pad_groups, ranking_loss
from rcollapse.maths.utilities import LogSigmoidUtility
from rcollapse.models.tiny_encoder import build_tiny_tokenizer


def step_loss(model, batch, utility) -> torch.Tensor:
    """The reward stage's loss on a padded or a packed batch (RankingRewardModule.forward's dispatch)."""
    if "packed" in batch:
        out = model.packed_forward(batch["packed"])
    else:
        out = model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
    rewards, mask = pad_groups(torch.sigmoid(out.scores[:, 0]), batch["group_sizes"])
    return ranking_loss(rewards, mask, batch["openness"], utility)


def layout_costs(batches, packed: bool) -> tuple[int, int, int]:
    """(real tokens, token slots, attention-score entries per head and layer) over ``batches``."""
    real = slots = scores = 0
    for batch in batches:
        mask = batch["packed"]["attention_mask"] if packed else batch["attention_mask"]
        rows, length = mask.shape
        real += int(mask.sum())
        slots += rows * length
        scores += rows * length * length
    return real, slots, scores


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=32, help="prompts per epoch (8 completions each)")
    parser.add_argument("--batch-prompts", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="tiny,small")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--pack-length", type=int, default=None, help="packed row length (default --max-length)")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    tokenizer = build_tiny_tokenizer()
    rows = LengthOfflineSource(num_train=args.prompts, num_test=1, seed=0).load()["train"]
    padded_collate = RankingCollator(tokenizer, max_length=args.max_length)
    packed_collate = RankingCollator(tokenizer, max_length=args.max_length, packing=True,
                                     pack_length=args.pack_length)
    chunks = [rows[i:i + args.batch_prompts] for i in range(0, len(rows), args.batch_prompts)]
    padded = [padded_collate(c) for c in chunks]
    packed = [packed_collate(c) for c in chunks]
    utility = LogSigmoidUtility(scale=4.0)

    pad_real, pad_slots, pad_scores = layout_costs(padded, packed=False)
    pk_real, pk_slots, pk_scores = layout_costs(packed, packed=True)
    assert pad_real == pk_real
    pad_fraction = statistics.mean(padding_fraction(b["attention_mask"]) for b in padded)
    pk_fraction = statistics.mean(padding_fraction(b["packed"]["attention_mask"]) for b in packed)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {len(rows)} prompts x 8 completions per "
          f"epoch, {len(padded)} batches, max length {args.max_length}, pack length "
          f"{packed_collate.pack_length}")
    print(f"padded: {sum(b['attention_mask'].size(0) for b in padded)} rows, padding {pad_fraction:.1%} of the "
          f"token slots; packed: {sum(b['packed']['input_ids'].size(0) for b in packed)} rows, padding "
          f"{pk_fraction:.1%}")
    print(f"packed / padded: token slots {pk_slots / pad_slots:.2f}x (embeddings, FFN, projections), "
          f"attention-score entries {pk_scores / pad_scores:.2f}x (dense block-diagonal mask)")
    print(f"{'model':<8}{'params':>10}{'padded s/epoch':>16}{'packed s/epoch':>16}{'padded/packed':>15}")
    for size in args.sizes.split(","):
        params, p, k = side_by_side(size, tokenizer, (padded, step_loss), (packed, step_loss), utility, args.repeats)
        print(f"{size:<8}{params:>10,}{p:>16.3f}{k:>16.3f}{p / k:>14.2f}x")

if __name__ == "__main__":
    main()
