"""A procedural LongForm-like corpus: instructions with long answers, generated here.

No text is copied from any data set: content words are pseudo-words built from syllables by a
seeded generator, glued with a short list of English function words and instruction templates.
What matters for the length task is text of controlled length: answers have a chosen number of
words separated by single spaces, so ``answer.split(" ")`` counts them exactly.
"""

from __future__ import annotations

import numpy as np

_ONSETS = ("b", "br", "c", "ch", "d", "dr", "f", "g", "gr", "h", "k", "l", "m", "n", "p", "pl",
           "r", "s", "sh", "st", "t", "tr", "v", "w", "z")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ou")
_CODAS = ("", "", "n", "r", "s", "l", "m", "nd", "st", "th")
FUNCTION_WORDS = ("the", "a", "of", "and", "to", "in", "is", "that", "it", "for", "with", "as",
                  "on", "by", "this", "from", "or", "which", "but", "also", "each", "their")
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
TEMPLATE_WORDS = tuple(sorted({w.strip(".?,").lower() for t in _TEMPLATES for w in t.split() if "{" not in w}))


def lexicon(seed: int = 0, size: int = 600) -> list[str]:
    """The generator's vocabulary of pseudo-words (deterministic for a seed), unique, sorted by draw."""
    rng = np.random.default_rng(seed)
    words: dict[str, None] = {}
    while len(words) < size:
        syllables = int(rng.integers(1, 4))
        word = "".join(
            _ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))]
            + _CODAS[rng.integers(len(_CODAS))]
            for _ in range(syllables)
        )
        words.setdefault(word, None)
    return list(words)


def _sentence(rng: np.random.Generator, words: list[str], length: int) -> list[str]:
    out = []
    for _ in range(length):
        if rng.random() < 0.35:
            out.append(FUNCTION_WORDS[rng.integers(len(FUNCTION_WORDS))])
        else:
            out.append(words[rng.integers(len(words))])
    out[0] = out[0].capitalize()
    out[-1] = out[-1] + "."
    return out


def generate_instruction_answer_pairs(
    num_pairs: int, seed: int, min_words: int = 100, max_words: int = 160
) -> list[tuple[str, str]]:
    """``num_pairs`` (instruction, answer) pairs, answers of ``min_words..max_words`` words."""
    if not 1 <= min_words <= max_words:
        raise ValueError(f"need 1 <= min_words <= max_words, got {min_words}, {max_words}")
    words = lexicon(seed=0)
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(num_pairs):
        template = _TEMPLATES[rng.integers(len(_TEMPLATES))]
        n1, n2 = (words[i] for i in rng.integers(len(words), size=2))
        instruction = template.format(n1=n1, n2=n2.capitalize())
        target = int(rng.integers(min_words, max_words + 1))
        answer: list[str] = []
        while len(answer) < target:
            length = min(int(rng.integers(6, 17)), target - len(answer))
            answer.extend(_sentence(rng, words, max(length, 1)))
        pairs.append((instruction, " ".join(answer)))
    return pairs
