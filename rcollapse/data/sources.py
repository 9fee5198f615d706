"""Where ranking rows come from. Each source's ``load()`` gives ``{"train": rows, "test": rows}``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from rcollapse.data.hub_access import (
    DataUnavailableError,
    data_unavailable_message,
    require_hub_or_local,
)
from rcollapse.data.length_task import MIN_ANSWER_WORDS, build_length_rows, split_train_test
from rcollapse.data.ranking_rows import MalformedRowError, RankingRow, validate_ranking_row
from rcollapse.data.synthetic_longform import generate_instruction_answer_pairs

PATH_KEY = "dataset.datamodule.source.path"


class LengthOfflineSource:
    """The length task on the project's procedural LongForm-like corpus (offline)."""

    def __init__(self, num_train: int = 256, num_test: int = 16, seed: int = 0, p_open: float = 0.5,
                 min_words: int = MIN_ANSWER_WORDS, max_words: int = 160):
        self.num_train, self.num_test = num_train, num_test
        self.seed, self.p_open = seed, p_open
        self.min_words, self.max_words = min_words, max_words

    def load(self) -> dict[str, list[RankingRow]]:
        pairs = generate_instruction_answer_pairs(
            self.num_train + self.num_test, seed=self.seed, min_words=self.min_words, max_words=self.max_words
        )
        rows = build_length_rows(pairs, seed=self.seed, p_open=self.p_open, id_prefix="length_offline")
        train, test = split_train_test(rows, self.num_train, self.num_test)
        return {"train": train, "test": test}


def _rows_to_jsonl(rows: list[RankingRow], path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as f:
        for row in rows:
            f.write(json.dumps({"id": row.row_id, "prompt": row.prompt,
                                "completions": list(row.completions), "openness": row.openness}) + "\n")
    tmp.replace(path)


def read_jsonl_rows(path: Path) -> list[RankingRow]:
    """Validated rows from a JSONL file; a bad line names the file and its line number."""
    rows = []
    with Path(path).open() as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as err:
                raise MalformedRowError(f"{path}, line {line_no}: not valid JSON ({err.msg})") from err
            rows.append(validate_ranking_row(raw, line_no, str(path), unit="line"))
    return rows


class LongFormLengthSource:
    """The length task on ``akoksal/LongForm`` (hub name or local copy), cached on disk."""

    def __init__(self, path: str = "akoksal/LongForm", split: str = "train", num_train: int = 8192,
                 num_test: int = 16, seed: int = 0, p_open: float = 0.5, cache_dir: str | None = None):
        self.path, self.split = path, split
        self.num_train, self.num_test = num_train, num_test
        self.seed, self.p_open = seed, p_open
        self.cache_dir = Path(cache_dir) if cache_dir else None

    def _cache_files(self) -> tuple[Path, Path] | None:
        if self.cache_dir is None:
            return None
        key = json.dumps([self.path, self.split, self.seed, self.p_open, self.num_train, self.num_test])
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        return self.cache_dir / f"{digest}-train.jsonl", self.cache_dir / f"{digest}-test.jsonl"

    def _load_pairs(self) -> list[tuple[str, str]]:
        import datasets

        source = require_hub_or_local(self.path, PATH_KEY)
        try:
            table = datasets.load_dataset(source, split=self.split)
        except (ConnectionError, OSError, FileNotFoundError) as err:
            raise DataUnavailableError(
                data_unavailable_message(self.path, PATH_KEY, f"{type(err).__name__}: {err}")
            ) from err
        missing = {"input", "output"} - set(table.column_names)
        if missing:
            raise MalformedRowError(
                f"{self.path} ({self.split}): missing column(s) {sorted(missing)}; "
                f"found {table.column_names}"
            )
        return list(zip(table["input"], table["output"]))

    def load(self) -> dict[str, list[RankingRow]]:
        files = self._cache_files()
        if files and all(f.exists() for f in files):
            return {"train": read_jsonl_rows(files[0]), "test": read_jsonl_rows(files[1])}
        rows = build_length_rows(self._load_pairs(), seed=self.seed, p_open=self.p_open, id_prefix="longform")
        train, test = split_train_test(rows, self.num_train, self.num_test)
        if files:
            files[0].parent.mkdir(parents=True, exist_ok=True)
            _rows_to_jsonl(train, files[0])
            _rows_to_jsonl(test, files[1])
        return {"train": train, "test": test}


class JsonlRankingSource:
    """A researcher's own rankings: JSONL files of raw rows (prompt, completions, ranking, type)."""

    def __init__(self, train_path: str, test_path: str):
        self.train_path, self.test_path = Path(train_path), Path(test_path)

    def load(self) -> dict[str, list[RankingRow]]:
        return {"train": read_jsonl_rows(self.train_path), "test": read_jsonl_rows(self.test_path)}
