"""The CSV metrics log of a run that may be resumed (issue 16, item 1).

Lightning's ``CSVLogger`` deletes ``csv/metrics.csv`` when it starts in a dir that has one, so a
resumed run lost the log of its interrupted part. :class:`ResumableCSVLogger` keeps it when the run
resumes (``keep_existing``, set by :func:`rcollapse.runs.training_run.build_loggers` from ``resume``):
the file stays untouched until the resumed run's first save, which rewrites it whole (a temporary
file, then a rename): the old rows before the first step the resumed run logs, then the new ones;
rows at or after that step (logged after the last checkpoint, and replayed now) are dropped, so
every step appears once.
"""

from __future__ import annotations

import csv
import os

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from rcollapse.runs.atomic_files import atomic_writer


def _number(text: str):
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


class _KeepingWriter(ExperimentWriter):
    """An experiment writer that leaves an existing ``metrics.csv`` in place (Lightning's writer
    removes it at once) and, at the first save, rewrites it whole: its rows before the first newly
    logged step, then the new ones. A run that fails before logging anything leaves it as it was."""

    def __init__(self, log_dir: str, keep_existing: bool):
        path = os.path.join(log_dir, self.NAME_METRICS_FILE)
        self.kept: list[dict] | None = None
        if keep_existing and os.path.isfile(path):
            with open(path, newline="") as file:
                self.kept = [{k: _number(v) for k, v in row.items() if v not in ("", None)}
                             for row in csv.DictReader(file)]
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        if self.kept is None:  # nothing to keep: Lightning's warning and removal
            super()._check_log_dir_exists()

    def save(self) -> None:
        if self.kept is None or not self.metrics:
            return super().save()
        first = min(int(row["step"]) for row in self.metrics)
        rows = [row for row in self.kept if int(row.get("step", -1)) < first] + self.metrics
        self.kept = None
        self.metrics = rows
        self._record_new_keys()
        self._write_whole(self.metrics_keys, rows)
        self.metrics = []

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        with open(self.metrics_file_path, newline="") as file:
            rows = list(csv.DictReader(file))
        self._write_whole(fieldnames, rows)

    def _write_whole(self, fieldnames: list[str], rows: list[dict]) -> None:
        with atomic_writer(self.metrics_file_path, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows(rows)


class ResumableCSVLogger(CSVLogger):
    """``CSVLogger`` that keeps the interrupted part's rows when ``keep_existing`` is true."""

    def __init__(self, *args, keep_existing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.keep_existing = bool(keep_existing)

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _KeepingWriter(log_dir=self.log_dir, keep_existing=self.keep_existing)
        return self._experiment
