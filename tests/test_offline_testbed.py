"""The offline testbed's design (issue 15, item 4): which clauses the training pairs negate,
adjectives held out of training, and the test sections that probe both."""

import numpy as np
import pytest

from rcollapse.data.preference_sources import OFFLINE_SECTIONS, PreferenceOfflineSource
from rcollapse.data.sentiment_gold import vader_compound
from rcollapse.data.synthetic_reviews import NEGATIVE, POSITIVE, adjective_pools, review_text


def negated_adjectives(text: str) -> list[str]:
    words = text.replace(".", " ").split()
    return [words[i + 1] if words[i + 1] not in ("very", "really", "so", "extremely", "incredibly") else words[i + 2]
            for i, w in enumerate(words[:-1]) if w in ("not", "never")]


def all_negated(pairs) -> list[str]:
    return [a for p in pairs for text in (p.chosen, p.rejected) for a in negated_adjectives(text)]


@pytest.mark.parametrize(("negatable", "allowed"), [("positive", NEGATIVE), ("negative", POSITIVE)])
def test_only_clauses_of_the_chosen_sentiment_are_negated(negatable, allowed):
    rng = np.random.default_rng(0)
    texts = [review_text(rng, rng.uniform(-1, 1), 4, p_negated=0.5, negatable=negatable) for _ in range(300)]
    negated = [a for t in texts for a in negated_adjectives(t)]
    assert len(negated) > 100
    assert set(negated) <= set(allowed)  # "positive": only litotes ("not boring"); "negative": "not great"


def test_any_negates_both_kinds_and_keeps_the_old_stream():
    rng = np.random.default_rng(0)
    texts = [review_text(rng, rng.uniform(-1, 1), 4, p_negated=0.5) for _ in range(300)]
    negated = {a for t in texts for a in negated_adjectives(t)}
    assert negated & set(POSITIVE) and negated & set(NEGATIVE)


def test_litotes_training_pairs_make_not_a_positive_cue_that_negated_praise_contradicts():
    data = PreferenceOfflineSource(num_train=600, num_val=8, num_test_per_section=20, negatable="positive").load()
    train_negated = all_negated(data["train"])
    assert train_negated and set(train_negated) <= set(NEGATIVE)
    praise = [p for p in data["test"] if p.section == "Negated praise"]
    assert len(praise) == 20
    assert set(all_negated(praise)) <= set(POSITIVE)
    # the gold reads "not great" as negative: the texts with negated praise score below their plain twins
    assert np.mean(vader_compound(["the movie was not great ."])) < 0 < np.mean(vader_compound(["the movie was great ."]))


def test_held_out_adjectives_never_appear_in_training_and_only_in_their_section():
    held = 4
    seen_pos, seen_neg = adjective_pools(held, "seen")
    unseen_pos, unseen_neg = adjective_pools(held, "held_out")
    assert set(unseen_pos) == set(POSITIVE[-held:]) and not set(unseen_pos) & set(seen_pos)
    data = PreferenceOfflineSource(num_train=400, num_val=16, num_test_per_section=20, held_out_adjectives=held).load()
    unseen = set(unseen_pos + unseen_neg)

    def words(pairs):
        return {w for p in pairs for t in (p.chosen, p.rejected) for w in t.replace(".", " ").split()}

    assert not words(data["train"] + data["val"]) & unseen
    sections = list(dict.fromkeys(p.section for p in data["test"]))
    assert sections == list(OFFLINE_SECTIONS)
    for section in sections:
        used = words([p for p in data["test"] if p.section == section]) & set(POSITIVE + NEGATIVE)
        assert (used <= unseen) if section == "Unseen words" else not (used & unseen), section


def test_without_held_out_adjectives_there_is_no_unseen_section():
    data = PreferenceOfflineSource(num_train=50, num_val=4, num_test_per_section=5).load()
    assert "Unseen words" not in {p.section for p in data["test"]}


@pytest.mark.parametrize("bad", [{"negatable": "sometimes"}, {"held_out_adjectives": 99}])
def test_bad_testbed_options_are_refused_naming_the_key(bad):
    with pytest.raises(ValueError, match=next(iter(bad)).split("_")[0]):
        PreferenceOfflineSource(**bad)
