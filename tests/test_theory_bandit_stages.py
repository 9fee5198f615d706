"""stage=theory and stage=bandit through the pipeline: their JSON files, metrics and figures."""

import json

import pytest

from rcollapse.pipeline import run
from tests.conftest import compose_config


def test_theory_stage_writes_the_solution_and_the_distance_to_its_limit(tmp_path):
    cfg = compose_config(["stage=theory", "utility=power", "utility.gamma=0.5", "utility.eps=0",
                          "stage.theory.n=64"], tmp_path)
    run(cfg)
    out = tmp_path / "run"
    theory = json.loads((out / "theory.json").read_text())
    assert theory["n"] == 64 and len(theory["rewards"]) == 64
    assert theory["rewards"] == sorted(theory["rewards"], reverse=True)
    assert theory["limit"] == {"name": "beta", "params": {"a": 0.25, "b": 0.25}}
    assert 0 < theory["ks_distance"] < 0.05
    assert (out / "figures" / "theory_distribution.png").stat().st_size > 5000
    assert "theory/ks_distance" in json.loads((out / "metrics.json").read_text())


def test_theory_stage_for_a_prompt_aware_utility_uses_the_prompt_type(tmp_path):
    cfg = compose_config(["stage=theory", "utility=adaptive", "stage.theory.openness=-1", "stage.theory.n=9"], tmp_path)
    run(cfg)
    theory = json.loads((tmp_path / "run" / "theory.json").read_text())
    assert theory["limit"]["name"] == "two_point"  # closed-ended prompts train with U = x
    assert theory["rewards"] == [1.0] * 4 + [0.5] + [0.0] * 4
    # the two-point law has no mass at ½, the solution 1/9: F_n − F = ±1/18 around ½
    assert theory["ks_distance"] == pytest.approx(1 / 18)


def test_theory_stage_gives_x_zero_distance_to_its_two_point_limit(tmp_path):
    cfg = compose_config(["stage=theory", "utility=x", "stage.theory.n=64"], tmp_path)
    run(cfg)
    theory = json.loads((tmp_path / "run" / "theory.json").read_text())
    assert theory["rewards"] == [1.0] * 32 + [0.0] * 32  # exactly half at 0 and half at 1
    assert theory["ks_distance"] == 0.0 and theory["w1_distance"] == 0.0


def test_theory_stage_measures_the_distance_on_the_gaps_that_round_away(tmp_path):
    # x^0.75 at n = 512: 1 − r_2 ≈ 1e−19, so r_2 rounds to 1.0. The exact KS distance is 1/n:
    # no less (the solution's atom at r_n = 0: F_n(0) = 1/n, F(0) = 0) and, by test_theory's
    # 60-digit reference, no more; on the rounded rewards it was 2/n.
    cfg = compose_config(["stage=theory", "utility=power", "utility.gamma=0.75", "utility.eps=0",
                          "stage.theory.n=512"], tmp_path)
    run(cfg)
    theory = json.loads((tmp_path / "run" / "theory.json").read_text())
    assert theory["rewards"][1] == 1.0 and 0 < theory["distances_to_end"][1] < 1e-18
    assert theory["ks_distance"] == pytest.approx(1 / 512, rel=1e-9)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["theory/ks_distance"] == pytest.approx(1 / 512, rel=1e-9)


@pytest.mark.parametrize("utility, limit", [("log", {"a": 0.5, "b": 0.5}), ("x_inv", {}),
                                             ("power", {"a": 0.25, "b": 0.25}), ("neg_power", {"a": 0.75, "b": 0.75})])
def test_theory_limits_is_the_un_shifted_theory_within_ks_002_at_n_512(utility, limit, tmp_path):
    """experiment=theory_limits (Fig. 2) solves the theory's un-shifted classes (eps = 0), whose
    collapsed rewards at n = 512 sit within KS 0.02 of the Beta / uniform limit (issue 25, item 5);
    the shifted grid (experiment=theory_limits_shifted, eps = 0.1) puts atoms at the ends and does not."""
    cfg = compose_config(["experiment=theory_limits", f"utility={utility}"], tmp_path)
    assert cfg.utility.eps == 0 and cfg.stage.theory.n == 512
    run(cfg)
    theory = json.loads((tmp_path / "run" / "theory.json").read_text())
    assert theory["limit"]["params"] == limit and len(theory["rewards"]) == 512
    assert theory["ks_distance"] < 0.02 and theory["w1_distance"] < 0.01
    shifted = compose_config(["experiment=theory_limits_shifted", f"utility={utility}"], tmp_path / "shifted")
    assert shifted.utility.eps == 0.1 and shifted.stage.theory.n == 512
    run(shifted)
    theory = json.loads((tmp_path / "shifted" / "run" / "theory.json").read_text())
    assert theory["ks_distance"] > 0.09  # the shift's atoms at 0 and 1, not the theory
    assert sum(d < 1e-9 for d in theory["distances_to_end"]) > 0.15 * 512


@pytest.mark.parametrize("setting", ["high", "low"])
def test_bandit_stage_reports_both_methods(setting, tmp_path):
    cfg = compose_config(["stage=bandit", f"stage.bandit.setting={setting}", "stage.bandit.num_draws=2000",
                          "stage.bandit.d=200"], tmp_path)
    run(cfg)
    out = tmp_path / "run"
    result = json.loads((out / "bandit.json").read_text())
    for method in ("unaware", "aware"):
        assert set(result["methods"][method]) == {"return_mean", "return_std", "underperformance_mc",
                                                  "underperformance_closed_form"}
    aware, unaware = result["methods"]["aware"], result["methods"]["unaware"]
    assert aware["underperformance_closed_form"] <= unaware["underperformance_closed_form"]
    if setting == "high":  # heterogeneous variances: the aware update is much less spread
        assert result["std_ratio_unaware_over_aware"] > 2
    else:  # near-homogeneous variances: the two are close
        assert result["std_ratio_unaware_over_aware"] < 1.3
    assert (out / "figures" / "bandit_returns.png").stat().st_size > 5000


def test_bandit_stage_rejects_an_unknown_setting(tmp_path):
    cfg = compose_config(["stage=bandit", "stage.bandit.setting=medium"], tmp_path)
    with pytest.raises(ValueError, match="stage.bandit.setting"):
        run(cfg)


@pytest.mark.e2e
def test_theory_multirun_over_gamma_gives_one_panel_per_class(tmp_path):
    import subprocess
    import sys

    from tests.conftest import REPO

    sweep = tmp_path / "sweep"
    proc = subprocess.run([sys.executable, "run.py", "-m", "stage=theory", "utility=power,neg_power",
                           "utility.gamma=0.25,0.75", "utility.eps=0", "stage.theory.n=16",
                           f"hydra.sweep.dir={sweep}"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list(sweep.glob("*/theory.json"))) == 4
    report = subprocess.run([sys.executable, "-m", "rcollapse.report", str(sweep)], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert report.returncode == 0 and "theory_by_class.png" in report.stdout
    assert (sweep / "theory_by_class.png").stat().st_size > 5000
