"""The package's layout holds: no import cycles, stages that import one way, light commands, old paths.

The imports are read from the source (ast), not executed: every ``import`` and
``from ... import`` anywhere in a module counts, inside functions too, except
those under ``if TYPE_CHECKING:``, which never run.
"""

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from hnn import _moved

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]

# The stages, in the order they may import each other: each only from those before it. hnn/ holds
# both ends: the base every stage uses (errors, version, stdio, isolation) and the front door (the public API
# of hnn/__init__, the old-path table, the CLI), which uses every stage.
LAYERS = ("hnn.base", "hnn.plugins", "hnn.provenance", "hnn.ingest", "hnn.rules", "hnn.zoo", "hnn.hasher", "hnn.index",
          "hnn.evaluation", "hnn.batch", "hnn.serve", "hnn.front")
BASE_MODULES = {"hnn.errors", "hnn._version", "hnn.stdio", "hnn.isolation", "hnn.weight_store"}
HEAVY = ("torch", "tensorflow", "keras", "onnxsim", "fastapi", "uvicorn", "starlette", "ray", "transformers",
         "safetensors")


def package_modules() -> dict[str, Path]:
    modules = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


def _type_checking_only(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules that module ``name`` imports (an imported name that is a module counts as it)."""
    tree = ast.parse(path.read_text())
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    found = set()
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
                package = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{package}.{base}" if base else package
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        for target in targets:
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in modules and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each as a cycle to print."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer_of(module: str) -> str:
    if module in BASE_MODULES:
        return "hnn.base"
    for layer in LAYERS:
        if module == layer or module.startswith(layer + "."):
            return layer
    return "hnn.front"  # hnn/__init__, hnn._moved, hnn.__main__, hnn.cli.*


def test_the_walk_sees_the_package():
    graph = import_graph()
    assert {"hnn.cli.app", "hnn.index.store", "hnn.zoo.build", "hnn.ingest.pipeline", "hnn.rules.plugin"} <= set(graph)
    assert "hnn.ingest.workgraph" in graph["hnn.rules.engine"]  # from-imports of names count
    assert "hnn.ingest.pipeline" in graph["hnn.hasher.runtime"]  # imports inside functions count
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_among_the_modules():
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in found)


def test_each_stage_imports_only_the_stages_before_it():
    wrong = sorted({(module, layer_of(module), target, layer_of(target))
                    for module, targets in import_graph().items() for target in targets
                    if LAYERS.index(layer_of(target)) > LAYERS.index(layer_of(module))})
    assert not wrong, "imports against the layering: " + "; ".join(
        f"{module} ({layer}) imports {target} ({target_layer})" for module, layer, target, target_layer in wrong)


def heavy_modules_loaded(code: str, cwd: Path) -> list[str]:
    snippet = (f"import sys\n{code}\n"
               f"print('HEAVY', __import__('json').dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    result = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, cwd=cwd, timeout=300)
    line = next((line for line in result.stdout.splitlines() if line.startswith("HEAVY ")), None)
    assert line is not None, result.stdout + result.stderr
    return json.loads(line[len("HEAVY "):])


def run_main(*args: str) -> str:
    return f"from hnn.cli import main\ntry:\n    main({list(args)!r})\nexcept SystemExit:\n    pass"


def test_help_and_check_of_an_onnx_file_import_no_heavy_framework(tmp_path):
    from hnn.ingest.pipeline import EXAMPLE_MODEL

    index = tmp_path / "models.db"
    add = subprocess.run([str(Path(sys.executable).with_name("hnn")), "index", "add", str(index),
                          str(EXAMPLE_MODEL)], capture_output=True, text=True)
    assert add.returncode == 0, add.stderr
    assert heavy_modules_loaded(run_main("--help"), tmp_path) == []
    assert heavy_modules_loaded(run_main("check", str(index), str(EXAMPLE_MODEL)), tmp_path) == []
    # In-process (--trust) the whole ingestion runs here too, and still needs none of them.
    assert heavy_modules_loaded(run_main("check", str(index), str(EXAMPLE_MODEL), "--trust"), tmp_path) == []


@pytest.mark.parametrize("old", sorted(_moved.MOVED))
def test_old_import_paths_still_import_for_one_release(old):
    import importlib

    with pytest.warns(DeprecationWarning, match="moved"):
        sys.modules.pop(old, None)
        module = importlib.import_module(old)
    target = _moved.MOVED[old]
    if isinstance(target, str):
        new = importlib.import_module(target)
        public = [name for name in vars(new) if not name.startswith("_")]
        assert public and all(getattr(module, name) is getattr(new, name) for name in public)
    else:
        for name, where in target.items():
            assert getattr(module, name) is _moved.resolve(where), name
    with pytest.raises(AttributeError):
        module.no_such_name
