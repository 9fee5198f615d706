"""32-bit master weights wherever a model trains (issue 25, item 4): a parameter of a Gemma-family
model moves after one AdamW step at lr 1e-5 in experiment=ensemble_gemma's precision (float32
weights, trainer.precision=bf16-mixed), where bfloat16 weights updated in place (the old
model=gemma_2b) leave nearly all of it where it was; and the config checks refuse the bf16 path."""

import lightning as L
import pytest
import torch

from rcollapse.config.checks import ConfigError, validate_config
from rcollapse.models.architectures import build_from_config, tiny_architecture_config
from rcollapse.models.reward_model import RewardModel
from rcollapse.stages.preference_reward_module import PreferenceRewardModule
from tests.conftest import compose_config

LR = 1.0e-5


def one_adamw_step(dtype: torch.dtype, precision: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(before, after) of a decoder MLP weight of a toy Gemma (random, initializer_range 0.02, as
    the real one's weights are of that size) after one step of the ensemble's phase-1 module."""
    torch.manual_seed(0)
    config = tiny_architecture_config("google/gemma-2b-it", hidden_size=64, intermediate_size=128,
                                      num_hidden_layers=2, head_dim=16)
    backbone = build_from_config(config, device="cpu", dtype=dtype)
    model = RewardModel(backbone, num_heads=1, pooling="last")
    weight = backbone.layers[0].mlp.up_proj.weight
    before = weight.detach().float().clone()
    optimizer = lambda params: torch.optim.AdamW(params, lr=LR, weight_decay=0.001)  # noqa: E731
    module = PreferenceRewardModule(model, optimizer, freeze_backbone=False, dropout=False)
    ids = torch.randint(0, config.vocab_size, (8, 12), generator=torch.Generator().manual_seed(1))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "index": torch.arange(4)}
    trainer = L.Trainer(accelerator="cpu", devices=1, precision=precision, max_steps=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader([batch], batch_size=None))
    assert trainer.global_step == 1
    return before, weight.detach().float()


def test_a_float32_master_weight_moves_after_one_step_at_lr_1e5_in_bf16_mixed():
    before, after = one_adamw_step(torch.float32, "bf16-mixed")  # experiment=ensemble_gemma's precision
    moved = (after != before).float().mean().item()
    assert moved > 0.95
    # AdamW's first step moves each weight by about lr (m/sqrt(v) = sign(g)), as the plain rule says
    step = (after - before).abs()
    assert step.median().item() == pytest.approx(LR, rel=0.1)


def test_bf16_weights_updated_in_place_lose_most_steps():
    """The old path (model.dtype=bfloat16 trained): the same step rounds away for every weight above
    ~2^9 x 1e-5 = 5e-3 in size, most of a 0.02-scale matrix. This is what the checks now refuse."""
    before, after = one_adamw_step(torch.bfloat16, "32-true")
    moved = (after != before).float().mean().item()
    assert moved < 0.3
    # the plain reference: a bf16 weight w keeps its value unless the step exceeds half its spacing
    spacing = torch.finfo(torch.bfloat16).eps * before.abs() / 2
    assert moved == pytest.approx((spacing < LR).float().mean().item(), abs=0.1)


def test_a_trained_bf16_model_is_refused_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"^model\.dtype: .*model\.dtype=float32.*model\.lora"):
        validate_config(compose_config(["experiment=ensemble_gemma", "model.dtype=bfloat16"], tmp_path))
    with pytest.raises(ConfigError, match=r"^trainer\.precision: bf16-true .*bf16-mixed"):
        validate_config(compose_config(["experiment=ensemble_gemma", "trainer.precision=bf16-true"], tmp_path))
    with pytest.raises(ConfigError, match=r"^model\.dtype"):
        validate_config(compose_config(["stage=reward", "model=gemma_2b", "model.dtype=bfloat16",
                                        "dataset=stack_exchange"], tmp_path))


def test_bf16_stays_for_frozen_use_and_lora(tmp_path):
    validate_config(compose_config(["experiment=ensemble_gemma"], tmp_path))  # float32 weights, bf16-mixed
    lora = "model.lora={r: 8, alpha: 16, dropout: 0.0, target_modules: [q_proj, v_proj]}"
    validate_config(compose_config(["experiment=ensemble_gemma", "model.dtype=bfloat16", lora], tmp_path))
    artifact = tmp_path / "ensemble"
    artifact.mkdir()
    validate_config(compose_config(["experiment=ensemble_gemma", "model.dtype=bfloat16",
                                    f"stage.ensemble.artifact={artifact}"], tmp_path))


def test_every_group_that_trains_fully_has_float32_weights(tmp_path):
    from tests.conftest import group_options

    for name in group_options("model"):
        model = compose_config([f"model={name}"], tmp_path).model
        if "dtype" in model and model.get("lora") is None:
            assert model.dtype == "float32", name
