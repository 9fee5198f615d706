"""`python -m rcollapse.diagnose`: the collapse index, the nearest theoretical profile, the command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from rcollapse.analysis.collapse_diagnosis import (
    Candidate,
    TheoryCache,
    collapse_report,
    consistent_candidates,
    default_candidates,
    dispersion,
    group_labels,
    nearest_confidence,
    nearest_profiles,
    normalised_profile,
    profile_asymmetry,
    symmetrised_profile,
)
from rcollapse.diagnose import diagnose
from rcollapse.pipeline import run
from tests.conftest import CONF, REPO, compose_config

# ---- pure functions, by hand ---------------------------------------------------------------------


def test_normalised_profile_is_min_max_within_the_prompt_sorted_best_first():
    np.testing.assert_allclose(normalised_profile([2.0, 4.0, 3.0, 6.0]), [1.0, 0.5, 0.25, 0.0])
    np.testing.assert_allclose(normalised_profile([0.3, 0.3, 0.3]), [0.5, 0.5, 0.5])  # no spread at all
    with pytest.raises(ValueError, match="at least 2"):
        normalised_profile([1.0])
    with pytest.raises(ValueError, match="finite"):
        normalised_profile([1.0, float("nan")])


def test_identical_profiles_give_index_zero_whatever_each_prompts_offset_and_scale():
    rng = np.random.default_rng(0)
    shape = np.array([0.9, 0.7, 0.6, 0.2, 0.1])
    scores = [a * shape + b for a, b in zip(rng.uniform(0.1, 5, 10), rng.normal(size=10), strict=True)]
    profiles = [normalised_profile(s) for s in scores]
    report = collapse_report(profiles, ["open", "closed"] * 5)
    assert report["collapse_index"] == pytest.approx(0, abs=1e-12)
    assert report["within_group_dispersion"] == pytest.approx(0, abs=1e-12)
    assert report["between_group_distance"] == pytest.approx(0, abs=1e-12)


def test_two_shapes_give_the_hand_computed_distances():
    polar, linear = np.array([1, 1, 0, 0.0]), np.array([1, 2 / 3, 1 / 3, 0])
    report = collapse_report([polar, polar, linear, linear], ["closed", "closed", "open", "open"])
    # W1 = mean |sorted a − sorted b| = (0 + 1/3 + 1/3 + 0) / 4
    assert report["between_group_distance"] == pytest.approx(1 / 6)
    assert report["pairwise"] == {"closed|open": pytest.approx(1 / 6)}
    assert report["within_group_dispersion"] == pytest.approx(0)
    assert report["groups"]["open"] == {"num_prompts": 2, "dispersion": pytest.approx(0)}
    # pooled: 0,0,0,1/3,2/3,1,1,1 (eighths); each shape differs from it by 1/3 on two eighths
    assert report["collapse_index"] == pytest.approx(1 / 12)
    assert dispersion([polar, linear]) == pytest.approx(1 / 12)


def test_group_labels_by_type_by_openness_bin_by_column_and_none():
    openness = [1.0, -1.0, 0.0, 0.3, -0.6]
    assert group_labels(openness, "type") == ["open", "closed", "closed", "open", "closed"]
    assert group_labels(openness, "openness_bin", [-1, 0, 1]) == ["[0,1]", "[-1,0)", "[0,1]", "[0,1]", "[-1,0)"]
    assert group_labels(openness, "column", column=list("abcab")) == list("abcab")
    assert group_labels(openness, "none") == ["all"] * 5
    with pytest.raises(ValueError, match="diagnose.group_by"):
        group_labels(openness, "colour")


_THEORY = TheoryCache()  # shared by the cases: each (candidate, n) is solved once


@pytest.mark.parametrize("name, params", [("x", {}), ("log", {"eps": 0.1}), ("x_inv", {"eps": 0.1}),
                                          ("power", {"gamma": 0.5, "eps": 0.1})])
def test_the_nearest_profile_recovers_the_utility_whose_solution_is_fed_in(name, params):
    cache = _THEORY
    truth = Candidate(name, params)
    sizes = [8, 8, 8, 5, 6]  # prompts may have different numbers of completions
    profiles = [cache.profile(truth, n) for n in sizes]
    ranked = nearest_profiles(profiles, default_candidates(), cache)
    assert ranked[0]["label"] == truth.label
    assert ranked[0]["w1"] == pytest.approx(0, abs=1e-9)
    assert ranked[1]["w1"] > 5e-3  # the runner-up is told apart
    assert [r["w1"] for r in ranked] == sorted(r["w1"] for r in ranked)


def test_symmetrising_keeps_a_symmetric_profile_and_removes_a_shift_of_the_middle():
    solution = _THEORY.profile(Candidate("x_inv", {"eps": 0.1}), 8)
    np.testing.assert_allclose(symmetrised_profile(solution), solution, atol=1e-12)  # Theorem 1: symmetric
    assert profile_asymmetry([solution]) == pytest.approx(0, abs=1e-12)
    # by hand: (1, .8, .3, 0) mirrored is (1, .7, .2, 0); their mean (1, .75, .25, 0)
    np.testing.assert_allclose(symmetrised_profile([1, 0.8, 0.3, 0]), [1, 0.75, 0.25, 0])
    assert profile_asymmetry([np.array([1, 0.8, 0.3, 0])]) == pytest.approx(0.05 / 2)
    assert profile_asymmetry([np.array([1, 0.8, 0.3, 0]), solution]) == pytest.approx(0.05 / 4)


def test_a_uniform_lift_of_the_middle_ranks_no_longer_hides_the_utility():
    """The failure measured on a 400-step x_inv run: its middle ranks sat ~0.04 above the
    solution, which as observed is nearer a flatter utility; symmetrised, x_inv is first again."""
    cache, truth = _THEORY, Candidate("x_inv", {"eps": 0.1})
    lift = np.array([0, 0.04, 0.04, 0.04, 0.04, 0.04, 0.02, 0])
    profiles = [np.clip(cache.profile(truth, 8) + lift, 0, 1) for _ in range(6)]
    as_observed = nearest_profiles(profiles, default_candidates(), cache, symmetrise=False)
    symmetrised = nearest_profiles(profiles, default_candidates(), cache, symmetrise=True)
    assert as_observed[0]["label"] != truth.label  # the lift alone moves the match
    assert symmetrised[0]["label"] == truth.label
    assert symmetrised[0]["w1"] < symmetrised[0]["w1_raw"]  # never farther from a symmetric prediction
    assert all(r["w1"] <= r["w1_raw"] + 1e-12 for r in symmetrised)


def test_symmetrising_a_prompt_never_moves_it_away_from_a_solution_though_a_pool_may():
    rng = np.random.default_rng(0)
    for cand in default_candidates():
        for n in (3, 6, 8):
            solution = _THEORY.profile(cand, n)
            for _ in range(20):
                q = normalised_profile(rng.beta(0.7, 1.6, n))
                assert np.abs(symmetrised_profile(q) - solution).mean() <= np.abs(q - solution).mean() + 1e-12
    # by hand: (1, .6, .6, 0) and (1, .4, .4, 0) lean opposite ways and pool to exactly the law of
    # (1, .6, .4, 0) twice; symmetrised, each is (1, .5, .5, 0), 0.05 from it
    cache, target = TheoryCache(), Candidate("x_inv", {"eps": 0.1})
    cache._solved[("x_inv", (("eps", 0.1),), 4)] = np.array([1, 0.6, 0.4, 0])
    ranked = nearest_profiles([np.array([1, 0.6, 0.6, 0]), np.array([1, 0.4, 0.4, 0])], [target], cache)
    assert ranked[0]["w1_raw"] == pytest.approx(0, abs=1e-12) and ranked[0]["w1"] == pytest.approx(0.05)


def test_confidence_is_the_share_of_prompt_resamples_a_candidate_wins():
    cache, truth = _THEORY, Candidate("log", {"eps": 0.1})
    exact = nearest_confidence([cache.profile(truth, 8)] * 5, default_candidates(), cache, resamples=50)
    assert exact[truth.label] == 1.0 and sum(exact.values()) == pytest.approx(1.0)
    # half the prompts follow x, half log: neither wins every resample, and the two share them
    x = Candidate("x")
    mixed = [cache.profile(truth, 8), cache.profile(x, 8)] * 4
    shares = nearest_confidence(mixed, [truth, x, Candidate("x_inv", {"eps": 0.1})], cache, resamples=400)
    assert 0.05 < shares[truth.label] < 0.95 and 0.05 < shares["x"] < 0.95
    assert shares[truth.label] + shares["x"] == pytest.approx(1.0)
    again = nearest_confidence(mixed, [truth, x, Candidate("x_inv", {"eps": 0.1})], cache, resamples=400)
    assert again == shares  # seeded
    with pytest.raises(ValueError, match="at least 1"):
        nearest_confidence(mixed, [truth], cache, resamples=0)


def test_the_consistent_set_is_every_candidate_within_the_factor_of_the_nearest():
    ranked = [{"label": "a", "w1": 0.005}, {"label": "b", "w1": 0.0099}, {"label": "c", "w1": 0.0101},
              {"label": "d", "w1": float("nan")}]
    assert consistent_candidates(ranked, 2.0) == ["a", "b"]
    assert consistent_candidates(ranked, 1.0) == ["a"]
    exact = [{"label": "x", "w1": 0.0}, {"label": "y", "w1": 0.0005}, {"label": "z", "w1": 0.04}]
    assert consistent_candidates(exact, 2.0) == ["x", "y"]  # the 0.001 floor for an exact fit
    with pytest.raises(ValueError, match="consistent_factor"):
        consistent_candidates(ranked, 0.5)


# ---- the command ---------------------------------------------------------------------------------


def compose_diagnose(overrides: list[str], out: Path):
    from rcollapse.config.resolvers import register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("diagnose", overrides=[f"paths.output_dir={out}", f"paths.cache_dir={out}/cache",
                                               *overrides])


FAST_DATA = ["dataset.num_train=16", "dataset.num_test=8"]


@pytest.fixture
def short_reward_run(fast_reward_run) -> Path:
    """A few steps of stage=reward (utility=x) on the tiny model (tests/conftest.py: FAST_TRAINING,
    one run per test process)."""
    return fast_reward_run("x")


def test_diagnose_a_short_reward_run_end_to_end(short_reward_run, tmp_path):
    out = tmp_path / "diag"
    result = diagnose(compose_diagnose([f"reward_model.run_dir={short_reward_run}", *FAST_DATA], out))
    for name in ("diagnose.json", "per_prompt_scores.parquet", "summary.txt", "figures/profiles_by_group.png",
                 "config_resolved.yaml"):
        assert (out / name).stat().st_size > 100, name
    written = json.loads((out / "diagnose.json").read_text())
    assert written["nearest_utility"] == result["nearest_utility"]
    assert written["data"]["num_prompts"] == 8 and written["data"]["split"] == "test"
    assert set(written["groups"]) == {"open", "closed"}
    assert written["reward_model"]["trained_utility"]["_target_"] == "rcollapse.maths.utilities.LinearUtility"
    assert set(written["nearest"]["by_group"]) == {"open", "closed"}
    assert len(written["nearest"]["overall"]) == len(default_candidates())
    assert 0 <= written["collapse_index"] <= 1 and 0 <= written["between_group_distance"] <= 1
    assert isinstance(written["collapsed"], bool)
    assert written["symmetrised"] is True and 0 <= written["asymmetry"] <= 0.5
    shares = written["nearest_confidence"]["overall"]
    assert written["nearest_confidence"]["resamples"] == 500 and sum(shares.values()) == pytest.approx(1.0)
    assert written["consistent_utilities"][0] == written["nearest_utility"]
    assert written["nearest_told_apart"] == (shares[written["nearest_utility"]] >= 0.9
                                             and written["consistent_utilities"] == [written["nearest_utility"]])
    assert set(written["nearest_told_apart_by_group"]) == {"open", "closed"}
    assert all(0 <= r["w1"] <= 1 and 0 <= r["w1_raw"] <= 1 for r in written["nearest"]["overall"])

    import pandas as pd

    table = pd.read_parquet(out / "per_prompt_scores.parquet")
    assert list(table.columns) == ["prompt_id", "prompt", "openness", "group", "completion_index", "completion",
                                   "score", "normalised", "rank"]
    assert len(table) == 8 * 8
    assert table.groupby("prompt_id")["rank"].apply(sorted).map(list).eq([list(range(1, 9))] * 8).all()
    assert table["score"].between(0, 1).all()  # sigmoid(head), as trained
    summary = (out / "summary.txt").read_text()
    assert "collapse index" in summary and "behaves as if trained with U = " in summary

    # the scores are the reward stage's own: its last test evaluation of the same prompts
    vector = json.loads((short_reward_run / "rewards_test.json").read_text())["rewards"][0]
    scored = table[table.prompt_id == table.prompt_id.iloc[0]].sort_values("completion_index")["score"]
    np.testing.assert_allclose(scored.to_numpy(), np.asarray(vector, float), atol=1e-5)


def test_a_model_built_from_a_config_and_grouping_by_a_named_column(tmp_path):
    groups = tmp_path / "groups.jsonl"
    cfg = compose_diagnose(["reward_model.source=model", *FAST_DATA, "diagnose.max_prompts=6"], tmp_path / "a")
    from rcollapse.diagnose import load_rows

    rows = load_rows(cfg)
    groups.write_text("".join(json.dumps({"id": r.row_id, "topic": "AB"[k % 2]}) + "\n" for k, r in enumerate(rows)))
    cfg = compose_diagnose(["reward_model.source=model", *FAST_DATA, "diagnose.max_prompts=6",
                            "diagnose.group_by=column", "diagnose.group_column=topic", f"diagnose.group_file={groups}",
                            "diagnose.classes=[x,x_inv]"], tmp_path / "b")
    result = diagnose(cfg)
    assert set(result["groups"]) == {"A", "B"} and result["data"]["num_prompts"] == 6
    assert {r["label"] for r in result["nearest"]["overall"]} == {"x", "x_inv(eps=0.1)"}
    assert result["reward_model"]["trained_utility"] is None


def _tiny_sequence_classifier(path: Path):
    from transformers import BertConfig, BertForSequenceClassification

    from rcollapse.models.tiny_encoder import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, num_labels=1, pad_token_id=tokenizer.pad_token_id)
    BertForSequenceClassification(config).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))


@pytest.mark.parametrize("trained_on, output, kind", [("auto", "auto", "raw logit 0"), ("pairs", "raw", "raw logit 0"),
                                                       ("rankings", "sigmoid", "sigmoid(logit 0)"),
                                                       ("rankings", "auto", "sigmoid(logit 0)")])
def test_a_hub_sequence_classifier_from_a_local_directory(tmp_path, trained_on, output, kind):
    _tiny_sequence_classifier(tmp_path / "rm")
    result = diagnose(compose_diagnose(["reward_model.source=hub", f"reward_model.name_or_path={tmp_path / 'rm'}",
                                        f"reward_model.trained_on={trained_on}", f"reward_model.output={output}",
                                        *FAST_DATA, "diagnose.max_prompts=4", "diagnose.classes=[x,log]"],
                                       tmp_path / "d"))
    assert result["reward_model"]["score_kind"].startswith(kind)
    assert result["reward_model"]["trained_on"] == ("pairs" if trained_on == "auto" else trained_on)
    assert result["data"]["num_prompts"] == 4


def test_an_unreachable_hub_name_fails_naming_the_key(tmp_path, monkeypatch):
    from rcollapse.models.hub_models import ModelUnavailableError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = compose_diagnose(["reward_model.source=hub", "reward_model.name_or_path=someone/no-such-rm", *FAST_DATA],
                           tmp_path / "d")
    with pytest.raises(ModelUnavailableError, match="reward_model.name_or_path"):
        diagnose(cfg)


def test_a_saved_ensemble_scores_with_its_heads_mean(tmp_path):
    from rcollapse.models.ensemble_artifact import save_ensemble
    from rcollapse.models.reward_model import RewardModel
    from rcollapse.models.tiny_encoder import build_tiny_encoder, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(0)
    model = RewardModel(build_tiny_encoder(tokenizer, hidden_size=32, num_layers=1, num_heads=2,
                                           intermediate_size=64), num_heads=3)
    model.fit_normalisation(torch.randn(64, 32))
    save_ensemble(model, tokenizer, tmp_path / "ens", max_length=128, head_seeds=[0, 1, 2])
    result = diagnose(compose_diagnose(["reward_model.source=ensemble", f"reward_model.artifact={tmp_path / 'ens'}",
                                        *FAST_DATA, "diagnose.max_prompts=4", "diagnose.classes=[x]"],
                                       tmp_path / "d"))
    assert "3 heads" in result["reward_model"]["description"]


def test_wrong_sources_fail_with_the_key(tmp_path, short_reward_run):
    with pytest.raises(ValueError, match="reward_model.run_dir"):
        diagnose(compose_diagnose([*FAST_DATA], tmp_path / "a"))
    with pytest.raises(FileNotFoundError, match="config_resolved.yaml"):
        diagnose(compose_diagnose([f"reward_model.run_dir={tmp_path}", *FAST_DATA], tmp_path / "b"))
    with pytest.raises(ValueError, match="reward_model.source"):
        diagnose(compose_diagnose(["reward_model.source=magic", *FAST_DATA], tmp_path / "c"))
    with pytest.raises(ValueError, match="diagnose.split"):
        diagnose(compose_diagnose([f"reward_model.run_dir={short_reward_run}", "diagnose.split=val", *FAST_DATA],
                                  tmp_path / "d"))
    for key, value in (("diagnose.bootstrap", 0), ("diagnose.confidence_level", 1.5), ("diagnose.consistent_factor", 0.5)):
        with pytest.raises(ValueError, match=key):
            diagnose(compose_diagnose([f"reward_model.run_dir={short_reward_run}", f"{key}={value}", *FAST_DATA],
                                      tmp_path / key))
        assert not (tmp_path / key / "diagnose.json").exists()


@pytest.mark.slow
def test_python_m_rcollapse_diagnose_command_line(short_reward_run, tmp_path):
    out = tmp_path / "cli"
    done = subprocess.run([sys.executable, "-m", "rcollapse.diagnose", f"reward_model.run_dir={short_reward_run}",
                           *FAST_DATA, f"hydra.run.dir={out}"], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "behaves as if trained with U = " in done.stdout
    assert json.loads((out / "diagnose.json").read_text())["data"]["num_prompts"] == 8


# ---- the slow check: does diagnose see collapse where it is, and name the utility? ------------------


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory) -> dict[str, Path]:
    """stage=reward with the defaults (tiny model, offline length task, 400 steps) per utility,
    and x_inv and logsigmoid(scale=8) also for 1200 steps.

    ``RCOLLAPSE_DIAGNOSE_RUNS=<dir>`` reuses finished runs ``<dir>/<utility>`` made with the same
    defaults (``python run.py stage=reward utility=<utility>``) instead of training them here.
    """
    import os

    reuse = os.environ.get("RCOLLAPSE_DIAGNOSE_RUNS")
    runs = {}
    longer = ["trainer.max_steps=1200"]  # the x_inv twins are told apart once trained on (see the tests)
    for name, overrides in (("x", ["utility=x"]), ("adaptive", ["utility=adaptive"]), ("log", ["utility=log"]),
                            ("x_inv", ["utility=x_inv"]),
                            ("x_inv_1200", ["utility=x_inv", *longer]),
                            ("logsigmoid8_1200", ["utility=logsigmoid", "utility.scale=8", *longer])):
        if reuse:
            runs[name] = Path(reuse) / name
            assert (runs[name] / "metrics.json").is_file(), f"no finished run in {runs[name]}"
            continue
        tmp = tmp_path_factory.mktemp(f"trained_{name}")
        run(compose_config([*overrides, "trainer.enable_progress_bar=false"], tmp))
        runs[name] = tmp / "run"
    return runs


def _diagnose_run(run_dir: Path, out: Path) -> dict:
    return diagnose(compose_diagnose([f"reward_model.run_dir={run_dir}"], out))


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first test of trained_runs sets it up: six runs, 4,000 steps
def test_diagnose_sees_collapse_for_x_and_none_for_adaptive(trained_runs, tmp_path):
    x = _diagnose_run(trained_runs["x"], tmp_path / "x")
    adaptive = _diagnose_run(trained_runs["adaptive"], tmp_path / "adaptive")
    assert x["collapsed"] is True, x["between_group_distance"]
    assert adaptive["collapsed"] is False, adaptive["between_group_distance"]
    assert adaptive["between_group_distance"] > 3 * x["between_group_distance"]
    # the prompt-aware model: each type follows its own utility (open x_inv, closed x)
    assert adaptive["nearest_utility_by_group"]["closed"] == "x"
    assert adaptive["nearest_utility_by_group"]["open"] == "x_inv(eps=0.1)"


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first test of trained_runs sets it up: six runs, 4,000 steps
@pytest.mark.parametrize("utility, label", [("x", "x"), ("log", "log(eps=0.1)")])
def test_diagnose_names_the_utility_a_run_was_trained_with(trained_runs, tmp_path, utility, label):
    result = _diagnose_run(trained_runs[utility], tmp_path / utility)
    assert result["nearest_utility"] == label, result["nearest"]["overall"][:3]
    assert result["consistent_utilities"] == [label], result["nearest"]["overall"][:3]
    assert result["nearest_told_apart"], result["nearest_confidence"]["overall"]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first test of trained_runs sets it up: six runs, 4,000 steps
@pytest.mark.parametrize("utility, label", [("x_inv_1200", "x_inv(eps=0.1)"),
                                            ("logsigmoid8_1200", "logsigmoid(scale=8)")])
def test_diagnose_tells_the_x_inv_twins_apart_once_trained_on(trained_runs, tmp_path, utility, label):
    """x_inv(eps=0.1), logsigmoid(scale=8) and neg_power(2) predict profiles 0.008-0.017 apart
    at n = 8. After 1200 steps each run is named right, and at every validation of the second
    half of its training (measured: x_inv nearest at all 16 validations from step 450 on,
    logsigmoid(8) at all 18 from step 350 on), so this is no lucky last step."""
    result = _diagnose_run(trained_runs[utility], tmp_path / utility)
    assert result["nearest_utility"] == label, result["nearest"]["overall"][:3]
    history = json.loads((trained_runs[utility] / "reward_history.json").read_text())
    later = [entry for entry in history if entry["step"] >= 600]
    assert len(later) >= 10
    for entry in later:
        ranked = nearest_profiles([normalised_profile(v) for v in entry["rewards"]], default_candidates(), _THEORY)
        assert ranked[0]["label"] == label, (entry["step"], ranked[:2])


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first test of trained_runs sets it up: six runs, 4,000 steps
def test_after_400_steps_x_inv_is_kept_among_its_twins(trained_runs, tmp_path):
    """At the demo's 400 steps a run's profile still moves by 0.003-0.010 between validations, as
    much as the twins differ: of five 400-step x_inv trainings, four were named x_inv and this
    fixture's seed 0 (deterministic) logsigmoid(scale=8), x_inv at 1.93x its W1. So x_inv must
    be in the consistent set, and the summary must say when the nearest is not told apart."""
    result = _diagnose_run(trained_runs["x_inv"], tmp_path / "x_inv")
    assert "x_inv(eps=0.1)" in result["consistent_utilities"], result["nearest"]["overall"][:4]
    assert result["nearest_utility"] in {"x_inv(eps=0.1)", "logsigmoid(scale=8)", "neg_power(gamma=2, eps=0.1)"}
    if result["nearest_utility"] != "x_inv(eps=0.1)":
        assert not result["nearest_told_apart"]
        assert "NOT told apart from" in (tmp_path / "x_inv" / "summary.txt").read_text()
