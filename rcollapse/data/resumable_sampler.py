"""A shuffling sampler whose order is a function of (seed, epoch, rank): runs can resume exactly.

Lightning restores the step and epoch counters from a checkpoint but not the order in which a
plain shuffling DataLoader drew its rows. Here epoch ``e``'s permutation is drawn from
``seed + e`` alone; each of ``num_replicas`` processes takes every ``num_replicas``-th index
(padded to equal length, as ``DistributedSampler``); and a sampler built after a restart skips
the batches that the interrupted epoch had already trained on. An interrupted run that resumes
from its last checkpoint therefore sees the same batches as one that never stopped.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableShuffleSampler(Sampler[int]):
    def __init__(self, num_rows: int, seed: int, batch_size: int, num_replicas: int = 1,
                 rank: int = 0, skip_batches: int = 0):
        if num_rows < 1:
            raise ValueError("ResumableShuffleSampler needs at least one row")
        self.num_rows, self.seed, self.batch_size = num_rows, seed, batch_size
        self.num_replicas, self.rank = num_replicas, rank
        self.per_replica = math.ceil(num_rows / num_replicas)
        self.skip_batches = skip_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        self.epoch = epoch

    def indices(self, epoch: int) -> list[int]:
        """This process's indices of ``epoch``, in order, before any skipping."""
        generator = torch.Generator().manual_seed(self.seed + epoch)
        order = torch.randperm(self.num_rows, generator=generator).tolist()
        padded = (order * math.ceil(self.per_replica * self.num_replicas / self.num_rows))
        padded = padded[: self.per_replica * self.num_replicas]
        return padded[self.rank:: self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        indices = self.indices(self.epoch)
        skip, self.skip_batches = self.skip_batches * self.batch_size, 0  # only once, after a restart
        return iter(indices[skip:])

    def __len__(self) -> int:
        return self.per_replica
