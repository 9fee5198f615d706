"""A procedural LongForm-like corpus: instructions with long answers, generated here.

No text is copied from any data set: content words are pseudo-words built from syllables by a
seeded generator, glued with a short list of English function words and instruction templates.
What matters for the length task is text of controlled length: answers have a chosen number of
words separated by single spaces, so ``answer.split(" ")`` counts them exactly.
"""

from __future__ import annotations

import numpy as np

_ONSETS = tuple("b br c ch d dr f g gr h k l m n p pl r s sh st t tr v w z".split())
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ou")
_CODAS = ("", "", "n", "r", "s", "l", "m", "nd", "st", "th")
# A few ordinary English function words, written here; they glue the pseudo-words together.
FUNCTION_WORDS = tuple(
    "the a of and to in is that it for with as on by this from or which but also each their".split()
)
_TEMPLATES = (
    "Describe how the {n1} of {n2} changed over time.",
    "Explain why {n1} matters for {n2}.",
    "Write a short essay about the {n1} and the {n2}.",
    "What is the role of {n1} in {n2}?",
    "Summarise what is known about {n1} near {n2}.",
    "Tell me a story about a {n1} who visits {n2}.",
    "Compare the {n1} with the {n2}.",
    "Give advice to someone who studies {n1}.",
)
# The plain English words of the templates, for tokenizers that should know them.
TEMPLATE_WORDS = tuple(
    sorted({w.strip(".?,").lower() for t in _TEMPLATES for w in t.split() if "{" not in w})
)


def lexicon(seed: int = 0, size: int = 600) -> list[str]:
    """The generator's vocabulary: ``size`` unique pseudo-words in draw order, fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    words: dict[str, None] = {}
    while len(words) < size:
        syllables = int(rng.integers(1, 4))
        word = "".join(
            _ONSETS[rng.integers(len(_ONSETS))]
            + _VOWELS[rng.integers(len(_VOWELS))]
            + _CODAS[rng.integers(len(_CODAS))]
            for _ in range(syllables)
        )
        words.setdefault(word, None)
    return list(words)


FUNCTION_WORD_RATE = 0.35  # share of words drawn from FUNCTION_WORDS
SENTENCE_WORDS = (6, 16)  # a sentence's words, drawn uniformly in this range (the last one is cut)


def _answer(rng: np.random.Generator, vocabulary: list[str], num_words: int) -> str:
    """``num_words`` words in sentences: capitalised first word, a full stop after the last."""
    num_function = len(FUNCTION_WORDS)
    is_function = rng.random(num_words) < FUNCTION_WORD_RATE
    index = np.where(
        is_function,
        rng.integers(num_function, size=num_words),
        num_function + rng.integers(len(vocabulary) - num_function, size=num_words),
    )
    words = [vocabulary[i] for i in index.tolist()]
    low, high = SENTENCE_WORDS
    ends = np.cumsum(rng.integers(low, high + 1, size=num_words // low + 1))
    ends = [*ends[ends < num_words].tolist(), num_words]
    start = 0
    for end in ends:
        words[start] = words[start].capitalize()
        words[end - 1] += "."
        start = end
    return " ".join(words)


def generate_instruction_answer_pairs(
    num_pairs: int, seed: int, min_words: int = 100, max_words: int = 160
) -> list[tuple[str, str]]:
    """``num_pairs`` (instruction, answer) pairs, deterministic for ``seed``.

    Each answer has a uniformly drawn number of words in ``[min_words, max_words]``, joined by
    single spaces (no other whitespace), so ``len(answer.split(" "))`` is that number.
    """
    if not 1 <= min_words <= max_words:
        raise ValueError(f"need 1 <= min_words <= max_words, got {min_words}, {max_words}")
    if num_pairs < 0:
        raise ValueError(f"num_pairs must be >= 0, got {num_pairs}")
    words = lexicon(seed=0)
    vocabulary = [*FUNCTION_WORDS, *words]
    rng = np.random.default_rng(seed)
    templates = rng.integers(len(_TEMPLATES), size=num_pairs).tolist()
    nouns = rng.integers(len(words), size=(num_pairs, 2)).tolist()
    targets = rng.integers(min_words, max_words + 1, size=num_pairs).tolist()
    pairs = []
    for template, (n1, n2), target in zip(templates, nouns, targets):
        instruction = _TEMPLATES[template].format(n1=words[n1], n2=words[n2].capitalize())
        pairs.append((instruction, _answer(rng, vocabulary, target)))
    return pairs
