"""Issue 26: a resume, an extension or a refused attempt loses and relabels nothing.

Item 1: a refused attempt leaves the run's ``.hydra/`` as it was. Item 2: resuming a completed run
with its own config changes nothing. Item 4: ``ckpt_path=last`` is checked as a resume. Item 5: an
extension sets the completed run aside, and an interrupted extension says ``interrupted``.
Item 8: ``resume=DIR`` alone resumes the run as it was configured. Item 9: a copied run dir
resumes in its new place; ``resume=D hydra.run.dir=E`` is refused before anything is written.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from rcollapse.config.checks import ConfigError
from rcollapse.pipeline import run
from rcollapse.runs.interruption import RunInterrupted
from rcollapse.runs.resume_checks import config_differences
from rcollapse.runs.run_lock import LOCK_NAME
from rcollapse.stages.ranking_reward_module import RankingRewardModule
from tests.conftest import FAST_TRAINING, REPO, compose_config

COMMON = ["utility=x", *FAST_TRAINING, "stage.max_steps=9", "trainer.log_every_n_steps=1"]


def _records(run_dir: Path) -> dict[str, bytes]:
    return {p.relative_to(run_dir).as_posix(): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def _ckpt_step(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=False)["global_step"])


def _stop_at_step(monkeypatch, step: int, error: BaseException) -> None:
    original = RankingRewardModule.training_step

    def stopping(self, batch, batch_idx):
        if self.global_step >= step:
            raise error
        return original(self, batch, batch_idx)

    monkeypatch.setattr(RankingRewardModule, "training_step", stopping)


# ---- item 2: a completed run resumed with its own config ------------------------------------------
def test_resuming_a_completed_run_with_its_own_config_changes_none_of_its_records(tmp_path, capsys):
    run(compose_config(COMMON, tmp_path))
    out = tmp_path / "run"
    before = _records(out)
    assert "rm/train/loss" in json.loads(before["metrics.json"]) and "rm/val/loss" in json.loads(before["metrics.json"])
    run(compose_config([*COMMON, f"resume={out}"], tmp_path))
    run(compose_config([*COMMON, "resume=true"], tmp_path))  # a sweep's resume command, for a finished job
    assert _records(out) == before
    assert "holds a completed run with this config: nothing to resume" in capsys.readouterr().err


# ---- item 4: ckpt_path=last is a resume -----------------------------------------------------------
def test_ckpt_path_last_is_checked_as_a_resume_and_keeps_the_log(tmp_path):
    run(compose_config(COMMON, tmp_path))
    out = tmp_path / "run"
    before = _records(out)
    with pytest.raises(ConfigError, match=r"(?s)the config differs from the run.s .*utility\._target_"):
        run(compose_config([*COMMON[1:], "utility=log", "ckpt_path=last"], tmp_path))
    assert _records(out) == before
    run(compose_config([*COMMON, "ckpt_path=last"], tmp_path))  # its own config: nothing to do
    assert _records(out) == before


# ---- item 5: extending a completed run ------------------------------------------------------------
def test_an_interrupted_extension_is_interrupted_and_the_completed_run_is_kept_aside(tmp_path, monkeypatch):
    run(compose_config(COMMON, tmp_path))
    out = tmp_path / "run"
    completed = _records(out)
    extend = [*COMMON, "stage.max_steps=30", f"resume={out}", "resume_force=true"]
    with monkeypatch.context() as patch, pytest.raises(RunInterrupted):
        _stop_at_step(patch, 13, RunInterrupted(signal.SIGTERM))
        run(compose_config(extend, tmp_path))
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == "interrupted" and status["superseded"].startswith("superseded/")
    assert not (out / "metrics.json").exists()  # the 9-step metrics are not labelled with 30 steps
    assert yaml.safe_load((out / "config_resolved.yaml").read_text())["stage"]["max_steps"] == 30
    kept = out / status["superseded"]
    assert (kept / "metrics.json").read_bytes() == completed["metrics.json"]
    assert (kept / "config_resolved.yaml").read_bytes() == completed["config_resolved.yaml"]
    assert (kept / "csv" / "metrics.csv").read_bytes() == completed["csv/metrics.csv"]
    assert _ckpt_step(kept / "checkpoints" / "last.ckpt") == 9  # the completed model, not the extension's
    assert _ckpt_step(out / "checkpoints" / "last.ckpt") == 12
    # the extension resumed completes, and the completed run's records stay where they were set aside
    run(compose_config([*COMMON, "stage.max_steps=30", f"resume={out}"], tmp_path))
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == "completed" and status["superseded"] == kept.relative_to(out).as_posix()
    assert _ckpt_step(out / "checkpoints" / "last.ckpt") == 30
    assert (kept / "metrics.json").read_bytes() == completed["metrics.json"]
    steps = [int(row.split(",")[0]) for row in (out / "csv" / "metrics.csv").read_text().splitlines()[1:]
             if row.split(",")[0].isdigit()]
    assert steps == sorted(steps)


# ---- item 9: a run dir copied or moved -----------------------------------------------------------
def test_paths_inside_the_run_dir_follow_it():
    before = {"paths": {"output_dir": "/a/run"}, "logger": {"save_dir": "/a/run"},
              "trainer": {"default_root_dir": "/a/run"}, "dataset": {"path": "/a/run-data/x"}}
    after = {"paths": {"output_dir": "/b/copy"}, "logger": {"save_dir": "/b/copy"},
             "trainer": {"default_root_dir": "/b/copy"}, "dataset": {"path": "/a/run-data/x"}}
    assert config_differences(before, after) == []
    after["dataset"]["path"] = "/b/copy-data/x"  # a path outside the run dir is still compared
    assert config_differences(before, after) == ["dataset.path: '/a/run-data/x' -> '/b/copy-data/x'"]


def test_a_copied_run_dir_resumes_in_its_new_place_and_the_original_is_untouched(tmp_path, monkeypatch):
    with monkeypatch.context() as patch, pytest.raises(RuntimeError, match="node lost"):
        _stop_at_step(patch, 5, RuntimeError("node lost"))
        run(compose_config(COMMON, tmp_path))
    original = tmp_path / "run"
    copy_base = tmp_path / "elsewhere"
    shutil.copytree(original, copy_base / "run")
    before = _records(original)
    run(compose_config([*COMMON, f"resume={copy_base / 'run'}"], copy_base))
    assert json.loads((copy_base / "run" / "status.json").read_text())["status"] == "completed"
    assert _ckpt_step(copy_base / "run" / "checkpoints" / "last.ckpt") == 9
    assert _records(original) == before


# ---- run.py: the records Hydra writes, resume=DIR alone --------------------------------------------
def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}


def _run_py(*args, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "run.py", *args], cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=600)
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.e2e
def test_a_refused_attempt_relabels_nothing(tmp_path):
    run_dir = tmp_path / "D"
    _run_py(f"hydra.run.dir={run_dir}", *COMMON)
    hydra_records = {name: (run_dir / ".hydra" / name).read_bytes() for name in ("config.yaml", "overrides.yaml")}
    records = _records(run_dir)
    # a new run in the dir, and a resume with another utility: refused after Hydra wrote its attempt
    refused = _run_py(f"hydra.run.dir={run_dir}", *COMMON[1:], "utility=log", check=False)
    assert refused.returncode != 0 and "holds a run already" in refused.stderr
    refused = _run_py(f"resume={run_dir}", "utility=log", check=False)
    assert refused.returncode != 0 and "the config differs from the" in refused.stderr
    # a second run while a live one holds the dir
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (run_dir / LOCK_NAME).write_text(json.dumps({"pid": sleeper.pid, "host": os.uname().nodename}))
        busy = _run_py(f"resume={run_dir}", "resume_force=true", "stage.max_steps=12", check=False)
        assert busy.returncode != 0 and "is in use by another run" in busy.stderr
    finally:
        sleeper.kill()
        sleeper.wait()
        (run_dir / LOCK_NAME).unlink()
    assert {name: (run_dir / ".hydra" / name).read_bytes() for name in hydra_records} == hydra_records
    after = {name: data for name, data in _records(run_dir).items()
             if not name.startswith(".hydra/attempts/") and name != "run.log"}
    assert after == {name: data for name, data in records.items()
                     if not name.startswith(".hydra/attempts/") and name != "run.log"}
    attempts = sorted((run_dir / ".hydra" / "attempts").iterdir())
    assert len(attempts) == 4  # every attempt's command kept, the refused ones too
    assert "utility=log" in (attempts[1] / "overrides.yaml").read_text()
    report = subprocess.run([sys.executable, "-m", "rcollapse.report", str(run_dir)], cwd=REPO, env=_env(),
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0 and "utility=log" not in report.stdout, report.stdout[-2000:]


@pytest.mark.e2e
def test_resume_with_the_run_dir_alone_takes_the_run_s_own_config(tmp_path):
    run_dir = tmp_path / "D"
    settings = [*COMMON[1:], "utility=adaptive", "stage.max_steps=60", "stage.checkpoint_every_n_steps=4",
                "stage.val_every_n_steps=20", "dataset.num_train=24"]
    proc = subprocess.Popen([sys.executable, "run.py", f"hydra.run.dir={run_dir}", *settings], cwd=REPO, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run_dir / "checkpoints" / "last.ckpt"
    while not last.exists():  # one that never checkpoints is stopped by the test's timeout (pyproject.toml)
        assert proc.poll() is None, "the run ended before its first checkpoint"
        time.sleep(0.05)
    proc.kill()  # kill -9: no status, a stale lock
    proc.wait()
    def config() -> dict:  # the run's config, less how this attempt was started
        return {k: v for k, v in yaml.safe_load((run_dir / "config_resolved.yaml").read_text()).items() if k != "resume"}

    before = config()
    resumed = _run_py(f"resume={run_dir}")
    assert "resuming from" in resumed.stdout + resumed.stderr
    assert json.loads((run_dir / "status.json").read_text())["status"] == "completed"
    assert _ckpt_step(last) == 60
    assert config() == before
    # an override given with it is a change: refused, naming it
    changed = _run_py(f"resume={run_dir}", "stage.checkpoint_every_n_steps=50", check=False)
    assert changed.returncode != 0 and "stage.checkpoint_every_n_steps: 4 -> 50" in changed.stderr
    # resume=D with another run dir, or a dir without a run: refused before anything is created
    elsewhere = _run_py(f"resume={run_dir}", f"hydra.run.dir={tmp_path / 'E'}", check=False)
    assert elsewhere.returncode != 0 and f"hydra.run.dir={tmp_path / 'E'} names another" in elsewhere.stderr
    missing = _run_py(f"resume={tmp_path / 'typo'}", check=False)
    assert missing.returncode != 0 and "holds no run to resume" in missing.stderr
    assert not (tmp_path / "E").exists() and not (tmp_path / "typo").exists()


# ---- run.py's reading of a resume's command line ---------------------------------------------------
def _fake_run(run_dir: Path, overrides: list[str]) -> Path:
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (run_dir / "config_resolved.yaml").write_text("seed: 0\n")
    return run_dir


def test_resume_arguments_add_the_run_s_own_overrides_for_keys_not_given(tmp_path):
    from rcollapse.runs.resume_command import resume_arguments

    run_dir = _fake_run(tmp_path / "D", ["utility=x", "stage.max_steps=6", f"resume={tmp_path}/older",
                                         "stage.module.variance_weighted=false"])
    args = resume_arguments([f"resume={run_dir}", "stage.max_steps=9"])
    # the user's value kept (a change, for the resume check), the run's others added in today's layout
    assert args == [f"resume={run_dir}", "stage.max_steps=9", "utility=x", "stage.module.kl_weight=one"]
    assert resume_arguments(["-m", f"resume={run_dir}"]) == ["-m", f"resume={run_dir}"]  # a sweep: untouched
    assert resume_arguments(["resume=true", "seed=1"]) == ["resume=true", "seed=1"]


def test_a_run_dir_on_a_read_only_file_system_is_refused_naming_it(tmp_path):
    from rcollapse.runs.resume_command import ResumeCommandError, resume_arguments

    disk = tmp_path / "ro"
    if os.geteuid() != 0 or shutil.which("mount") is None or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk.mkdir() or disk)],
            capture_output=True).returncode != 0:
        pytest.skip("needs root and tmpfs to make a read-only file system")
    try:
        run_dir = _fake_run(disk / "D", ["utility=x"])
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        for args in ([f"resume={run_dir}"], [f"hydra.run.dir={run_dir}"], ["-m", f"hydra.sweep.dir={run_dir}"]):
            with pytest.raises(ResumeCommandError, match=f"{run_dir} is not writable .*cp -a {run_dir} NEW"):
                resume_arguments(args)
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_the_report_counts_an_extended_run_once(tmp_path):
    from rcollapse.analysis.sweep_runs import find_run_dirs

    run_dir = _fake_run(tmp_path / "sweep" / "0", ["utility=x"])
    _fake_run(run_dir / "superseded" / "2026-12-08_01-59-04", ["utility=x"])
    assert find_run_dirs(tmp_path / "sweep") == [run_dir]
