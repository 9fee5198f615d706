"""Hydra callbacks: what happens around the jobs of a multirun."""

from __future__ import annotations

import logging

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class FailFastCallback(Callback):
    """Hydra goes on with a sweep when a job fails (its status.json holds the traceback) and
    reports the failure when the sweep ends. With ``fail_fast=true`` the first failed job stops
    a sequential sweep instead. (Slurm array jobs are independent: each one only stops itself.)

    A single run (no ``-m``) has no sweep to go on with or stop: Hydra prints its error and exits
    non-zero, so the callback says nothing there (a run's config has no ``hydra.job.num``)."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        if job_return.status != JobStatus.FAILED:
            return
        if OmegaConf.select(config, "hydra.mode") != RunMode.MULTIRUN:
            return
        error = job_return._return_value
        num = OmegaConf.select(config, "hydra.job.num", default="?", throw_on_missing=False)
        if config.get("fail_fast", False) is True:  # the config check refuses a non-boolean
            # Hydra catches every Exception raised by the task and by callbacks; SystemExit is not
            # one, so it ends the sweep here.
            raise SystemExit(f"fail_fast: job {num} failed: {type(error).__name__}: {error}")
        log.error("job %s failed (%s); the sweep goes on (fail_fast=true stops it). See status.json "
                  "in %s.", num, error, config.hydra.runtime.output_dir)
