"""The report's risk comparison of a PPO sweep (variance-aware vs vanilla at matched KL): the printed
block, the summary's "below ref" and "worst 10%" columns and ``ppo_study.json``, on fake run dirs."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from scipy import stats

from rcollapse.analysis.ppo_report import ppo_summary, risk_comparison
from rcollapse.analysis.risk_statistics import bootstrap_variance_ratio_ci
from rcollapse.analysis.sweep_report import collect_runs, main

# per arm, one (judge, its run's reference judge, final KL) per policy; numbers chosen for hand checks
VANILLA = [(0.2, 0.1, 2.0), (0.4, 0.5, 2.0), (0.6, 0.7, 2.0), (0.8, 0.9, 2.0)]  # 3 of 4 below their reference
AWARE = [(0.4, 0.3, 2.2), (0.5, 0.45, 2.2), (0.5, 0.55, 2.2), (0.6, 0.5, 2.2)]  # 1 of 4


def make_run(root, num, arm, weighted, seed, judge, reference, final_kl, status="completed", uq=None):
    """A stage=ppo run dir as the pipeline leaves it: overrides, resolved config, status, metrics
    (``uq``: ``ppo/test/uq/*`` values by name)."""
    run = Path(root) / str(num)
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"ppo_arm={arm}", f"seed={seed}"]))
    (run / "config_resolved.yaml").write_text(yaml.safe_dump({"stage": {"module": {"kl_weight": "variance" if weighted else "one"}}}))
    (run / "status.json").write_text(json.dumps({"status": status}))
    (run / "metrics.json").write_text(json.dumps({"ppo/test/judge_mean": judge, "ppo/test/judge_mean_ref": reference,
                                                  "ppo/train/kl": 9.0, "ppo/final/kl": final_kl,
                                                  **{f"ppo/test/uq/{k}": v for k, v in (uq or {}).items()}}))
    return run


def make_study(root, vanilla=VANILLA, aware=AWARE):
    num = 0
    for arm, weighted, policies in (("small_vanilla", False, vanilla), ("small_variance_aware", True, aware)):
        for seed, policy in enumerate(policies):
            make_run(root, num, arm, weighted, seed, *policy)
            num += 1
    return root


def test_report_prints_the_risk_block_and_writes_ppo_study_json(tmp_path, capsys):
    make_study(tmp_path)
    make_run(tmp_path, 99, "small_vanilla", False, 9, 0.0, 0.9, 50.0, status="failed")  # left out
    out = tmp_path / "report"
    assert main([str(tmp_path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out

    study = json.loads((out / "ppo_study.json").read_text())
    assert set(study) == {"treatment", "control", "arms", "variance_ratio", "variance_ratio_ci", "ci_level",
                          "bootstrap_resamples", "bootstrap_seed", "levene_statistic", "levene_p",
                          "levene_center", "relative_kl_gap", "kl_matched", "kl_tolerance", "worst_fraction",
                          "kl_metric", "mechanism"}
    assert study["mechanism"] == {}  # these runs recorded no ppo/test/uq/*
    assert (study["treatment"], study["control"], study["kl_metric"]) == ("variance-aware", "vanilla", "ppo/final/kl")
    aware, vanilla = study["arms"]["variance-aware"], study["arms"]["vanilla"]
    assert set(aware) == {"n", "judge_mean", "judge_var", "reference_judge_mean", "share_below_reference",
                          "worst_fraction_mean", "worst_count", "final_kl_mean"}
    assert aware["n"] == vanilla["n"] == 4  # the failed run is not a policy
    assert aware["judge_var"] == pytest.approx(0.02 / 3) and vanilla["judge_var"] == pytest.approx(0.2 / 3)
    assert aware["share_below_reference"] == 0.25 and vanilla["share_below_reference"] == 0.75
    assert aware["worst_fraction_mean"] == pytest.approx(0.4) and vanilla["worst_fraction_mean"] == pytest.approx(0.2)
    assert aware["final_kl_mean"] == pytest.approx(2.2) and vanilla["final_kl_mean"] == pytest.approx(2.0)
    assert study["variance_ratio"] == pytest.approx(0.1)  # (0.02 / 3) / (0.2 / 3)
    expected_ci = bootstrap_variance_ratio_ci([p[0] for p in AWARE], [p[0] for p in VANILLA])
    assert study["variance_ratio_ci"] == pytest.approx(list(expected_ci))
    assert study["ci_level"] == 0.95 and study["bootstrap_resamples"] == 10000
    assert study["levene_statistic"] == pytest.approx(5.4) and study["levene_p"] == pytest.approx(stats.f.sf(5.4, 1, 6))
    assert study["relative_kl_gap"] == pytest.approx(0.2 / 2.1) and study["kl_matched"] is True

    summary = pd.read_csv(out / "ppo_summary.csv", index_col="policy")
    assert summary.loc["vanilla", "below ref"] == 0.75 and summary.loc["variance-aware", "below ref"] == 0.25
    assert summary.loc["vanilla", "worst 10%"] == pytest.approx(0.2)
    assert summary.loc["reference", "worst 10%"] == pytest.approx(0.1) and math.isnan(summary.loc["reference", "below ref"])

    assert "Risk at matched KL: variance-aware vs vanilla" in printed
    assert "variance-aware 25 % of 4, vanilla 75 % of 4" in printed
    low, high = expected_ci
    assert f"ratio variance-aware / vanilla = 0.1, 95 % percentile-bootstrap CI [{low:.4g}, {high:.4g}]" in printed
    assert "W = 5.4" in printed and "9.5 % (within 10 %)" in printed
    assert "NOT KL-matched" not in printed
    assert f"wrote {out / 'ppo_study.json'}" in printed


def test_report_warns_when_the_arms_final_kls_are_more_than_10_percent_apart(tmp_path, capsys):
    make_study(tmp_path, aware=[(judge, reference, 3.0) for judge, reference, _ in AWARE])
    assert main([str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    study = json.loads((tmp_path / "ppo_study.json").read_text())
    assert study["relative_kl_gap"] == pytest.approx(0.4) and study["kl_matched"] is False
    assert "WARNING: the arms are NOT KL-matched (final KLs 40.0 % apart, over 10 %)" in printed


def test_undefined_numbers_are_null_in_ppo_study_json(tmp_path, capsys):
    # one policy per arm: no variance, no interval, no Levene
    make_study(tmp_path, vanilla=VANILLA[1:2], aware=AWARE[:1])
    assert main([str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    study = json.loads((tmp_path / "ppo_study.json").read_text())
    assert study["variance_ratio"] is None and study["variance_ratio_ci"] == [None, None]
    assert study["levene_statistic"] is None and study["levene_p"] is None
    assert study["arms"]["vanilla"]["judge_var"] is None
    assert study["arms"]["vanilla"]["share_below_reference"] == 1.0  # 0.4 under its reference's 0.5
    assert study["arms"]["variance-aware"]["share_below_reference"] == 0.0
    assert "CI [-, -]" in printed


def test_no_risk_comparison_without_both_arms(tmp_path, capsys):
    make_study(tmp_path, aware=[])  # also a sweep in which only the seed varies
    assert risk_comparison(ppo_summary(collect_runs([tmp_path]))) is None
    assert main([str(tmp_path)]) == 0
    assert "needs both arms (variance-aware and vanilla); found vanilla" in capsys.readouterr().out
    assert not (tmp_path / "ppo_study.json").exists()


def test_the_mechanism_is_reported_per_arm_beside_the_claim(tmp_path, capsys):
    make_run(tmp_path, 0, "small_vanilla", False, 0, 0.1, 0.2, 2.0, uq={"spearman_var_abs_error": 0.4,
                                                                         "var_last_over_ref": 2.0})
    make_run(tmp_path, 1, "small_vanilla", False, 1, 0.3, 0.2, 2.0, uq={"spearman_var_abs_error": 0.6,
                                                                         "var_last_over_ref": 4.0})
    make_run(tmp_path, 2, "small_variance_aware", True, 0, 0.2, 0.2, 2.0, uq={"spearman_var_abs_error": 0.1})
    make_run(tmp_path, 3, "small_variance_aware", True, 1, 0.25, 0.2, 2.0)
    out = tmp_path / "report"
    assert main([str(tmp_path), "--out", str(out)]) == 0
    study = json.loads((out / "ppo_study.json").read_text())
    assert study["mechanism"]["vanilla"] == pytest.approx({"spearman_var_abs_error": 0.5, "var_last_over_ref": 3.0})
    assert study["mechanism"]["variance-aware"] == pytest.approx({"spearman_var_abs_error": 0.1})
    assert "mechanism (vanilla): Spearman(sigma^2, |error|) on the judged responses 0.5" in capsys.readouterr().out
