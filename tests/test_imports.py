"""No import cycles among climviz modules.

The import graph is read statically (``ast``) from the source files: an edge
``a -> b`` for every module-level ``import`` / ``from ... import`` of a climviz module
in ``a`` (including those under module-level ``if``/``try``, excluding
``if TYPE_CHECKING:`` blocks). ``from pkg import name`` is an edge to ``pkg.name`` when
that is a module, else to ``pkg``. Function-local imports are counted too for the
training package, whose lazy imports must not hide a cycle either.
"""

from __future__ import annotations

import ast
from pathlib import Path

import climviz

ROOT = Path(climviz.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST, local: bool):
    """Import statements at module level (and in functions when ``local``)."""
    stack = list(getattr(tree, "body", []))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node):
                stack.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            stack.extend(node.body + node.orelse + node.finalbody)
            for h in node.handlers:
                stack.extend(h.body)
        elif isinstance(node, (ast.With, ast.For, ast.While, ast.ClassDef)) or (
                local and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))):
            stack.extend(node.body)


def _targets(module: str, node: ast.stmt) -> set[str]:
    is_pkg = MODULES[module].name == "__init__.py"
    found: set[str] = set()
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            pkg = module.split(".") if is_pkg else module.split(".")[:-1]
            pkg = pkg[: len(pkg) - (node.level - 1)]
            base = ".".join(pkg + ([base] if base else []))
        names = []
        for a in node.names:
            sub = f"{base}.{a.name}"
            names.append(sub if sub in MODULES else base)
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
    return found


def import_graph(local_in: str | None = None) -> dict[str, set[str]]:
    """``{module: modules it imports}``; function-local imports count in modules
    whose name starts with ``local_in``."""
    graph = {}
    for mod, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        local = local_in is not None and mod.startswith(local_in)
        graph[mod] = set().union(*(_targets(mod, n) for n in _import_nodes(tree, local)))
    return graph


def find_cycles(graph: dict[str, set[str]], within: str = "") -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), as sorted lists,
    over the modules whose names start with ``within``."""
    nodes = [m for m in graph if m.startswith(within)]
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if not w.startswith(within):
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in nodes:
        if v not in index:
            visit(v)
    return sorted(out)


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_relative_and_from_imports_resolve_to_modules():
    tree = ast.parse("from climviz.training import config\nfrom . import loss\n"
                     "import climviz.errors\nfrom climviz.training.config import TrainConfig\n")
    edges = set().union(*(_targets("climviz.training.loop", n)
                          for n in _import_nodes(tree, local=False)))
    assert edges == {"climviz.training.config", "climviz.training.loss", "climviz.errors"}


def test_no_import_cycles_among_climviz_modules():
    cycles = find_cycles(import_graph())
    assert not cycles, f"module-level import cycles: {cycles}"


def test_no_import_cycles_in_training_even_through_lazy_imports():
    cycles = find_cycles(import_graph(local_in="climviz.training"), within="climviz.training")
    assert not cycles, f"import cycles in climviz.training (function-local imports included): {cycles}"
