"""Preference pairs: a prompt, a chosen and a rejected response, and the evaluation section."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rcollapse.data.ranking_rows import MalformedRowError


@dataclass(frozen=True)
class PreferencePair:
    """``chosen`` is preferred to ``rejected`` for ``prompt``; ``section`` groups evaluation
    pairs (e.g. RewardBench's Chat), ``subset`` is the finer source label where there is one;
    ``gold_chosen``/``gold_rejected`` are the responses' gold rewards where the source knows
    them (the offline generator's VADER compound; None for hub data)."""

    pair_id: str
    prompt: str
    chosen: str
    rejected: str
    section: str = "all"
    subset: str = "all"
    gold_chosen: float | None = None
    gold_rejected: float | None = None


def validate_preference_pair(raw: Mapping, index: int, source: str) -> PreferencePair:
    """Check one raw pair (``prompt``, ``chosen``, ``rejected`` strings; optional ``section``,
    ``subset``, ``id``). Errors name the source, the row and the problem. Identical chosen and
    rejected responses carry no preference and are an error here (hub loaders drop and count
    them before validating)."""
    where = f"{source}, row {index}"
    if not isinstance(raw, Mapping):
        raise MalformedRowError(f"{where}: expected a mapping with prompt/chosen/rejected, got {type(raw).__name__}")
    if raw.get("id") is not None:
        where += f" (id {raw['id']!r})"
    values = {}
    for key in ("prompt", "chosen", "rejected"):
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip():
            raise MalformedRowError(f"{where}: '{key}' must be a non-empty string, got {value!r:.80}")
        values[key] = value
    if values["chosen"] == values["rejected"]:
        raise MalformedRowError(f"{where}: chosen and rejected are the same text (no preference)")
    return PreferencePair(
        pair_id=str(raw.get("id", f"{source}-{index}")),
        prompt=values["prompt"],
        chosen=values["chosen"],
        rejected=values["rejected"],
        section=str(raw.get("section") or "all"),
        subset=str(raw.get("subset") or raw.get("section") or "all"),
    )


def render_messages(messages: Sequence[Mapping]) -> str:
    """A chat (list of {role, content}) as plain text, one "Role: content" block per turn."""
    return "\n\n".join(f"{str(m['role']).capitalize()}: {m['content']}" for m in messages)


def split_chat_pair(chosen: Sequence[Mapping], rejected: Sequence[Mapping], where: str) -> tuple[str, str, str]:
    """(prompt, chosen response, rejected response) from two chats that share the prompt turns
    and differ in the last assistant turn (``weqweasdas/preference_dataset_mix2``'s layout)."""
    for name, chat in (("chosen", chosen), ("rejected", rejected)):
        if not isinstance(chat, Sequence) or isinstance(chat, str) or len(chat) < 2:
            raise MalformedRowError(f"{where}: '{name}' must be a list of at least 2 messages, got {chat!r:.80}")
        for m in chat:
            if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
                raise MalformedRowError(f"{where}: '{name}' has a message without role/content: {m!r:.80}")
        if chat[-1]["role"] != "assistant":
            raise MalformedRowError(f"{where}: the last turn of '{name}' is {chat[-1]['role']!r}, not 'assistant'")
    prompt_c, prompt_r = list(chosen[:-1]), list(rejected[:-1])
    if [(m["role"], m["content"]) for m in prompt_c] != [(m["role"], m["content"]) for m in prompt_r]:
        raise MalformedRowError(f"{where}: chosen and rejected do not share their prompt turns")
    return render_messages(prompt_c), str(chosen[-1]["content"]), str(rejected[-1]["content"])
