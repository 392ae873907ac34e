"""The package's layers import only downward, and no module imports itself through others.

Layers, bottom to top (README "Layout"): core -> data -> models -> characterize -> pipelines ->
training -> fingerprint -> evaluate -> serve -> cli. Imports inside functions count; imports
under ``if TYPE_CHECKING:`` (annotations only, never run) do not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "microforge"

# The rank of each top-level module or package of microforge; a module may import only modules
# of a rank at or below its own (the same rank only inside one package).
LAYERS: dict[str, int] = {
    # core: errors, then the helpers on it, then the configs and properties on those
    "errors": 0,
    "io": 1,
    "seeding": 1,
    "threads": 1,
    "cpu_features": 1,
    "hull": 1,
    "accuracy": 1,
    "config": 2,
    "properties": 3,
    "data": 4,  # data sets, their files, the synthetic benchmark
    "models": 5,  # networks and their configs
    "characterize": 6,  # descriptors, segmentation (it may run the attention U-Net of models/)
    "pipelines": 7,  # sampling trained models, the registry of model formats, `generate`
    "training": 8,
    "fingerprint": 9,  # the VAE and its trainer, the other kinds, encode and explore
    "evaluate": 10,
    "serve": 11,
    "cli": 12,
    "__main__": 13,
    "": 13,  # microforge/__init__.py: the public API, imported lazily
}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the microforge modules it imports at run time (``a.b`` for ``from a import b``
    where ``b`` is a module)."""
    modules = {_module_name(p, package.parent): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _runtime_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                bases = [a.name for a in node.names]
                targets.update(b for b in bases if b.split(".")[0] == "microforge")
                continue
            if node.level:
                base_parts = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != "microforge":
                continue
            targets.add(base)
            targets.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_every_top_level_module_has_a_layer():
    tops = {_top(m) for m in import_graph()}
    assert tops <= set(LAYERS), f"give these a layer in LAYERS and README's layout: {sorted(tops - set(LAYERS))}"


def test_imports_only_go_down():
    upward = []
    for module, targets in import_graph().items():
        for target in targets:
            a, b = _top(module), _top(target)
            if a != b and LAYERS[b] >= LAYERS[a]:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports that do not go down a layer:\n" + "\n".join(sorted(upward))


def test_no_module_import_cycle():
    assert _cycle(import_graph()) is None, f"import cycle: {' -> '.join(_cycle(import_graph()) or [])}"


def test_no_package_import_cycle():
    packages: dict[str, set[str]] = {}
    for module, targets in import_graph().items():
        packages.setdefault(_top(module), set()).update(_top(t) for t in targets if _top(t) != _top(module))
    assert _cycle(packages) is None


@pytest.mark.parametrize(
    "b_source, expected",
    [
        ("\n", None),
        ("def f():\n    from . import a\n", ["microforge.a", "microforge.b", "microforge.a"]),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n", None),
    ],
)
def test_the_checker_finds_a_cycle(tmp_path, b_source, expected):
    """The checker itself: a cycle through a function-level import is found; a one-way import
    and an annotation-only import are not cycles."""
    pkg = tmp_path / "microforge"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import x\n")
    (pkg / "b.py").write_text(b_source)
    graph = import_graph(pkg)
    assert _cycle(graph) == expected
