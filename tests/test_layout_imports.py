"""The import graph between the top-level packages: no circle, no test-data builders.

Read from the source (every `import` statement, also those inside functions), so a lazy
import cannot hide a circle. Tests and benchmarks sit on top and are left out.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_PRODUCTION = {"tests", "benchmarks", "testkit"}


def _packages() -> set[str]:
    return {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_graph() -> dict[str, set[str]]:
    files = {_module_name(f): f for pkg in _packages() for f in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        graph[name] = {m for m in _imports(path) if m in files and m != name}
    return graph


def _package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {p: set() for p in _packages()}
    for module, targets in _module_graph().items():
        top = module.split(".")[0]
        graph[top] |= {t.split(".")[0] for t in targets} - {top}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of `graph` as a path, or None (iterative DFS with colours)."""
    state: dict[str, int] = {}
    for start in sorted(graph):
        if state.get(start):
            continue
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                path = [n for n, _ in stack]
                return [*path[path.index(child) :], child]
            elif not state.get(child):
                state[child] = 1
                stack.append((child, iter(sorted(graph.get(child, ())))))
    return None


def test_no_circle_between_packages() -> None:
    graph = _package_graph()
    assert {"contract", "streams", "indexers", "ingest"} <= graph.keys()
    assert _cycle(graph) is None, f"import circle between packages: {_cycle(graph)}"


def test_no_circle_between_modules() -> None:
    graph = _module_graph()
    assert "indexers.search_backend" in graph
    assert _cycle(graph) is None, f"import circle between modules: {_cycle(graph)}"


def test_search_interface_imports_no_backend() -> None:
    assert not {m for m in _module_graph()["indexers.search_backend"] if "backend" in m}


def test_contract_is_the_ground_floor() -> None:
    assert _package_graph()["contract"] <= {"streamwatch"}


def test_no_production_package_imports_the_testkit() -> None:
    offenders = {
        pkg: deps & NOT_PRODUCTION
        for pkg, deps in _package_graph().items()
        if pkg not in NOT_PRODUCTION and deps & NOT_PRODUCTION
    }
    assert offenders == {}


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_readme_package_table_matches_the_tree() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("| package | box |") : text.index("## Commands")]
    named = re.findall(r"`([a-z_/]+(?:\.py|/))`", table)
    assert [p for p in named if not (ROOT / p).exists()] == []
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert {p for p in packages if f"`{p}/`" not in table} == set()
