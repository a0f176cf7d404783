"""The package's layout tells its architecture: layers that import only downwards, and no cycles.

Every import is read from the source (including the ones inside functions, which a lazy import
would otherwise hide), so a module that reaches upwards or into a cycle fails here by name.
"""

import ast
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Set

PACKAGE = Path(__file__).resolve().parents[1] / "mlpx"

#: lowest first; a unit may import its own layer's other units only where listed in SIDEWAYS
LAYERS: List[Set[str]] = [
    {"errors", "hookspecs", "signals", "__version__"},
    {"core", "datasets"},
    {"checks", "diagnostics"},
    {"doctor"},
    {"builtins", "plugin_files", "plugins"},
    {"tracking"},
    {"runs", "sweeps"},
    {"cli"},
    {"__main__"},
]
SIDEWAYS = {("core", "datasets"), ("builtins", "plugin_files"), ("plugins", "plugin_files")}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").is_file() or (PACKAGE / relative / "__init__.py").is_file()


def _imports(path: Path) -> Set[str]:
    """The mlpx modules ``path`` imports, anywhere in it (``from mlpx.pkg import mod`` gives
    ``mlpx.pkg.mod`` when ``mod`` is a module, ``mlpx.pkg`` when it is a name in it)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").split(".")[0] == "mlpx"
        ):
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.add(name if _is_module(name) or node.module == "mlpx" else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "mlpx")
    return found


def _graph() -> Dict[str, Set[str]]:
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: {target for target in _imports(path) if target != name} for name, path in modules.items()}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "mlpx"


def _layer(unit: str) -> int:
    for index, layer in enumerate(LAYERS):
        if unit in layer:
            return index
    raise AssertionError(f"mlpx.{unit} is in no layer of tests/test_layout.py: add it where it belongs")


def test_every_import_goes_down_a_layer_or_stays_in_its_unit():
    upward = []
    for module, targets in _graph().items():
        source = _unit(module)
        if source == "mlpx":  # the package's __init__: re-exports hookspecs only
            assert targets <= {"mlpx.hookspecs"}, targets
            continue
        for target in targets:
            unit = _unit(target)
            if unit in (source, "mlpx"):
                continue
            same_layer_allowed = (source, unit) in SIDEWAYS
            if _layer(unit) > _layer(source) or (_layer(unit) == _layer(source) and not same_layer_allowed):
                upward.append(f"{module} imports {target}")
    assert not upward, "imports that go up or sideways:\n" + "\n".join(sorted(upward))


def test_no_import_cycles_between_modules():
    graph = _graph()
    cycles = []
    state: Dict[str, int] = defaultdict(int)  # 0 new, 1 on the current path, 2 done
    path: List[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if target not in graph:  # mlpx.__version__
                continue
            if state[target] == 1:
                cycles.append(" -> ".join(path[path.index(target) :] + [target]))
            elif state[target] == 0:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if state[module] == 0:
            visit(module)
    # a package's __init__ re-exporting its own modules is not a cycle of dependencies
    cycles = [c for c in cycles if not all(m.startswith(c.split(" -> ")[0]) for m in c.split(" -> "))]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_layout_check_sees_a_planted_upward_import(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("def f():\n    from mlpx.tracking.tracker import MlflowTracker\n")
    assert _imports(planted) == {"mlpx.tracking.tracker"}
    assert _layer(_unit("mlpx.tracking.tracker")) > _layer(_unit("mlpx.core.trainer"))
