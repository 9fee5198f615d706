"""Padding-free batches: the tokenised sequences of a batch packed into fewer rows.

A padded batch lays ``S`` sequences out as ``[S, L]``, ``L`` the longest of them; the length task's
completions (10–80 words) leave a large share of that padding. :func:`pack_batch` concatenates the
sequences' real tokens (each ``[CLS] prompt [SEP] completion [SEP]`` as the tokenizer made it)
into rows of at most ``pack_length`` tokens (first-fit decreasing), so the backbone runs on
``[R, P]`` with ``R < S`` and little padding. Per token it keeps:

- ``position_ids``: restarting at 0 for each sequence (what the padded layout gives it);
- ``token_type_ids``: the tokenizer's, per sequence;
- ``sequence_index``: which original sequence the token belongs to (``-1`` for the row's padding).
  The model turns it into a block-diagonal attention mask (``sequence_index[q] == sequence_index[k]``),
  so every sequence attends only to itself; the row's padding forms a block of its own, so no
  attention row is empty.

Per sequence, in the original order, ``sequence_rows``, ``sequence_starts`` and ``sequence_lengths``
say where it lies, so the reward model pools each one (its first token, its tokens' mean, its last
token) and returns rewards in the padded layout's order: ``pad_groups``, the loss and the metrics
see the same ``[S]`` rewards either way.

The packed layout goes under ``batch["packed"]``. The padded ``input_ids`` and ``token_type_ids``
are dropped, so code that would run the backbone on the padded layout fails loudly; the padded
``attention_mask`` [S, L] stays (per sequence, as in a padded batch) for code that counts each
sequence's tokens (e.g. the reward diagnostics' lengths).
"""

from __future__ import annotations

import torch


def first_fit_decreasing(lengths: list[int], capacity: int) -> list[list[int]]:
    """Bins of sequence indices whose lengths sum to at most ``capacity``: longest first, each into
    the first bin with room (deterministic: ties keep the original order)."""
    bins: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        length = lengths[index]
        if length > capacity:
            raise ValueError(f"a sequence of {length} tokens does not fit a packed row of {capacity} "
                             f"(dataset.pack_length must be >= model.max_length)")
        for b, free in enumerate(room):
            if length <= free:
                bins[b].append(index)
                room[b] -= length
                break
        else:
            bins.append([index])
            room.append(capacity - length)
    return bins


def pack_batch(batch: dict, pack_length: int, pad_token_id: int = 0) -> dict:
    """``batch`` (a padded ranking batch) with its sequences packed under ``batch["packed"]``.

    Every other key (``group_sizes``, ``openness``, ``row_ids``) is kept as it is."""
    input_ids, attention_mask = batch["input_ids"], batch["attention_mask"].bool()
    token_type_ids = batch.get("token_type_ids")
    lengths = attention_mask.sum(1).tolist()
    bins = first_fit_decreasing(lengths, int(pack_length))
    width = max(sum(lengths[i] for i in row) for row in bins)  # the fullest row, not pack_length
    num_rows, num_seqs = len(bins), len(lengths)

    packed_ids = torch.full((num_rows, width), pad_token_id, dtype=input_ids.dtype)
    packed_types = torch.zeros((num_rows, width), dtype=token_type_ids.dtype if token_type_ids is not None
                               else torch.long)
    positions = torch.zeros((num_rows, width), dtype=torch.long)
    sequence_index = torch.full((num_rows, width), -1, dtype=torch.long)
    rows = torch.empty(num_seqs, dtype=torch.long)
    starts = torch.empty(num_seqs, dtype=torch.long)
    for r, members in enumerate(bins):
        start = 0
        for s in members:
            n = lengths[s]
            real = attention_mask[s]  # whichever side the tokenizer padded
            packed_ids[r, start:start + n] = input_ids[s][real]
            if token_type_ids is not None:
                packed_types[r, start:start + n] = token_type_ids[s][real]
            positions[r, start:start + n] = torch.arange(n)
            sequence_index[r, start:start + n] = s
            rows[s], starts[s] = r, start
            start += n

    packed = {
        "input_ids": packed_ids,
        "attention_mask": (sequence_index >= 0).long(),  # real tokens (1) vs the row's padding (0)
        "position_ids": positions,
        "sequence_index": sequence_index,
        "sequence_rows": rows,
        "sequence_starts": starts,
        "sequence_lengths": torch.tensor(lengths, dtype=torch.long),
    }
    if token_type_ids is not None:
        packed["token_type_ids"] = packed_types
    out = {k: v for k, v in batch.items() if k not in ("input_ids", "token_type_ids")}
    out["packed"] = packed
    return out


def padding_fraction(attention_mask: torch.Tensor) -> float:
    """The share of a ``[rows, length]`` layout that is padding."""
    return 1.0 - float(attention_mask.bool().sum()) / attention_mask.numel()
