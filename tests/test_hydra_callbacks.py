"""FailFastCallback speaks only in a multirun: a single failing run prints Hydra's error alone."""

import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.e2e  # both tests start run.py

# fails in config validation, before any training: a few seconds
FAILING = ["stage.max_steps=0", "hydra/job_logging=none"]


def _run_py(*args: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run.py", *args, *FAILING], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_a_failing_single_run_prints_no_callback_warning(tmp_path):
    proc = _run_py(f"hydra.run.dir={tmp_path / 'run'}", tmp_path=tmp_path)
    assert proc.returncode != 0
    assert "stage.max_steps: must be a positive integer" in proc.stderr
    assert "FailFastCallback" not in proc.stderr and "hydra.job.num" not in proc.stderr, proc.stderr


def test_a_failing_multirun_job_is_reported_and_fail_fast_stops(tmp_path):
    proc = _run_py("-m", f"hydra.sweep.dir={tmp_path / 'sweep'}", "hydra/hydra_logging=none", "fail_fast=true",
                   tmp_path=tmp_path)
    assert proc.returncode != 0
    assert "fail_fast: job 0 failed: ConfigError: stage.max_steps" in proc.stderr, proc.stderr
    assert "raised" not in proc.stderr  # no callback warning
