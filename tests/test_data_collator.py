"""The collator tokenises a batch's completions together (varying group sizes); the data module."""

import pytest
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


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


def test_varying_group_sizes_one_tokenizer_call_best_first(tokenizer):
    tok = CountingTokenizer(tokenizer)
    rows = [
        RankingRow("a", "first prompt", ("one", "two"), 1.0),
        RankingRow("b", "second prompt", ("x y z", "x y", "x"), -1.0),
        RankingRow("c", "third", tuple(f"w{i}" for i in range(5)), 0.5),
    ]
    batch = RankingCollator(tok, max_length=32)(rows)
    assert tok.calls == 1
    assert (
        batch["input_ids"].shape == batch["attention_mask"].shape == batch["token_type_ids"].shape
    )
    assert batch["input_ids"].shape[0] == 10
    assert batch["group_sizes"].dtype == torch.long and batch["group_sizes"].tolist() == [2, 3, 5]
    assert batch["openness"].dtype == torch.float32 and batch["openness"].tolist() == [
        1.0,
        -1.0,
        0.5,
    ]
    assert batch["row_ids"] == ["a", "b", "c"]
    # Row by row, each row's completions best-first: [CLS] prompt [SEP] completion [SEP].
    expected = [(r.prompt, c) for r in rows for c in r.completions]
    for k, (prompt, completion) in enumerate(expected):
        ids = batch["input_ids"][k][batch["attention_mask"][k].bool()].tolist()
        assert ids == tokenizer(prompt, completion)["input_ids"]
    assert (
        int(batch["attention_mask"].sum(1).max()) == batch["input_ids"].shape[1]
    )  # padded to the longest


def test_truncation_keeps_max_length(tokenizer):
    long_text = " ".join(["x"] * 100)
    batch = RankingCollator(tokenizer, max_length=16)(
        [RankingRow("r", long_text, (long_text, "x"), 0.0)]
    )
    assert batch["input_ids"].shape == (2, 16)


def test_datamodule_loaders():
    tok = build_tiny_tokenizer()
    dm = RankingDataModule(
        LengthOfflineSource(num_train=12, num_test=4),
        tok,
        batch_size=3,
        eval_batch_size=4,
        max_length=128,  # 64 cuts the length task's completions to one input (refused)
        train_probe_size=5,
    )
    dm.prepare_data()
    dm.setup("fit")
    rows = dm.splits
    dm.setup("test")
    assert dm.splits is rows  # loaded once
    train = next(iter(dm.train_dataloader()))
    assert train["group_sizes"].tolist() == [8, 8, 8] and train["input_ids"].shape[0] == 24
    assert train["input_ids"].shape[1] <= 128
    val = next(iter(dm.val_dataloader()))
    assert val["row_ids"] == [r.row_id for r in rows["test"]]
    assert dm.test_split_names == ("test", "train")
    test_loader, probe_loader = dm.test_dataloader()
    assert [b["row_ids"] for b in test_loader] == [[r.row_id for r in rows["test"]]]
    assert sum((b["row_ids"] for b in probe_loader), []) == [r.row_id for r in rows["train"][:5]]
    assert isinstance(next(iter(test_loader))["openness"], torch.Tensor)


def test_a_decoder_tokenizer_gets_question_and_answer_ending_with_eos():
    from rcollapse.data.ranking_collator import is_decoder_tokenizer, pair_texts
    from rcollapse.models.policy import build_tiny_tokenizer_for_generation
    from rcollapse.models.tiny_encoder import build_tiny_tokenizer

    encoder = build_tiny_tokenizer()
    assert not is_decoder_tokenizer(encoder)
    assert pair_texts(encoder, ["p"], ["c"]) == (["p"], ["c"])
    decoder = build_tiny_tokenizer_for_generation()
    decoder.sep_token = decoder.cls_token = None
    assert is_decoder_tokenizer(decoder)
    assert pair_texts(decoder, ["Why?"], ["Because."]) == (["Question: Why?\n\nAnswer:"],
                                                           [f" Because.{decoder.eos_token}"])
    rows = [RankingRow("a", "Why?", ("Because.", "No."), 1.0)]
    batch = RankingCollator(decoder, max_length=64)(rows)
    ids = batch["input_ids"][0][batch["attention_mask"][0].bool()].tolist()
    assert ids[-1] == decoder.eos_token_id  # the last token, which last-token pooling reads, closes the answer
