"""The ranking data module: train rows; test rows for validation; test and train probes to test."""

from __future__ import annotations

import math
import warnings

import lightning as L
from torch.utils.data import DataLoader, Dataset

from rcollapse.data.data_arguments import build_source
from rcollapse.data.ranking_collator import RankingCollator
from rcollapse.data.ranking_rows import RankingRow
from rcollapse.data.ranking_truncation import RowFit, check_truncation
from rcollapse.data.resumable_sampler import ResumableShuffleSampler


class RowDataset(Dataset):
    """A list of :class:`RankingRow` as a map-style data set."""

    def __init__(self, rows):
        self.rows = list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index) -> RankingRow:
        return self.rows[index]


class RankingDataModule(L.LightningDataModule):
    """Rows from ``source.load()`` ({"train", "test"}), batched by :class:`RankingCollator`.

    ``source`` is a built source, or its class (a data set file's ``source: {_target_: ...,
    _partial_: true}``) built here from ``source_args``, the file's keys that are not this
    module's (``dataset.num_train``, ``dataset.path``, ...: :mod:`rcollapse.data.data_arguments`).

    Validation runs on the test prompts (the paper tracks them over training); ``test``
    evaluates the test prompts and a fixed probe of the first ``train_probe_size`` training
    prompts, in the order of ``test_split_names`` (collapse is measured on both).

    Training rows are drawn by :class:`ResumableShuffleSampler` (order set by ``shuffle_seed``,
    the epoch and the process's rank), so a resumed run continues with the very batches an
    uninterrupted one would see; it also shards the rows across DDP processes, so the trainer
    runs with ``use_distributed_sampler=False``. Every process evaluates every test prompt (a
    few dozen): the collapse metrics need each prompt's whole reward vector and are then equal
    on all ranks without a gather.
    """

    test_split_names = ("test", "train")
    FLAT_SOURCES = ("source",)  # the node whose class takes the data set file's other keys

    def __init__(
        self,
        source,
        tokenizer,
        batch_size: int = 8,
        eval_batch_size: int = 16,
        num_workers: int = 0,
        max_length: int = 512,
        train_probe_size: int = 16,
        shuffle_seed: int = 0,
        packing: bool = False,
        pack_length: int | None = None,
        **source_args,
    ):
        super().__init__()
        self.source = build_source(source, source_args, type(self))
        self.tokenizer = tokenizer
        # a task the project builds (length, StackExchange) builds only rows that fit max_length and
        # counts the others; a user's own rows are checked in setup() and refused if they do not fit
        fit_rows_to = getattr(self.source, "fit_rows_to", None)
        if callable(fit_rows_to) and tokenizer is not None:
            fit_rows_to(RowFit(tokenizer, max_length))
        # packing: padding-free batches (rcollapse/data/packed_batches.py), pack_length defaults to max_length
        self.collate = RankingCollator(tokenizer, max_length=max_length, packing=packing, pack_length=pack_length)
        self.packing = bool(packing)
        self.max_length = int(max_length)
        self.truncated: dict[str, int] = {}  # truncated completions per split (check_truncation)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers = num_workers
        self.train_probe_size = train_probe_size
        self.shuffle_seed = shuffle_seed
        self.splits: dict[str, list[RankingRow]] | None = None

    def prepare_data(self) -> None:
        # Once per node: sources that cache built rows on disk (e.g. LongForm) fill the cache
        # here, so that every process's setup() then reads the same files.
        prepare = getattr(self.source, "prepare", None)
        if callable(prepare):
            prepare()

    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            splits = self.source.load()
            for name in ("train", "test"):
                if not splits.get(name):
                    raise ValueError(f"{type(self.source).__name__}.load() gave no {name!r} rows")
            self.truncated = check_truncation({n: splits[n] for n in ("train", "test")}, self.tokenizer,
                                              self.max_length)
            self.splits = splits

    def _rows(self, split: str) -> list[RankingRow]:
        self.setup()
        return self.splits[split]

    def _loader(self, rows, batch_size: int, sampler=None) -> DataLoader:
        return DataLoader(
            RowDataset(rows),
            batch_size=batch_size,
            sampler=sampler,
            shuffle=False,
            drop_last=False,
            collate_fn=self.collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        rows = self._rows("train")
        trainer = self.trainer
        replicas, rank, skip = 1, 0, 0
        if trainer is not None:
            replicas, rank = trainer.world_size, trainer.global_rank
            steps_per_epoch = math.ceil(math.ceil(len(rows) / replicas) / self.batch_size)
            skip = trainer.global_step % steps_per_epoch  # > 0 only when resuming mid-epoch
        if skip:
            # The order is rebuilt from (seed, epoch, step) by ResumableShuffleSampler, so
            # Lightning's warning about resuming mid-epoch with a plain DataLoader does not apply.
            warnings.filterwarnings("ignore", message=".*your dataloader is not resumable.*")
        sampler = ResumableShuffleSampler(len(rows), self.shuffle_seed, self.batch_size, replicas, rank, skip)
        return self._loader(rows, self.batch_size, sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self._rows("test"), self.eval_batch_size)

    def test_dataloader(self) -> list[DataLoader]:
        probe = self._rows("train")[: self.train_probe_size]
        return [
            self._loader(self._rows("test"), self.eval_batch_size),
            self._loader(probe, self.eval_batch_size),
        ]
