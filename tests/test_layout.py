"""The layout's import rules (DESIGN.md section 2), read from the source with ast: every import
counts, including those inside functions, except for the circle check, which follows module-level
imports (those that run when a module is loaded)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ghgnet", "drivers", "simulators", "station_agent", "central")

# Which of the project's packages each package may import (its own included). station_agent/ may
# import any of them (`station-agent demo` runs simulators.network).
ALLOWED = {
    "ghgnet": {"ghgnet"},
    "drivers": {"ghgnet", "drivers"},
    "simulators": {"ghgnet", "drivers", "simulators"},
    "central": {"ghgnet", "central"},
}

# (importing module, imported module) pairs that break a rule above and cannot move yet, each with
# the reason. Empty: a new breach fails the test instead of joining a list.
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The project modules (or packages) an import statement names, relative imports resolved."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".")
            if MODULES[module].name != "__init__.py":
                package = package[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join(package + ([node.module] if node.module else []))
        # `from pkg import name`: the submodule pkg.name when there is one, else pkg itself
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
    return [n for n in names if n.split(".")[0] in PACKAGES]


def _imports(module: str, *, module_level_only: bool) -> set[str]:
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    found: set[str] = set()

    def visit(nodes: list[ast.AST]) -> None:
        for node in nodes:
            if module_level_only and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                                                       ast.Lambda)):
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.update(_imported(module, node))
            visit(list(ast.iter_child_nodes(node)))

    visit(tree.body)
    return found


def _target(name: str) -> str:
    """The module an imported name resolves to (a package's __init__ when not a module itself)."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def test_every_package_imports_only_what_the_layout_allows():
    breaches = sorted(
        (module, imported)
        for module in MODULES
        for imported in _imports(module, module_level_only=False)
        if module.split(".")[0] in ALLOWED and imported.split(".")[0] not in ALLOWED[module.split(".")[0]]
    )
    new = [b for b in breaches if b not in KNOWN_EXCEPTIONS]
    assert not new, "imports against the layout (DESIGN.md section 2):\n" + "\n".join(f"{m} -> {i}" for m, i in new)
    gone = KNOWN_EXCEPTIONS - set(breaches)
    assert not gone, f"no longer needed, remove from KNOWN_EXCEPTIONS: {sorted(gone)}"


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, or a module importing itself
    (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1 or node in graph[node]:
                        circles.append(sorted(component))
    return circles


def test_no_import_circle_between_modules():
    graph = {m: {_target(i) for i in _imports(m, module_level_only=True)} - {m} for m in MODULES}
    circles = _circles(graph)
    assert not circles, "modules that import each other (directly or around a circle):\n" + "\n".join(
        " <-> ".join(c) for c in circles)


def test_the_checks_see_the_project():
    """The rules above are only as good as the graph: it holds the packages and known edges."""
    assert {m.split(".")[0] for m in MODULES} == set(PACKAGES)
    assert "ghgnet.timeutil" in _imports("ghgnet.wire.models", module_level_only=True)
    assert "central.config" in _imports("central.aggregation.worker", module_level_only=True)  # `from ..config`
    assert "central.store" in _imports("central.aggregation.worker", module_level_only=True)
    # an import inside a function counts for the layout rules, not for circles
    inner = _imports("station_agent.cli", module_level_only=False) - _imports("station_agent.cli",
                                                                               module_level_only=True)
    assert "simulators.network" in inner
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
