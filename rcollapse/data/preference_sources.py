"""Where preference pairs come from: ``load()`` gives ``{"train", "val", "test"}`` lists of
:class:`PreferencePair` (a training source may leave out ``test``; RewardBench has only ``test``).

- :class:`PreferenceOfflineSource`: generated reviews, VADER gold reward, Bradley–Terry labels.
- :class:`PrefMixSource`: ``weqweasdas/preference_dataset_mix2`` (the paper's training data).
- :class:`RewardBenchSource`: ``allenai/reward-bench`` mapped to its four sections, with the Prior
  Sets of :class:`PriorSetsSource` (``allenai/pref-test-sets``, its ``prior_path``) when given.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from rcollapse.data.hub_access import (
    DATASET_EVAL_PATH_KEY,
    DATASET_PATH_KEY,
    DATASET_PRIOR_PATH_KEY,
    load_hub_dataset,
)
from rcollapse.data.preference_pairs import (
    PreferencePair,
    render_messages,
    split_chat_pair,
    validate_preference_pair,
)
from rcollapse.data.ranking_rows import MalformedRowError
from rcollapse.data.rewardbench_sections import (
    PRIOR_SECTION,
    PRIOR_SUBSETS,
    SECTION_OF_SUBSET,
    SECTIONS,
)
from rcollapse.data.sentiment_gold import vader_compound
from rcollapse.data.synthetic_reviews import NEGATABLE, adjective_pools, review_prompt, review_text

OFFLINE_PREFERENCES = "dataset=preference_offline"

# the offline test sections: what each asks of a reward model
OFFLINE_SECTIONS = {
    "Clear": "gold rewards far apart (|Δ| ≥ 0.6)",
    "Subtle": "gold rewards close (0.05 ≤ |Δ| < 0.3)",
    "Negation": "every clause negated ('not boring'): sentiment must be read through 'not'",
    "Length trap": "the chosen response is the shorter one (1 clause against 3–4)",
    "Negated praise": "every negative clause is negated praise ('not great'), the form that training pairs "
                      "made with negatable=positive never show",
    "Unseen words": "every adjective is one of the held_out_adjectives that training pairs never use "
                    "(only when some are held out)",
}


class PreferenceOfflineSource:
    """Generated review continuations with a gold reward the project computes.

    Each pair: a review's first 2–8 words as the prompt, two continuations of 1–4 clauses with
    independently drawn sentiment, gold reward = VADER compound of each continuation. Training
    and validation labels are drawn from a Bradley–Terry model of the gold rewards,
    P(a ≻ b) = σ((g_a − g_b)/temperature); test pairs are ordered by the gold reward and split
    into :data:`OFFLINE_SECTIONS`. Every pair carries both responses' gold rewards
    (``gold_chosen``, ``gold_rejected``) for the uncertainty-quality report.

    ``negatable`` chooses which clauses of the training and validation responses may be negated
    (with probability ``p_negated``): ``any``, or ``positive`` (only praise by litotes, "not
    boring": the word "not" then always marks a positive clause, a spurious cue that a proxy can
    learn and that negated praise, "not great", contradicts; the test section "Negated praise"
    and a policy that learns to write "not" find it). ``held_out_adjectives`` = h > 0 keeps the
    last h positive and h negative adjectives out of the training and validation pairs and of
    every test section but "Unseen words", which uses only them: a region of the text the reward
    model never saw rated (the policy's corpus and the gold know those words).
    """

    def __init__(self, num_train: int = 4000, num_val: int = 256, num_test_per_section: int = 100,
                 temperature: float = 0.1, p_negated: float = 0.2, seed: int = 0, negatable: str = "any",
                 held_out_adjectives: int = 0):
        if not temperature > 0:
            raise ValueError(f"dataset.temperature must be > 0, got {temperature}")
        if negatable not in NEGATABLE:
            raise ValueError(f"dataset.negatable must be one of {list(NEGATABLE)}, "
                             f"got {negatable!r}")
        self.num_train, self.num_val = int(num_train), int(num_val)
        self.num_test_per_section = int(num_test_per_section)
        self.temperature, self.p_negated, self.seed = float(temperature), float(p_negated), int(seed)
        self.negatable = negatable
        self.held_out_adjectives = int(held_out_adjectives)
        self.seen = adjective_pools(self.held_out_adjectives, "seen")
        self.unseen = adjective_pools(self.held_out_adjectives, "held_out")

    def _candidates(self, rng, count: int, p_negated: float, sentences=(1, 4), negatable: str = "any",
                    adjectives=None):
        adjectives = adjectives or self.seen
        prompts = [review_prompt(rng) for _ in range(count)]
        texts = [[review_text(rng, rng.uniform(-1, 1), int(rng.integers(sentences[0], sentences[1] + 1)), p_negated,
                              negatable, adjectives) for _ in range(2)] for _ in range(count)]
        gold = np.array(vader_compound([t for pair in texts for t in pair])).reshape(count, 2)
        return prompts, texts, gold

    def _labelled(self, rng, count: int, split: str) -> list[PreferencePair]:
        prompts, texts, gold = self._candidates(rng, count, self.p_negated, negatable=self.negatable)
        p_first = 1 / (1 + np.exp(-(gold[:, 0] - gold[:, 1]) / self.temperature))
        first = rng.random(count) < p_first
        pairs = []
        for i in range(count):
            (a, b), (ga, gb) = (texts[i], gold[i]) if first[i] else (texts[i][::-1], gold[i][::-1])
            if a == b:
                continue
            pairs.append(PreferencePair(f"offline-{split}-{i}", prompts[i], a, b, section="all", subset="all",
                                        gold_chosen=float(ga), gold_rejected=float(gb)))
        return pairs

    def _section(self, rng, section: str) -> list[PreferencePair]:
        pairs, attempts = [], 0
        while len(pairs) < self.num_test_per_section:
            attempts += 1
            if attempts > 200:
                raise RuntimeError(f"could not generate the offline section {section!r}")
            if section == "Length trap":
                prompts = [review_prompt(rng) for _ in range(256)]
                short = [review_text(rng, rng.uniform(-1, 1), 1, adjectives=self.seen) for _ in range(256)]
                long = [review_text(rng, rng.uniform(-1, 1), int(rng.integers(3, 5)), adjectives=self.seen)
                        for _ in range(256)]
                gold = np.array(vader_compound(short + long)).reshape(2, 256).T
                texts = [[s, lo] for s, lo in zip(short, long, strict=True)]
                keep = gold[:, 0] - gold[:, 1] >= 0.3  # the short one is better
            else:
                p_negated = 1.0 if section in ("Negation", "Negated praise") else self.p_negated
                prompts, texts, gold = self._candidates(
                    rng, 256, p_negated, negatable="negative" if section == "Negated praise" else "any",
                    adjectives=self.unseen if section == "Unseen words" else self.seen)
                gap = np.abs(gold[:, 0] - gold[:, 1])
                keep = {"Clear": gap >= 0.6, "Subtle": (gap >= 0.05) & (gap < 0.3), "Negation": gap >= 0.3,
                        "Negated praise": gap >= 0.3, "Unseen words": gap >= 0.3}[section]
            for i in np.flatnonzero(keep):
                if len(pairs) == self.num_test_per_section:
                    break
                first = gold[i, 0] > gold[i, 1]
                (a, b), (ga, gb) = (texts[i], gold[i]) if first else (texts[i][::-1], gold[i][::-1])
                pairs.append(PreferencePair(f"offline-{section}-{len(pairs)}", prompts[i], a, b, section, section,
                                            gold_chosen=float(ga), gold_rejected=float(gb)))
        return pairs

    def load(self) -> dict[str, list[PreferencePair]]:
        rng = np.random.default_rng(self.seed)
        train = self._labelled(rng, self.num_train, "train")
        val = self._labelled(rng, self.num_val, "val")
        sections = [s for s in OFFLINE_SECTIONS if s != "Unseen words" or self.held_out_adjectives > 0]
        test = [pair for section in sections for pair in self._section(rng, section)]
        return {"train": train, "val": val, "test": test}


class PrefMixSource:
    """``weqweasdas/preference_dataset_mix2`` (hub name or local copy): chosen/rejected chats.

    ``num_pairs`` pairs are drawn (seeded) from the split, ``num_val`` more held out for
    validation; pairs whose responses are identical are dropped and counted.
    """

    def __init__(self, path: str = "weqweasdas/preference_dataset_mix2", split: str = "train",
                 num_pairs: int = 50000, num_val: int = 1000, seed: int = 0,
                 path_key: str = DATASET_PATH_KEY):
        self.path, self.split, self.path_key = str(path), split, path_key
        self.num_pairs, self.num_val, self.seed = int(num_pairs), int(num_val), int(seed)
        self.dropped = 0

    def load(self) -> dict[str, list[PreferencePair]]:
        table = load_hub_dataset(self.path, self.path_key, self.split, alternative=OFFLINE_PREFERENCES)
        missing = [c for c in ("chosen", "rejected") if c not in table.column_names]
        if missing:
            raise MalformedRowError(f"{self.path} ({self.path_key}), split {self.split!r}: missing column(s) "
                                    f"{missing}; found {table.column_names}")
        order = np.random.default_rng(self.seed).permutation(len(table))
        wanted = min(len(table), self.num_pairs + self.num_val)
        table = table.select_columns(["chosen", "rejected"]).select(order[:wanted].tolist())
        pairs = []
        for index, row in enumerate(table):
            where = f"{self.path}, row {int(order[index])}"
            prompt, chosen, rejected = split_chat_pair(row["chosen"], row["rejected"], where)
            if chosen == rejected:
                self.dropped += 1
                continue
            pairs.append(validate_preference_pair(
                {"prompt": prompt, "chosen": chosen, "rejected": rejected, "id": f"prefmix-{int(order[index])}"},
                int(order[index]), self.path))
        if self.dropped:
            warnings.warn(f"{self.path}: dropped {self.dropped} pairs with identical responses", stacklevel=2)
        num_val = min(self.num_val, len(pairs) // 2)
        return {"train": pairs[num_val:], "val": pairs[:num_val]}


class RewardBenchSource:
    """``allenai/reward-bench`` (hub name or local copy), split ``filtered``: evaluation pairs in
    the Chat / Chat Hard / Safety / Reasoning sections (:mod:`rcollapse.data.rewardbench_sections`),
    followed by the Prior Sets pairs of ``allenai/pref-test-sets`` at ``prior_path`` (a
    :class:`PriorSetsSource`, ``prior_limit_per_split`` pairs of each split; None: none, and the
    report names the Prior Sets as missing). Subsets that belong to no section are skipped and
    counted; ``limit_per_subset`` keeps each subset's first pairs (a subsampled run: sections still
    weigh subsets by their full counts). ``path_key`` and ``prior_path_key`` are the config keys
    the offline errors name."""

    def __init__(self, path: str = "allenai/reward-bench", split: str = "filtered",
                 path_key: str = DATASET_EVAL_PATH_KEY, limit_per_subset: int | None = None,
                 prior_path: str | None = None, prior_limit_per_split: int | None = None,
                 prior_path_key: str = DATASET_PRIOR_PATH_KEY):
        self.path, self.split, self.path_key = str(path), split, path_key
        self.limit_per_subset = limit_per_subset
        self.prior_sets = (PriorSetsSource(path=prior_path, path_key=prior_path_key,
                                           limit_per_split=prior_limit_per_split) if prior_path is not None else None)
        self.skipped: dict[str, int] = {}

    def load(self) -> dict[str, list[PreferencePair]]:
        table = load_hub_dataset(self.path, self.path_key, self.split, alternative=OFFLINE_PREFERENCES)
        missing = [c for c in ("prompt", "chosen", "rejected", "subset") if c not in table.column_names]
        if missing:
            raise MalformedRowError(f"{self.path} ({self.path_key}), split {self.split!r}: missing column(s) "
                                    f"{missing}; found {table.column_names}")
        pairs, seen = [], {}
        for index, row in enumerate(table):
            subset = row["subset"]
            section = SECTION_OF_SUBSET.get(subset)
            if section not in SECTIONS:
                self.skipped[subset] = self.skipped.get(subset, 0) + 1
                continue
            seen[subset] = seen.get(subset, 0) + 1
            if self.limit_per_subset is not None and seen[subset] > self.limit_per_subset:
                continue
            raw = {"prompt": row["prompt"], "chosen": row["chosen"], "rejected": row["rejected"],
                   "section": section, "subset": subset, "id": row.get("id", index)}
            pairs.append(validate_preference_pair(raw, index, self.path))
        if self.skipped:
            warnings.warn(f"{self.path}: skipped subsets outside the four sections: {self.skipped}", stacklevel=2)
        if self.prior_sets is not None:
            pairs += self.prior_sets.load()["test"]
        return {"test": pairs}


def prior_prompt(prompt, where: str) -> str:
    """A pref-test-sets prompt as text: a string as it is; a list of turns (``{role, content}``
    messages, or bare strings in older revisions) ending with the user's, roles by position as
    RewardBench assigns them (user, assistant, user, ...). One turn is its text, as a RewardBench
    prompt; several are rendered "User: ...\n\nAssistant: ..." (:func:`render_messages`)."""
    if isinstance(prompt, str):
        return prompt
    if not isinstance(prompt, Sequence) or not prompt:
        raise MalformedRowError(f"{where}: 'prompt' must be a string or a non-empty list of turns, got {prompt!r:.80}")
    texts = []
    for turn in prompt:
        content = turn.get("content") if isinstance(turn, Mapping) else turn
        if not isinstance(content, str):
            raise MalformedRowError(f"{where}: a prompt turn has no text content: {turn!r:.80}")
        texts.append(content)
    if len(texts) % 2 == 0:
        raise MalformedRowError(f"{where}: the prompt has {len(texts)} turns; it must end with the user's (an odd number)")
    if len(texts) == 1:
        return texts[0]
    return render_messages([{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(texts)])


class PriorSetsSource:
    """RewardBench's Prior Sets: ``allenai/pref-test-sets`` (hub name or local copy), one split per
    subset, of which the leaderboard's Prior Sets score averages ``anthropic_helpful``,
    ``anthropic_hhh``, ``shp`` and ``summarize`` (:data:`PRIOR_SUBSETS`).

    Columns ``prompt`` (the previous turns), ``chosen`` and ``rejected`` (the two final assistant
    responses, strings) are selected by name; others (``subset``, ``id``) are ignored. Each split
    becomes test pairs in section "Prior Sets" with the split's name as subset; ``limit_per_split``
    keeps each split's first pairs; pairs with identical responses are dropped and counted.
    ``path=None`` loads nothing (``dataset.prior_path=null``: the Prior Sets are skipped and the
    report says so).
    """

    def __init__(self, path: str | None = "allenai/pref-test-sets", splits: Sequence[str] = PRIOR_SUBSETS,
                 path_key: str = DATASET_PRIOR_PATH_KEY, limit_per_split: int | None = None):
        self.path = None if path is None else str(path)
        self.splits, self.path_key = tuple(splits), path_key
        unknown = [s for s in self.splits if s not in PRIOR_SUBSETS]
        if unknown:
            raise ValueError(f"{path_key}: splits {unknown} are not Prior Sets splits; choose from {list(PRIOR_SUBSETS)}")
        self.limit_per_split = limit_per_split
        self.dropped: dict[str, int] = {}

    def load(self) -> dict[str, list[PreferencePair]]:
        if self.path is None:
            return {"test": []}
        tables = load_hub_dataset(self.path, self.path_key, None, alternative=f"{self.path_key}=null")
        absent = [s for s in self.splits if s not in tables]
        if absent:
            raise MalformedRowError(f"{self.path} ({self.path_key}): no split(s) {absent}; found {sorted(tables)} "
                                    f"(allenai/pref-test-sets has one split per subset)")
        pairs = []
        for split in self.splits:
            table = tables[split]
            missing = [c for c in ("prompt", "chosen", "rejected") if c not in table.column_names]
            if missing:
                raise MalformedRowError(f"{self.path} ({self.path_key}), split {split!r}: missing column(s) "
                                        f"{missing}; found {table.column_names}")
            if self.limit_per_split is not None:
                table = table.select(range(min(len(table), int(self.limit_per_split))))
            for index, row in enumerate(table.select_columns(["prompt", "chosen", "rejected"])):
                where = f"{self.path}, split {split!r}, row {index}"
                if row["chosen"] == row["rejected"]:
                    self.dropped[split] = self.dropped.get(split, 0) + 1
                    continue
                raw = {"prompt": prior_prompt(row["prompt"], where), "chosen": row["chosen"],
                       "rejected": row["rejected"], "section": PRIOR_SECTION, "subset": split,
                       "id": f"{split}-{index}"}
                pairs.append(validate_preference_pair(raw, index, f"{self.path}, split {split!r}"))
        if self.dropped:
            warnings.warn(f"{self.path}: dropped pairs with identical responses: {self.dropped}", stacklevel=2)
        return {"test": pairs}
