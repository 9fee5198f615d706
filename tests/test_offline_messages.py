"""Offline, a hub model's error suggests the offline model of the same kind."""

import pytest
from hydra.utils import instantiate

from rcollapse.models.hub_models import ModelUnavailableError
from tests.conftest import compose_config


def _offline_error(part: str, overrides: list[str], tmp_path) -> str:
    cfg = compose_config(overrides, tmp_path)
    kwargs = {"tokenizer": None} if part == "backbone" else {}  # the stage passes the built tokenizer
    with pytest.raises(Exception) as err:  # noqa: PT011 - Hydra may wrap the loader's error
        instantiate(cfg.model[part], **kwargs)
    chain, cause = [], err.value
    while cause is not None:
        chain.append(cause)
        cause = cause.__cause__
    assert any(isinstance(e, ModelUnavailableError) for e in chain), repr(err.value)
    return str(err.value)


@pytest.mark.parametrize("part", ["tokenizer", "policy"])
def test_an_offline_hub_policy_suggests_the_offline_policy(part, tmp_path):
    message = _offline_error(part, ["stage=ppo", "model=gpt2"], tmp_path)
    assert "model.name_or_path" in message and "openai-community/gpt2" in message
    assert "model=tiny_gpt2" in message
    assert "model=tiny`" not in message and "model=tiny " not in message and "minilm" not in message


@pytest.mark.parametrize("part", ["tokenizer", "backbone"])
def test_an_offline_hub_encoder_suggests_the_offline_encoders(part, tmp_path):
    message = _offline_error(part, ["model=deberta"], tmp_path)
    assert "model.name_or_path" in message and "microsoft/deberta-v3-base" in message
    assert "`model=tiny`" in message and "`model=minilm`" in message and "tiny_gpt2" not in message
