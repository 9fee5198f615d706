"""model.dropout decides the reward model's dropout inside training_step, whatever mode the backbone
was loaded in (from_pretrained gives eval mode, which Lightning 2.x would keep)."""

import pytest
import torch

from rcollapse.models import tiny_encoder
from rcollapse.models.dropout import active_dropout, set_dropout
from rcollapse.pipeline import run
from rcollapse.stages.preference_reward_module import PreferenceRewardModule
from rcollapse.stages.ranking_reward_module import RankingRewardModule
from tests.conftest import FAST_TRAINING, compose_config


def test_set_dropout_enables_the_checkpoint_rates_or_zeroes_them():
    model = tiny_encoder.build_tiny_encoder(tiny_encoder.build_tiny_tokenizer(), dropout=0.1).eval()
    assert active_dropout(model) == []  # as from_pretrained leaves it
    assert len(active_dropout(set_dropout(model, True))) > 0
    set_dropout(model, False)
    assert model.training and active_dropout(model) == []
    ids = torch.randint(5, 50, (2, 12))
    first, second = (model(input_ids=ids).last_hidden_state for _ in range(2))
    torch.testing.assert_close(first, second)  # deterministic in train mode


def _pretrained_like_backbone(monkeypatch):
    """The tiny encoder with dropout 0.1, returned in eval mode as from_pretrained returns a model."""
    build = tiny_encoder.build_tiny_encoder

    def loaded_in_eval_mode(tokenizer, **kwargs):
        return build(tokenizer, **{**kwargs, "dropout": 0.1}).eval()

    monkeypatch.setattr(tiny_encoder, "build_tiny_encoder", loaded_in_eval_mode)


def _record_dropout_in_training_step(module_class, monkeypatch) -> list:
    seen = []
    original = module_class.training_step

    def recording(self, batch, batch_idx):
        seen.append(len(active_dropout(self.reward_model.backbone)))
        return original(self, batch, batch_idx)

    monkeypatch.setattr(module_class, "training_step", recording)
    return seen


@pytest.mark.parametrize("dropout", [True, False])
def test_reward_stage_trains_with_the_configured_dropout(dropout, tmp_path, monkeypatch):
    _pretrained_like_backbone(monkeypatch)
    seen = _record_dropout_in_training_step(RankingRewardModule, monkeypatch)
    run(compose_config([*FAST_TRAINING, f"model.dropout={str(dropout).lower()}"], tmp_path))
    assert len(seen) == 6
    assert all(n > 0 for n in seen) if dropout else all(n == 0 for n in seen), seen


@pytest.mark.parametrize("dropout", ["on", "off"])
def test_ensemble_phase1_trains_with_the_configured_dropout_and_phase2_without(dropout, tmp_path, monkeypatch):
    _pretrained_like_backbone(monkeypatch)
    seen = []
    original = PreferenceRewardModule.training_step

    def recording(self, batch, batch_idx):
        seen.append((self.freeze_backbone, len(active_dropout(self.reward_model.backbone))))
        return original(self, batch, batch_idx)

    monkeypatch.setattr(PreferenceRewardModule, "training_step", recording)
    run(compose_config(["stage=ensemble", f"model.dropout={dropout}", "stage.max_steps=4",
                        "stage.val_every_n_steps=2", "stage.checkpoint_every_n_steps=2",
                        "stage.ensemble.num_heads=2", "stage.ensemble.head_epochs=1",
                        "stage.ensemble.cache_features=false",
                        "dataset.num_train=64", "dataset.num_val=8",
                        "dataset.num_test_per_section=4",
                        "trainer.enable_progress_bar=false"], tmp_path))
    phase1 = [n for frozen, n in seen if not frozen]
    phase2 = [n for frozen, n in seen if frozen]
    assert phase1 and phase2
    assert all(n > 0 for n in phase1) if dropout == "on" else all(n == 0 for n in phase1), phase1
    assert all(n == 0 for n in phase2)  # a frozen backbone gives features, as when they are cached
