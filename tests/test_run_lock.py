"""One live run per run dir (issue 16, item 3), and a failed extension that leaves a finished run
as it was (item 4; issue 26, item 5)."""

import json
import os
import subprocess
import sys

import pytest

from rcollapse.pipeline import run
from rcollapse.runs.run_lock import LOCK_NAME, RunDirBusyError, run_dir_lock
from tests.conftest import FAST_TRAINING, compose_config


def test_a_second_run_in_a_live_run_s_dir_is_refused_naming_dir_and_owner(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": sleeper.pid, "host": os.uname().nodename,
                                                      "started": "then"}))
        with pytest.raises(RunDirBusyError) as err, run_dir_lock(tmp_path):
            pass
        assert str(err.value).startswith(f"run dir {tmp_path} is in use by another run (pid {sleeper.pid} on ")
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == sleeper.pid  # the owner's lock stays
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_dead_process_s_lock_is_taken_over_with_a_warning_and_released_after(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": int(dead.stdout), "host": os.uname().nodename}))
    with pytest.warns(UserWarning, match="taking over the lock of an earlier run"), run_dir_lock(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK_NAME).exists()


def test_the_pipeline_refuses_a_busy_dir_before_touching_its_records(tmp_path):
    cfg = compose_config(["utility=x", *FAST_TRAINING], tmp_path)
    run(cfg)
    out = tmp_path / "run"
    status = (out / "status.json").read_text()
    assert not (out / LOCK_NAME).exists()  # released after the run
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / LOCK_NAME).write_text(json.dumps({"pid": sleeper.pid, "host": os.uname().nodename}))
        with pytest.raises(RunDirBusyError):
            run(cfg)
        assert (out / "status.json").read_text() == status
    finally:
        sleeper.kill()
        sleeper.wait()


def test_an_extension_of_a_completed_run_that_fails_before_training_leaves_it_as_it_was(tmp_path, monkeypatch):
    common = ["utility=x", *FAST_TRAINING]
    run(compose_config(common, tmp_path))
    out = tmp_path / "run"
    records = {p.relative_to(out): p.read_bytes() for p in out.rglob("*")
               if p.is_file() and ".hydra" not in p.parts and p.name != "status.json"}
    from rcollapse.stages import reward_stage

    def broken(*args, **kwargs):
        raise RuntimeError("disk gone")

    monkeypatch.setattr(reward_stage, "instantiate", broken)
    with pytest.raises(RuntimeError, match="disk gone"):
        run(compose_config([*common, "stage.max_steps=9", f"resume={out}", "resume_force=true"], tmp_path))
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == "completed" and status["last_resume_error"] == "RuntimeError: disk gone"
    # its config, metrics and log back as they were; the set-aside copy removed (nothing in it was new)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*")
            if p.is_file() and ".hydra" not in p.parts and p.name != "status.json"} == records
    assert not (out / "superseded").exists()
