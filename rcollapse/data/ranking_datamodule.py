"""The ranking data module: train rows; test rows for validation; test and train probes to test."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader, Dataset

from rcollapse.data.ranking_collator import RankingCollator
from rcollapse.data.ranking_rows import RankingRow


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

    Validation runs on the test prompts (the paper tracks them over training); ``test``
    evaluates the test prompts and a fixed probe of the first ``train_probe_size`` training
    prompts, in the order of ``test_split_names`` (collapse is measured on both).
    """

    test_split_names = ("test", "train")

    def __init__(
        self,
        source,
        tokenizer,
        batch_size: int = 8,
        eval_batch_size: int = 16,
        num_workers: int = 0,
        max_length: int = 512,
        train_probe_size: int = 16,
    ):
        super().__init__()
        self.source = source
        self.tokenizer = tokenizer
        self.collate = RankingCollator(tokenizer, max_length=max_length)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers = num_workers
        self.train_probe_size = train_probe_size
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
            self.splits = splits

    def _rows(self, split: str) -> list[RankingRow]:
        self.setup()
        return self.splits[split]

    def _loader(self, rows, batch_size: int, shuffle: bool) -> DataLoader:
        return DataLoader(
            RowDataset(rows),
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=False,
            collate_fn=self.collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self._rows("train"), self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self._rows("test"), self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> list[DataLoader]:
        probe = self._rows("train")[: self.train_probe_size]
        return [
            self._loader(self._rows("test"), self.eval_batch_size, shuffle=False),
            self._loader(probe, self.eval_batch_size, shuffle=False),
        ]
