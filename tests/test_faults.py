"""Issue 16's faults: a crash, a damaged checkpoint, a full disk, SIGTERM / Ctrl-C. Each one loses
nothing of the run's records and is recorded for what it was."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from rcollapse.pipeline import run
from rcollapse.runs.checkpoint_files import (
    AtomicCheckpointIO,
    CheckpointUnreadableError,
    checkpoint_defect,
    checkpoint_to_resume,
)
from rcollapse.stages.ranking_reward_module import RankingRewardModule
from tests.conftest import FAST_TRAINING, REPO, compose_config

COMMON = ["utility=x", *FAST_TRAINING, "stage.max_steps=9", "trainer.log_every_n_steps=1"]  # validations at 3, 6, 9


def crash_at_step(monkeypatch, step: int) -> None:
    original = RankingRewardModule.training_step

    def crashing(self, batch, batch_idx):
        if self.global_step >= step:
            raise RuntimeError("node lost")
        return original(self, batch, batch_idx)

    monkeypatch.setattr(RankingRewardModule, "training_step", crashing)


def crashed_run(tmp_path: Path, monkeypatch, step: int, extra=()) -> Path:
    with monkeypatch.context() as patch:
        crash_at_step(patch, step)
        with pytest.raises(RuntimeError, match="node lost"):
            run(compose_config([*COMMON, *extra], tmp_path))
    return tmp_path / "run"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The same run, never interrupted."""
    base = tmp_path_factory.mktemp("uninterrupted")
    run(compose_config(COMMON, base))
    return base / "run"


def _history(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "reward_history.json").read_text())


def _ckpt_step(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=False)["global_step"])


def _partial_files(run_dir: Path) -> list[Path]:
    return sorted(run_dir.rglob(".*.partial-*"))


# ---- item 2: the reward history and its figure cover the whole run -----------------------------
def test_a_resumed_run_keeps_the_reward_history_of_both_parts(tmp_path, monkeypatch, uninterrupted):
    out = crashed_run(tmp_path, monkeypatch, step=7)  # checkpoint at 6
    run(compose_config([*COMMON, f"resume={out}"], tmp_path))
    reference = _history(uninterrupted)
    resumed = _history(out)
    assert [e["step"] for e in resumed] == [e["step"] for e in reference] == [3, 6, 9]
    for mine, theirs in zip(resumed, reference, strict=True):
        np.testing.assert_allclose(np.concatenate(mine["rewards"]), np.concatenate(theirs["rewards"]), atol=1e-5)
    assert (out / "figures" / "rewards_over_training.png").stat().st_size > 0


def test_a_resumed_wandb_run_continues_the_same_wandb_run(tmp_path, monkeypatch):
    from tests.wandb_records import run_contents_when_written

    out = crashed_run(tmp_path, monkeypatch, step=4, extra=["logger=wandb"])
    run(compose_config([*COMMON, "logger=wandb", f"resume={out}"], tmp_path))
    runs = sorted((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 2, runs  # W&B keeps one folder per process; `wandb sync` joins them by id
    ids = {p.name.rsplit("-", 1)[1] for p in runs}
    assert len(ids) == 1, f"the resumed job started another W&B run: {ids}"
    second = run_contents_when_written(next(runs[1].glob("run-*.wandb")))
    assert "rm/test/open_closed_distance" in second["history"] | second["summary"]


# ---- item 4: a damaged checkpoint is never trusted -----------------------------------------------
def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_defects_of_damaged_checkpoints_are_named(tmp_path):
    good = tmp_path / "good.ckpt"
    torch.save({"global_step": 3, "w": torch.zeros(1000)}, good)
    assert checkpoint_defect(good) is None
    truncated = tmp_path / "truncated.ckpt"
    shutil.copy(good, truncated)
    _truncate(truncated)
    assert "truncated" in checkpoint_defect(truncated)
    (tmp_path / "empty.ckpt").write_bytes(b"")
    assert checkpoint_defect(tmp_path / "empty.ckpt") == "empty file"
    corrupt = tmp_path / "corrupt.ckpt"  # the zip's directory intact, a member's bytes changed
    data = bytearray(good.read_bytes())
    data[len(data) // 3] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    assert "checksum" in checkpoint_defect(corrupt) or "Error" in checkpoint_defect(corrupt)


def test_the_newest_intact_checkpoint_is_chosen_and_partial_writes_removed(tmp_path, caplog):
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    for step in (3, 6):
        torch.save({"global_step": step}, ckpts / f"step{step:06d}.ckpt")
        os.utime(ckpts / f"step{step:06d}.ckpt", (step, step))
    shutil.copy(ckpts / "step000006.ckpt", ckpts / "last.ckpt")
    assert checkpoint_to_resume(ckpts) == ckpts / "last.ckpt"
    _truncate(ckpts / "last.ckpt")
    _truncate(ckpts / "step000006.ckpt")
    partial = ckpts / ".last.ckpt.partial-12345"
    partial.write_bytes(b"half a checkpoint")
    with caplog.at_level("WARNING"):
        assert checkpoint_to_resume(ckpts) == ckpts / "step000003.ckpt"
    assert "last.ckpt" in caplog.text and "step000006.ckpt" in caplog.text
    assert not partial.exists()
    # damaged files are kept, out of the way
    assert {p.name for p in ckpts.iterdir()} == {"last.ckpt.damaged", "step000006.ckpt.damaged", "step000003.ckpt"}
    shutil.copy(ckpts / "last.ckpt.damaged", ckpts / "last.ckpt")
    shutil.copy(ckpts / "step000006.ckpt.damaged", ckpts / "step000006.ckpt")
    _truncate(ckpts / "step000003.ckpt")
    with pytest.raises(CheckpointUnreadableError, match=r"last\.ckpt.*step000006\.ckpt.*step000003\.ckpt"):
        checkpoint_to_resume(ckpts)
    assert checkpoint_to_resume(tmp_path / "none") is None  # killed before its first checkpoint


def test_a_truncated_last_checkpoint_falls_back_to_the_intact_one(tmp_path, monkeypatch, caplog, uninterrupted):
    out = crashed_run(tmp_path, monkeypatch, step=4)  # checkpoints at 3: step000003.ckpt and last.ckpt
    _truncate(out / "checkpoints" / "last.ckpt")
    with caplog.at_level("WARNING"):
        run(compose_config([*COMMON, f"resume={out}"], tmp_path))
    assert "step000003.ckpt" in caplog.text and "last.ckpt" in caplog.text
    assert json.loads((out / "status.json").read_text())["status"] == "completed"
    assert _ckpt_step(out / "checkpoints" / "last.ckpt") == 9
    # the damaged file kept aside, a fresh last.ckpt (not last-v1.ckpt); the one resumed from stays too
    assert {p.name for p in (out / "checkpoints").iterdir()} == {"last.ckpt", "last.ckpt.damaged", "step000003.ckpt",
                                                                  "step000009.ckpt"}
    a = json.loads((uninterrupted / "metrics.json").read_text())
    b = json.loads((out / "metrics.json").read_text())
    for key in ("rm/test/pair_acc", "rm/test/open_closed_distance", "rm/val/loss"):
        assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key


def test_a_completed_run_whose_checkpoints_are_all_damaged_stays_completed(tmp_path):
    run(compose_config(COMMON, tmp_path))
    out = tmp_path / "run"
    log_before = (out / "csv" / "metrics.csv").read_bytes()
    metrics_before = (out / "metrics.json").read_bytes()
    for ckpt in (out / "checkpoints").glob("*.ckpt"):
        _truncate(ckpt)
    with pytest.raises(CheckpointUnreadableError, match=r"no intact checkpoint.*last\.ckpt"):
        run(compose_config([*COMMON, "stage.max_steps=12", f"resume={out}", "resume_force=true"], tmp_path))
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == "completed" and "CheckpointUnreadableError" in status["last_resume_error"]
    assert (out / "csv" / "metrics.csv").read_bytes() == log_before
    assert (out / "metrics.json").read_bytes() == metrics_before


# ---- item 5: a full disk -------------------------------------------------------------------------
def test_a_failed_checkpoint_write_keeps_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"global_step": 3}, path)

    def disk_full(obj, handle):
        handle.write(b"PK" + b"\0" * 4096)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("rcollapse.runs.checkpoint_files.torch.save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        AtomicCheckpointIO().save_checkpoint({"global_step": 6}, path)
    monkeypatch.undo()
    assert checkpoint_defect(path) is None and _ckpt_step(path) == 3
    assert _partial_files(tmp_path) == []


def test_disk_full_while_checkpointing_records_failed_and_a_resume_completes(tmp_path, monkeypatch):
    real_save, calls = torch.save, []

    def full_at_step_6(obj, handle):  # step 3 writes step000003.ckpt and last.ckpt; step 6's first write fails
        calls.append(obj.get("global_step"))
        if obj.get("global_step", 0) >= 6:
            handle.write(b"PK" + b"\0" * 4096)
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, handle)

    with monkeypatch.context() as patch:
        patch.setattr("rcollapse.runs.checkpoint_files.torch.save", full_at_step_6)
        with pytest.raises(OSError, match="No space left"):
            run(compose_config(COMMON, tmp_path))
    out = tmp_path / "run"
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == "failed" and "No space left" in status["error"] and "is full" in status["error"]
    assert _partial_files(out) == []
    assert {p.name for p in (out / "checkpoints").glob("*.ckpt")} == {"step000003.ckpt", "last.ckpt"}
    assert _ckpt_step(out / "checkpoints" / "last.ckpt") == 3
    run(compose_config([*COMMON, f"resume={out}"], tmp_path))
    assert json.loads((out / "status.json").read_text())["status"] == "completed"
    assert _partial_files(out) == [] and _ckpt_step(out / "checkpoints" / "last.ckpt") == 9


def _mount_tmpfs(path: Path, size: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_a_real_full_disk_records_failed_leaves_no_partial_file_and_resumes(tmp_path):
    """On a 5 MB tmpfs (root only): the run's files fit, its second pair of checkpoints does not."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "5m"):
        pytest.skip("needs root and tmpfs to make a small disk")
    try:
        overrides = [*COMMON, f"paths.output_dir={disk / 'run'}"]
        with pytest.raises(OSError, match="No space left"):
            run(compose_config(overrides, tmp_path))
        out = disk / "run"
        status = json.loads((out / "status.json").read_text())
        assert status["status"] == "failed" and "No space left" in status["error"]
        assert _partial_files(out) == []
        assert all(checkpoint_defect(p) is None for p in (out / "checkpoints").glob("*.ckpt"))
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        run(compose_config([*overrides, f"resume={out}"], tmp_path))
        assert json.loads((out / "status.json").read_text())["status"] == "completed"
        assert _partial_files(out) == [] and _ckpt_step(out / "checkpoints" / "last.ckpt") == 9
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


# ---- item 6: SIGTERM and Ctrl-C stop the sweep, checkpointed, as `interrupted` --------------------
LONG = ["utility=adaptive", "stage.max_steps=60", "stage.val_every_n_steps=20", "stage.checkpoint_every_n_steps=4",
        "dataset.num_train=24", "dataset.num_test=8",
        "dataset.batch_size=4", "dataset.train_probe_size=4",
        "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=5", "logger=csv"]


def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}


def _signal_mid_training(sweep: Path, signum: int) -> tuple[subprocess.CompletedProcess, int]:
    """Start a two-job sweep, send ``signum`` to it (as `kill` / a terminal would) once job 0 has
    checkpointed, and return its outcome and job 0's last periodic checkpoint step before."""
    proc = subprocess.Popen([sys.executable, "run.py", "-m", "seed=0,1", *LONG, f"hydra.sweep.dir={sweep}"],
                            cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last = sweep / "0" / "checkpoints" / "last.ckpt"
    while not last.exists():  # one that never checkpoints is stopped by the test's timeout (pyproject.toml)
        assert proc.poll() is None, "the sweep ended before job 0 checkpointed"
        time.sleep(0.05)
    before = _ckpt_step(last)
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, ""), before


@pytest.mark.e2e
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_signal_stops_the_sweep_after_checkpointing_and_it_resumes(tmp_path, signum):
    sweep = tmp_path / "sweep"
    stopped, before = _signal_mid_training(sweep, signum)
    assert stopped.returncode == 128 + signum, stopped.stdout[-3000:]
    status = json.loads((sweep / "0" / "status.json").read_text())
    assert status["status"] == "interrupted" and status["signal"] == signal.Signals(signum).name, status
    assert status["checkpoint"] == str(sweep / "0" / "checkpoints" / "last.ckpt")
    assert f"hydra.sweep.dir={sweep} resume=true" in status["resume"]
    stopped_at = _ckpt_step(sweep / "0" / "checkpoints" / "last.ckpt")
    assert before <= stopped_at < 60
    assert not (sweep / "1").exists(), "the sweep went on to its next job"
    if signum != signal.SIGTERM:
        return
    # the sweep rerun in place: job 0 continues from where the signal stopped it, job 1 starts
    resumed = subprocess.run([sys.executable, "run.py", "-m", "seed=0,1", *LONG, f"hydra.sweep.dir={sweep}",
                              "resume=true"], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {sweep / '0' / 'checkpoints' / 'last.ckpt'}" in resumed.stdout
    for job in ("0", "1"):
        assert json.loads((sweep / job / "status.json").read_text())["status"] == "completed"
    # the stop's checkpoint resumes exactly: job 0 ends as an uninterrupted run does
    reference = tmp_path / "reference"
    ref = subprocess.run([sys.executable, "run.py", "seed=0", *LONG, f"hydra.run.dir={reference}"], cwd=REPO,
                         env=_env(), capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-3000:]
    a = json.loads((reference / "metrics.json").read_text())
    b = json.loads((sweep / "0" / "metrics.json").read_text())
    for key in ("rm/test/pair_acc", "rm/test/open_closed_distance", "rm/val/loss", "rm/train/closed_reward_rank5"):
        assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key


@pytest.mark.e2e
def test_under_ddp_a_signal_that_reaches_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    """Ctrl-C reaches the ranks at different moments; in the extreme only one. Measured before
    the fix: SIGINT to rank 1 of `hardware=cpu_ddp` stopped rank 1 alone and the run hung for
    ever with status `running` (rank 0 waiting in the next all-reduce). Now the ranks share the
    signal at each step's end: both stop, the checkpoint is whole and the run resumes."""
    out = tmp_path / "ddp"
    command = [sys.executable, "run.py", *LONG, "stage.max_steps=200", "hardware=cpu_ddp", f"hydra.run.dir={out}"]
    with (tmp_path / "stopped.log").open("w") as log:
        proc = subprocess.Popen(command, cwd=REPO, env=_env(), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            while not (out / "checkpoints" / "last.ckpt").exists():  # else the test's timeout stops it
                assert proc.poll() is None, "the run ended before it checkpointed"
                time.sleep(0.05)
            ranks = subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "run.py"], capture_output=True, text=True)
            rank1 = int(ranks.stdout.split()[0])
            os.kill(rank1, signal.SIGINT)
            assert proc.wait(timeout=120) == 130
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    output = (tmp_path / "stopped.log").read_text()
    assert output.count("run interrupted by SIGINT") == 2, output[-3000:]  # both ranks
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == "interrupted" and status["signal"] == "SIGINT", status
    stopped_at = _ckpt_step(out / "checkpoints" / "last.ckpt")
    assert 4 <= stopped_at < 200
    resumed = subprocess.run([*command, f"resume={out}"], cwd=REPO, env=_env(), capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert json.loads((out / "status.json").read_text())["status"] == "completed"
    assert _ckpt_step(out / "checkpoints" / "last.ckpt") == 200


def test_a_signal_outside_training_stops_at_once():
    from rcollapse.runs.interruption import RunInterrupted, stop_on_signals

    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(RunInterrupted) as stopped, stop_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert stopped.value.code == 143 and stopped.value.signal_name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is previous  # the previous handler is back


def test_a_status_that_does_not_fit_beside_the_old_one_overwrites_it_in_place(tmp_path, monkeypatch):
    from rcollapse import pipeline

    status = tmp_path / "status.json"
    status.write_text(json.dumps({"status": "running", "stage": "reward"}))

    def no_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pipeline, "write_json_atomic", no_room)
    pipeline._record_status(status, {"status": "failed", "stage": "reward", "error": "OSError: disk full",
                                     "traceback": "a long traceback"})
    assert json.loads(status.read_text()) == {"status": "failed", "stage": "reward", "error": "OSError: disk full"}


# ---- issue 26, item 3: an extended run resumes from its newest checkpoint ------------------------
def test_of_last_ckpt_and_an_older_codes_last_v1_the_newest_is_resumed_from(tmp_path, caplog):
    """Older code wrote ``last-v1.ckpt`` beside ``last.ckpt``; the one of the latest step is taken
    (whatever the files' times say), with a warning naming both."""
    from rcollapse.runs.checkpoint_files import recorded_step

    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    torch.save({"global_step": 30, "state_dict": {"w": torch.zeros(10)}}, ckpts / "last-v1.ckpt")
    torch.save({"global_step": 20, "state_dict": {"w": torch.zeros(10)}}, ckpts / "last.ckpt")
    torch.save({"global_step": 18}, ckpts / "step000018.ckpt")
    os.utime(ckpts / "last-v1.ckpt", (1, 1))  # older by its time: a copy without -p
    assert recorded_step(ckpts / "last-v1.ckpt") == 30 and recorded_step(ckpts / "step000018.ckpt") == 18
    with caplog.at_level("WARNING"):
        assert checkpoint_to_resume(ckpts) == ckpts / "last-v1.ckpt"
    assert "last-v1.ckpt (step 30)" in caplog.text and "last.ckpt (step 20)" in caplog.text
    torch.save({"global_step": 40}, ckpts / "last.ckpt")  # the resumed run's own last.ckpt, later
    assert checkpoint_to_resume(ckpts) == ckpts / "last.ckpt"
    _truncate(ckpts / "last.ckpt")  # a damaged newest one is named and set aside, not passed over silently
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert checkpoint_to_resume(ckpts) == ckpts / "last-v1.ckpt"
    assert (ckpts / "last.ckpt.damaged").exists() and "last.ckpt" in caplog.text


def _train_rows(run_dir: Path) -> list[dict]:
    import csv

    with (run_dir / "csv" / "metrics.csv").open() as file:
        return [row for row in csv.DictReader(file) if row.get("rm/train/loss")]


def test_a_run_extended_twice_goes_on_from_each_extensions_end(tmp_path):
    """A finished run of 7 steps, checkpointed every 3, extended to 11 steps checkpointed every 4
    (``resume_force``: the callback's state is then not restored), then to 15. Before: the first
    run's last.ckpt was of step 6, the first extension wrote ``last-v1.ckpt`` beside it (of step 8,
    its last periodic one), and the second extension resumed from the stale ``last.ckpt``."""
    from rcollapse.runs.checkpoint_files import recorded_step

    base = [*COMMON, "stage.val_every_n_steps=3"]
    out = tmp_path / "run"
    last = out / "checkpoints" / "last.ckpt"
    run(compose_config([*base, "stage.max_steps=7"], tmp_path))
    assert recorded_step(last) == 7
    extension = [*base, "stage.checkpoint_every_n_steps=4", f"resume={out}", "resume_force=true"]
    run(compose_config([*extension, "stage.max_steps=11"], tmp_path))
    assert recorded_step(last) == 11
    first_rows = _train_rows(out)
    run(compose_config([*extension, "stage.max_steps=15"], tmp_path))
    assert sorted(p.name for p in (out / "checkpoints").glob("last*.ckpt")) == ["last.ckpt"]
    assert recorded_step(last) == 15
    rows = _train_rows(out)
    assert [int(r["step"]) for r in rows] == list(range(15))  # every step once
    assert rows[:11] == first_rows  # the first extension's rows kept, not trained again
    assert [e["step"] for e in _history(out)] == [3, 6, 9, 12, 15]
    assert json.loads((out / "status.json").read_text())["status"] == "completed"
