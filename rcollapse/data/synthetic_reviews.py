"""Generated movie-review text with controllable sentiment: the offline stand-in for IMDB.

The preference data of the offline ensemble (``dataset=preference_offline``) and, later, the
offline prompts and SFT corpus of the PPO stage are built from this generator, so that the
reward heads, the policy and the judge (VADER sentiment, :mod:`rcollapse.data.sentiment_gold`)
all see the same kind of text. Sentences come from a handful of templates over a fixed
vocabulary (nouns about films, sentiment adjectives, VADER's intensifiers and negations), so the
project's tiny tokenizer holds every word as one token. Pure numpy.
"""

from __future__ import annotations

import numpy as np

NOUNS = ("movie", "film", "plot", "acting", "story", "cast", "ending", "director", "script", "scenes",
         "music", "characters", "dialogue", "camera", "pacing", "soundtrack", "performance", "actors")
POSITIVE = ("great", "wonderful", "brilliant", "excellent", "beautiful", "funny", "charming", "superb",
            "delightful", "enjoyable", "fantastic", "amazing", "good", "lovely", "clever", "powerful")
NEGATIVE = ("awful", "boring", "terrible", "dull", "bad", "horrible", "weak", "stupid", "poor", "annoying",
            "painful", "ugly", "lame", "pointless", "tedious", "disappointing")
INTENSIFIERS = ("very", "really", "so", "extremely", "incredibly")
NEGATIONS = ("not", "never")
OPENERS = ("i watched this movie", "this film", "the movie", "i saw this film", "honestly this movie",
           "my friends and i watched the film", "this was a movie", "i expected the film")
_FILLER = ("the", "a", "and", "but", "was", "is", "were", "it", "this", "with", "of", "in", "i", "felt",
           "found", "thought", "last", "night", "yesterday", "at", "home", "to", "be", "had", "its", "all")
REVIEW_WORDS = tuple(dict.fromkeys(NOUNS + POSITIVE + NEGATIVE + INTENSIFIERS + NEGATIONS + _FILLER
                                   + tuple(w for o in OPENERS for w in o.split())))


NEGATABLE = ("any", "positive", "negative")


def adjective_pools(held_out: int = 0, which: str = "seen") -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(positive, negative) adjectives: with ``held_out`` = h > 0, the last h of each list are held
    out; ``which="seen"`` gives the others, ``"held_out"`` those h (``"all"``: every adjective)."""
    if not 0 <= held_out < min(len(POSITIVE), len(NEGATIVE)):
        raise ValueError(f"held_out adjectives must be in [0, {min(len(POSITIVE), len(NEGATIVE)) - 1}], got {held_out}")
    if which == "all" or held_out == 0:
        return POSITIVE, NEGATIVE
    if which == "seen":
        return POSITIVE[:-held_out], NEGATIVE[:-held_out]
    if which == "held_out":
        return POSITIVE[-held_out:], NEGATIVE[-held_out:]
    raise ValueError(f"which must be 'seen', 'held_out' or 'all', got {which!r}")


def review_sentence(rng: np.random.Generator, positive: bool, negated: bool = False,
                    adjectives: tuple[tuple[str, ...], tuple[str, ...]] = (POSITIVE, NEGATIVE)) -> str:
    """One clause about a film whose sentiment is ``positive`` (a negated clause says the
    opposite adjective: "was not boring" for a positive one, "was not great" for a negative one),
    its adjective drawn from ``adjectives`` (positive ones, negative ones)."""
    noun = NOUNS[rng.integers(len(NOUNS))]
    says_positive = positive != negated
    pool = adjectives[0] if says_positive else adjectives[1]
    adjective = pool[rng.integers(len(pool))]
    intensifier = f"{INTENSIFIERS[rng.integers(len(INTENSIFIERS))]} " if rng.random() < 0.3 and not negated else ""
    negation = f"{NEGATIONS[rng.integers(len(NEGATIONS))]} " if negated else ""
    verb = "were" if noun.endswith("s") else "was"
    template = rng.integers(3)
    if template == 0:
        return f"the {noun} {verb} {negation}{intensifier}{adjective}"
    if template == 1:
        return f"i found the {noun} {negation}{intensifier}{adjective}"
    return f"the {noun} felt {negation}{intensifier}{adjective}"


def review_text(rng: np.random.Generator, sentiment: float, num_sentences: int, p_negated: float = 0.0,
                negatable: str = "any", adjectives: tuple[tuple[str, ...], tuple[str, ...]] = (POSITIVE, NEGATIVE)) -> str:
    """``num_sentences`` clauses, each positive with probability (1 + sentiment)/2, joined into
    sentences ("... and ...", "... but ...", ". "). A clause is negated with probability
    ``p_negated`` if its sentiment is ``negatable``: ``any``; ``positive`` (only praise by litotes,
    "not boring", is written); ``negative`` (only negated praise, "not great"). Adjectives come from
    ``adjectives`` (:func:`adjective_pools`)."""
    if negatable not in NEGATABLE:
        raise ValueError(f"negatable must be one of {NEGATABLE}, got {negatable!r}")
    clauses = []
    for _ in range(num_sentences):
        positive, draw = rng.random() < (1 + sentiment) / 2, rng.random() < p_negated
        negated = draw and (negatable == "any" or positive == (negatable == "positive"))
        clauses.append(review_sentence(rng, positive, negated, adjectives))
    text = clauses[0]
    for clause in clauses[1:]:
        text += (" and ", " but ", " . ")[rng.integers(3)] + clause
    return text + " ."


def review_prompt(rng: np.random.Generator, min_words: int = 2, max_words: int = 8) -> str:
    """The start of a review, 2–8 words (like the PPO stage's IMDB prompts)."""
    words = (OPENERS[rng.integers(len(OPENERS))] + " " + review_text(rng, rng.uniform(-1, 1), 2)).split()
    return " ".join(words[: rng.integers(min_words, max_words + 1)])
