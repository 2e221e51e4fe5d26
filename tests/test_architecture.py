"""The house by layers (cxrlib.LAYERS): no import from a lower layer to a higher one, no import
circle, imports inside functions only with a comment saying why, and sizes a reader can hold."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cxrlib
from tests.conftest import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "cxrlib"
#: Sizes a reader can hold: lines per module and function, methods per class.
MAX_MODULE_LINES, MAX_FUNCTION_LINES, MAX_METHODS = 500, 60, 20


def _module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _layer(module: str) -> int:
    """The index of ``module``'s layer in :data:`cxrlib.LAYERS`; the package's own
    ``__init__``/``__main__`` stand above every layer."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__main__":
        return len(cxrlib.LAYERS)
    return cxrlib.LAYERS.index(parts[1])


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    is_package = MODULES[module].name == "__init__.py"
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _imports(module: str) -> list[tuple[str, ast.stmt, bool]]:
    """(imported cxrlib module, the statement, inside a function?) of ``module``."""
    tree = ast.parse(MODULES[module].read_text())
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                found.extend((a.name, child, in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                target = _resolve(module, child)
                for alias in child.names:  # ``from cxrlib.x import y``: y may be a module
                    candidate = f"{target}.{alias.name}"
                    found.append(
                        (candidate if candidate in MODULES else target, child, in_function)
                    )
            visit(child, inner)

    visit(tree, False)
    return [(name, node, inner) for name, node, inner in found]


def _graph() -> dict[str, set[str]]:
    graph = {}
    for module in MODULES:
        targets = set()
        for name, _, _ in _imports(module):
            while name and name not in MODULES:  # cxrlib.x.y -> the module that defines y
                name = name.rpartition(".")[0]
            if name.startswith("cxrlib") and name != module and name != "cxrlib":
                targets.add(name)
        graph[module] = targets
    return graph


def test_every_sub_package_is_a_layer_with_a_docstring():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(cxrlib.LAYERS), "each sub-package of cxrlib is one layer (LAYERS)"
    loose = sorted(
        p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")
    )
    assert not loose, f"modules belong in a layer's sub-package: {loose}"
    for layer in cxrlib.LAYERS:
        doc = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text()))
        assert doc and "imports:" in doc.lower(), (
            f"cxrlib/{layer}/__init__.py says what it owns and imports"
        )


def test_no_import_from_a_lower_layer_to_a_higher_one():
    names = (*cxrlib.LAYERS, "root")
    upward = [
        f"{module} ({names[_layer(module)]}) imports {target}"
        for module, targets in _graph().items()
        for target in targets
        if _layer(target) > _layer(module)
    ]
    assert not upward, "\n".join(upward)


def test_no_import_circle():
    graph, state, cycles = _graph(), {}, []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*stack[stack.index(target) :], target]))
            elif target not in state:
                visit(target, [*stack, target])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_imports_inside_functions_say_why():
    """Only for optional dependencies or start-up time, with a comment on the line (or the one
    above) saying so."""
    silent = []
    for module, path in MODULES.items():
        lines = path.read_text().splitlines()
        for _, node, inner in _imports(module):
            if not inner:
                continue
            here, above = lines[node.lineno - 1], lines[node.lineno - 2]
            end = lines[node.end_lineno - 1]
            if "#" not in here and "#" not in end and not above.strip().startswith("#"):
                silent.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}")
    assert not silent, "imports inside functions without a comment:\n" + "\n".join(
        sorted(set(silent))
    )


def _sizes():
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        yield "module", f"{module}", len(path.read_text().splitlines()), MAX_MODULE_LINES
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([d.lineno for d in node.decorator_list] + [node.lineno])
                size = node.end_lineno - start + 1
                yield "function", f"{module}.{node.name}", size, MAX_FUNCTION_LINES
            elif isinstance(node, ast.ClassDef):
                methods = [
                    b for b in node.body if isinstance(b, (ast.FunctionDef, ast.AsyncFunctionDef))
                ]
                yield "class", f"{module}.{node.name}", len(methods), MAX_METHODS


@pytest.mark.parametrize("kind", ["module", "function", "class"])
def test_sizes_a_reader_can_hold(kind):
    over = [
        f"{name}: {size} > {limit}"
        for k, name, size, limit in _sizes()
        if k == kind and size > limit
    ]
    assert not over, "\n".join(over)


def test_layer_pairs_are_few(capsys):
    """Distinct layer -> lower-layer import pairs (seven floors allow 21): printed, and kept at
    or below 21 so that each floor stands on few others."""
    pairs = {
        (cxrlib.LAYERS[_layer(m)], cxrlib.LAYERS[_layer(t)])
        for m, targets in _graph().items()
        for t in targets
        if _layer(m) < len(cxrlib.LAYERS)
        and _layer(t) < len(cxrlib.LAYERS)
        and _layer(m) != _layer(t)
    }
    with capsys.disabled():
        print(f"\n{len(cxrlib.LAYERS)} layers, {len(pairs)} distinct layer->layer import pairs")
    assert len(cxrlib.LAYERS) <= 7 and len(pairs) <= 21, sorted(pairs)


#: torchrun's own variables, which the train layer may read where a process learns its rank.
TORCHRUN = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def _environment_reads(module: str) -> list[str]:
    """``os.environ``/``os.getenv`` uses in ``module`` (torchrun's rank variables aside)."""
    found = []
    tree = ast.parse(MODULES[module].read_text())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ("environ", "getenv")
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ):
            found.append(node)
    lines = MODULES[module].read_text().splitlines()
    return [
        f"{module}:{n.lineno}"
        for n in found
        if not any(f'"{name}"' in lines[n.lineno - 1] for name in TORCHRUN)
    ]


def test_only_the_ground_and_the_entry_points_read_the_environment():
    """Folders and data roots travel in the configuration's workspace; below the entry points
    (app) nothing reads them from the environment, and only the ground layer's ``load_config``
    default, the entry points and the public ``create_model`` build a workspace from it."""
    allowed = {"core", "app"}
    reads = [
        read
        for module in MODULES
        if module.count(".") and module.split(".")[1] not in allowed
        for read in _environment_reads(module)
    ]
    assert not reads, "the environment is read below the entry points:\n" + "\n".join(reads)
    from_env = [
        module
        for module, path in MODULES.items()
        if "Workspace.from_env(" in path.read_text()
        and module.split(".")[1:2] not in (["core"], ["app"])
        and module != "cxrlib.models.factory"
    ]
    assert not from_env, from_env


def test_run_folders_are_laid_out_in_one_place():
    """Only cxrlib.train.layout (RunKey) builds or parses a run's folder: no other module
    spells the seed folder or takes a run folder apart by position."""
    spelled = [
        module
        for module, path in MODULES.items()
        if module != "cxrlib.train.layout"
        and any(p in path.read_text() for p in ('f"seed{', '"seed*', "parts[-4", "parts[-5"))
    ]
    assert not spelled, spelled


def _classes():
    import importlib
    import inspect

    for module in MODULES:
        if module.endswith("__main__"):
            continue
        loaded = importlib.import_module(module)
        for _, cls in inspect.getmembers(loaded, inspect.isclass):
            if cls.__module__ == module:
                yield cls


def test_no_constructor_takes_more_than_five_positional_parameters():
    import inspect

    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    wide = []
    for cls in _classes():
        try:
            signature = inspect.signature(cls.__init__)
        except (TypeError, ValueError):
            continue
        count = sum(p.kind in positional for p in signature.parameters.values()) - 1  # self
        if count > 5:
            wide.append(f"{cls.__module__}.{cls.__name__}: {count}")
    assert not wide, "keyword-only beyond five:\n" + "\n".join(wide)
