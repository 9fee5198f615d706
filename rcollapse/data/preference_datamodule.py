"""Preference pairs for the ensemble stage: token batches, or cached backbone features.

:class:`PreferenceDataModule` serves token batches (:class:`PreferenceCollator`) of the training
source's ``train``/``val`` pairs and of the evaluation source's ``test`` pairs (the training
source's own ``test`` when no evaluation source is given). :class:`PairFeatureDataModule` serves
the same pairs as precomputed pooled features, for heads trained on a frozen backbone. Both
shuffle with :class:`ResumableShuffleSampler`, so a resumed run sees the batches an
uninterrupted one would.
"""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from rcollapse.config.checks import ConfigError
from rcollapse.data.data_arguments import build_source
from rcollapse.data.hub_access import DATASET_EVAL_PATH_KEY, DATASET_PATH_KEY
from rcollapse.data.preference_collator import PreferenceCollator
from rcollapse.data.preference_pairs import PreferencePair
from rcollapse.data.resumable_sampler import ResumableShuffleSampler

SPLITS = ("train", "val", "test")


class IndexedPairs(Dataset):
    def __init__(self, pairs: list[PreferencePair]):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[int, PreferencePair]:
        return index, self.pairs[index]


def _train_sampler(trainer, size: int, seed: int, batch_size: int):
    replicas, rank, skip = 1, 0, 0
    if trainer is not None:
        replicas, rank = trainer.world_size, trainer.global_rank
        per_rank = -(-size // replicas)
        skip = trainer.global_step % max(1, -(-per_rank // batch_size))
    return ResumableShuffleSampler(size, seed, batch_size, replicas, rank, skip)


class _SplitLoaders(L.LightningDataModule):
    """Lightning's three loaders from ``loader(split, shuffle)``: training shuffled, the others in order."""

    def loader(self, split: str, shuffle: bool = False) -> DataLoader:  # pragma: no cover - abstract
        raise NotImplementedError

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")


class PreferenceDataModule(_SplitLoaders):
    """Token batches of the training source's ``train``/``val`` pairs and the evaluation source's
    ``test`` pairs (the training source's own ``test`` without one).

    Each source is a built source or its class (a data set file's ``train_source`` /
    ``eval_source: {_target_: ..., _partial_: true, ...}``) built here. The file's keys that are
    not this module's (``source_args``: ``dataset.path``, ``dataset.num_pairs``, ...) build the
    training source, or, in an evaluation-only data set (``train_source: null``), the evaluation
    source (:mod:`rcollapse.data.data_arguments`). The evaluation source of a data set with both
    reads its data from ``eval_path`` (``dataset.eval_path``) and, for RewardBench, the Prior Sets
    from ``prior_path`` (``dataset.prior_path``; null: none).
    """

    FLAT_SOURCES = ("train_source", "eval_source")  # the first that is not null takes the file's other keys

    def __init__(self, train_source, tokenizer, eval_source=None, batch_size: int = 32, eval_batch_size: int = 64,
                 num_workers: int = 0, max_length: int = 512, shuffle_seed: int = 0, eval_path: str | None = None,
                 prior_path: str | None = None, **source_args):
        super().__init__()
        flat = {} if train_source is not None else source_args
        self.train_source = build_source(train_source, source_args, type(self)) if train_source is not None else None
        self.eval_source = build_source(eval_source, self._eval_args(flat, eval_path, prior_path), type(self))
        self.tokenizer = tokenizer
        self.collate = PreferenceCollator(tokenizer, max_length=max_length)
        self.batch_size, self.eval_batch_size = int(batch_size), int(eval_batch_size)
        self.num_workers, self.shuffle_seed = int(num_workers), int(shuffle_seed)
        self.splits: dict[str, list[PreferencePair]] | None = None

    @staticmethod
    def _eval_args(flat: dict, eval_path: str | None, prior_path: str | None) -> dict:
        """The evaluation source's arguments: an evaluation-only data set's flat keys (its
        ``dataset.path``), else ``eval_path``; ``prior_path`` when given."""
        args = dict(flat)
        if "path" in args:
            args["path_key"] = DATASET_PATH_KEY
        if eval_path is not None:
            if "path" in args:
                raise ConfigError(f"{DATASET_EVAL_PATH_KEY}: this evaluation-only data set reads its pairs from "
                                  f"{DATASET_PATH_KEY}; set that instead")
            args.update(path=eval_path, path_key=DATASET_EVAL_PATH_KEY)
        if prior_path is not None:
            args["prior_path"] = prior_path
        return args

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        splits = dict(self.train_source.load()) if self.train_source is not None else {}
        if self.eval_source is not None:
            splits["test"] = self.eval_source.load()["test"]
        for name in SPLITS:
            if not splits.get(name):
                owner = self.eval_source if name == "test" and self.eval_source is not None else self.train_source
                raise ValueError(f"{type(owner).__name__}.load() gave no {name!r} pairs")
        self.splits = {name: splits[name] for name in SPLITS}

    def pairs(self, split: str) -> list[PreferencePair]:
        self.setup()
        return self.splits[split]

    def loader(self, split: str, shuffle: bool = False) -> DataLoader:
        pairs = self.pairs(split)
        size = self.batch_size if split == "train" else self.eval_batch_size
        sampler = _train_sampler(self.trainer, len(pairs), self.shuffle_seed, size) if shuffle else None
        return DataLoader(IndexedPairs(pairs), batch_size=size, sampler=sampler, shuffle=False,
                          collate_fn=self.collate, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)


class _FeaturePairs(Dataset):
    def __init__(self, chosen: torch.Tensor, rejected: torch.Tensor):
        self.chosen, self.rejected = chosen, rejected

    def __len__(self) -> int:
        return self.chosen.size(0)

    def __getitem__(self, index: int):
        return index


class PairFeatureDataModule(_SplitLoaders):
    """Cached pooled features ``{split: (chosen [N, H], rejected [N, H])}`` in batches of
    ``{"features": [2B, H] (chosen first), "index": [B]}``, in the same order and batch sizes as
    :class:`PreferenceDataModule` would give the tokens."""

    def __init__(self, features: dict[str, tuple[torch.Tensor, torch.Tensor]], batch_size: int = 32,
                 eval_batch_size: int = 64, shuffle_seed: int = 0):
        super().__init__()
        self.features = features
        self.batch_size, self.eval_batch_size, self.shuffle_seed = int(batch_size), int(eval_batch_size), int(shuffle_seed)

    def loader(self, split: str, shuffle: bool = False) -> DataLoader:
        chosen, rejected = self.features[split]
        size = self.batch_size if split == "train" else self.eval_batch_size
        sampler = _train_sampler(self.trainer, chosen.size(0), self.shuffle_seed, size) if shuffle else None

        def collate(indices):
            index = torch.tensor(indices, dtype=torch.long)
            return {"features": torch.cat([chosen[index], rejected[index]]), "index": index}

        return DataLoader(_FeaturePairs(chosen, rejected), batch_size=size, sampler=sampler, shuffle=False,
                          collate_fn=collate)
