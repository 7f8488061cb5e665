"""The import rules of ../shared/ARCHITECTURE.md, read from the source: every import (module level, inside
functions and under TYPE_CHECKING alike) points down the layers, the mirror shares no client code, and the
modules form no import cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import seamless_interaction

PKG = Path(seamless_interaction.__file__).parent
# Bottom to top; a module may import its own layer or any layer below.
RANK = {"base": 0, "catalog": 1, "local": 2, "remote": 3, "routes": 4, "access": 5, "operations": 5,
        "facade": 6, "front": 7}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "seamless_interaction" or len(parts) == 1:
        return None  # the package root only re-exports, lazily
    head = parts[1]
    if head in ("base", "constants"):
        return "base"
    if head in ("catalog", "local", "remote", "routes", "access", "operations", "mirror"):
        return head
    if head == "loader":
        return "access"  # the public loader path
    if head in ("fs", "utils", "export"):  # the facade and the official (or public) module paths
        return "facade"
    if head in ("cli", "app", "demo", "__main__", "ray"):
        return "front"
    raise AssertionError(f"{module}: no layer known; add it to ARCHITECTURE.md and this test")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(module: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)  # "from pkg import module"
    return {m for m in found if m.startswith("seamless_interaction.")}


MODULES = _modules()
GRAPH = {m: {i for i in _imports(m, p) if i in MODULES and i != m} for m, p in MODULES.items()}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) is not None))
def test_imports_point_down_the_layers(module):
    layer = _layer(module)
    bad = []
    for imported in sorted(GRAPH[module]):
        other = _layer(imported)
        if other is None or other == layer:
            continue
        if layer == "mirror":
            # Rule 7: the mirror stands in for the endpoints; it shares no client code (layouts, naming).
            if other != "base":
                bad.append(imported)
        elif other == "mirror":
            if layer not in ("front",):
                bad.append(imported)
        elif layer == "catalog" and other != "base":
            bad.append(imported)  # rule 2
        elif RANK[other] > RANK[layer]:
            bad.append(imported)
    assert bad == [], f"{module} ({layer}) imports upward or across: {bad}"


def test_no_import_cycles():
    # Collapse each package's __init__ re-exports: an edge to a package is an edge to the package module.
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(GRAPH[m]):
            if n.startswith(m + ".") or m.startswith(n + "."):
                continue  # a package and its own submodules
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n, stack)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m, [])
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
