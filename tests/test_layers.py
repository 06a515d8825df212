"""Imports point one way: cli → server → parts → base, and no two packages of one layer import
each other round in a circle. Read from the source with `ast`: module-level imports only (an
import inside a function is lazy on purpose, e.g. an optional part; `if TYPE_CHECKING:` imports are
for annotations and never run)."""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import labwork

ROOT = Path(labwork.__file__).parent

# Every top-level module or package of labwork, by layer (higher may import lower, never upward).
LAYERS: dict[str, int] = {
    # cli: thin Typer commands; `python -m labwork`
    "cli": 3, "__main__": 3,
    # server: the control plane's composition (app, services, access guard, daemon, its own routes)
    "server": 2,
    # parts: what the control plane is made of; they get their collaborators passed in
    "notebooks": 1, "history": 1, "gateway": 1, "dashboard": 1, "kernels": 1, "jobs": 1,
    "proxy": 1,  # the one-origin reverse proxy (/user/<name>/<project>/, /spark/<app>/)
    "lab": 1,  # labwork's Jupyter server extension (loads inside Jupyter servers)
    # base: models, storage, settings, errors and the helpers every part shares
    "": 0,  # labwork/__init__.py (the version)
    "project": 0, "store": 0, "settings": 0, "errors": 0, "auth": 0, "processes": 0, "private": 0,
    "units": 0, "envvars": 0, "access": 0, "inputs": 0, "spark_properties": 0, "http_errors": 0,
    "http_params": 0,
}
NAMES = {3: "cli", 2: "server", 1: "parts", 0: "base"}


def _package(dotted: str) -> str:
    """`labwork.gateway.sessions` -> "gateway"; `labwork.settings` -> "settings"; `labwork` -> ""."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else ""


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    names = list(rel.parts)
    if names[-1] == "__init__":
        names.pop()
    return ".".join(names)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _module_level_imports(tree: ast.Module):
    """Import statements that run when the module is imported (not in functions, not under
    `if TYPE_CHECKING:`); class bodies run at import time, so they count."""
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop(0)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []) or []:
                    if isinstance(child, ast.ExceptHandler):
                        todo.extend(child.body)
                    elif isinstance(child, ast.stmt):
                        todo.append(child)


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The labwork modules an import statement names (absolute, relative imports resolved)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name == "labwork" or a.name.startswith("labwork.")]
    base = node.module or ""
    if node.level:
        here = module.split(".") if is_package else module.split(".")[:-1]
        here = here[:len(here) - (node.level - 1)]
        base = ".".join(here + ([base] if base else []))
    if base != "labwork" and not base.startswith("labwork."):
        return []
    if base == "labwork":  # `from labwork import cli`: the names may be packages
        return [f"labwork.{a.name}" if _package(f"labwork.{a.name}") in LAYERS else "labwork"
                for a in node.names]
    return [base]


def _edges():
    """(importing file, line, from package, to package) for every module-level labwork import."""
    for path in sorted(ROOT.rglob("*.py")):
        module = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in _module_level_imports(tree):
            for target in _targets(node, module, path.name == "__init__.py"):
                yield path.relative_to(ROOT.parent), node.lineno, _package(module), _package(target)


def test_every_module_has_a_layer() -> None:
    unknown = sorted({_package(_module_name(p)) for p in ROOT.rglob("*.py")} - set(LAYERS))
    assert not unknown, f"tests/test_layers.py LAYERS: give these labwork packages a layer: {unknown}"


def test_imports_point_down_a_layer() -> None:
    problems = []
    for file, line, src, dst in _edges():
        if src in LAYERS and dst in LAYERS and LAYERS[dst] > LAYERS[src]:
            problems.append(f"{file}:{line}: {NAMES[LAYERS[src]]} module imports up into "
                            f"{NAMES[LAYERS[dst]]} (labwork.{dst}); rule: cli -> server -> parts -> base. "
                            "Pass the collaborator in, move the code down, or import it where it is used.")
    assert not problems, "\n".join(problems)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_cycles_between_packages_of_a_layer() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    where: dict[tuple[str, str], str] = {}
    for file, line, src, dst in _edges():
        if src != dst and src in LAYERS and LAYERS.get(dst) == LAYERS[src]:
            graph[src].add(dst)
            where.setdefault((src, dst), f"{file}:{line}")
    problems = []
    for component in _cycles(graph):
        members = set(component)
        edges = [f"{where[(a, b)]}: labwork.{a} imports labwork.{b}"
                 for a in component for b in sorted(graph[a] & members)]
        problems.append(f"packages {component} of layer {NAMES[LAYERS[component[0]]]} import each other "
                        "(rule: no cycle between packages of one layer):\n  " + "\n  ".join(edges))
    assert not problems, "\n".join(problems)


def test_the_checker_sees_an_upward_and_a_lazy_import(tmp_path: Path) -> None:
    """The reader itself: a module-level import counts, one in a function or under
    TYPE_CHECKING does not."""
    tree = ast.parse("from labwork.server import app\n"
                     "from typing import TYPE_CHECKING\n"
                     "if TYPE_CHECKING:\n    from labwork.cli import main\n"
                     "try:\n    from labwork.gateway import x\nexcept ImportError:\n    pass\n"
                     "def f():\n    from labwork.cli import serve\n")
    found = [(n.lineno, t) for n in _module_level_imports(tree)
             for t in _targets(n, "labwork.history.service", False)]
    assert found == [(1, "labwork.server"), (6, "labwork.gateway")]
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
