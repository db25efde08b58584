"""The import graph of our three packages in numbers: cycles, imports against the layers, the largest modules.

    .venv/bin/python -m bench.import_graph

The layers (docs/architecture.md), top to bottom: the composition root (service.app, service.wsgi,
service.gunicorn_conf); the edges (service.http, service.audit, service.cli); the core
(service.core); policies and models, which know nothing of each other. service.client stands
apart and imports nothing of ours. An import is *against the direction* when it points to a
higher layer, or from policies to models or back, or between two edges, or out of the client.
Modules of the flat layout before issue 13 are placed where their job belongs (`OLD_LAYOUT`),
so the same rule measures both layouts. grimp (installed with import-linter) reads the imports,
those inside functions and under TYPE_CHECKING included.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import grimp

PACKAGES = ("policies", "models", "service")
ROOT = Path(__file__).resolve().parent.parent
RANKS = {"root": 4, "http": 3, "audit": 3, "cli": 3, "core": 2, "policies": 1, "models": 1, "client": 0}
NEW_LAYOUT = {
    "service.app": "root",
    "service.wsgi": "root",
    "service.gunicorn_conf": "root",
    "service.http": "http",
    "service.audit": "audit",
    "service.cli": "cli",
    "service.core": "core",
    "service.client": "client",
    "policies": "policies",
    "models": "models",
}
# The flat service/ of before: each module under the group its job belongs to.
OLD_LAYOUT = {
    "service.authorizer": "core",
    "service.account_listing": "core",
    "service.policy_keeper": "core",
    "service.audit_explain": "audit",
    "service.audit_words": "audit",
    "service.routes.audit": "audit",
    **{f"service.{name}": "http" for name in (
        "declare", "schemas", "quick_bodies", "openapi", "errors", "auth", "logs", "metrics", "routes",
    )},
}


def group_of(module: str) -> str | None:
    for table in (OLD_LAYOUT, NEW_LAYOUT):
        for prefix in sorted(table, key=len, reverse=True):
            if module == prefix or module.startswith(prefix + "."):
                return table[prefix]
    return None  # a package's __init__ (service): no group


def against_direction(importer: str, imported: str) -> bool:
    a, b = group_of(importer), group_of(imported)
    if a is None or b is None or a == b:
        return False
    if a == "client" or b == "client":
        return True  # the client imports nothing of ours, and nothing of ours needs it
    return RANKS[b] > RANKS[a] or RANKS[b] == RANKS[a]  # upwards, or sideways between siblings


def cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10_000)

    def visit(module: str) -> None:
        index[module] = low[module] = counter[0]
        counter[0] += 1
        stack.append(module)
        on_stack.add(module)
        for target in graph.find_modules_directly_imported_by(module) & modules:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return found


def lines_of(module: str) -> int:
    path = ROOT / Path(*module.split("."))
    file = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    return len(file.read_text().splitlines()) if file.exists() else 0


def main() -> None:
    sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph(*PACKAGES)
    modules = set(graph.modules)
    edges = [(a, b) for a in sorted(modules) for b in sorted(graph.find_modules_directly_imported_by(a) & modules)]
    found = cycles(graph, modules)
    groups: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        if group_of(a) and group_of(b) and group_of(a) != group_of(b):
            groups[group_of(a)].add(group_of(b))
    group_cycles = [(a, b) for a in groups for b in groups[a] if a < b and a in groups.get(b, set())]
    against = [(a, b) for a, b in edges if against_direction(a, b)]
    sizes = sorted(((lines_of(m), m) for m in modules), reverse=True)
    print(f"modules: {len(modules)}, imports between them: {len(edges)}")
    print(f"cycles between modules: {len(found)} ({sum(len(c) for c in found)} modules in them)")
    for component in found:
        print(f"  - {' <-> '.join(component)}")
    print(f"cycles between groups: {len(group_cycles)} {sorted(group_cycles)}")
    print(f"imports against the direction: {len(against)}")
    for a, b in against:
        print(f"  - {a} -> {b}   ({group_of(a)} -> {group_of(b)})")
    print(f"largest modules: {', '.join(f'{m} {n}' for n, m in sizes[:5])}")
    print(f"modules over 300 lines: {sum(1 for n, _ in sizes if n > 300)}")


if __name__ == "__main__":
    main()
