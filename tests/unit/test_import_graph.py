"""The layout, read from the source: one namespace, dependencies one way, no cycle, roots at the top.

`events` ← `workers` ← `reports`: the producer side knows nothing of the consumer, the
consumer nothing of the read side. The `readrate` CLI (reports/cli) is a composition
root: it wires the layers together and nothing below imports it. Modules are read
with `ast`, not imported, so a cycle that Python would tolerate at run time still fails.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = {"events": 0, "workers": 1, "reports": 2}
OLD_NAMES = set(LAYERS)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["readrate", *parts])


MODULES = {_module_name(p): p for layer in LAYERS for p in sorted((ROOT / layer).rglob("*.py"))
           if "versions" not in p.parts}


def _imports(name: str, path: Path) -> set[str]:
    """The project modules `name` imports (anywhere in the file, function bodies included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in MODULES and t != name)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> int:
    return LAYERS[module.split(".")[1]]


def test_every_folder_is_read_under_the_readrate_namespace():
    assert {m.split(".")[1] for m in MODULES} == set(LAYERS)
    assert len(MODULES) > 40  # the walk found the code, not an empty tree


@pytest.mark.parametrize("folder", ["events", "workers", "reports", "tests", "bench"])
def test_nothing_imports_the_old_top_level_names(folder):
    offenders = []
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and not node.level and node.module
                     else [])
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in OLD_NAMES]
    assert offenders == []


def test_dependencies_point_one_way_events_then_workers_then_reports():
    upward = [f"{a} imports {b}" for a, deps in GRAPH.items() for b in deps if _layer(b) > _layer(a)]
    assert upward == []


def test_only_the_cli_itself_imports_the_cli():
    cli = "readrate.reports.cli"
    importers = [a for a, deps in GRAPH.items() for b in deps
                 if (b == cli or b.startswith(cli + ".")) and not (a == cli or a.startswith(cli + "."))
                 and a != "readrate.reports.__main__"]
    assert importers == []


def test_the_import_graph_has_no_cycle():
    # Tarjan's strongly connected components: any component of two or more modules is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(GRAPH[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    assert cycles == []


def test_a_known_cycle_would_be_found():
    # The walk above must see relative imports: reports/cli/main.py imports its command modules.
    assert "readrate.reports.cli.report" in GRAPH["readrate.reports.cli.main"]
    assert "readrate.reports.cli.app" in GRAPH["readrate.reports.cli.report"]
