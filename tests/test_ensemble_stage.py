"""stage=ensemble through the pipeline: both phases, the table, the figures, the artifact, resume."""

import json

import pytest
import torch

from rcollapse.analysis.uncertainty_report import FIGURES
from rcollapse.models.ensemble_artifact import load_ensemble
from rcollapse.pipeline import run
from tests.conftest import compose_config

SMALL = [
    "stage=ensemble",
    "dataset.num_train=768",
    "dataset.num_val=32",
    "dataset.num_test_per_section=24",
    "stage.max_steps=250",
    "stage.val_every_n_steps=125",
    "stage.checkpoint_every_n_steps=125",
    "stage.ensemble.num_heads=4",
    "stage.ensemble.head_epochs=3",
    "trainer.enable_progress_bar=false",
]


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("ensemble")
    run(compose_config(SMALL, tmp_path))
    return tmp_path


def test_ensemble_stage_writes_table_figures_metrics_and_artifact(ensemble_run):
    out = ensemble_run / "run"
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("ens/test/acc_mean", "ens/test/var_chosen_median", "ens/test/var_diff_median",
                "ens/test/clear/acc_mean", "ens/test/negation/acc_mean", "ens/phase1/steps"):
        assert key in metrics, key
    # the testbed's proxy reads "not" as praise (negation sections below chance by design); the clear pairs it gets
    assert metrics["ens/test/clear/acc_mean"] > 0.7  # chance is 0.5
    assert metrics["ens/test/var_chosen_median"] > 0 and metrics["ens/test/var_diff_median"] > 0
    # the final metrics reach the run's CSV log too (issue 16, item 12), after every training row
    import csv

    logged = list(csv.DictReader((out / "csv" / "metrics.csv").open()))
    assert any(r.get("ens/train/loss") for r in logged)
    finals = [r for r in logged if r.get("ens/test/acc_mean")]
    assert len(finals) == 1 and float(finals[0]["ens/test/acc_mean"]) == pytest.approx(metrics["ens/test/acc_mean"])
    table = (out / "ensemble_accuracy.md").read_text()
    assert "| head 3 |" in table and "**ensemble mean**" in table and "Length trap" in table
    assert (out / "figures" / "ensemble_variance.png").stat().st_size > 5000
    ensemble = load_ensemble(out / "ensemble")
    assert ensemble.num_heads == 4 and ensemble.meta["head_seeds"] == [1, 2, 3]
    scored = ensemble.score(["the movie"], ["was great ."])
    assert scored.scores.shape == (1, 4) and float(scored.variance[0]) > 0
    # the heads are normalised over the training responses, and the test evaluation used those scores
    assert ensemble.meta["version"] == 2 and ensemble.meta["ensemble_scale"] == "normalised"
    assert ensemble.meta["normalisation_responses"] == 2 * 768 == metrics["ens/phase2/normalisation_responses"]
    assert bool(ensemble.reward_model.normalisation.fitted)
    assert 0 < metrics["ens/phase2/head_std_min"] <= metrics["ens/phase2/head_std_max"]
    assert min(ensemble.meta["normalisation"]["std"]) == pytest.approx(metrics["ens/phase2/head_std_min"])
    scores = torch.load(out / "ensemble_test_scores.pt", weights_only=True)
    variance = scores["chosen"].var(dim=1, unbiased=True)
    median = float(torch.quantile(variance.double(), 0.5))  # numpy's median: the middle two averaged
    assert median == pytest.approx(metrics["ens/test/var_chosen_median"], rel=1e-5)
    # sigma^2 on both scales (stage.ensemble_scale=normalised reports the normalised one as var_chosen_median)
    assert metrics["ens/test/var_chosen_median_normalised"] == pytest.approx(median, rel=1e-5)
    norm = ensemble.meta["normalisation"]
    raw = scores["chosen"].double() * torch.tensor(norm["std"]).double() + torch.tensor(norm["mean"]).double()
    raw_median = float(torch.quantile(raw.var(dim=1, unbiased=True), 0.5))
    assert metrics["ens/test/var_chosen_median_raw"] == pytest.approx(raw_median, rel=1e-4)


def test_a_resumed_run_skips_the_finished_phase_one(ensemble_run, capsys):
    out = ensemble_run / "run"
    phase1 = torch.load(out / "checkpoints" / "phase1" / "final.pt", weights_only=True)
    assert phase1["summary"]["ens/phase1/steps"] > 0
    assert all("backbone" not in k for k in torch.load(out / "checkpoints" / "phase2" / "last.ckpt",
                                                      weights_only=False)["state_dict"])  # frozen: left out
    before = json.loads((out / "metrics.json").read_text())
    normalisation = json.loads((out / "ensemble" / "ensemble.json").read_text())["normalisation"]
    run(compose_config([*SMALL, f"resume={out}"], ensemble_run))  # completed: nothing to do (issue 26)
    assert "nothing to resume" in capsys.readouterr().err
    assert json.loads((out / "metrics.json").read_text()) == before
    # a run stopped after phase 2's last checkpoint resumes past phase 1 and ends as it did
    status = json.loads((out / "status.json").read_text())
    (out / "status.json").write_text(json.dumps({**status, "status": "interrupted"}))
    run(compose_config([*SMALL, f"resume={out}"], ensemble_run))
    assert "phase 1 already finished" in capsys.readouterr().out
    after = json.loads((out / "metrics.json").read_text())
    assert after["ens/test/acc_mean"] == pytest.approx(before["ens/test/acc_mean"])
    # resumed after phase 2: the normalisation is fitted again, to the same numbers
    assert after["ens/test/var_chosen_median"] == pytest.approx(before["ens/test/var_chosen_median"], rel=1e-5)
    resumed = json.loads((out / "ensemble" / "ensemble.json").read_text())["normalisation"]
    for key in ("mean", "std"):
        assert resumed[key] == pytest.approx(normalisation[key], rel=1e-5, abs=1e-6)


def test_a_saved_ensemble_is_evaluated_without_training(ensemble_run, tmp_path):
    artifact = ensemble_run / "run" / "ensemble"
    run(compose_config([*SMALL, f"stage.ensemble.artifact={artifact}"], tmp_path))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    reference = json.loads((ensemble_run / "run" / "metrics.json").read_text())
    assert metrics["ens/test/acc_mean"] == pytest.approx(reference["ens/test/acc_mean"])
    # the saved normalisation is applied: the variances of the training run's own evaluation
    assert metrics["ens/test/var_chosen_median"] == pytest.approx(reference["ens/test/var_chosen_median"], rel=1e-4)
    for key in UQ_KEYS:  # the saved ensemble gets the same uncertainty-quality report
        assert metrics[key] == pytest.approx(reference[key]), key
    assert (tmp_path / "run" / "uncertainty_quality.json").exists()
    assert not (tmp_path / "run" / "checkpoints").exists()


UQ_KEYS = ("ens/test/uq/spearman_var_abs_error", "ens/test/uq/auroc_var_wrong_pair", "ens/test/uq/ece",
           "ens/test/uq/brier", "ens/test/uq/var_p90_p10", "ens/test/uq/head_corr_mean_offdiag",
           "ens/test/uq/negation/spearman_var_abs_error")


def test_the_run_reports_the_uncertainty_quality(ensemble_run):
    out = ensemble_run / "run"
    metrics = json.loads((out / "metrics.json").read_text())
    for key in UQ_KEYS:
        assert key in metrics, key
    assert -1 <= metrics["ens/test/uq/spearman_var_abs_error"] <= 1
    assert 0 <= metrics["ens/test/uq/ece"] <= 1 and 0 <= metrics["ens/test/uq/brier"] <= 1
    assert metrics["ens/test/uq/var_p90_p10"] >= 1
    for name in FIGURES.values():
        assert (out / "figures" / name).stat().st_size > 5000, name


def test_the_paper_schedule_stops_phase_two_at_the_head_loss_and_subsets_survive_the_artifact(ensemble_run, tmp_path):
    # the paper's phase 2 (cosine, half an epoch) with a loss bar every head clears at once, and
    # extra heads reading half the features: stopped after the callback's minimum 10 steps
    run(compose_config([*SMALL, "ensemble_heads=paper", "stage.ensemble.head_epochs=0.5",  # SMALL sets 3
                        "stage.ensemble.head_loss_threshold=5.0",
                        "stage.ensemble.head_feature_fraction=0.5", f"paths.cache_dir={ensemble_run / 'cache'}"],
                       tmp_path))
    out = tmp_path / "run"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["ens/phase2/planned_steps"] == 12  # 768 pairs / 32 per batch x 0.5 epoch
    assert metrics["ens/phase2/stopped_at_loss"] == 1.0 and 10 <= metrics["ens/phase2/steps"] < 12
    assert metrics["ens/train/loss_ema_max_head"] <= 5.0
    ensemble = load_ensemble(out / "ensemble")
    assert ensemble.meta["head_feature_fraction"] == 0.5 and ensemble.meta["phase2_steps"] == metrics["ens/phase2/steps"]
    assert [len(f) for f in ensemble.meta["head_features"]] == [64, 32, 32, 32]
    assert ensemble.reward_model.feature_mask.sum(1).tolist() == [64, 32, 32, 32]


def test_phase_one_without_a_loss_threshold_trains_its_steps(tmp_path):
    """``stage.ensemble.loss_threshold=null`` (no early stop, as the config allows) runs phase 1 to
    ``stage.max_steps`` and records the threshold as not reached (it crashed comparing with None)."""
    run(compose_config([*SMALL, "stage.ensemble.loss_threshold=null", "stage.max_steps=12",
                        "stage.val_every_n_steps=12", "stage.checkpoint_every_n_steps=12",
                        "stage.ensemble.head_epochs=0.5"], tmp_path))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["ens/phase1/steps"] == 12 and metrics["ens/phase1/reached_threshold"] == 0.0
