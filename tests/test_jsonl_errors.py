"""A researcher's own JSONL rankings that cannot be read fail naming the key, the file and the
line (issue 16, items 13 and 14)."""

import pytest

from rcollapse.data.ranking_rows import MalformedRowError
from rcollapse.data.sources import JsonlRankingSource

GOOD = '{"prompt": "p", "completions": ["a", "b"], "ranking": [0, 1], "type": "open"}\n'


def load(tmp_path, train_bytes: bytes | None, test_text: str = GOOD):
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    if train_bytes is not None:
        train.write_bytes(train_bytes)
    test.write_text(test_text, encoding="utf-8")
    return JsonlRankingSource(str(train), str(test)).load()


def test_a_line_that_is_not_utf8_names_key_file_and_line(tmp_path):
    with pytest.raises(MalformedRowError) as err:
        load(tmp_path, GOOD.encode() + b'{"prompt": "caf\xe9"}\n')
    assert str(err.value).startswith(f"dataset.train_path: {tmp_path / 'train.jsonl'}, line 2: not UTF-8 text")


def test_an_empty_file_names_key_and_file(tmp_path):
    with pytest.raises(MalformedRowError) as err:
        load(tmp_path, GOOD.encode(), test_text="\n\n")
    assert str(err.value) == f"dataset.test_path: {tmp_path / 'test.jsonl'} holds no rows (the file is empty or blank)"


def test_a_missing_path_or_a_directory_names_the_key(tmp_path):
    with pytest.raises(MalformedRowError) as err:
        load(tmp_path, None)
    assert str(err.value).startswith(f"dataset.train_path: {tmp_path / 'train.jsonl'} does not exist")
    (tmp_path / "train.jsonl").mkdir()
    with pytest.raises(MalformedRowError) as err:
        load(tmp_path, None)
    assert str(err.value) == f"dataset.train_path: {tmp_path / 'train.jsonl'} is a directory, not a JSONL file of rankings"


def test_good_files_still_load(tmp_path):
    data = load(tmp_path, GOOD.encode())
    assert len(data["train"]) == len(data["test"]) == 1
