"""The sweep report reads multirun dirs: table, seeds grouped, failures listed, CSV and figure."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from rcollapse.analysis.sweep_report import collect_runs, main, summarise, swept_params
from tests.conftest import CONF


def make_job(root, num, overrides, metrics=None, status=None):
    job = Path(root) / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / ".hydra" / "config.yaml").write_text("seed: 0\n")
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))
    if status is not None:
        (job / "status.json").write_text(json.dumps(status))
    return job


def fake_metrics(distance):
    m = {"rm/test/open_closed_distance": distance, "rm/val/pair_acc": 0.9,
         "rm/test/open_w1_uniform": 0.05, "rm/test/closed_w1_two_point": 0.04}
    for k in range(1, 9):
        m[f"rm/test/open_reward_rank{k}"] = 1 - (k - 1) / 7
        m[f"rm/test/closed_reward_rank{k}"] = float(k <= 4)
    return m


def make_sweep(root):
    num = 0
    for utility, base in (("x", 0.01), ("x_inv", 0.02), ("adaptive", 0.3)):
        for seed in (0, 1):
            make_job(root, num, [f"utility={utility}", f"seed={seed}", "stage.max_steps=10"],
                     fake_metrics(base + seed * 0.01), {"status": "completed"})
            num += 1
    make_job(root, num, ["utility=log", "seed=0", "stage.max_steps=10"],
             status={"status": "failed", "error": "ValueError: boom\nmore", "traceback": "..."})
    make_job(root, num + 1, ["utility=log", "seed=1", "stage.max_steps=10"])
    return root


def test_collect_runs_and_summarise(tmp_path):
    df = collect_runs([make_sweep(tmp_path / "multirun")])
    assert len(df) == 8 and list(df.columns[:5]) == ["run_dir", "utility", "seed", "stage.max_steps", "status"]
    assert swept_params(df) == ["utility", "seed"]
    assert df["seed"].tolist()[:2] == ["0", "1"]
    assert df.set_index("utility").loc["log", "status"].tolist() == ["failed", "incomplete"]
    assert df.loc[df["status"] == "failed", "error"].item() == "ValueError: boom"
    table = summarise(df, ["rm/test/open_closed_distance"])
    row = table.loc["adaptive"]
    assert row[("rm/test/open_closed_distance", "mean")] == pytest.approx(0.305)
    assert row[("rm/test/open_closed_distance", "std")] == pytest.approx(0.00707107, rel=1e-5)
    assert row[("rm/test/open_closed_distance", "n")] == 2
    assert "log" not in table.index  # no completed run


def test_report_table_seeds_failures_and_files(tmp_path, capsys):
    root = make_sweep(tmp_path / "multirun")
    assert main([str(root), "--metrics", "rm/test/open_reward_rank1"]) == 0
    out = capsys.readouterr().out
    assert "8 run(s); swept: utility, seed" in out
    header = next(line for line in out.splitlines() if line.startswith("run "))
    assert header.split() == ["run", "utility", "seed", "status", "rm/test/open_reward_rank1",
                              *("rm/test/open_closed_distance rm/test/open_w1_uniform "
                                "rm/test/closed_w1_two_point rm/val/pair_acc").split()]
    assert "stage.max_steps" not in header  # not swept
    assert any(line.split()[:5] == ["5", "adaptive", "1", "completed", "1"] and "0.31" in line
               for line in out.splitlines())
    assert "Mean ± std over seeds:" in out
    adaptive = next(line for line in out.split("Mean ± std over seeds:")[1].splitlines()
                    if line.startswith("adaptive"))
    assert "0.305 ± 0.007071 (n=2)" in adaptive and "0.9 ± 0 (n=2)" in adaptive
    failed = out.split("Failed jobs:")[1]
    assert "6  [failed]  ValueError: boom" in failed and "more" not in failed.split("\n")[1]
    assert "Incomplete jobs:" in out and "[incomplete]" in out
    df = pd.read_csv(root / "report.csv")
    assert len(df) == 8 and set(df["status"]) == {"completed", "failed", "incomplete"}
    assert "rm/test/closed_reward_rank8" in df.columns
    assert (root / "utility_comparison.png").stat().st_size > 5000
    assert f"wrote {root / 'report.csv'}" in out and f"wrote {root / 'utility_comparison.png'}" in out


def test_out_dir_and_several_dirs(tmp_path, capsys):
    a = make_job(tmp_path / "sweeps" / "a", 0, ["utility=x"], fake_metrics(0.1))
    make_job(tmp_path / "sweeps" / "b", 0, ["utility=log"], fake_metrics(0.2))
    out_dir = tmp_path / "out"
    assert main([str(a.parent), str(tmp_path / "sweeps" / "b"), "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert "2 run(s); swept: utility" in out and "Mean ± std" not in out
    assert (out_dir / "report.csv").exists() and (out_dir / "utility_comparison.png").exists()


def test_no_runs_exit_code_2(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "No runs found" in capsys.readouterr().out
    assert main([str(tmp_path / "missing")]) == 2


@pytest.mark.parametrize("depth", [0, 2])
def test_finds_runs_at_any_depth(tmp_path, depth, capsys):
    root = tmp_path
    for d in range(depth):
        root = root / f"level{d}"
    make_job(root, 0, ["utility=x"], fake_metrics(0.1))
    assert main([str(tmp_path)]) == 0
    assert "1 run(s)" in capsys.readouterr().out


def test_single_run_dir(tmp_path, capsys):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("[]\n")
    (run / "metrics.json").write_text(json.dumps(fake_metrics(0.1)))
    assert main([str(run)]) == 0
    assert "1 run(s); swept: nothing" in capsys.readouterr().out


@pytest.mark.e2e
def test_module_entry_point(tmp_path):
    make_job(tmp_path, 0, ["utility=x"], fake_metrics(0.1))
    done = subprocess.run([sys.executable, "-m", "rcollapse.report", str(tmp_path)],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    done = subprocess.run([sys.executable, "-m", "rcollapse.report", str(empty)],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 2 and "No runs found" in done.stdout


def make_ppo_sweep(root, final_kl):
    """2 arms x 2 seeds of stage=ppo runs: judge scores and KLs chosen so the expected table is known."""
    num = 0
    for arm, weighted, judges in (("small_vanilla", False, (0.60, 0.70)), ("small_variance_aware", True, (0.64, 0.66))):
        for seed, judge in enumerate(judges):
            metrics = {"ppo/test/judge_mean": judge, "ppo/test/judge_mean_ref": 0.05 + 0.01 * seed,
                       "ppo/train/kl": 9.0, "ppo/final/kl": final_kl[arm][seed]}
            job = make_job(root, num, [f"ppo_arm={arm}", f"seed={seed}"], metrics, {"status": "completed"})
            (job / "config_resolved.yaml").write_text(yaml.safe_dump({"stage": {"module": {"kl_weight": "variance" if weighted else "one"}}}))
            num += 1


def test_ppo_report_gives_each_arm_and_the_reference_their_spread_and_final_kl(tmp_path, capsys):
    make_ppo_sweep(tmp_path, {"small_vanilla": (1.8, 2.2), "small_variance_aware": (2.1, 2.3)})
    assert main([str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    summary = pd.read_csv(tmp_path / "ppo_summary.csv", index_col="policy")
    assert list(summary.index) == ["reference", "vanilla", "variance-aware"]
    assert summary.loc["vanilla", "judge mean"] == pytest.approx(0.65)
    assert summary.loc["vanilla", "judge var"] == pytest.approx(0.005)  # ((0.05)^2 * 2) / 1
    assert summary.loc["variance-aware", "judge var"] == pytest.approx(0.0002)
    assert summary.loc["reference", "n"] == 4 and summary.loc["reference", "judge mean"] == pytest.approx(0.055)
    # the final KL is the windowed mean (ppo/final/kl), not the last iteration's 9.0
    assert summary.loc["vanilla", "final KL"] == pytest.approx(2.0)
    assert summary.loc["variance-aware", "final KL"] == pytest.approx(2.2)
    assert "differ by 10 %" in printed and "ppo/final/kl" in printed
    assert (tmp_path / "ppo_judge_distribution.png").stat().st_size > 5000


def write_history(job, judged):
    """A ppo_history.csv of 5 iterations: the judge's columns at the ``judged`` {step: (kl, proxy, gold)}
    and empty elsewhere, the reference policy's proxy 1.0 and gold 0.5 beside them."""
    import csv

    keys = ["ppo/eval/judge_mean", "ppo/eval/judge_mean_ref", "ppo/eval/kl", "ppo/eval/proxy_mean",
            "ppo/eval/proxy_mean_ref", "ppo/train/kl", "ppo/train/score"]
    with (job / "ppo_history.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["step", *keys])
        writer.writeheader()
        for step in range(5):
            row = {"step": step, "ppo/train/kl": 9.0, "ppo/train/score": 9.0}  # a different sample: not used
            if step in judged:
                kl, proxy, gold = judged[step]
                row.update({"ppo/eval/kl": kl, "ppo/eval/proxy_mean": proxy, "ppo/eval/judge_mean": gold,
                            "ppo/eval/proxy_mean_ref": 1.0, "ppo/eval/judge_mean_ref": 0.5})
            writer.writerow(row)


def test_ppo_report_draws_each_arm_s_over_optimisation_curve_from_the_runs_histories(tmp_path, capsys):
    make_ppo_sweep(tmp_path, {"small_vanilla": (1.8, 2.2), "small_variance_aware": (2.1, 2.3)})
    # jobs 0, 1: vanilla (seeds 0, 1); jobs 2, 3: variance-aware; judged at iterations 0, 2 and 4 (the last)
    write_history(tmp_path / "0", {0: (0.1, 1.2, 0.6), 2: (1.0, 2.0, 0.4), 4: (3.0, 3.0, 0.2)})
    write_history(tmp_path / "1", {0: (0.3, 1.4, 0.6), 2: (2.0, 2.4, 0.6), 4: (5.0, 3.4, 0.0)})
    write_history(tmp_path / "2", {0: (0.2, 1.1, 0.5), 2: (0.8, 1.5, 0.55), 4: (1.6, 1.9, 0.6)})
    # job 3 has no history (an old run): the arm's curve is job 2's alone
    assert main([str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    curves = pd.read_csv(tmp_path / "ppo_overoptimisation.csv")
    assert list(curves.columns) == ["arm", "step", "n", "kl", "kl_std", "proxy", "proxy_std", "gold", "gold_std"]
    vanilla = curves[curves["arm"] == "vanilla"].set_index("step")
    assert vanilla.index.tolist() == [-1, 0, 2, 4]  # π0 first, at KL 0
    assert vanilla.loc[-1, ["kl", "proxy", "gold"]].tolist() == pytest.approx([0.0, 1.0, 0.5])
    assert vanilla.loc[2, ["n", "kl", "proxy", "gold"]].tolist() == pytest.approx([2, 1.5, 2.2, 0.5])
    assert vanilla.loc[4, ["kl", "proxy", "gold"]].tolist() == pytest.approx([4.0, 3.2, 0.1])
    assert vanilla.loc[4, "kl_std"] == pytest.approx(2 ** 0.5)  # std of 3 and 5
    aware = curves[curves["arm"] == "variance-aware"].set_index("step")
    assert aware["n"].tolist() == [1, 1, 1, 1] and aware.loc[4, "gold"] == pytest.approx(0.6)
    assert "Over-optimisation by arm" in printed
    assert (tmp_path / "ppo_overoptimisation.png").stat().st_size > 5000
    assert f"wrote {tmp_path / 'ppo_overoptimisation.png'}" in printed


def test_ppo_report_without_histories_draws_no_curve(tmp_path, capsys):
    make_ppo_sweep(tmp_path, {"small_vanilla": (1.8, 2.2), "small_variance_aware": (2.1, 2.3)})
    assert main([str(tmp_path)]) == 0
    assert "Over-optimisation" not in capsys.readouterr().out
    assert not (tmp_path / "ppo_overoptimisation.csv").exists()


# ---- the jobs a sweep should have (its multirun.yaml) against its run dirs (issue 26) ---------------

BASIC = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def write_multirun(root, task, params=None, sweeper=BASIC, subdir="${hydra.job.num}"):
    """The ``multirun.yaml`` Hydra writes into a sweep dir when the sweep starts (the keys read)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    config = {"hydra": {"sweep": {"dir": str(root), "subdir": subdir},
                        "sweeper": {"_target_": sweeper, "max_batch_size": None, "params": params},
                        "overrides": {"hydra": [f"hydra.sweep.dir={root}", "hydra.mode=MULTIRUN"], "task": task},
                        "runtime": {"config_sources": [{"path": "hydra.conf", "schema": "pkg", "provider": "hydra"},
                                                       {"path": str(CONF), "schema": "file", "provider": "main"}]}},
              "seed": 0}
    (root / "multirun.yaml").write_text(yaml.safe_dump(config))
    return root


def test_a_missing_job_is_listed_with_its_overrides_counted_and_in_report_csv(tmp_path, capsys):
    root = write_multirun(tmp_path / "sweep", ["utility=x,log", "seed=range(2)", "stage.max_steps=10"])
    for num, (utility, seed) in enumerate((("x", 0), ("x", 1), ("log", 0), ("log", 1))):
        if num != 1:  # job 1 (utility=x, seed=1) was deleted
            make_job(root, num, [f"utility={utility}", f"seed={seed}", "stage.max_steps=10"],
                     fake_metrics(0.1 + num / 100), {"status": "completed"})
    assert main([str(root)]) == 0
    out = capsys.readouterr().out
    assert f"sweep {root}: 3 of 4 jobs have a run dir; missing: 1" in out
    assert "3 run(s)" in out
    missing = out.split("Missing jobs")[1]
    assert "job 1 (utility=x, seed=1): missing: no run dir" in missing
    assert "job 0" not in missing and "job 2" not in missing
    df = pd.read_csv(root / "report.csv")
    row = df[df["status"] == "missing"]
    assert len(df) == 4 and len(row) == 1
    assert row[["run_dir", "utility", "seed", "error"]].values.tolist() == [[str(root / "1"), "x", 1, "job 1: no run dir"]]


def test_a_job_dir_without_overrides_is_missing_naming_the_file(tmp_path, capsys):
    root = write_multirun(tmp_path, ["utility=x,log"])
    make_job(root, 0, ["utility=x"], fake_metrics(0.1), {"status": "completed"})
    (root / "1").mkdir()  # the dir is there, Hydra's record of the job is not
    assert main([str(root)]) == 0
    out = capsys.readouterr().out
    assert "1 of 2 jobs have a run dir; missing: 1" in out
    assert f"job 1 (utility=log): missing: {root / '1'} holds no .hydra/overrides.yaml" in out


def test_expected_jobs_follow_hydra_s_basic_sweeper(tmp_path):
    """sweeper params first, then the command line; glob over the group's options; range; choice."""
    from rcollapse.analysis.sweep_jobs import expected_jobs

    multirun = yaml.safe_load(write_multirun(tmp_path, ["+sweep=utility_seeds", "stage.module.x=choice(1,2)",
                                                        "utility=glob(x*)"],
                                             params={"seed": "range(0,2)"}).joinpath("multirun.yaml").read_text())
    jobs, problem = expected_jobs(multirun)
    assert problem == "" and len(jobs) == 2 * 2 * 3
    assert jobs[0] == ["seed=0", "+sweep=utility_seeds", "stage.module.x=1", "utility=x"]
    assert jobs[1] == ["seed=0", "+sweep=utility_seeds", "stage.module.x=1", "utility=x2"]
    assert [job[-1] for job in jobs[:3]] == ["utility=x", "utility=x2", "utility=x_inv"]
    assert jobs[-1] == ["seed=1", "+sweep=utility_seeds", "stage.module.x=2", "utility=x_inv"]


@pytest.mark.parametrize(("sweeper", "task", "why"), [
    ("hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper", ["utility=x"], "chooses its jobs as it runs"),
    (BASIC, ["stage.lr=interval(0,1)"], "cannot be expanded"),
])
def test_other_sweepers_have_an_unknown_count(tmp_path, sweeper, task, why, capsys):
    root = write_multirun(tmp_path, task, sweeper=sweeper)
    make_job(root, 0, ["utility=x"], fake_metrics(0.1), {"status": "completed"})
    assert main([str(root)]) == 0
    out = capsys.readouterr().out
    assert "1 job(s) have a run dir; expected count unknown" in out and why in out
    assert "Missing jobs" not in out


def test_a_custom_subdir_finds_jobs_by_their_hydra_yaml(tmp_path, capsys):
    root = write_multirun(tmp_path, ["utility=x,log,x_inv"], subdir="${hydra.job.override_dirname}")
    for num, utility in ((0, "x"), (2, "x_inv")):
        job = make_job(root / "runs", f"utility={utility}", [f"utility={utility}"], fake_metrics(0.1),
                       {"status": "completed"})
        (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"job": {"num": num}}}))
    assert main([str(root)]) == 0
    out = capsys.readouterr().out
    assert "2 of 3 jobs have a run dir; missing: 1" in out and "job 1 (utility=log): missing: no run dir" in out


def test_all_jobs_missing_still_lists_them(tmp_path, capsys):
    root = write_multirun(tmp_path, ["utility=x,log"])
    assert main([str(root)]) == 2
    out = capsys.readouterr().out
    assert "No runs found" in out and "job 0 (utility=x): missing" in out and "job 1 (utility=log): missing" in out


def test_a_dir_without_multirun_yaml_is_reported_as_before(tmp_path, capsys):
    make_sweep(tmp_path)
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "jobs have a run dir" not in out and "Missing jobs" not in out
    assert "missing" not in set(pd.read_csv(tmp_path / "report.csv")["status"])
