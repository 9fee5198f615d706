"""One command per result of the two papers (issue 17): every experiment config composes and
validates; a real one builds its objects without a download (its real-size models from their
published configurations on the meta device) and its hub loaders fail with the offline error
naming the key; every real experiment has an offline twin, and the twins run end to end (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from rcollapse.config.checks import validate_config
from rcollapse.models.hub_models import ModelUnavailableError
from tests.conftest import CONF, REPO, compose_config

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
REAL = [name for name in EXPERIMENTS if not name.endswith("_offline")]
TWINS = [name for name in EXPERIMENTS if name.endswith("_offline")]
REQUIRED = {"ppo_study": ["stage.ensemble_path=/models/ensemble_gemma/ensemble"]}
# real experiments whose model comes from the hub: the architecture it is built at
HUB_MODELS = {"collapse_longform": ("deberta-v3-base", 150e6), "collapse_stackexchange": ("gpt-neo-1.3B", 1.2e9),
              "ensemble_gemma": ("gemma-2b-it", 2.4e9), "ppo_study": ("gpt2", 110e6)}


def _compose(name, tmp_path, *overrides):
    return compose_config([f"experiment={name}", *REQUIRED.get(name, []), *overrides], tmp_path)


def _sweep_params(name: str) -> dict:
    from hydra import compose, initialize_config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={name}", *REQUIRED.get(name, [])], return_hydra_config=True)
    return dict(cfg.hydra.sweeper.params or {})


def test_every_real_experiment_has_an_offline_twin_and_says_what_it_reproduces():
    assert set(HUB_MODELS) <= set(REAL)
    for name in REAL:
        assert f"{name}_offline" in TWINS, name
        header = (CONF / "experiment" / f"{name}.yaml").read_text()
        assert f"experiment={name}" in header and "python run.py" in header, name
        assert "Fig" in header or "Table" in header, f"{name}: which figure or table it reproduces"
        assert "docs/experiments.md" in header or "seconds per run" in header, f"{name}: its cost"
    for name in TWINS:
        assert f"experiment={name.removesuffix('_offline')}" in (CONF / "experiment" / f"{name}.yaml").read_text()


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_an_experiment_composes_and_validates(name, tmp_path):
    cfg = _compose(name, tmp_path)
    validate_config(cfg)
    if name.endswith("_offline"):
        assert cfg.trainer.accelerator == "cpu"


@pytest.mark.parametrize("name, grid", [
    ("collapse_longform", {"utility": "x,x_inv,log,logsigmoid,adaptive"}),
    ("collapse_longform_offline", {"utility": "x,x_inv,log,logsigmoid,adaptive"}),
    ("ppo_study", {"ppo_arm": "paper_vanilla,paper_variance_aware", "stage.module.reward_head": "range(0,10)",
                   "seed": "0,1,2,3"}),
    ("bandit_risk", {"stage.bandit.setting": "high,low", "stage.bandit.epsilon_tilde": "min_variance,matched_mean"}),
])
def test_a_multirun_experiment_sweeps_the_papers_grid(name, grid):
    assert {k: str(v) for k, v in _sweep_params(name).items()} == grid


def test_the_paper_settings_are_the_papers(tmp_path):
    longform = _compose("collapse_longform", tmp_path)
    assert (longform.stage.max_steps, longform.model.lr, longform.model.max_length) == (1000, 1e-5, 512)
    assert longform.dataset.batch_size == 8 and longform.stage.module.warmup_ratio == 0.1
    stackexchange = _compose("collapse_stackexchange", tmp_path)
    assert (stackexchange.dataset.num_answers, stackexchange.dataset.num_prompts) == (5, 128)
    assert stackexchange.utility._target_.endswith("LogSigmoidUtility")
    gemma = _compose("ensemble_gemma", tmp_path)
    assert gemma.stage.ensemble.num_heads == 10 and gemma.stage.ensemble.loss_threshold == 0.3
    assert (gemma.stage.ensemble.head_lr, gemma.stage.ensemble.head_lr_schedule, gemma.stage.ensemble.head_epochs) \
        == (1e-5, "cosine", 0.5)
    assert gemma.model.reward_model.pooling == "last"
    ppo = _compose("ppo_study", tmp_path)
    assert (ppo.stage.batch_size, ppo.stage.num_updates) == (128, 192)
    assert ppo.judge._target_.endswith("SequenceClassifierJudge")


@pytest.mark.parametrize("name", sorted(HUB_MODELS))
def test_a_real_experiment_builds_its_models_at_real_size_without_a_download(name, tmp_path):
    from rcollapse.models.architectures import build_from_architecture, parameter_count

    cfg = _compose(name, tmp_path)
    architecture, at_least = HUB_MODELS[name]
    # what the hub would give, on this machine: the offline error naming the key
    assert "(model.name_or_path)" in _offline_error(cfg.model.tokenizer)
    if cfg.stage.name == "ppo":
        policy = build_from_architecture(architecture, device="meta", causal_lm=True)
        assert parameter_count(policy) > at_least
        assert "judge" in _offline_error(cfg.judge)
        return
    backbone = build_from_architecture(architecture, device="meta")
    reward_model = instantiate(cfg.model.reward_model, backbone=backbone)
    assert parameter_count(reward_model) > at_least
    if cfg.stage.name == "reward":
        module = instantiate(cfg.stage.module, reward_model=reward_model, utility=instantiate(cfg.utility),
                             optimizer=instantiate(cfg.stage.optimizer), test_split_names=["test", "train"])
        assert module.reward_model is reward_model


def _offline_error(target) -> str:
    """The message of the error that instantiating ``target`` raises (Hydra wraps it: the cause)."""
    with pytest.raises(Exception) as raised:
        instantiate(target)
    error = raised.value
    while error.__cause__ is not None and not isinstance(error, ModelUnavailableError):
        error = error.__cause__
    assert isinstance(error, ModelUnavailableError), repr(raised.value)
    return str(error)


def _run(*args, timeout=1800):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "run.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def _metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


# ---- the offline twins, end to end (`make test-full`) -------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(3600)  # _run gives each command up to 1800 s
def test_the_collapse_twin_runs_every_utility_and_adaptive_separates_the_prompt_types(tmp_path):
    sweep = tmp_path / "sweep"
    _run("-m", "experiment=collapse_longform_offline", "stage.max_steps=150", "trainer.enable_progress_bar=false",
         f"hydra.sweep.dir={sweep}", f"paths.cache_dir={tmp_path / 'cache'}")
    distance = {}
    for job in sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()):
        overrides = (job / ".hydra" / "overrides.yaml").read_text()
        utility = next(line.split("=")[1] for line in overrides.splitlines() if "utility=" in line)
        distance[utility.strip()] = _metrics(job)["rm/test/open_closed_distance"]
        assert (job / "figures" / "rewards_by_rank_test.png").exists()
        assert (job / "figures" / "rewards_over_training.png").exists()
    assert set(distance) == {"x", "x_inv", "log", "logsigmoid", "adaptive"}
    assert distance["adaptive"] > max(v for k, v in distance.items() if k != "adaptive")


@pytest.mark.slow
@pytest.mark.timeout(3600)  # _run gives each command up to 1800 s
def test_the_stackexchange_twin_trains_on_five_answer_questions_and_counts_the_ties(tmp_path):
    run_dir = tmp_path / "run"
    _run("experiment=collapse_stackexchange_offline", "stage.max_steps=50", "trainer.enable_progress_bar=false",
         f"hydra.run.dir={run_dir}", f"paths.cache_dir={tmp_path / 'cache'}")
    metrics = _metrics(run_dir)
    assert metrics["rm/data/stack_exchange/train_prompts"] == 128
    assert metrics["rm/data/stack_exchange/tied_pairs"] > 0
    assert "rm/test/theory_distance_open" in metrics
    assert (run_dir / "figures" / "rewards_over_training.png").exists()


@pytest.mark.slow
@pytest.mark.timeout(3600)  # _run gives each command up to 1800 s
def test_the_theory_and_bandit_twins_run_their_grids(tmp_path):
    _run("-m", "experiment=theory_limits_offline", f"hydra.sweep.dir={tmp_path / 'theory'}")
    theory = [_metrics(p) for p in (tmp_path / "theory").iterdir() if (p / "metrics.json").exists()]
    assert len(theory) == 6 and sum("theory/ks_distance" in m for m in theory) == 5
    _run("-m", "experiment=bandit_risk_offline", f"hydra.sweep.dir={tmp_path / 'bandit'}")
    bandit = [_metrics(p) for p in (tmp_path / "bandit").iterdir() if (p / "metrics.json").exists()]
    assert len(bandit) == 4
    assert all(m["bandit/aware/underperformance_closed_form"] <= m["bandit/unaware/underperformance_closed_form"]
               for m in bandit)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # _run gives each command up to 1800 s
def test_the_ensemble_twin_writes_table_one_figure_six_and_the_artifact(tmp_path):
    run_dir = tmp_path / "run"
    _run("experiment=ensemble_gemma_offline", "trainer.enable_progress_bar=false", f"hydra.run.dir={run_dir}",
         f"paths.cache_dir={tmp_path / 'cache'}")
    metrics = _metrics(run_dir)
    assert metrics["ens/test/uq/head_corr_mean_offdiag"] < 0.99  # heads that can disagree
    for path in ("ensemble_accuracy.md", "figures/ensemble_variance.png", "ensemble/ensemble.json"):
        assert (run_dir / path).exists(), path


@pytest.mark.slow
@pytest.mark.timeout(3600)  # _run gives each command up to 1800 s
def test_the_ppo_study_twin_runs_both_arms_on_one_ensemble_and_the_report_compares_them(tmp_path):
    sweep = tmp_path / "sweep"
    _run("-m", "experiment=ppo_study_offline", "stage.num_updates=6", "stage.module.reward_head=0", "seed=0",
         "stage.judge_every_n_updates=3", "trainer.enable_progress_bar=false", f"hydra.sweep.dir={sweep}",
         f"paths.cache_dir={tmp_path / 'cache'}")
    jobs = [p for p in sweep.iterdir() if (p / "metrics.json").exists()]
    assert len(jobs) == 2
    report = subprocess.run([sys.executable, "-m", "rcollapse.report", str(sweep)], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    assert "Risk at matched KL" in report.stdout
