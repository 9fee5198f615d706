"""The collator tokenises a batch's completions together, with varying group sizes."""

import torch

from rcollapse.data.ranking_collator import RankingCollator
from rcollapse.data.ranking_datamodule import RankingDataModule
from rcollapse.data.ranking_rows import RankingRow
from rcollapse.data.sources import LengthOfflineSource
from rcollapse.models.tiny_encoder import build_tiny_tokenizer


class CountingTokenizer:
    def __init__(self, tokenizer):
        self.tokenizer, self.calls = tokenizer, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.tokenizer(*args, **kwargs)


def test_varying_group_sizes_one_tokenizer_call_best_first():
    tok = CountingTokenizer(build_tiny_tokenizer())
    rows = [
        RankingRow("a", "first prompt", ("one", "two"), 1.0),
        RankingRow("b", "second prompt", ("x y z", "x y", "x"), -1.0),
        RankingRow("c", "third", tuple(f"w{i}" for i in range(5)), 0.5),
    ]
    batch = RankingCollator(tok, max_length=32)(rows)
    assert tok.calls == 1
    assert batch["input_ids"].shape[0] == 10 and batch["attention_mask"].shape == batch["input_ids"].shape
    assert batch["group_sizes"].tolist() == [2, 3, 5]
    assert batch["openness"].tolist() == [1.0, -1.0, 0.5]
    assert batch["row_ids"] == ["a", "b", "c"]
    # Row b's completions come best-first: its first sequence is the longest.
    lengths = batch["attention_mask"].sum(1)
    assert lengths[2] > lengths[3] > lengths[4]


def test_datamodule_loaders():
    tok = build_tiny_tokenizer()
    dm = RankingDataModule(LengthOfflineSource(num_train=12, num_test=4), tok, batch_size=3,
                           eval_batch_size=4, max_length=64, train_probe_size=5)
    dm.setup()
    train = next(iter(dm.train_dataloader()))
    assert train["group_sizes"].tolist() == [8, 8, 8] and train["input_ids"].shape[1] <= 64
    assert next(iter(dm.val_dataloader()))["group_sizes"].numel() == 4
    test_loader, probe_loader = dm.test_dataloader()
    assert sum(b["group_sizes"].numel() for b in probe_loader) == 5
    assert isinstance(next(iter(test_loader))["openness"], torch.Tensor)
