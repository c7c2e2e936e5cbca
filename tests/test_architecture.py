"""The dependency direction, checked on the code's own imports (every import, function-level ones too).

``cli`` -> ``embedded`` / ``stream`` -> ``scoring`` -> ``models``; stages, sources and sinks below them, on
``records``/``errors``/``config`` only. No import cycles anywhere in ``pipeline`` and ``models``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PACKAGES = ("pipeline", "models")
FOUNDATION = {"pipeline.records", "pipeline.errors", "pipeline.config"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Project modules ``name`` imports anywhere in its body (``from a import b`` counts ``a.b`` when a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in MODULES else base)
    return {t for t in targets if t in MODULES and t != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _within(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_graph_sees_the_real_imports() -> None:
    # A check that parses nothing proves nothing: these edges exist today.
    assert "pipeline.stages.chain" in GRAPH["pipeline.embedded"]
    assert "pipeline.stages.chain" in GRAPH["pipeline.stream.partition"]
    assert "pipeline.stream.worker" in GRAPH["pipeline.cli.stream"]  # a function-level import


def test_no_import_cycles() -> None:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(GRAPH[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for name in sorted(GRAPH):
        if name not in index:
            visit(name)
    assert cycles == []


# (importer prefix, what it may import besides itself); checked for every module under the prefix.
ALLOWED = [
    ("models", ("models",)),
    ("pipeline.records", ()),
    ("pipeline.errors", ()),
    ("pipeline.config", ("pipeline.errors",)),
    ("pipeline.stages", ("pipeline.stages", *FOUNDATION)),
    ("pipeline.sources", ("pipeline.sources", *FOUNDATION)),
    ("pipeline.sinks", ("pipeline.sinks", *FOUNDATION)),
    ("pipeline.scoring", ("models", *FOUNDATION)),
    ("pipeline.embedded", ("models", "pipeline.stages", "pipeline.sources", "pipeline.scoring", *FOUNDATION)),
    ("pipeline.training", ("models", "pipeline.embedded", "pipeline.stages", "pipeline.sources", *FOUNDATION)),
    ("pipeline.stream", ("models", "pipeline.stream", "pipeline.stages", "pipeline.sources", "pipeline.sinks",
                         "pipeline.scoring", *FOUNDATION)),
    ("pipeline.cli", ("models", "pipeline")),
]


@pytest.mark.parametrize(("prefix", "allowed"), ALLOWED, ids=[prefix for prefix, _ in ALLOWED])
def test_dependency_direction(prefix: str, allowed: tuple[str, ...]) -> None:
    importers = [name for name in GRAPH if _within(name, prefix)]
    assert importers, f"no module under {prefix}"
    wrong = {f"{name} -> {target}" for name in importers for target in GRAPH[name]
             if not _within(target, prefix, *allowed)}
    assert wrong == set()


def test_every_module_is_covered_by_a_rule() -> None:
    uncovered = [name for name in GRAPH if name != "pipeline" and not any(_within(name, p) for p, _ in ALLOWED)]
    assert uncovered == []


@pytest.mark.parametrize("package", sorted(name for name, path in MODULES.items() if path.name == "__init__.py"))
def test_every_package_says_what_lives_there(package: str) -> None:
    doc = ast.get_docstring(ast.parse(MODULES[package].read_text(encoding="utf-8")))
    assert doc and len(doc.split()) >= 12, f"{package}/__init__.py needs a docstring: what lives here, what it imports"
