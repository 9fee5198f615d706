"""The science, at demo size (slow): fixed utilities collapse, the prompt-aware one does not."""

import json

import pytest

from rcollapse.pipeline import run
from tests.conftest import compose_config

QUIET = ["trainer.enable_progress_bar=false"]


def train(utility: str, tmp_path) -> dict:
    run(compose_config([f"utility={utility}", *QUIET], tmp_path))
    return json.loads((tmp_path / "run" / "metrics.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("utility", ["x", "x_inv", "logsigmoid"])
def test_fixed_utilities_collapse(utility, tmp_path):
    m = train(utility, tmp_path)
    assert m["rm/test/pair_acc"] > 0.8
    assert m["rm/test/open_closed_distance"] < 0.06  # one shape for both prompt types


@pytest.mark.slow
def test_adaptive_utility_separates_open_and_closed(tmp_path):
    m = train("adaptive", tmp_path)
    assert m["rm/test/open_closed_distance"] > 0.12
    assert m["rm/test/closed_w1_two_point"] < 0.05  # closed: polarised
    assert m["rm/test/open_w1_uniform"] < 0.12  # open: near uniform
    assert m["rm/train/open_closed_distance"] > 0.12  # on training prompts too


@pytest.mark.slow
def test_packaged_minilm_trains(tmp_path):
    overrides = ["model=minilm", "utility=x_inv", "stage.max_steps=4", "stage.val_every_n_steps=2",
                 "dataset.num_train=8", "dataset.num_test=4",
                 "dataset.batch_size=2", "dataset.train_probe_size=2", *QUIET]
    run(compose_config(overrides, tmp_path))
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "rm/test/open_closed_distance" in m
