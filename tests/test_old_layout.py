"""Run dirs written before the package took its layers (issue 24) keep working.

``tests/fixtures/old_layout/`` holds records made by the code of commit 5ef59ef, the last commit of
the old layout (its README says how): the configs of a run of every offline experiment and of
the demo, an interrupted reward run with its checkpoint, the ensemble artifact (version 2) of
``ensemble_gemma_offline`` and the records of two jobs of the risk study. Each is read by today's
code: the configs translate to exactly what the new layout composes for the same overrides, the
reward run resumes to its end, the artifact loads and scores, the report labels the study's arms.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from rcollapse.config.migration import current_layout, current_overrides
from rcollapse.runs.resume_checks import config_differences
from rcollapse.runs.run_config import read_run_config
from tests.conftest import REPO, compose_config

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "old_layout"
CONFIGS = sorted(p.name for p in (FIXTURE / "configs").iterdir())
# Settings changed on purpose since the fixture was recorded (not moves of the layout): a resume of
# such a run lists exactly these differences (config_differences' lines), and nothing else.
CHANGED_SETTINGS = {
    # issue 25, item 5: Fig. 2 solves the theory's un-shifted classes
    "theory_limits_offline": ["utility.eps: 0.1 -> 0.0"],
    # issue 25, item 6: the hub names each site's folder by its domain
    "collapse_stackexchange_offline": ["dataset.copy_sites: ['apple'] -> ['apple.stackexchange.com']",
                                       "dataset.data_dir: 'data/apple' -> 'data/apple.stackexchange.com'"],
}


def _replace_strings(node, old: str, new: str):
    if isinstance(node, dict):
        return {k: _replace_strings(v, old, new) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace_strings(v, old, new) for v in node]
    return node.replace(old, new) if isinstance(node, str) else node


def _moved(config: dict, new_output_dir: str, new_cache_dir: str) -> dict:
    """An old run's config as if it had run in the test's dirs (its run dir and cache)."""
    config = _replace_strings(config, config["paths"]["output_dir"], new_output_dir)
    return _replace_strings(config, config["paths"]["cache_dir"], new_cache_dir)


def test_the_fixture_is_the_old_layout():
    """The fixture really is the old layout (else the tests below prove nothing)."""
    old = yaml.safe_load((FIXTURE / "configs" / "demo_x" / "config_resolved.yaml").read_text())
    assert "datamodule" in old["dataset"]
    assert old["trainer"].get("default_root_dir")
    assert current_layout(old) != old


@pytest.mark.parametrize("name", CONFIGS)
def test_an_old_config_reads_as_the_new_layout_composes_it(name, tmp_path):
    """Every key of an old run's config, translated, equals what today's code composes for the
    run's own overrides: a resume of it sees no difference, diagnose rebuilds the same model."""
    record = FIXTURE / "configs" / name
    overrides = current_overrides(yaml.safe_load((record / "overrides.yaml").read_text()))  # bandit.setting=...
    new = OmegaConf.to_container(compose_config(overrides, tmp_path), resolve=True)
    old = _moved(read_run_config(record), new["paths"]["output_dir"], new["paths"]["cache_dir"])
    assert config_differences(old, new) == CHANGED_SETTINGS.get(name, [])


@pytest.fixture
def old_reward_run(tmp_path) -> Path:
    """The interrupted reward run (stopped by SIGTERM at step 10 of 40), as if it had run here."""
    run_dir = tmp_path / "reward_run"
    shutil.copytree(FIXTURE / "reward_run", run_dir)
    config_file = run_dir / "config_resolved.yaml"
    config = yaml.safe_load(config_file.read_text())
    config_file.write_text(yaml.safe_dump(_replace_strings(config, config["paths"]["output_dir"], str(run_dir))))
    return run_dir


@pytest.mark.e2e
def test_an_interrupted_run_of_the_old_layout_resumes_to_its_end(old_reward_run, tmp_path):
    assert json.loads((old_reward_run / "status.json").read_text())["status"] == "interrupted"
    # resume=DIR alone: run.py takes the run's own (old layout) overrides, in today's layout
    result = subprocess.run(
        [sys.executable, "run.py", f"resume={old_reward_run}", f"paths.cache_dir={tmp_path / 'cache'}"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((old_reward_run / "status.json").read_text())["status"] == "completed"
    metrics = json.loads((old_reward_run / "metrics.json").read_text())
    assert "rm/test/open_closed_distance" in metrics
    rows = (old_reward_run / "csv" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    step_values = {int(float(r.split(",")[header.index("step")])) for r in rows[1:] if r.split(",")[header.index("step")]}
    assert max(step_values) >= 39  # trained to its 40 steps, the interrupted part's rows kept
    assert min(step_values) < 10


def test_an_old_ensemble_artifact_loads_and_scores_as_it_did():
    """The artifact loads, and scores texts exactly as the old code scored them (recorded with it
    in ``ensemble_scores.json``)."""
    import torch

    from rcollapse.models.ensemble_artifact import load_ensemble

    assert json.loads((FIXTURE / "ensemble" / "ensemble.json").read_text())["version"] == 2
    recorded = json.loads((FIXTURE / "ensemble_scores.json").read_text())
    out = load_ensemble(FIXTURE / "ensemble").score(recorded["prompts"], recorded["responses"])
    torch.testing.assert_close(out.scores, torch.tensor(recorded["scores"]), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.variance, torch.tensor(recorded["variance"]), rtol=1e-5, atol=1e-6)


def test_the_report_reads_an_old_sweep(tmp_path, capsys):
    """``python -m rcollapse.report`` on the old study's records: both arms told apart (from
    each run's config, where the old layout spelled the arm ``variance_weighted``), the PPO table
    and the risk comparison written."""
    from rcollapse.analysis.ppo_report import arm_of
    from rcollapse.analysis.sweep_report import collect_runs, main

    sweep = tmp_path / "sweep"
    shutil.copytree(FIXTURE / "sweep", sweep)
    assert sorted(arm_of(run) for run in collect_runs([sweep]).to_dict("records")) == ["vanilla", "variance-aware"]
    assert main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "Risk at matched KL: variance-aware vs vanilla" in out and "unknown" not in out
    study = json.loads((sweep / "ppo_study.json").read_text())
    assert study  # the report's record of the comparison
