"""The README and docs/*.md hold together: every relative link reaches a file of the repository
(and, with ``#anchor``, a heading of it), each page starts with a contents list of its sections,
and the files and Python names they quote in backticks exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^\s*(```|~~~)")


def prose(text: str) -> list[tuple[int, str]]:
    """(line number, line) of the lines outside fenced code blocks."""
    lines, inside = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            inside = not inside
            continue
        if not inside:
            lines.append((number, line))
    return lines


def slug(title: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped (``-`` and ``_`` kept),
    each space a hyphen."""
    title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)  # a link's text
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def headings(text: str) -> list[tuple[int, str]]:
    """(level, anchor) of every heading, in order; a repeated anchor gets -1, -2, ... as on GitHub."""
    found, seen = [], {}
    for _, line in prose(text):
        match = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if match:
            anchor = slug(match.group(2))
            count = seen.get(anchor, 0)
            seen[anchor] = count + 1
            found.append((len(match.group(1)), anchor if count == 0 else f"{anchor}-{count}"))
    return found


def links(text: str) -> list[tuple[int, str]]:
    """(line, target) of every markdown link outside code."""
    return [(number, target) for number, line in prose(text)
            for target in re.findall(r"\]\(([^)\s]+)\)", re.sub(r"`[^`]*`", "", line))]


def test_the_slug_is_githubs():
    assert slug("Fig. 7: PPO at matched KL — `ppo_study`") == "fig-7-ppo-at-matched-kl--ppo_study"
    assert slug("W&B") == "wb" and slug("The ensemble's data") == "the-ensembles-data"
    assert slug("Figs. 3–4: the LongForm length task") == "figs-34-the-longform-length-task"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_reaches_a_file_and_a_heading_in_the_repository(doc):
    text = doc.read_text(encoding="utf-8")
    assert "../shared" not in text and "/work/" not in text
    broken = []
    for number, target in links(text):
        if re.match(r"^[a-z]+://|^mailto:", target):
            continue
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        where = f"{doc.relative_to(REPO)}:{number}: ({target})"
        if not path.is_relative_to(REPO):
            broken.append(f"{where} leaves the repository")
        elif not path.exists():
            broken.append(f"{where} names a missing file")
        elif anchor and anchor not in {a for _, a in headings(path.read_text(encoding="utf-8"))}:
            broken.append(f"{where}: {path.relative_to(REPO)} has no heading with the anchor #{anchor}")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_each_page_starts_with_a_contents_list_of_its_sections(doc):
    text = doc.read_text(encoding="utf-8")
    lines = text.splitlines()
    first_section = next(i for i, line in enumerate(lines) if line.startswith("## "))
    listed = {target[1:] for _, target in links("\n".join(lines[:first_section])) if target.startswith("#")}
    sections = [anchor for level, anchor in headings(text) if level == 2]
    missing = [s for s in sections if s not in listed]
    assert not missing, f"{doc.name}: sections missing from the contents list at its top: {missing}"


def code_spans(text: str) -> list[tuple[int, str]]:
    """(line, text) of every inline code span outside fenced blocks (a span may wrap a line)."""
    numbered = prose(text)
    joined = "\n".join(line for _, line in numbered)
    spans = []
    for match in re.finditer(r"`([^`]+)`", joined):
        spans.append((numbered[joined.count("\n", 0, match.start())][0], match.group(1).replace("\n", " ")))
    return spans


REPO_PATH = re.compile(r"^(?:rcollapse|tests|benchmarks|conf|sweeps|scripts|docs|\.ci)/[\w./*-]*$")


def _defines(module: Path, name: str) -> bool:
    return re.search(rf"^\s*(?:async\s+def|def|class)\s+{name}\b|^{name}\s*[:=]", module.read_text(),
                     flags=re.M) is not None


def python_name_problem(dotted: str) -> str | None:
    """Why ``rcollapse.a.b.name`` does not name a module of the package (and, after it, a name
    the module defines), or None."""
    path, parts = REPO, dotted.split(".")
    for i, part in enumerate(parts):
        if (path / part).is_dir():
            path = path / part
            continue
        if (path / f"{part}.py").is_file():
            rest = parts[i + 1:]
            if rest and not _defines(path / f"{part}.py", rest[0]):
                return f"{(path / part).relative_to(REPO)}.py defines no {rest[0]}"
            return None
        if i >= 2 and (path / "__init__.py").is_file() and _defines(path / "__init__.py", part):
            return None
        return f"no module {'.'.join(parts[:i + 1])}"
    return None


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_the_files_and_python_names_quoted_in_the_docs_exist(doc):
    problems = []
    for number, span in code_spans(doc.read_text(encoding="utf-8")):
        where = f"{doc.relative_to(REPO)}:{number}: `{span}`"
        if REPO_PATH.match(span) and not re.search(r"[<>{}]|NAME", span):
            if not (list(REPO.glob(span.rstrip("/"))) if "*" in span else (REPO / span).exists()):
                problems.append(f"{where}: no such file")
        for dotted in re.findall(r"(?<![\w./])rcollapse(?:\.\w+)+", span):
            problem = python_name_problem(dotted)
            if problem:
                problems.append(f"{where}: {problem}")
    assert not problems, "\n".join(problems)
