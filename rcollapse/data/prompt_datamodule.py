"""Batches of prompts for the PPO stage (lists of strings), resumable mid-epoch."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader

from rcollapse.data.data_arguments import build_source
from rcollapse.data.resumable_sampler import ResumableShuffleSampler


class PromptDataModule(L.LightningDataModule):
    """``source.load(tokenizer)`` → {"train", "test"} prompts. A training batch is one PPO iteration's
    prompts; ``optimizer_steps_per_batch`` (PPO epochs × minibatches) converts the trainer's
    optimizer-step counter back to batches when a run resumes.

    ``source`` is a built source, or its class (a data set file's ``source: {_target_: ...,
    _partial_: true}``) built here from ``source_args``, the file's keys that are not this
    module's (``dataset.num_train``, ``dataset.path``, ...: :mod:`rcollapse.data.data_arguments`).
    ``batch_size`` is the stage's (``stage.batch_size``)."""

    FLAT_SOURCES = ("source",)  # the node whose class takes the data set file's other keys

    def __init__(self, source, batch_size: int = 128, shuffle_seed: int = 0, optimizer_steps_per_batch: int = 1,
                 num_workers: int = 0, tokenizer=None, **source_args):
        super().__init__()
        self.tokenizer = tokenizer  # the policy's: a source may cut prompts by its tokens
        self.num_workers = int(num_workers)
        self.source = build_source(source, source_args, type(self))
        self.batch_size, self.shuffle_seed = int(batch_size), int(shuffle_seed)
        self.optimizer_steps_per_batch = int(optimizer_steps_per_batch)
        self.prompts: dict[str, list[str]] | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.prompts is None:
            prompts = self.source.load(tokenizer=self.tokenizer)
            for split in ("train", "test"):
                if not prompts.get(split):
                    raise ValueError(f"{type(self.source).__name__}.load() gave no {split!r} prompts")
            if len(prompts["train"]) < self.batch_size:
                raise ValueError(f"{len(prompts['train'])} training prompts are fewer than one batch "
                                 f"(stage.batch_size={self.batch_size})")
            self.prompts = prompts

    def train_dataloader(self) -> DataLoader:
        self.setup()
        rows = self.prompts["train"]
        batches = len(rows) // self.batch_size
        skip = 0
        if self.trainer is not None:
            skip = (self.trainer.global_step // self.optimizer_steps_per_batch) % batches
        sampler = ResumableShuffleSampler(len(rows), self.shuffle_seed, self.batch_size, 1, 0, skip)
        return DataLoader(rows, batch_size=self.batch_size, sampler=sampler, collate_fn=list, drop_last=True,
                          num_workers=self.num_workers)
