"""Utility design (rcollapse.maths.utility_design, rcollapse.design): the inverse problem."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf
from scipy import stats

from rcollapse.maths import utility_design as ud
from rcollapse.maths.theory import limit_distribution, solve_collapse, wasserstein1_to_cdf
from tests.conftest import CONF, compose_config

SYMMETRIC_A = (0.25, 0.4, 0.5, 0.6, 0.75, 1.0)


@pytest.fixture(autouse=True)
def _one_thread():
    """The solver's matrices are tiny: one torch thread (restored after each test)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---- closed forms (by hand) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "c, family, params",
    [
        (0.25, "power", {"gamma": 0.5}),  # (1 − γ)/2 = 0.25
        (0.4, "power", {"gamma": 0.2}),
        (0.1, "power", {"gamma": 0.8}),
        (0.5, "log", {}),  # arcsine
        (0.6, "neg_power", {"gamma": 0.2}),  # (1 + γ)/2 = 0.6
        (0.75, "neg_power", {"gamma": 0.5}),
        (1.0, "x_inv", {}),  # uniform
    ],
)
def test_closed_form_gamma_from_beta(c, family, params):
    cf = ud.closed_form(c)
    assert cf["family"] == family
    assert cf["params"] == pytest.approx(params)
    assert cf["box_cox_gamma"] == pytest.approx(1 - 2 * c)
    # and the project's own limit of that utility (eps = 0) is Beta(c, c)
    limit = limit_distribution(ud.make_utility(family, params, 0.0))
    if c == 1.0:
        assert limit.name == "uniform"
    else:
        assert limit.params == pytest.approx({"a": c, "b": c})


def test_closed_form_beyond_uniform_is_flagged():
    cf = ud.closed_form(2.0)
    assert cf["family"] == "x_inv" and "uniform" in cf["note"].lower()


def test_theta_classes():
    assert ud.class_of(1.0) == ("x", {})
    assert ud.class_of(0.0) == ("log", {})
    assert ud.class_of(-1.0) == ("x_inv", {})
    assert ud.class_of(0.3) == ("power", {"gamma": 0.3})
    assert ud.class_of(-2.5) == ("neg_power", {"gamma": 2.5})


# ---- symmetric projection -----------------------------------------------------------------------


def test_symmetrisation_of_beta_half_one_is_uniform():
    # Q = p² and its mirror 1 − (1 − p)² average to p; gap = ½∫|p² + 1 − (1−p)²... | = 1/6
    target = ud.beta_target(0.5, 1.0)
    sym = ud.symmetrise(target)
    p = np.linspace(0, 1, 11)
    assert sym.quantile(p) == pytest.approx(p, abs=1e-9)
    assert ud.symmetry_gap(target) == pytest.approx(1 / 6, abs=1e-4)


def test_symmetric_target_has_no_gap_and_projection_is_nearest():
    assert ud.symmetry_gap(ud.beta_target(0.3, 0.3)) < 1e-9
    target = ud.beta_target(0.4, 0.9)
    sym = ud.symmetrise(target)
    gap = ud.symmetry_gap(target)
    # any other symmetric law is at least as far (here: the Beta(c, c) family)
    for c in (0.3, 0.5, 0.65, 0.8, 1.0):
        assert ud.w1(stats.beta(c, c).ppf, target.quantile) >= gap - 1e-6
    assert ud.w1(sym.quantile, target.quantile) == pytest.approx(gap)


def test_quantile_target_validation():
    with pytest.raises(ValueError, match="nondecreasing"):
        ud.quantile_target([0, 0.5, 0.4, 1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ud.quantile_target([0, 1.5])
    with pytest.raises(ValueError, match="a target is"):
        ud.target_from_spec("beta")


# ---- designs at the paper's n = 8 ---------------------------------------------------------------


def test_design_symmetric_beta_at_n8():
    out = ud.design(ud.beta_target(0.25), n=8, eps=0.1, family="classes", large_n=None)
    best = out["design"]
    assert out["symmetric"] and out["symmetry_gap_w1"] < 1e-9
    assert out["closed_form"]["family"] == "power" and out["closed_form"]["params"] == {"gamma": 0.5}
    assert best["family"] == "power"
    assert best["design_error_w1_at_n"] < 0.01
    # the search beats the closed form at n = 8 with eps = 0.1
    cf = ud.profile("power", {"gamma": 0.5}, 0.1, 8)
    assert best["design_error_w1_at_n"] <= ud.w1_at_n(cf, ud.beta_target(0.25)) + 1e-12
    # round trip: the printed parameters, re-solved
    rewards = ud.profile(best["family"], best["params"], 0.1, 8)
    assert ud.w1_at_n(rewards, ud.beta_target(0.25)) == pytest.approx(best["design_error_w1_at_n"])


def test_design_asymmetric_beta_reports_gap():
    out = ud.design(ud.beta_target(0.5, 1.0), n=8, eps=0.1, family="classes", large_n=None)
    assert not out["symmetric"]
    assert "not symmetric" in out["message"]
    assert out["symmetry_gap_w1"] == pytest.approx(1 / 6, abs=1e-4)
    assert out["design"]["design_error_w1_at_n"] < 0.02
    # the total cannot beat the gap at n (its n-point version)
    sym, target = ud.symmetrise(ud.beta_target(0.5, 1.0)), ud.beta_target(0.5, 1.0)
    gap_at_n = np.mean(np.abs(target.rank_profile(8) - sym.rank_profile(8)))
    assert out["design"]["w1_to_target_at_n"] >= gap_at_n - 1e-9


def test_target_beyond_uniform_is_flagged():
    # the symmetrisation of Beta(1, 0.25) has a central bump (nearest Beta(c, c): c ≈ 2): no class
    # reaches it; the tool says so and reports the floor W1(symmetrised, uniform)
    out = ud.design(ud.beta_target(1.0, 0.25), n=8, eps=0.1, family="classes", large_n=None)
    assert not out["symmetric"] and out["beyond_classes"]
    assert out["symmetrised_beta_c"] > 1.5
    assert out["uniform_floor_w1"] == pytest.approx(0.063, abs=0.003)
    assert "uniform" in out["closed_form"]["note"]
    assert not ud.design(ud.beta_target(0.5, 1.0), n=8, eps=0.1, family="classes", large_n=None)["beyond_classes"]


def test_quantile_list_target():
    # an arcsine-like rank profile given as 8 quantiles (worst first)
    q = stats.beta(0.5, 0.5).ppf(np.arange(8) / 7).round(4).tolist()
    out = ud.design(ud.quantile_target(q), n=8, eps=0.1, family="classes", large_n=None)
    assert out["symmetric"]
    assert out["symmetrised_beta_c"] == pytest.approx(0.5, abs=0.05)
    assert out["design"]["design_error_w1_at_n"] < 0.01
    # asymmetric list: gap reported
    out = ud.design(ud.quantile_target([0, 0.1, 0.2, 1.0]), n=8, eps=0.1, family="classes", large_n=None)
    assert not out["symmetric"] and out["symmetry_gap_w1"] > 0.05


def test_max_neg_gamma_caps_the_search():
    out = ud.design(ud.beta_target(1.0), n=8, eps=0.1, family="classes", large_n=None, max_neg_gamma=2.0)
    d = out["design"]
    assert d["family"] in ("neg_power", "x_inv") and d["params"].get("gamma", 1.0) <= 2.0
    uncapped = ud.design(ud.beta_target(1.0), n=8, eps=0.1, family="classes", large_n=None)
    assert uncapped["design"]["design_error_w1_at_n"] <= d["design_error_w1_at_n"]


def test_logsigmoid_scale_search():
    out = ud.design(ud.beta_target(0.5), n=8, eps=0.1, family="logsigmoid", large_n=None)
    best = out["design"]
    assert best["family"] == "logsigmoid" and best["params"]["scale"] > 0
    # better than the paper's scale 4 for this target (or equal)
    paper = ud.w1_at_n(ud.profile("logsigmoid", {"scale": 4.0}, 0.1, 8), ud.beta_target(0.5))
    assert best["design_error_w1_at_n"] <= paper + 1e-9


# ---- overrides compose ---------------------------------------------------------------------------


def _instantiate(overrides, tmp_path):
    cfg = compose_config(list(overrides), tmp_path)
    return instantiate(cfg.utility)


@pytest.mark.parametrize("a", [0.25, 0.5, 1.0])
def test_single_design_overrides_compose(a, tmp_path):
    out = ud.design(ud.beta_target(a), n=8, eps=0.1, family="classes", large_n=None)
    best = out["design"]
    utility = _instantiate(best["overrides"], tmp_path)
    assert type(utility) is type(ud.make_utility(best["family"], best["params"], 0.1))
    assert utility.eps == 0.1
    if "gamma" in best["params"]:
        assert utility.gamma == pytest.approx(best["params"]["gamma"])


def test_types_target_adaptive_overrides_compose(tmp_path):
    targets = {"open": ud.target_from_spec([1.0, 1.0]), "closed": ud.target_from_spec({"a": 0.25, "b": 0.25})}
    out = ud.design_types(targets, n=8, eps=0.1, family="auto", large_n=None)
    assert out["overrides"][0] == "utility=adaptive"
    utility = _instantiate(out["overrides"], tmp_path)
    assert type(utility).__name__ == "AdaptiveUtility"
    for side in ("open", "closed"):
        d = out["types"][side]["design"]
        sub = utility.for_openness(1.0 if side == "open" else -1.0)
        assert type(sub) is type(ud.make_utility(d["family"], d["params"], 0.1))
        assert sub.eps == 0.1
        for key, value in d["params"].items():
            assert getattr(sub, key) == pytest.approx(value)
        # the composed sub-utility reproduces the designed profile
        rewards = np.sort(solve_collapse(sub, 8).rewards)
        assert np.allclose(rewards, d["rewards"], atol=1e-6)
        assert d["design_error_w1_at_n"] < 0.01


def test_openness_target_overrides_compose(tmp_path):
    out = ud.design_openness([-1.0, 0.0, 1.0], [ud.beta_target(a) for a in (0.25, 0.5, 0.75)], n=8, eps=0.1)
    utility = _instantiate(out["overrides"], tmp_path)
    assert type(utility).__name__ == "BoxCoxOpenEndednessUtility"
    assert utility.gamma_closed == pytest.approx(out["gamma_closed"])
    assert utility.gamma_open == pytest.approx(out["gamma_open"])
    assert out["gamma_closed"] > out["gamma_open"]  # closed prompts more polarised
    for row in out["scores"]:
        sub = utility.for_openness(row["s"])
        assert np.allclose(np.sort(solve_collapse(sub, 8).rewards), row["rewards"], atol=1e-6)
        assert row["design_error_w1_at_n"] < 0.02


# ---- the entry point ------------------------------------------------------------------------------


def _design_cfg(tmp_path, **values):
    cfg = OmegaConf.load(CONF / "design.yaml")
    cfg.pop("hydra")
    cfg.output_dir = str(tmp_path / "out")
    for key, value in values.items():
        cfg[key] = value
    return cfg


def test_entry_point_writes_design_json_and_figure(tmp_path, capsys):
    from rcollapse.design import run

    run(_design_cfg(tmp_path, target="beta", a=0.4, b=0.8, n=6, large_n=None, family="classes"))
    text = capsys.readouterr().out
    assert "NOT ATTAINABLE" in text and "overrides: utility=" in text
    payload = json.loads((tmp_path / "out" / "design.json").read_text())
    assert payload["symmetry_gap_w1"] > 0.05
    assert (tmp_path / "out" / "figures" / "design.png").stat().st_size > 0


def test_entry_point_types_and_hydra_config(tmp_path, capsys):
    from rcollapse.design import run

    run(_design_cfg(tmp_path, target="types", open=[1, 1], closed=[0.3, 0.3], n=6, large_n=None, family="classes", plot=False))
    assert "overrides: utility=adaptive" in capsys.readouterr().out


def test_design_config_composes():
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("design", overrides=["target=quantiles", "q=[0,0.2,0.8,1]", "n=6"])
    assert cfg.target == "quantiles" and list(cfg.q) == [0, 0.2, 0.8, 1] and cfg.n == 6


# ---- acceptance: the round trip at large n (slow) -------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("a", SYMMETRIC_A)
def test_round_trip_symmetric_beta_large_n(a):
    """Design for Beta(a, a) at n = 512 (eps = 0.1, the training shift), solve the collapse program
    with the designed utility, and compare with the target: W1 < 0.02."""
    n, eps = 512, 0.1
    out = ud.design(ud.beta_target(a), n=n, eps=eps, family="classes", large_n=None)
    d = out["design"]
    rewards = solve_collapse(ud.make_utility(d["family"], d["params"], eps), n).rewards
    assert wasserstein1_to_cdf(rewards, stats.beta(a, a).cdf) < 0.02


@pytest.mark.slow
@pytest.mark.parametrize("a", SYMMETRIC_A)
def test_round_trip_closed_form_large_n(a):
    """The closed form alone (eps = 0, n = 512) is within 0.02 of Beta(a, a)."""
    cf = ud.closed_form(a)
    rewards = solve_collapse(ud.make_utility(cf["family"], cf["params"], 0.0), 512).rewards
    assert wasserstein1_to_cdf(rewards, stats.beta(a, a).cdf) < 0.02


@pytest.mark.slow
@pytest.mark.parametrize("a, b", [(0.25, 0.5), (0.5, 1.0), (0.4, 0.75), (0.6, 0.25), (1.0, 0.75)])
def test_round_trip_asymmetric_beta_large_n(a, b):
    """a ≠ b: the gap is reported apart, and the design error to the symmetrised target is < 0.02."""
    n, eps = 512, 0.1
    target = ud.beta_target(a, b)
    out = ud.design(target, n=n, eps=eps, family="classes", large_n=None)
    assert not out["symmetric"] and out["symmetry_gap_w1"] > 0.01
    d = out["design"]
    rewards = solve_collapse(ud.make_utility(d["family"], d["params"], eps), n).rewards
    sym = ud.symmetrise(target)
    assert ud.w1_to_law(rewards, sym) < 0.02
    # triangle inequality: the total is within gap + design error
    assert ud.w1_to_law(rewards, target) <= out["symmetry_gap_w1"] + ud.w1_to_law(rewards, sym) + 1e-6


# ---- the design trains toward its target ------------------------------------------------------


@pytest.mark.slow
def test_a_designed_utility_trains_a_reward_model_toward_its_target(tmp_path):
    """Design for Beta(½, ½) at the length task's n = 8, train the default reward stage (400
    steps) with the printed overrides, and compare its test prompts' profiles with the target.
    Measured: the design's own error 0.0044; the trained model 0.011 from the target
    symmetrised (0.018 as observed), and Beta(¼, ¼) (power γ 0.349) 0.009 (0.012)."""
    from rcollapse.analysis.collapse_diagnosis import normalised_profile, symmetrised_profile
    from rcollapse.pipeline import run

    target = ud.beta_target(0.5)
    out = ud.design(target, n=8, eps=0.1, large_n=None)
    run(compose_config([*out["design"]["overrides"], "trainer.enable_progress_bar=false"], tmp_path))
    vectors = json.loads((tmp_path / "run" / "rewards_test.json").read_text())["rewards"]
    profiles = [normalised_profile(v) for v in vectors]
    assert {len(p) for p in profiles} == {8}
    as_observed = np.mean([ud.w1_at_n(p, target) for p in profiles])
    symmetrised = np.mean([ud.w1_at_n(symmetrised_profile(p), target) for p in profiles])
    assert symmetrised < 0.02, (symmetrised, as_observed)
    assert as_observed < 0.03, (symmetrised, as_observed)
