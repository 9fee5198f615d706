"""PPO prompts and hub names: the IMDB loader on a local copy, the offline errors, prompt cutting."""

import numpy as np
import pandas as pd
import pytest

from rcollapse.data.hub_access import DataUnavailableError
from rcollapse.data.prompt_sources import ImdbPromptsSource, PromptsOfflineSource, cut_prompt
from rcollapse.models.hub_models import ModelUnavailableError
from rcollapse.models.judges import SequenceClassifierJudge
from rcollapse.models.policy import load_pretrained_causal_lm


def test_imdb_local_copy_gives_2_to_8_word_prompts_without_markup(tmp_path):
    root = tmp_path / "imdb" / "plain_text"
    root.mkdir(parents=True)
    text = "A<br />great film<br /><br />with a cast that never once stops being good and more words"
    for split in ("train", "test"):
        pd.DataFrame({"text": [text] * 20, "label": [1] * 20}).to_parquet(root / f"{split}-00000-of-00001.parquet")
    prompts = ImdbPromptsSource(path=str(tmp_path / "imdb"), num_test=5).load()
    assert len(prompts["train"]) == 20 and len(prompts["test"]) == 5
    for prompt in prompts["train"]:
        assert 2 <= len(prompt.split()) <= 8 and "<br" not in prompt and prompt.startswith("A great")


def test_prompt_cutting_and_offline_prompts():
    rng = np.random.default_rng(0)
    lengths = {len(cut_prompt("one two three four five six seven eight nine ten", rng).split()) for _ in range(200)}
    assert lengths == set(range(2, 9))
    data = PromptsOfflineSource(num_train=10, num_test=3).load()
    assert len(data["train"]) == 10 and all(2 <= len(p.split()) <= 8 for p in data["train"])


def test_hub_names_fail_fast_offline_with_the_key_to_set():
    with pytest.raises(DataUnavailableError, match="dataset.datamodule.source.path.*dataset=prompts_offline"):
        ImdbPromptsSource().load()
    with pytest.raises(ModelUnavailableError, match="model.name_or_path"):
        load_pretrained_causal_lm("openai-community/gpt2")
    with pytest.raises(ModelUnavailableError, match="judge.name_or_path"):
        SequenceClassifierJudge()
