"""The ranking data module: train rows; test rows for validation; test and train probes at the end."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader, Dataset

from rcollapse.data.ranking_collator import RankingCollator


class RowDataset(Dataset):
    def __init__(self, rows):
        self.rows = list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):
        return self.rows[index]


class RankingDataModule(L.LightningDataModule):
    """Validation runs on the test prompts (the paper tracks them over training); ``test``
    evaluates the test prompts and a fixed probe of training prompts (collapse on both)."""

    test_split_names = ("test", "train")

    def __init__(self, source, tokenizer, batch_size: int = 8, eval_batch_size: int = 16,
                 num_workers: int = 0, max_length: int = 512, train_probe_size: int = 16):
        super().__init__()
        self.source = source
        self.collate = RankingCollator(tokenizer, max_length=max_length)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers = num_workers
        self.train_probe_size = train_probe_size
        self.splits: dict | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            self.splits = self.source.load()

    def _loader(self, rows, batch_size: int, shuffle: bool) -> DataLoader:
        return DataLoader(
            RowDataset(rows), batch_size=batch_size, shuffle=shuffle, collate_fn=self.collate,
            num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.splits["train"], self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.splits["test"], self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> list[DataLoader]:
        probe = self.splits["train"][: self.train_probe_size]
        return [self._loader(self.splits["test"], self.eval_batch_size, shuffle=False),
                self._loader(probe, self.eval_batch_size, shuffle=False)]
