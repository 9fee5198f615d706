"""The package's layers (docs/ARCHITECTURE.md, "Layers"): imports point one way, with no cycle.

An AST scan of every module under ``rcollapse/``, function-level imports included (a function-level
import hides a cycle from Python, not from the design). Each subpackage (or top-level module) has a
layer; a module may import its own package's modules and those of lower layers, never a higher or
an equal one of another package.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rcollapse"

# lower imports nothing above it; packages on one layer do not import each other
LAYERS = {
    "maths": 0,  # pure: utilities U, theory, bandit, the objectives, utility design
    "config": 1,  # config errors, resolvers, the generic checks (a stage's own checks live with it)
    "runs": 2,  # the run dir: lock, atomic records, checkpoints, CSV log, signals, cost
    "data": 3,  # data sets, collators, data modules
    "models": 4,  # reward models, policies, judges, scorers, artifacts
    "analysis": 4,  # metrics, figures, reports, statistics
    "stages": 5,  # one runner + LightningModule per stage, each with its checks
    "pipeline": 6,  # builds the stage from the config and runs it in its run dir
    "report": 7,  # `python -m rcollapse.<tool>` entry points
    "diagnose": 7,
    "design": 7,
}
# what the pure maths may import (besides the standard library and each other)
MATHS_THIRD_PARTY = {"torch", "numpy", "scipy"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the file, at any depth; ``from a import b``
    gives ``a.b`` when that is a module, else ``a``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.append((candidate if candidate in MODULES else node.module, node.lineno))
    return sorted(set(found), key=found.index)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: [(m, line) for m, line in _imports(path) if m in MODULES and m != name]
         for name, path in MODULES.items()}


def _unit(module: str) -> str:
    """The package (or top-level module) a module belongs to: ``rcollapse.runs.run_lock`` -> runs."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_module_belongs_to_a_layer():
    unplaced = sorted({_unit(m) for m in MODULES if _unit(m) and _unit(m) not in LAYERS})
    assert not unplaced, f"give these a layer in LAYERS and in docs/ARCHITECTURE.md: {unplaced}"


def test_imports_point_down():
    upward = []
    for name, deps in GRAPH.items():
        here = _unit(name)
        for dep, line in deps:
            there = _unit(dep)
            if not there or there == here:
                continue
            if LAYERS[there] >= LAYERS[here]:
                upward.append(f"{MODULES[name].relative_to(PACKAGE.parent)}:{line} imports {dep} "
                              f"({here}: layer {LAYERS[here]}, {there}: layer {LAYERS[there]})")
    assert not upward, "imports that do not point down:\n" + "\n".join(upward)


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), plus self-loops."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w, _ in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in GRAPH:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle():
    assert not _cycles(), f"import cycles: {_cycles()}"


def test_the_scan_sees_a_cycle_and_an_upward_import(tmp_path):
    """The scan itself: a function-level import counts."""
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from rcollapse.stages import ppo_stage\n")
    assert ("rcollapse.stages.ppo_stage", 2) in _imports(source)
    GRAPH["rcollapse.maths.__fake_a"] = [("rcollapse.maths.__fake_b", 1)]
    GRAPH["rcollapse.maths.__fake_b"] = [("rcollapse.maths.__fake_a", 1)]
    try:
        assert ["rcollapse.maths.__fake_a", "rcollapse.maths.__fake_b"] in _cycles()
    finally:
        del GRAPH["rcollapse.maths.__fake_a"], GRAPH["rcollapse.maths.__fake_b"]


@pytest.mark.parametrize("name", sorted(m for m in MODULES if _unit(m) == "maths"))
def test_the_maths_is_pure(name):
    """The maths imports the standard library, torch, numpy and scipy, nothing else."""
    foreign = sorted({m for m, _ in _imports(MODULES[name])
                      if m.split(".")[0] not in sys.stdlib_module_names | MATHS_THIRD_PARTY
                      and not m.startswith("rcollapse.maths")})
    assert not foreign, f"{name} imports {foreign}"


def _function_lengths():
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield name, node.name, node.end_lineno - node.lineno + 1


def test_no_function_over_80_lines():
    long = [f"{name}.{func}: {lines} lines" for name, func, lines in _function_lengths() if lines > 80]
    assert not long, "split these into named steps:\n" + "\n".join(long)


def test_a_module_over_500_lines_says_why():
    """A long module says in its docstring why it is one module ("Why one module: ...")."""
    unexplained = []
    for name, path in MODULES.items():
        text = path.read_text()
        if text.count("\n") > 500 and "Why one module" not in (ast.get_docstring(ast.parse(text)) or ""):
            unexplained.append(f"{name}: {text.count(chr(10))} lines")
    assert not unexplained, unexplained
