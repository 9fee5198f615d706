"""The PPO judge at the paper's scale: the real study judges IMDB's whole test split, in batches
whose size changes no score, and the offline defaults stay as they were."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rcollapse.config.checks import ConfigError, validate_config
from rcollapse.data.prompt_sources import ImdbPromptsSource
from rcollapse.models.judges import (
    SequenceClassifierJudge,
    VaderJudge,
    batch_ranges,
    judge_in_batches,
)
from rcollapse.models.policy import build_tiny_tokenizer_for_generation
from rcollapse.stages.ppo_stage import judge_prompts
from tests.conftest import compose_config
from tests.test_ppo_data import _tiny_llama_judge_dir

PROMPTS = ["the movie", "i watched this film last night", "a story", "the cast", "this film was",
           "what a", "my friends and i went to see it"]
RESPONSES = ["was great", "and it was long and dull", "of love", "never once stops being good", "terrible",
             "waste of two hours", "and we laughed"]


def _local_imdb(tmp_path, num_test: int = 60):
    root = tmp_path / "imdb" / "plain_text"
    root.mkdir(parents=True)
    words = "an absolutely wonderful<br />film with a cast that never once stops being good and more".split()
    for split, count in (("train", 40), ("test", num_test)):
        texts = [" ".join(words[i % 5:] + [f"review{i}"]) for i in range(count)]
        pd.DataFrame({"text": texts, "label": [i % 2 for i in range(count)]}).to_parquet(
            root / f"{split}-00000-of-00001.parquet")
    return tmp_path / "imdb"


def test_the_real_study_judges_the_whole_imdb_test_split_and_the_offline_defaults_stay(tmp_path):
    real = compose_config(["experiment=ppo_study", "stage.ensemble_path=/some/ensemble"], tmp_path / "real")
    assert real.dataset.source._target_.endswith("ImdbPromptsSource")
    assert real.dataset.num_test is None and real.dataset.num_train is None  # every review of each split
    assert real.judge.batch_size == 32 and real.stage.judge_batch_size == 256
    assert real.stage.judge_num_prompts == 1000  # the over-optimisation curve's prompts
    offline = compose_config(["stage=ppo"], tmp_path / "offline")
    assert (offline.stage.judge_num_prompts, offline.stage.judge_batch_size) == (64, 64)
    assert offline.dataset.num_test == 128 and offline.judge._target_.endswith("VaderJudge")
    study = compose_config(["experiment=ppo_study_offline"], tmp_path / "study")
    assert (study.stage.judge_num_prompts, study.stage.judge_batch_size) == (64, 64)

    # the composed data set on a local copy in the hub's layout: every test review, nothing capped
    from hydra.utils import instantiate

    cfg = compose_config(["experiment=ppo_study", "stage.ensemble_path=/some/ensemble",
                          f"dataset.path={_local_imdb(tmp_path, num_test=60)}"], tmp_path / "local")
    datamodule = instantiate(cfg.dataset, batch_size=8, tokenizer=build_tiny_tokenizer_for_generation())
    datamodule.setup()
    assert len(datamodule.prompts["test"]) == 60 and len(datamodule.prompts["train"]) == 40
    assert len(judge_prompts(datamodule.prompts["test"], None)) == 60
    assert judge_prompts(datamodule.prompts["test"], 7) == datamodule.prompts["test"][:7]


def test_a_subsample_is_the_head_of_the_whole_split_and_bad_counts_name_the_key(tmp_path):
    path, tokenizer = str(_local_imdb(tmp_path)), build_tiny_tokenizer_for_generation()
    whole = ImdbPromptsSource(path=path, num_test=None).load(tokenizer=tokenizer)["test"]
    head = ImdbPromptsSource(path=path, num_test=10).load(tokenizer=tokenizer)["test"]
    assert len(whole) == 60 and head == whole[:10]
    with pytest.raises(ValueError, match=r"dataset\.num_test must be >= 1, or null"):
        ImdbPromptsSource(path=path, num_test=0)


@pytest.mark.parametrize("value", [0, -3, "all"])
def test_judge_sizes_are_checked_naming_the_key(tmp_path, value):
    cfg = compose_config(["stage=ppo", f"stage.judge_num_prompts={value}"], tmp_path)
    with pytest.raises(ConfigError, match=r"^stage\.judge_num_prompts: must be an integer >= 1, or null"):
        validate_config(cfg)
    cfg = compose_config(["stage=ppo", f"stage.judge_batch_size={value}"], tmp_path / "b")
    with pytest.raises(ConfigError, match=r"^stage\.judge_batch_size: must be an integer >= 1"):
        validate_config(cfg)
    validate_config(compose_config(["stage=ppo", "stage.judge_num_prompts=null"], tmp_path / "c"))


def test_batch_ranges_cover_every_item_once_in_order():
    assert list(batch_ranges(7, 3)) == [(0, 3), (3, 6), (6, 7)]
    assert list(batch_ranges(6, 3, progress=True)) == [(0, 3), (3, 6)]  # with the progress bar
    assert list(batch_ranges(0, 4)) == []
    with pytest.raises(ValueError, match="at least 1"):
        list(batch_ranges(5, 0))


@pytest.mark.parametrize("batch_size", [1, 2, 3, 7, 50])
def test_judging_in_batches_gives_the_scores_of_one_batch(tmp_path, batch_size):
    """A tiny Llama-3-shaped sequence classifier (right padding, no pad token, each row read at its
    own last token, as FsfairX): the scores of 7 chats in batches of b are those of one batch of
    all 7, and those of each chat alone (the plain reference)."""
    judge = SequenceClassifierJudge(name_or_path=str(_tiny_llama_judge_dir(tmp_path, None)),
                                    batch_size=len(PROMPTS), dtype="float32", device="cpu")
    one_batch = np.asarray(judge.score(PROMPTS, RESPONSES))
    alone = np.array([judge.score([p], [r])[0] for p, r in zip(PROMPTS, RESPONSES, strict=True)])
    batched = judge_in_batches(judge, PROMPTS, RESPONSES, batch_size=batch_size, progress=batch_size == 2)
    assert batched.shape == (7,) and len(set(np.round(one_batch, 6))) == 7
    np.testing.assert_allclose(batched, one_batch, atol=1e-5)
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    # the judge's own batch size (judge.batch_size) is the default
    judge.batch_size = batch_size
    np.testing.assert_allclose(judge_in_batches(judge, PROMPTS, RESPONSES), one_batch, atol=1e-5)


def test_vader_in_batches_is_vader_at_once():
    vader = VaderJudge()
    at_once = np.asarray(vader.score(PROMPTS, RESPONSES), float)
    for size in (1, 3, None):
        np.testing.assert_array_equal(judge_in_batches(vader, PROMPTS, RESPONSES, batch_size=size), at_once)
    with pytest.raises(ValueError, match="7 prompts but 6 responses"):
        judge_in_batches(vader, PROMPTS, RESPONSES[:6])
