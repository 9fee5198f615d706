"""The project's sweeps on a real single-node Slurm cluster (issue 7), run by `make test-slurm`.

`scripts/slurm_local.sh start` brings the cluster up and `eval "$(scripts/slurm_local.sh env)"`
points SLURM_CONF at it; without one these tests skip (the fast suite deselects them).
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import FAST_TRAINING, REPO

# a sweep's run.py is given up to 1500 s (run_py), a pre-emption test runs two: past the default 600 s
pytestmark = [pytest.mark.slurm, pytest.mark.timeout(3600)]


def _cluster_up() -> bool:
    if not os.environ.get("SLURM_CONF") or not shutil.which("sinfo"):
        return False
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    return proc.returncode == 0 and bool(proc.stdout.strip())


@pytest.fixture(autouse=True)
def _require_cluster():
    if not _cluster_up():
        pytest.skip("no Slurm cluster: run `make test-slurm` (scripts/slurm_local.sh start)")


def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}


def run_py(*args, timeout=1500, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**_env(), **env})


def report(*dirs) -> str:
    proc = subprocess.run([sys.executable, "-m", "rcollapse.report", *map(str, dirs)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _status(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


def _job_start_times(sweep: Path) -> list[float]:
    """When each Slurm task began (submitit's "Starting with JobEnvironment" log lines)."""
    import datetime as dt
    import re

    times = []
    for log in (sweep / ".submitit").rglob("*_log.out"):
        for match in re.finditer(r"submitit INFO \((\S+ \S+)\) - Starting with JobEnvironment", log.read_text()):
            times.append(dt.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp())
    return times


def test_utility_comparison_sweep_runs_as_a_slurm_array_at_demo_size(tmp_path):
    sweep = tmp_path / "sweep"
    start = time.time()
    proc = run_py("-m", "+sweep=utility_comparison", "hardware=slurm_local", "trainer.enable_progress_bar=false",
                  f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-4000:]
    first_start = min(_job_start_times(sweep))
    print(f"\nSlurm sweep of 5 demo-size jobs: {time.time() - start:.0f} s in all; the first job started "
          f"{first_start - start:.1f} s after `run.py -m` was launched")
    arrays = set()
    for job in range(5):
        status = _status(sweep / str(job))
        assert status["status"] == "completed"
        arrays.add(status["slurm_array_job_id"])
        assert status["slurm_array_task_id"] == str(job)
        assert "rm/test/open_closed_distance" in json.loads((sweep / str(job) / "metrics.json").read_text())
    assert len(arrays) == 1  # one Slurm array
    out = report(sweep)
    assert "5 completed" in out and "slurm_job" in out
    for utility in ("x_inv", "logsigmoid", "adaptive"):
        assert utility in out


def test_a_failing_job_leaves_the_others_and_the_report_names_its_slurm_job(tmp_path):
    sweep = tmp_path / "sweep"
    # eps=0 makes x_inv infinite at ties: that job fails
    proc = run_py("-m", "utility=x_inv,x,log", "utility.eps=0", "hardware=slurm_local", *FAST_TRAINING,
                  f"hydra.sweep.dir={sweep}")
    assert proc.returncode != 0
    failed = _status(sweep / "0")
    assert failed["status"] == "failed" and "NonFiniteLossError" in failed["traceback"]
    assert _status(sweep / "1")["status"] == "completed" and (sweep / "1" / "metrics.json").exists()
    out = report(sweep)
    failed_line = next(line for line in out.splitlines() if "[failed]" in line)
    assert f"Slurm job {failed['slurm_array_job_id']}_0" in failed_line and "NonFiniteLossError" in failed_line


LONG_TRAINING = [
    "stage.max_steps=300", "stage.val_every_n_steps=100", "stage.checkpoint_every_n_steps=10",
    "dataset.num_train=64", "dataset.num_test=8",
    "dataset.batch_size=4", "dataset.train_probe_size=4",
    "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=5", "seed=3",
]


def _last_checkpoint_step(run_dir: Path) -> int:
    import torch

    last = run_dir / "checkpoints" / "last.ckpt"
    try:
        return int(torch.load(last, map_location="cpu", weights_only=False)["global_step"])
    except Exception:  # not written yet, or being written
        return -1


def test_a_preempted_job_is_requeued_and_resumes_from_its_last_checkpoint(tmp_path):
    sweep = tmp_path / "sweep"
    proc = subprocess.Popen([sys.executable, "run.py", "-m", "utility=log", "hardware=slurm_local", *LONG_TRAINING,
                             f"hydra.sweep.dir={sweep}"],
                            cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run_dir = sweep / "0"
    while _last_checkpoint_step(run_dir) < 10:  # a job that never gets there is stopped by the test's timeout
        assert proc.poll() is None, "the job ended before its checkpoint at step 10"
        time.sleep(0.5)
    job = _status(run_dir)["slurm_job_id"]
    interrupted_at = _last_checkpoint_step(run_dir)
    assert interrupted_at < 300
    # what a pre-emption does: USR2 to the job's steps; submitit checkpoints and requeues the job
    subprocess.run(["scancel", "--signal=USR2", job], check=True, env=_env())
    # Slurm holds a requeued job for a while (reason BeginTime); let it start at once
    for _ in range(120):
        state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True,
                               env=_env()).stdout.strip()
        if state == "PENDING":
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=_env())
            break
        time.sleep(0.5)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-4000:]
    logs = "".join(p.read_text(errors="replace") for p in (sweep / ".submitit").rglob("*_log.*"))
    assert "requeu" in logs.lower(), logs[-3000:]
    assert "resuming from" in logs and "last.ckpt" in logs
    assert _status(run_dir)["status"] == "completed"
    # the same run, never interrupted, on the basic launcher (one thread, as the Slurm task had:
    # a different thread count changes the order of float sums)
    reference = tmp_path / "reference"
    ref = run_py("utility=log", *LONG_TRAINING, f"hydra.run.dir={reference}", OMP_NUM_THREADS="1")
    assert ref.returncode == 0, ref.stderr[-4000:]
    a = json.loads((reference / "metrics.json").read_text())
    b = json.loads((run_dir / "metrics.json").read_text())
    for key in ("rm/test/open_closed_distance", "rm/test/pair_acc", "rm/val/loss", "rm/train/closed_reward_rank5"):
        assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key


def test_two_tasks_on_the_node_train_with_ddp_through_the_launcher(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_py("-m", "utility=log", "hardware=slurm_local", "hardware.tasks_per_node=2", *FAST_TRAINING,
                  f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-4000:]
    single = tmp_path / "single"
    assert run_py("utility=log", *FAST_TRAINING, f"hydra.run.dir={single}").returncode == 0
    ddp_metrics = json.loads((sweep / "0" / "metrics.json").read_text())
    assert set(ddp_metrics) == set(json.loads((single / "metrics.json").read_text()))
    logs = {p.name: p.read_text(errors="replace") for p in (sweep / ".submitit").rglob("*_log.*")}
    assert any("_1_log" in name for name in logs), sorted(logs)  # a second task ran
    assert "global_rank=1(2)" in "\n".join(logs.values())  # submitit started task 1 of 2
    status = _status(sweep / "0")
    assert status["world_size"] == 2 and status["lightning_slurm_environment"]  # one DDP job over both
