"""The lexical backbone (model=ngram): response token counts and negated-token counts, saved and
loaded like any Hugging Face backbone, and an ensemble on it that round-trips."""

import pytest
import torch

from rcollapse.models.ensemble_artifact import load_ensemble, save_ensemble
from rcollapse.models.feature_cache import state_digest
from rcollapse.models.ngram_encoder import NgramEncoder, build_ngram_encoder
from rcollapse.models.reward_model import RewardModel
from rcollapse.models.tiny_encoder import build_tiny_tokenizer
from rcollapse.stages.ensemble_stage import widen_heads


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


def features(encoder, tokenizer, prompt, response):
    batch = tokenizer([prompt], [response], return_tensors="pt")
    return encoder(**batch).last_hidden_state[0, 0]


def test_counts_the_response_words_and_the_negated_ones_by_hand(tokenizer):
    encoder = build_ngram_encoder(tokenizer)
    f = features(encoder, tokenizer, "the great movie", "was not great . the plot was great")
    size = len(tokenizer)
    assert f.shape == (2 * size,)

    def token(word):
        return tokenizer.convert_tokens_to_ids(word)

    expected = torch.zeros(2 * size)
    for word, count in {"was": 2, "not": 1, "great": 2, ".": 1, "the": 1, "plot": 1}.items():
        expected[token(word)] = count
    expected[size + token("great")] = 1  # "not great"; the prompt's "great" is not the response's
    torch.testing.assert_close(f, expected)


def test_never_negates_too_and_a_negation_across_the_prompt_boundary_does_not_count(tokenizer):
    encoder = build_ngram_encoder(tokenizer)
    size = len(tokenizer)
    great = tokenizer.convert_tokens_to_ids("great")
    assert features(encoder, tokenizer, "it was", "never great")[size + great] == 1
    # the prompt ends with "not", [SEP] follows: the response's first word is not negated
    assert features(encoder, tokenizer, "it was not", "great")[size + great] == 0


def test_a_negation_must_be_one_token(tokenizer):
    with pytest.raises(ValueError, match="negations"):
        build_ngram_encoder(tokenizer, negations=["notwithstandingly"])


def test_saves_and_loads_through_automodel(tokenizer, tmp_path):
    from transformers import AutoModel

    encoder = build_ngram_encoder(tokenizer)
    encoder.save_pretrained(tmp_path / "ngram")
    loaded = AutoModel.from_pretrained(tmp_path / "ngram")
    assert isinstance(loaded, NgramEncoder)
    batch = tokenizer(["a film"], ["not boring at all"], return_tensors="pt")
    torch.testing.assert_close(loaded(**batch).last_hidden_state, encoder(**batch).last_hidden_state)
    assert state_digest(loaded) == state_digest(encoder)  # the feature cache's key; a 0-dim parameter


def test_an_ensemble_on_it_round_trips_through_the_artifact(tokenizer, tmp_path):
    torch.manual_seed(0)
    model = RewardModel(build_ngram_encoder(tokenizer), num_heads=1)
    wide = widen_heads(model, 3, [1, 2], init_scale=30.0)
    wide.fit_normalisation(torch.rand(20, 2 * len(tokenizer)) * 3)
    save_ensemble(wide, tokenizer, tmp_path / "ens", 64, [1, 2])
    loaded = load_ensemble(tmp_path / "ens")
    prompts, responses = ["the movie", "a film"], ["was not great .", "was great ."]
    wide.eval()
    batch = loaded.collate.encode(prompts, responses)
    torch.testing.assert_close(loaded.score(prompts, responses).scores, wide(**batch).scores)
