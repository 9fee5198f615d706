"""Every command the README and docs/*.md show composes as written, and every `make` target they
name exists.

A command is a ``python run.py ...`` (or ``python -m rcollapse.diagnose`` / ``rcollapse.design``,
Hydra apps with their own root config) in a fenced code block or an inline code span. Its
overrides are composed in-process as ``tests/conftest.py`` does, with Hydra's own parser:
placeholders (``<date>``, ``<run dir>``) become a dummy string, which is all a path needs to
compose; a multirun (``-m``) composes the first value of each comma list; a model group the docs
write out (a yaml block starting ``# conf/model/NAME.yaml``) is put on Hydra's search path, as the
docs say a group kept outside the repository is. A failure names the doc, the line, the command
and the first override that does not compose.
"""

from __future__ import annotations

import re
import shlex

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser

from tests.conftest import CONF, REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
ROOTS = {"run.py": "config", "rcollapse.diagnose": "diagnose", "rcollapse.design": "design"}
COMMAND = re.compile(r"(?:^|[\s`(])(?:[\w./$()-]*/)?python3?\s+(run\.py|-m\s+rcollapse\.(?:diagnose|design))(?=\s|$)(.*)")
PLACEHOLDER = "placeholder"
# flags of a Hydra app: those that take a value, and those that do not
FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--info", "--config-path", "-cp", "--config-name", "-cn",
                    "--config-dir", "-cd", "--experimental-rerun"}
FLAGS = {"-m", "--multirun", "--resolve", "--run", "-r", "--shell-completion", "-sc", "--help", "-h", "--hydra-help"}


def _fenced_lines(text: str) -> list[tuple[int, str]]:
    """(line, command line) in fenced code blocks, a line ending in a backslash joined to the next."""
    found, inside, pending = [], False, None
    for number, line in enumerate(text.splitlines(), 1):
        if re.match(r"^\s*(```|~~~)", line):
            inside, pending = not inside, None
            continue
        if not inside:
            continue
        if pending is not None:
            start, head = pending
            line, number = head + " " + line.strip(), start
        if line.rstrip().endswith("\\"):
            pending = (number, line.rstrip()[:-1])
            continue
        pending = None
        found.append((number, line))
    return found


def _inline_spans(text: str) -> list[tuple[int, str]]:
    """(line, text) of inline code spans outside fenced blocks (a span may wrap a line)."""
    lines, inside = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if re.match(r"^\s*(```|~~~)", line):
            inside = not inside
        elif not inside:
            lines.append((number, line))
    joined = "\n".join(line for _, line in lines)
    return [(lines[joined.count("\n", 0, m.start())][0], m.group(1).replace("\n", " "))
            for m in re.finditer(r"`([^`]+)`", joined)]


def doc_commands() -> list[tuple[str, int, str, str]]:
    """(doc, line, root config, the command's arguments) of every Hydra command in the docs."""
    commands = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for number, line in [*_fenced_lines(text), *_inline_spans(text)]:
            match = COMMAND.search(line)
            if match:
                program = match.group(1).split()[-1]
                commands.append((str(doc.relative_to(REPO)), number, ROOTS[program], match.group(2)))
    return sorted(set(commands))


def doc_model_groups() -> dict[str, str]:
    """The model groups the docs write out: yaml blocks that start with `# conf/model/NAME.yaml`."""
    groups = {}
    for doc in DOCS:
        for block in re.findall(r"```yaml\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.S):
            match = re.fullmatch(r"# conf/model/(\w+)\.yaml", block.splitlines()[0].strip())
            if match:
                groups[match.group(1)] = block
    return groups


def overrides_of(arguments: str) -> tuple[list[str], bool]:
    """The Hydra overrides of a command line as a shell splits it (placeholders made a dummy
    string, an ellipsis and the comment dropped), and whether it is a multirun."""
    words = shlex.split(re.sub(r"<[^<>`]*>", PLACEHOLDER, arguments), comments=True)
    overrides, multirun, skip = [], False, False
    for word in words:
        if skip:
            skip = False
        elif word in ("...", "…"):  # "any overrides", as in `time python run.py ...`
            continue
        elif word in FLAGS_WITH_VALUE:
            skip = True
        elif word in FLAGS:
            multirun |= word in ("-m", "--multirun")
        elif word.startswith("-"):
            raise AssertionError(f"an unknown flag {word!r}")
        else:
            overrides.append(word)
    return overrides, multirun


def first_of_each_sweep(overrides: list[str]) -> list[str]:
    """A multirun's overrides with each comma list (or range) replaced by its first value."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    return [f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}" if o.is_sweep_override() else text
            for o, text in zip(parsed, overrides, strict=True)]


def _compose(root: str, overrides: list[str]):
    from rcollapse.config.resolvers import register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(root, overrides=overrides, return_hydra_config=True)


def _first_failing(root: str, overrides: list[str], fixed: list[str]) -> tuple[str, Exception]:
    """The first override whose addition stops the command composing, and the error."""
    for i in range(1, len(overrides) + 1):
        try:
            _compose(root, [*fixed, *overrides[:i]])
        except Exception as err:  # noqa: BLE001 - any failure to compose is the finding
            return overrides[i - 1], err
    raise AssertionError("every prefix composes but the whole command did not")


COMMANDS = doc_commands()


def test_the_docs_show_commands_of_every_tool():
    assert len(COMMANDS) > 40
    assert {root for *_, root, _ in COMMANDS} == set(ROOTS.values())
    assert any(doc == "README.md" for doc, *_ in COMMANDS)


def test_a_multirun_composes_the_first_value_of_each_list():
    assert first_of_each_sweep(["utility=x,log", "+sweep=ppo_study", "seed=0,1", "q=[0,1]"]) == \
        ["utility=x", "+sweep=ppo_study", "seed=0", "q=[0,1]"]
    overrides, multirun = overrides_of("-m stage=ensemble ensemble_heads=paper # a comment, x=1")
    assert multirun and overrides == ["stage=ensemble", "ensemble_heads=paper"]
    assert overrides_of("resume=<run dir> --cfg job")[0] == [f"resume={PLACEHOLDER}"]


def test_a_command_that_does_not_compose_is_told_by_its_override():
    bad, err = _first_failing("config", ["stage=theory", "utility=power", "theory.n=5"], [])
    assert bad == "theory.n=5" and "theory" in str(err)


@pytest.mark.parametrize(("doc", "line", "root", "arguments"), COMMANDS,
                         ids=[f"{doc}:{line}" for doc, line, *_ in COMMANDS])
def test_a_doc_command_composes_as_written(doc, line, root, arguments, tmp_path):
    overrides, multirun = overrides_of(arguments)
    if multirun:
        overrides = first_of_each_sweep(overrides)
    fixed = []
    groups = doc_model_groups()
    chosen = {o.split("=", 1)[1] for o in overrides if o.startswith("model=")}
    if chosen & set(groups) - {p.stem for p in (CONF / "model").glob("*.yaml")}:
        (tmp_path / "model").mkdir()
        for name, block in groups.items():
            (tmp_path / "model" / f"{name}.yaml").write_text(block)
        fixed = [f"hydra.searchpath=[file://{tmp_path}]"]
    try:
        _compose(root, [*fixed, *overrides])
        return
    except Exception:  # noqa: BLE001 - find the override to name, below
        pass
    bad, err = _first_failing(root, overrides, fixed)
    command = arguments.split(" #")[0].strip()
    pytest.fail(f"{doc}:{line}: `{command}` does not compose (root config conf/{root}.yaml): "
                f"the override `{bad}`: {type(err).__name__}: {err}", pytrace=False)


def make_targets_in_docs() -> list[tuple[str, int, str]]:
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for number, line in [*_fenced_lines(text), *_inline_spans(text)]:
            for target in re.findall(r"(?:^|[\s`(])make\s+([a-z][\w-]*)", line):
                found.append((str(doc.relative_to(REPO)), number, target))
    return found


def test_every_make_target_the_docs_name_is_in_the_makefile():
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, flags=re.M))
    named = make_targets_in_docs()
    assert {"demo", "test", "test-full", "bench", "study"} <= {t for *_, t in named}
    missing = [f"{doc}:{line}: make {target}" for doc, line, target in named if target not in targets]
    assert not missing, "make targets the Makefile does not have:\n" + "\n".join(missing)


# ---- the keys the docs name in prose exist ----------------------------------------------------------

KEY_SPAN = re.compile(r"^([a-z_][a-z_0-9]*(?:\.[A-Za-z_][A-Za-z_0-9]*)+)(?:=.*)?$")


def _key_paths(node, prefix: str = ""):
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            yield path
            yield from _key_paths(value, path)


@pytest.fixture(scope="module")
def settable_keys() -> set[str]:
    """Every key (node or leaf) that some config file of conf/ writes, at the place it lands: a
    group's file under the group's name, a `# @package _global_` one (and the root configs) at the
    top. Read from the files, not composed: only whether a key exists for some choice matters."""
    import yaml

    keys = set()
    for path in sorted(CONF.rglob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        group = path.parent.relative_to(CONF).as_posix()
        prefix = "" if group == "." or re.search(r"^# @package _global_", text, flags=re.M) else group.replace("/", ".")
        content = {k: v for k, v in (yaml.safe_load(text) or {}).items() if k != "defaults"}
        keys |= set(_key_paths({prefix: content} if prefix else content))
    return keys


RENAMED_KEYS_HEADING = "## Keys renamed in the new layout"


def _old_key_cells(text: str) -> set[tuple[int, str]]:
    """(line, span) of the spans in the first column of the table under
    :data:`RENAMED_KEYS_HEADING` (docs/configuration.md): the keys as they were before."""
    found, inside = set(), False
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("## "):
            inside = line.strip() == RENAMED_KEYS_HEADING
        elif inside and line.startswith("|"):
            first_cell = line.split("|")[1]
            found |= {(number, span) for span in re.findall(r"`([^`]+)`", first_cell)}
    return found


def test_every_key_the_docs_name_exists(settable_keys):
    """A key quoted alone in prose (`stage.ensemble.bootstrap`, `dataset.path=…`) is one a user can
    type: it is in the config for some choice of the groups. (`+key=…` adds a key: not checked.)"""
    roots = {key.split(".")[0] for key in settable_keys} - {"hydra"}  # Hydra's own keys: the commands' test
    unknown = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        old_names = _old_key_cells(text)
        for number, span in _inline_spans(text):
            if (number, span) in old_names:
                continue  # the "before" column of the renamed keys' table names the old keys on purpose
            match = KEY_SPAN.match(span.strip())
            if not match or re.search(r"\.(json|yaml|csv|png|md|py|ckpt|parquet|txt)$", match.group(1)):
                continue  # a file, not a key
            if any(part.isupper() for part in match.group(1).split(".")):
                continue  # a placeholder: hydra.launcher.KEY
            if match.group(1).split(".")[0] in roots and match.group(1) not in settable_keys:
                unknown.append(f"{doc.relative_to(REPO)}:{number}: `{span.strip()}`")
    assert not unknown, "keys the docs name that no config has:\n" + "\n".join(unknown)
