"""RewardBench's sections and scores (Lambert et al. 2024; SPEC section 5).

``allenai/reward-bench`` (split ``filtered``) labels each pair with a ``subset``; the leaderboard
groups subsets into Chat, Chat Hard, Safety and Reasoning. A section's score is the subsets'
accuracies weighted by their pair counts, except that math-prm counts as much as the six code
subsets together (Reasoning = ½ math-prm + ½ mean of hep-*). A pair is won only if the chosen
response scores strictly higher. (The Prior sets, from ``allenai/pref-test-sets``, are not
loaded here.) The stored subset names are ``mt-bench-med`` and ``donotanswer``, not the card's
prose names.
"""

from __future__ import annotations

SECTIONS = {
    "Chat": ("alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"),
    "Chat Hard": ("mt-bench-hard", "llmbar-natural", "llmbar-adver-neighbor", "llmbar-adver-GPTInst",
                  "llmbar-adver-GPTOut", "llmbar-adver-manual"),
    "Safety": ("refusals-dangerous", "refusals-offensive", "xstest-should-refuse", "xstest-should-respond",
               "donotanswer"),
    "Reasoning": ("math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"),
}
SECTION_OF_SUBSET = {subset: section for section, subsets in SECTIONS.items() for subset in subsets}
CODE_SUBSETS = ("hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust")


def section_scores(accuracy: dict[str, float], counts: dict[str, int]) -> dict[str, float]:
    """Section scores from per-subset accuracies and pair counts (subsets absent are skipped)."""
    weights = dict(counts)
    if "math-prm" in weights:
        code = [s for s in CODE_SUBSETS if s in weights]
        weights["math-prm"] = sum(weights[s] for s in code) if code else weights["math-prm"]
    scores = {}
    for section, subsets in SECTIONS.items():
        present = [s for s in subsets if s in accuracy and weights.get(s, 0) > 0]
        if present:
            total = sum(weights[s] for s in present)
            scores[section] = sum(accuracy[s] * weights[s] for s in present) / total
    return scores
