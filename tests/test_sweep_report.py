"""The sweep report reads a multirun dir: table, seeds grouped, failures listed, CSV and figure."""

import json

import pandas as pd
import pytest
import yaml

from rcollapse.analysis.sweep_report import main


def make_job(root, num, overrides, metrics=None, status=None):
    job = root / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))
    if status is not None:
        (job / "status.json").write_text(json.dumps(status))


def fake_metrics(distance):
    m = {"rm/test/open_closed_distance": distance, "rm/val/pair_acc": 0.9}
    for k in range(1, 9):
        m[f"rm/test/open_reward_rank{k}"] = 1 - (k - 1) / 7
        m[f"rm/test/closed_reward_rank{k}"] = float(k <= 4)
    return m


def test_report_table_seeds_failures_and_files(tmp_path, capsys):
    num = 0
    for utility, base in (("x", 0.01), ("x_inv", 0.02), ("adaptive", 0.3)):
        for seed in (0, 1):
            make_job(tmp_path, num, [f"utility={utility}", f"seed={seed}"], fake_metrics(base + seed * 0.01),
                     {"status": "completed"})
            num += 1
    make_job(tmp_path, num, ["utility=log", "seed=0"], status={"status": "failed", "error": "ValueError: boom\nmore"})
    make_job(tmp_path, num + 1, ["utility=log", "seed=1"])
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "8 run(s); swept: utility, seed" in out
    assert "adaptive" in out and "0.31" in out
    assert "Mean ± std over seeds" in out
    assert "0.305 ± 0.007071 (n=2)" in out
    assert "[failed]  ValueError: boom" in out and "[incomplete]" in out
    df = pd.read_csv(tmp_path / "report.csv")
    assert len(df) == 8 and set(df["status"]) == {"completed", "failed", "incomplete"}
    assert (tmp_path / "utility_comparison.png").stat().st_size > 5000


def test_no_runs_exit_code_2(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "No runs found" in capsys.readouterr().out


@pytest.mark.parametrize("depth", [0, 2])
def test_finds_runs_at_any_depth(tmp_path, depth, capsys):
    root = tmp_path
    for d in range(depth):
        root = root / f"level{d}"
    make_job(root, 0, ["utility=x"], fake_metrics(0.1))
    assert main([str(tmp_path)]) == 0
    assert "1 run(s)" in capsys.readouterr().out
