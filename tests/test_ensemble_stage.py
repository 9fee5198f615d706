"""stage=ensemble through the pipeline: both phases, the table, the figures, the artifact, resume."""

import json

import pytest
import torch

from rcollapse.models.ensemble_artifact import load_ensemble
from rcollapse.pipeline import run
from tests.conftest import compose_config

SMALL = [
    "stage=ensemble",
    "dataset.datamodule.train_source.num_train=768",
    "dataset.datamodule.train_source.num_val=32",
    "dataset.datamodule.train_source.num_test_per_section=24",
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
    assert metrics["ens/test/acc_mean"] > 0.6  # chance is 0.5
    assert metrics["ens/test/var_chosen_median"] > 0 and metrics["ens/test/var_diff_median"] > 0
    table = (out / "ensemble_accuracy.md").read_text()
    assert "| head 3 |" in table and "**ensemble mean**" in table and "Length trap" in table
    assert (out / "figures" / "ensemble_variance.png").stat().st_size > 5000
    ensemble = load_ensemble(out / "ensemble")
    assert ensemble.num_heads == 4 and ensemble.meta["head_seeds"] == [1, 2, 3]
    scored = ensemble.score(["the movie"], ["was great ."])
    assert scored.scores.shape == (1, 4) and float(scored.variance[0]) > 0


def test_a_resumed_run_skips_the_finished_phase_one(ensemble_run, capsys):
    out = ensemble_run / "run"
    phase1 = torch.load(out / "checkpoints" / "phase1" / "final.pt", weights_only=True)
    assert phase1["summary"]["ens/phase1/steps"] > 0
    assert all("backbone" not in k for k in torch.load(out / "checkpoints" / "phase2" / "last.ckpt",
                                                      weights_only=False)["state_dict"])  # frozen: left out
    before = json.loads((out / "metrics.json").read_text())
    run(compose_config([*SMALL, f"resume={out}"], ensemble_run))
    assert "phase 1 already finished" in capsys.readouterr().out
    after = json.loads((out / "metrics.json").read_text())
    assert after["ens/test/acc_mean"] == pytest.approx(before["ens/test/acc_mean"])


def test_a_saved_ensemble_is_evaluated_without_training(ensemble_run, tmp_path):
    artifact = ensemble_run / "run" / "ensemble"
    run(compose_config([*SMALL, f"stage.ensemble.artifact={artifact}"], tmp_path))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    reference = json.loads((ensemble_run / "run" / "metrics.json").read_text())
    assert metrics["ens/test/acc_mean"] == pytest.approx(reference["ens/test/acc_mean"])
    assert not (tmp_path / "run" / "checkpoints").exists()
