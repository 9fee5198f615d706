"""The sweep report on broken run dirs: unreadable files are named, a missing path is refused,
and run-control overrides (resume, checkpoints, hydra.*) never split a group of seeds."""

import subprocess
import sys

import pandas as pd
import pytest

from rcollapse.analysis.sweep_report import collect_runs, main, summarise, swept_params
from tests.conftest import REPO
from tests.test_sweep_report import fake_metrics, make_job

DISTANCE = "rm/test/open_closed_distance"
DONE = {"status": "completed"}


def two_seeds(root):
    """utility=x, seeds 0 and 1, both completed; returns seed 1's run dir (to break)."""
    make_job(root, 0, ["utility=x", "seed=0", "stage.max_steps=10"], fake_metrics(0.1), DONE)
    return make_job(root, 1, ["utility=x", "seed=1", "stage.max_steps=10"], fake_metrics(0.2), DONE)


def row_of(df, job):
    return df.set_index("run_dir").loc[str(job)]


def test_truncated_metrics_json_is_unreadable_not_completed(tmp_path, capsys):
    job = two_seeds(tmp_path)
    (job / "metrics.json").write_text('{"rm/test/pair_acc": 0.9')
    df = collect_runs([tmp_path])
    assert row_of(df, job)["status"] == "unreadable"
    assert "metrics.json" in row_of(df, job)["error"]
    table = summarise(df, [DISTANCE], group_by=[])
    assert table.loc["all", (DISTANCE, "n")] == 1  # the unreadable run adds no blank metric
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1 completed, 1 unreadable" in out
    listed = out.split("Unreadable runs")[1]
    assert f"{job}  [unreadable]  unreadable metrics.json: " in listed
    csv = pd.read_csv(tmp_path / "report.csv").set_index("run_dir")
    assert csv.loc[str(job), "status"] == "unreadable" and "metrics.json" in csv.loc[str(job), "error"]


def test_completed_run_without_metrics_json_is_unreadable(tmp_path):
    job = two_seeds(tmp_path)
    (job / "metrics.json").unlink()
    row = row_of(collect_runs([tmp_path]), job)
    assert row["status"] == "unreadable" and row["error"] == "metrics.json is missing"


def test_corrupt_status_json_is_unreadable(tmp_path):
    job = two_seeds(tmp_path)
    (job / "status.json").write_text('{"status": "compl')
    row = row_of(collect_runs([tmp_path]), job)
    assert row["status"] == "unreadable" and row["error"].startswith("unreadable status.json: ")


def test_failed_run_without_metrics_stays_failed(tmp_path):
    make_job(tmp_path, 0, ["utility=x"], status={"status": "failed", "error": "ValueError: boom"})
    make_job(tmp_path, 1, ["utility=log"], status={"status": "running"})
    df = collect_runs([tmp_path])
    assert df["status"].tolist() == ["failed", "running"]
    assert df["error"].tolist()[0] == "ValueError: boom"


@pytest.mark.parametrize("content", ["[utility=x, seed=1\n", "utility: x\n"], ids=["invalid_yaml", "not_a_list"])
def test_corrupt_overrides_yaml_is_unreadable(tmp_path, content, capsys):
    job = two_seeds(tmp_path)
    (job / ".hydra" / "overrides.yaml").write_text(content)
    df = collect_runs([tmp_path])
    row = row_of(df, job)
    assert row["status"] == "unreadable" and row["error"].startswith("unreadable .hydra/overrides.yaml: ")
    assert swept_params(df) == []  # the run's unknown overrides make no key look swept
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 run(s); swept: nothing; 1 completed, 1 unreadable" in out
    assert f"{job}  [unreadable]  unreadable .hydra/overrides.yaml: " in out.split("Unreadable runs")[1]


@pytest.mark.e2e
def test_missing_path_is_refused_naming_it(tmp_path, capsys):
    make_job(tmp_path / "sweep", 0, ["utility=x"], fake_metrics(0.1), DONE)
    missing = tmp_path / "no_such_sweep"
    assert main([str(tmp_path / "sweep"), str(missing)]) == 2
    captured = capsys.readouterr()
    assert f"rcollapse.report: {missing} does not exist" in captured.err
    assert "No runs found" not in captured.out
    assert not (tmp_path / "sweep" / "report.csv").exists()
    done = subprocess.run([sys.executable, "-m", "rcollapse.report", str(missing)],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode != 0 and f"rcollapse.report: {missing} does not exist" in done.stderr


@pytest.mark.parametrize("override", [
    "resume=RUN", "resume=true", "resume_force=true", "ckpt_path=RUN/checkpoints/last.ckpt",
    "hydra.run.dir=RUN", "hydra.sweep.dir=SWEEP", "hydra/launcher=submitit_slurm",
], ids=["resume_dir", "resume_true", "resume_force", "ckpt_path", "hydra.run.dir", "hydra.sweep.dir",
        "hydra_launcher"])
def test_run_control_override_does_not_split_seeds(tmp_path, override, capsys):
    for num, utility in enumerate(("x", "log")):
        make_job(tmp_path, 2 * num, [f"utility={utility}", "seed=0"], fake_metrics(0.1), DONE)
        extra = [override.replace("RUN", str(tmp_path / "1")).replace("SWEEP", str(tmp_path))] if utility == "x" else []
        make_job(tmp_path, 2 * num + 1, [f"utility={utility}", "seed=1", *extra], fake_metrics(0.2), DONE)
    df = collect_runs([tmp_path])
    key = override.split("=")[0]
    assert swept_params(df) == ["utility", "seed"] and key not in df.columns
    table = summarise(df, [DISTANCE])
    assert table.index.tolist() == ["x", "log"] and table[(DISTANCE, "n")].tolist() == [2, 2]
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "4 run(s); swept: utility, seed; 4 completed" in out
    header = next(line for line in out.splitlines() if line.startswith("run "))
    assert header.split()[:4] == ["run", "utility", "seed", "status"]


@pytest.mark.e2e
def test_a_deleted_job_of_a_real_sweep_is_reported_missing(tmp_path):
    """issue 26: ``run.py -m utility=x,log``, job 1's dir deleted: the report names job 1 and its
    override (from the sweep's multirun.yaml), and counts it, instead of a quiet "1 run(s)"."""
    import shutil

    from tests.conftest import FAST_TRAINING

    sweep = tmp_path / "sweep"
    done = subprocess.run([sys.executable, "run.py", "-m", "utility=x,log", f"hydra.sweep.dir={sweep}",
                           f"paths.cache_dir={tmp_path / 'cache'}", *FAST_TRAINING, "stage.max_steps=4",
                           "stage.val_every_n_steps=2", "stage.checkpoint_every_n_steps=2"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    shutil.rmtree(sweep / "1")
    report = subprocess.run([sys.executable, "-m", "rcollapse.report", str(sweep)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    assert "1 of 2 jobs have a run dir; missing: 1" in report.stdout
    assert "job 1 (utility=log): missing: no run dir" in report.stdout
    csv = pd.read_csv(sweep / "report.csv")
    assert csv.set_index("status").loc["missing", "utility"] == "log"
