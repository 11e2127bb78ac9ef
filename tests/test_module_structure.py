"""The shape of the package: no import cycle, small modules, short functions.

The import graph is built from the source with :mod:`ast`: every ``import`` of an ``ivis``
module, at module level or deferred inside a function, is an edge. Run the check alone with
``python -m pytest tests/test_module_structure.py``.
"""

import ast
import os

import pytest

PACKAGE_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60


def _modules():
    """Module name -> source path, for every module of the ivis package."""
    found = {}
    for folder, _, files in os.walk(os.path.join(PACKAGE_ROOT, "ivis")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, PACKAGE_ROOT)[:-3].split(os.sep)
                found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_graph(modules):
    """Module -> the set of ivis modules it imports (explicitly, anywhere in its source)."""
    graph = {}
    for module, path in modules.items():
        package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read(), path)):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    edges.add(submodule if submodule in modules else base)
        graph[module] = {target for target in edges if target in modules and target != module}
    return graph


def find_cycle(graph):
    """One import cycle as a list of modules (first repeated at the end), or None."""
    state = {}

    def visit(module, path):
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                return path[path.index(target):] + [module, target] if target in path else [module, target]
            if target not in state:
                cycle = visit(target, path + [module])
                if cycle:
                    return cycle
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module, [])
            if cycle:
                return cycle
    return None


def test_the_import_graph_of_ivis_has_no_cycle():
    graph = import_graph(_modules())
    assert "ivis.estimator" in graph and graph["ivis.estimator"], "the graph was not built"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_check_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) is not None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def _code_lines(function):
    """Lines of a function, its signature included and its docstring left out: a scanpy-style
    entry point documents a dozen parameters, and that text is not logic to keep small."""
    lines = function.end_lineno - function.lineno + 1
    first = function.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        lines -= first.end_lineno - first.lineno + 1
    return lines


@pytest.mark.parametrize("module", sorted(_modules()))
def test_modules_and_functions_are_small(module):
    path = _modules()[module]
    source = open(path, encoding="utf-8").read()
    assert source.count("\n") <= MAX_MODULE_LINES, f"{path} has {source.count(chr(10))} lines"
    functions = [
        node for node in ast.walk(ast.parse(source, path)) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]
    long = [f"{node.name} ({_code_lines(node)} lines)" for node in functions if _code_lines(node) > MAX_FUNCTION_LINES]
    assert not long, f"{path}: functions over {MAX_FUNCTION_LINES} lines: {', '.join(long)}"


def test_parameter_checks_import_neither_annoy_nor_keras():
    graph = import_graph(_modules())
    source = open(_modules()["ivis._params"], encoding="utf-8").read()
    imported = {n.module or "" for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Import) for a in n.names}
    assert not {name for name in imported if name.split(".")[0] in ("annoy", "keras", "tensorflow")}
    assert graph["ivis._params"] == set(), f"ivis._params imports {graph['ivis._params']}"
