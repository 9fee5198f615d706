"""The paper's IMDB prompts are the first 2–8 tokens of the policy's tokenizer, not words."""

import pandas as pd
import pytest

from rcollapse.data.prompt_datamodule import PromptDataModule
from rcollapse.data.prompt_sources import ImdbPromptsSource
from rcollapse.models.policy import build_tiny_tokenizer_for_generation
from tests.conftest import compose_config

# words the tiny WordPiece vocabulary splits into several tokens, so tokens and words differ
TEXT = "Unforgettable<br />cinematography, extraordinary performances throughout and wonderful music"


def _local_imdb(tmp_path):
    root = tmp_path / "imdb" / "plain_text"
    root.mkdir(parents=True)
    for split in ("train", "test"):
        pd.DataFrame({"text": [TEXT] * 40, "label": [1] * 40}).to_parquet(root / f"{split}-00000-of-00001.parquet")
    return tmp_path / "imdb"


def test_imdb_prompts_are_2_to_8_tokens_of_the_policy_tokenizer(tmp_path):
    tokenizer = build_tiny_tokenizer_for_generation()
    assert len(tokenizer(TEXT.split("<br />")[0], add_special_tokens=False)["input_ids"]) > 1  # a multi-token word
    prompts = ImdbPromptsSource(path=str(_local_imdb(tmp_path)), num_test=5).load(tokenizer=tokenizer)
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts["train"]]
    assert set(lengths) <= set(range(2, 9)) and len(set(lengths)) > 3, lengths
    assert all("<br" not in p for p in prompts["train"])
    # in words these prompts are shorter: the first word alone is several tokens
    assert min(len(p.split()) for p in prompts["train"]) == 1


def test_words_remain_an_option_and_tokens_need_the_tokenizer(tmp_path):
    path = str(_local_imdb(tmp_path))
    prompts = ImdbPromptsSource(path=path, prompt_unit="words").load()
    assert all(2 <= len(p.split()) <= 8 for p in prompts["train"])
    with pytest.raises(ValueError, match="need the policy's tokenizer"):
        ImdbPromptsSource(path=path).load()
    with pytest.raises(ValueError, match=r"dataset\.prompt_unit must be one of tokens, words, got 'chars'"):
        ImdbPromptsSource(path=path, prompt_unit="chars")


def test_the_imdb_config_cuts_by_tokens_by_default_and_the_data_module_passes_the_tokenizer(tmp_path):
    from hydra.utils import instantiate

    cfg = compose_config(["stage=ppo", "dataset=imdb_prompts", f"dataset.path={_local_imdb(tmp_path)}"], tmp_path)
    assert cfg.dataset.prompt_unit == "tokens"
    tokenizer = build_tiny_tokenizer_for_generation()
    datamodule: PromptDataModule = instantiate(cfg.dataset, batch_size=8, tokenizer=tokenizer)
    datamodule.setup()
    assert all(2 <= len(tokenizer(p, add_special_tokens=False)["input_ids"]) <= 8 for p in datamodule.prompts["train"])
