"""Every file of every config group composes, and the pieces instantiate."""

import subprocess
import sys

import pytest
import torch
from hydra.utils import instantiate

from rcollapse.maths.utilities import Utility
from tests.conftest import REPO, compose_config, group_options

GROUPS = ["stage", "utility", "dataset", "model", "hardware", "logger"]


@pytest.mark.parametrize(
    ("group", "option"), [(g, o) for g in GROUPS for o in group_options(g)]
)
def test_every_group_file_composes(group, option, tmp_path):
    cfg = compose_config([f"{group}={option}"], tmp_path)
    if group == "hardware":  # `# @package _global_`: sets trainer and data-loader keys together
        assert cfg.trainer.accelerator in ("cpu", "gpu")
    else:
        assert cfg[group] is not None
    if "max_steps" in cfg.stage:  # training stages drive the trainer's step budget
        assert cfg.trainer.max_steps == cfg.stage.max_steps


@pytest.mark.parametrize("option", group_options("logger"))
def test_every_logger_instantiates(option, tmp_path):
    from lightning.pytorch.loggers import Logger

    cfg = compose_config([f"logger={option}"], tmp_path)
    assert isinstance(instantiate(cfg.logger), Logger)


@pytest.mark.parametrize("option", group_options("utility"))
def test_every_utility_instantiates_to_a_callable_on_tensors(option, tmp_path):
    cfg = compose_config([f"utility={option}"], tmp_path)
    utility = instantiate(cfg.utility)
    assert isinstance(utility, Utility)
    diff = torch.linspace(-1, 1, 11)
    openness = torch.where(torch.arange(11) % 2 == 0, 1.0, -1.0)
    values = utility(diff, openness) if utility.prompt_aware else utility(diff)
    assert values.shape == diff.shape and torch.isfinite(values).all()


@pytest.mark.parametrize("option", group_options("dataset"))
def test_every_dataset_instantiates_without_touching_the_network(option, tmp_path):
    paths = ["dataset.train_path=a.jsonl", "dataset.test_path=b.jsonl"]
    cfg = compose_config([f"dataset={option}", *(paths if option == "rankings_jsonl" else [])], tmp_path)
    if cfg.dataset._target_.endswith("PromptDataModule"):  # PPO prompts: no tokenizer, batch from stage
        datamodule = instantiate(cfg.dataset, batch_size=8)
        assert datamodule.batch_size == 8
        return
    tokenizer = instantiate(compose_config([], tmp_path).model.tokenizer)
    datamodule = instantiate(cfg.dataset, tokenizer=tokenizer)
    assert datamodule.batch_size == cfg.dataset.batch_size


@pytest.mark.parametrize("option", ["tiny", "minilm"])
def test_offline_models_build(option, tmp_path):
    cfg = compose_config([f"model={option}"], tmp_path)
    tokenizer = instantiate(cfg.model.tokenizer)
    backbone = instantiate(cfg.model.backbone, tokenizer=tokenizer)
    model = instantiate(cfg.model.reward_model, backbone=backbone)
    batch = tokenizer(["a prompt"] * 2, ["one answer", "another longer answer"], return_tensors="pt", padding=True)
    out = model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
    assert out.scores.shape == (2, 1)


def test_default_config_is_the_documented_default_job(tmp_path):
    cfg = compose_config([], tmp_path)
    choices = {
        "stage": cfg.stage.runner._target_.rsplit(".", 1)[-1],
        "dataset": cfg.dataset.source._target_.rsplit(".", 1)[-1],
        "model": cfg.model.backbone._target_.rsplit(".", 1)[-1],
        "hardware": cfg.trainer.accelerator,
        "logger": cfg.logger._target_.rsplit(".", 1)[-1],
    }
    assert choices == {
        "stage": "run_reward_stage", "dataset": "LengthOfflineSource",
        "model": "build_tiny_encoder", "hardware": "cpu", "logger": "ResumableCSVLogger",
    }


@pytest.mark.e2e
def test_unknown_choice_lists_the_valid_ones():
    proc = subprocess.run(
        [sys.executable, "run.py", "utility=bogus", "hydra/job_logging=none"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    assert "Could not find 'utility/bogus'" in proc.stderr
    for option in ("adaptive", "logsigmoid", "x_inv"):
        assert option in proc.stderr


def test_a_config_key_that_matches_no_argument_fails_loudly(tmp_path):
    cfg = compose_config(["+utility.gama=0.5", "utility=power"], tmp_path)
    with pytest.raises(Exception, match="gama"):
        instantiate(cfg.utility)


@pytest.mark.parametrize("arm", group_options("ppo_arm"))
def test_every_ppo_arm_composes_with_the_ppo_stage(arm, tmp_path):
    cfg = compose_config(["stage=ppo", f"ppo_arm={arm}"], tmp_path)
    assert cfg.stage.module.kl_weight == ("variance" if "variance" in arm else "one")
    if arm.startswith("paper"):
        assert (cfg.stage.batch_size, cfg.stage.num_updates) == (128, 192)
        assert cfg.stage.kl_controller.beta == (0.05 if "variance" in arm else 0.2)
        assert cfg.stage.optimizer.lr == (1.5e-5 if "variance" in arm else 1.414e-5)


@pytest.mark.parametrize("judge", group_options("judge"))
def test_every_judge_composes(judge, tmp_path):
    cfg = compose_config(["stage=ppo", f"judge={judge}"], tmp_path)
    assert cfg.judge._target_.startswith("rcollapse.models.judges.")
