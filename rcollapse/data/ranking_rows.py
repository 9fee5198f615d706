"""Ranking rows: a prompt, its completions best-first, and its open-endedness; validated."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

OPENNESS_OF_TYPE = {"open": 1.0, "closed": -1.0}


@dataclass(frozen=True)
class RankingRow:
    """A prompt with ``n ≥ 2`` completions, ``completions[0]`` the best; ``openness`` ∈ [−1, 1].

    ``positions`` and ``origin`` say where a row read from a raw row came from, for messages only:
    each best-first completion's index in the raw row's ``completions`` (None: the raw row listed
    them best-first) and the file and line of a row with its own ``id`` (None: the id names them)."""

    row_id: str
    prompt: str
    completions: tuple[str, ...]
    openness: float
    positions: tuple[int, ...] | None = field(default=None, compare=False)
    origin: str | None = field(default=None, compare=False)

    def raw_position(self, index: int) -> int:
        """Where best-first completion ``index`` is in the raw row (the user's file)."""
        return index if self.positions is None else self.positions[index]

    def name(self, split: str) -> str:
        """The row in a message: its id, its split and, when the id does not say it, its file and line."""
        return f"row {self.row_id} ({split}{', ' + self.origin if self.origin else ''})"


class MalformedRowError(ValueError):
    """A raw ranking row cannot be used; the message names the source, the row and the problem."""


def _best_first_positions(ranking, count: int, fail) -> tuple[int, ...] | None:
    """The raw row's index of each completion, best first, from its ``ranking`` (None: no ranking,
    the completions are best-first already); a malformed ranking raises ``fail(problem)``."""
    if ranking is None:
        return None
    if not isinstance(ranking, list | tuple) or len(ranking) != count:
        raise fail(f"'ranking' must give one rank per completion ({count}), got {ranking!r}")
    if not all(isinstance(r, numbers.Integral) and not isinstance(r, bool) for r in ranking):
        raise fail(f"'ranking' must hold integers (0 = best), got {ranking!r}")
    ranking = [int(r) for r in ranking]
    seen: dict[int, int] = {}
    for position, rank in enumerate(ranking):
        if rank in seen:
            raise fail(f"ties are not allowed: completions {seen[rank]} and {position} share "
                       f"rank {rank} (drop one of them or break the tie)")
        seen[rank] = position
    if sorted(ranking) != list(range(len(ranking))):
        raise fail(f"'ranking' must be a permutation of 0..{len(ranking) - 1}, got {ranking!r}")
    return tuple(seen[r] for r in range(len(ranking)))


def validate_ranking_row(raw: Mapping, index: int, source: str, unit: str = "row") -> RankingRow:
    """Check one raw row and return it with completions sorted best-first.

    A raw row has ``prompt`` (str), ``completions`` (list of str), optionally ``ranking`` (the
    rank of each completion, 0 = best; without it the completions are best-first already),
    ``openness`` (a number in [−1, 1]) or ``type`` ("open"/"closed"; ``openness`` wins when
    both are given), and optionally ``id``.
    Errors name ``{source}, {unit} {index}`` (e.g. a file's line number) and the row's id.
    """
    where = f"{source}, {unit} {index}"
    if not isinstance(raw, Mapping):
        raise MalformedRowError(
            f"{where}: expected a mapping with prompt/completions, got {type(raw).__name__}"
        )
    if raw.get("id") is not None:
        where += f" (id {raw['id']!r})"

    def fail(problem: str) -> MalformedRowError:
        return MalformedRowError(f"{where}: {problem}")

    prompt = raw.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise fail(f"'prompt' must be a non-empty string, got {prompt!r}")
    completions = raw.get("completions")
    if not isinstance(completions, list | tuple):
        raise fail(f"'completions' must be a list of strings, got {type(completions).__name__}")
    if len(completions) < 2:
        raise fail(f"a ranking needs at least 2 completions, got {len(completions)}")
    for k, text in enumerate(completions):
        if not isinstance(text, str):
            raise fail(f"completion {k} must be a string, got {type(text).__name__}")
        if not text.strip():
            raise fail(f"completion {k} is empty")

    positions = _best_first_positions(raw.get("ranking"), len(completions), fail)
    ordered = tuple(completions) if positions is None else tuple(completions[k] for k in positions)

    if "openness" in raw and raw["openness"] is not None:
        openness = raw["openness"]
        if (
            isinstance(openness, bool)
            or not isinstance(openness, numbers.Real)
            or not math.isfinite(openness)
        ):
            raise fail(f"'openness' must be a number in [-1, 1], got {openness!r}")
        if not -1.0 <= float(openness) <= 1.0:
            raise fail(f"'openness' must lie in [-1, 1], got {openness}")
        openness = float(openness)
    elif "type" in raw:
        if raw["type"] not in OPENNESS_OF_TYPE:
            raise fail(f"'type' must be one of {sorted(OPENNESS_OF_TYPE)}, got {raw['type']!r}")
        openness = OPENNESS_OF_TYPE[raw["type"]]
    else:
        raise fail("needs 'openness' (a number in [-1, 1]) or 'type' ('open' / 'closed')")

    has_id = raw.get("id") is not None
    row_id = str(raw["id"]) if has_id else f"{source}:{index}"
    return RankingRow(row_id=row_id, prompt=prompt, completions=ordered, openness=openness, positions=positions,
                      origin=f"{source}, {unit} {index}" if has_id else None)


def validate_rows(raws: Iterable[Mapping], source: str) -> list[RankingRow]:
    return [validate_ranking_row(raw, index, source) for index, raw in enumerate(raws)]
