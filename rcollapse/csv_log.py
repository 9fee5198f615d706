"""The CSV metrics log of a run that may be resumed (issue 16, item 1).

Lightning's ``CSVLogger`` deletes ``csv/metrics.csv`` when it starts in a dir that has one, so a
resumed run lost the log of its interrupted part. :class:`ResumableCSVLogger` keeps it when the run
resumes (``keep_existing``, set by :func:`rcollapse.training_run.build_loggers` from ``resume``):
the old rows before the first step the resumed run logs are written back once, ahead of the new
ones; rows at or after that step (logged after the last checkpoint, and replayed now) are dropped,
so every step appears once.
"""

from __future__ import annotations

import csv
import os

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


def _number(text: str):
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


class _KeepingWriter(ExperimentWriter):
    """An experiment writer that reads the rows of an existing ``metrics.csv`` before Lightning's
    writer removes it, and writes back those before the first newly logged step at the first save."""

    def __init__(self, log_dir: str, keep_existing: bool):
        path = os.path.join(log_dir, self.NAME_METRICS_FILE)
        self.kept: list[dict] | None = None
        if keep_existing and os.path.isfile(path):
            with open(path, newline="") as file:
                self.kept = [{k: _number(v) for k, v in row.items() if v not in ("", None)}
                             for row in csv.DictReader(file)]
        super().__init__(log_dir)

    def save(self) -> None:
        if self.kept is not None and self.metrics:
            first = min(int(row["step"]) for row in self.metrics)
            self.metrics = [row for row in self.kept if int(row.get("step", -1)) < first] + self.metrics
            self.kept = None
        super().save()


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
