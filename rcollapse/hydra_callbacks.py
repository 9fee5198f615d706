"""Hydra callbacks: what happens around the jobs of a multirun."""

from __future__ import annotations

import logging

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class FailFastCallback(Callback):
    """Hydra goes on with a sweep when a job fails (its status.json holds the traceback) and
    reports the failure when the sweep ends. With ``fail_fast=true`` the first failed job stops
    a sequential sweep instead. (Slurm array jobs are independent: each one only stops itself.)"""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        if job_return.status != JobStatus.FAILED:
            return
        error = job_return._return_value
        if config.get("fail_fast", False):
            # Hydra catches every Exception raised by the task and by callbacks; SystemExit is not
            # one, so it ends the sweep here.
            raise SystemExit(f"fail_fast: job {config.hydra.job.num} failed: {type(error).__name__}: {error}")
        log.error("job %s failed (%s); the sweep goes on (fail_fast=true stops it). See status.json "
                  "in %s.", config.hydra.job.num, error, config.hydra.runtime.output_dir)
