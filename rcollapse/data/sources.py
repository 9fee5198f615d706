"""Where ranking rows come from: a source's ``load()`` gives ``{"train": rows, "test": rows}``."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from rcollapse.data.hub_access import DATASET_PATH_KEY, load_hub_dataset
from rcollapse.data.length_task import MIN_ANSWER_WORDS, build_length_rows, split_fitting
from rcollapse.data.ranking_rows import MalformedRowError, RankingRow, validate_ranking_row
from rcollapse.data.synthetic_longform import generate_instruction_answer_pairs
from rcollapse.runs.atomic_files import write_json_atomic

# The config key that takes LongForm's hub name or a local directory
# (conf/dataset/longform_length.yaml).
PATH_KEY = DATASET_PATH_KEY
# Bump when the construction changes, so that cached rows built the old way are not reused.
CACHE_VERSION = 2


class LengthOfflineSource:
    """The length task on the project's procedural LongForm-like corpus (offline).

    ``num_train + num_test`` pairs are generated (answers of ``min_words..max_words`` words,
    ``min_words`` at least the task's 100 so that none is filtered out), built into rows
    with the paper's rules and split first / last. Given a fit check (``fit_rows_to``, from the
    data module: rows whose completions stay distinct after ``model.max_length``), rows that do not
    fit are skipped and counted (``stats["rows_dropped_too_long"]``); more pairs are generated so
    that ``num_train + num_test`` rows remain.
    """

    stats_name = "length_offline"  # the reward stage's metrics: rm/data/<stats_name>/<count>

    def __init__(
        self,
        num_train: int = 256,
        num_test: int = 16,
        seed: int = 0,
        p_open: float = 0.5,
        min_words: int = MIN_ANSWER_WORDS,
        max_words: int = 160,
    ):
        if min_words < MIN_ANSWER_WORDS:
            raise ValueError(
                f"dataset.min_words={min_words}: the length task keeps answers of >= {MIN_ANSWER_WORDS} "
                f"words, so generated answers need at least that many"
            )
        self.num_train, self.num_test = num_train, num_test
        self.seed, self.p_open = seed, p_open
        self.min_words, self.max_words = min_words, max_words
        self.fit = None
        self.stats: dict[str, int] = {}

    def fit_rows_to(self, fit) -> None:
        """Build only rows for which ``fit(row)`` is true (the data module's RowFit)."""
        self.fit = fit

    def load(self) -> dict[str, list[RankingRow]]:
        wanted = self.num_train + self.num_test
        rows, spare = [], 0
        while True:  # too few rows fit: generate more pairs (a new draw, deterministic for its size)
            pairs = generate_instruction_answer_pairs(
                wanted + spare, seed=self.seed, min_words=self.min_words, max_words=self.max_words
            )
            rows = build_length_rows(pairs, seed=self.seed, p_open=self.p_open, id_prefix="length_offline")
            try:
                train, test, dropped = split_fitting(rows, self.num_train, self.num_test, self.fit)
                break
            except ValueError:
                if spare >= 4 * wanted:
                    raise
                spare = max(2 * spare, wanted // 4, 8)
        self.stats = {"rows_dropped_too_long": dropped}
        return {"train": train, "test": test}


def _rows_to_jsonl(rows: list[RankingRow], path: Path) -> None:
    """Write rows as raw JSONL rows (best-first, so no ``ranking``); atomic per file."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            raw = {
                "id": row.row_id,
                "prompt": row.prompt,
                "completions": list(row.completions),
                "openness": row.openness,
            }
            f.write(json.dumps(raw, ensure_ascii=False) + "\n")
    tmp.replace(path)


def read_jsonl_rows(path: str | Path, key: str | None = None) -> list[RankingRow]:
    """Validated rows from a JSONL file (UTF-8). A missing path, a directory, an empty file, a
    line that is not UTF-8 or not JSON, or a malformed row fails naming the file (and the line),
    and ``key``, the config key that gave the path, when known."""
    path = Path(path)
    where = f"{key}: {path}" if key else str(path)
    if not path.exists():
        raise MalformedRowError(f"{where} does not exist; pass the path of a JSONL file of rankings "
                                "(one JSON object per line: prompt, completions, ranking, type)")
    if path.is_dir():
        raise MalformedRowError(f"{where} is a directory, not a JSONL file of rankings")
    rows = []
    with path.open("rb") as f:
        for line_no, raw_line in enumerate(f, start=1):
            try:
                line = raw_line.decode("utf-8")
            except UnicodeDecodeError as err:
                raise MalformedRowError(f"{where}, line {line_no}: not UTF-8 text ({err.reason} at byte "
                                        f"{err.start} of the line); save the file as UTF-8") from err
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as err:
                raise MalformedRowError(f"{where}, line {line_no}: not valid JSON ({err.msg})") from err
            rows.append(validate_ranking_row(raw, line_no, str(path), unit="line"))
    if not rows:
        raise MalformedRowError(f"{where} holds no rows (the file is empty or blank)")
    return rows


class LongFormLengthSource:
    """The length task on ``akoksal/LongForm`` (hub name or local copy), cached on disk.

    ``path`` goes to ``datasets.load_dataset(path, split=split)``: the hub name, or a local
    directory holding the hub repo's files. Columns ``input`` and ``output`` are selected by
    name (others, e.g. ``source`` and ``subset``, are ignored). With ``cache_dir`` the built
    rows are written there as JSONL, keyed by a hash of the arguments (and of the fit check), and
    reused, with their counts beside them. ``path_key`` is the config key named in the offline
    error (where a local copy goes).

    Given a fit check (``fit_rows_to``, from the data module), a row whose completions become one
    input after ``model.max_length`` tokens (a long instruction: LongForm holds long NIv2 and
    BigBench inputs) is dropped, the next one taken in its place, and counted:
    ``stats["rows_dropped_too_long"]``, ``rm/data/longform_length/rows_dropped_too_long`` in
    ``metrics.json``.
    """

    stats_name = "longform_length"  # the reward stage's metrics: rm/data/<stats_name>/<count>

    def __init__(
        self,
        path: str = "akoksal/LongForm",
        split: str = "train",
        num_train: int = 8192,
        num_test: int = 16,
        seed: int = 0,
        p_open: float = 0.5,
        cache_dir: str | None = None,
        path_key: str = PATH_KEY,
    ):
        self.path, self.split = str(path), split
        self.num_train, self.num_test = num_train, num_test
        self.seed, self.p_open = seed, p_open
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.path_key = path_key
        self.fit = None
        self.stats: dict[str, int] = {}

    def fit_rows_to(self, fit) -> None:
        """Build only rows for which ``fit(row)`` is true (the data module's RowFit)."""
        self.fit = fit

    def cache_files(self) -> tuple[Path, Path, Path] | None:
        """The (train, test) JSONL files of the cache and its counts' JSON, or None without
        ``cache_dir``."""
        if self.cache_dir is None:
            return None
        key = json.dumps(
            [
                CACHE_VERSION,
                self.path,
                self.split,
                self.seed,
                self.p_open,
                self.num_train,
                self.num_test,
                MIN_ANSWER_WORDS,
                self.fit.key if self.fit is not None else None,
            ]
        )
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        stem = f"longform_length-{digest}"
        return (self.cache_dir / f"{stem}-train.jsonl", self.cache_dir / f"{stem}-test.jsonl",
                self.cache_dir / f"{stem}-stats.json")

    def _load_pairs(self) -> list[tuple[str, str]]:
        table = load_hub_dataset(self.path, self.path_key, self.split)
        missing = [c for c in ("input", "output") if c not in table.column_names]
        if missing:
            raise MalformedRowError(
                f"{self.path} ({self.path_key}), split {self.split!r}: "
                f"missing column(s) {missing}; "
                f"found {table.column_names} (LongForm has input, output, source, subset)"
            )
        table = table.select_columns(["input", "output"])
        return [(row["input"], row["output"]) for row in table]

    def _build(self) -> tuple[dict[str, list[RankingRow]], dict[str, int]]:
        rows = build_length_rows(
            self._load_pairs(), seed=self.seed, p_open=self.p_open, id_prefix="longform"
        )
        train, test, dropped = split_fitting(rows, self.num_train, self.num_test, self.fit)
        return {"train": train, "test": test}, {"rows_dropped_too_long": dropped}

    def prepare(self) -> None:
        """Build and cache the rows if the cache lacks them (a data module's ``prepare_data``)."""
        files = self.cache_files()
        if files and not all(f.exists() for f in files):
            self._write_cache(*self._build(), files)

    @staticmethod
    def _write_cache(data: dict[str, list[RankingRow]], stats: dict[str, int], files: tuple[Path, ...]) -> None:
        files[0].parent.mkdir(parents=True, exist_ok=True)
        _rows_to_jsonl(data["train"], files[0])
        _rows_to_jsonl(data["test"], files[1])
        write_json_atomic(files[2], stats)

    def load(self) -> dict[str, list[RankingRow]]:
        files = self.cache_files()
        if files and all(f.exists() for f in files):
            self.stats = {k: int(v) for k, v in json.loads(files[2].read_text()).items()}
            return {"train": read_jsonl_rows(files[0]), "test": read_jsonl_rows(files[1])}
        data, self.stats = self._build()
        if files:
            self._write_cache(data, self.stats, files)
        if self.stats["rows_dropped_too_long"]:
            print(f"longform_length: {self.stats['rows_dropped_too_long']} row(s) dropped: their completions are "
                  "identical after model.max_length tokens (the next rows taken in their place)")
        return data


class JsonlRankingSource:
    """A researcher's own rankings: JSONL files of raw rows (prompt, completions, ranking, type)."""

    def __init__(self, train_path: str, test_path: str, train_key: str = "dataset.train_path",
                 test_key: str = "dataset.test_path"):
        self.train_path, self.test_path = Path(train_path), Path(test_path)
        self.train_key, self.test_key = train_key, test_key

    def load(self) -> dict[str, list[RankingRow]]:
        return {"train": read_jsonl_rows(self.train_path, self.train_key),
                "test": read_jsonl_rows(self.test_path, self.test_key)}
