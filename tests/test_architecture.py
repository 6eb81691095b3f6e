"""The package's shape stays the one the README's Architecture section describes: no import cycles,
a CLI that names no backend and imports no SDK, a pure core, a small package root, small modules."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from orchestrator import registry

PACKAGE = Path(__file__).resolve().parent.parent / "orchestrator"
SDKS = ("ray", "azure", "horovod", "torch")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    name = ".".join(parts)
    return name.removesuffix(".__init__")


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> set[str]:
    """Every module ``name`` imports (``TYPE_CHECKING`` and function-level imports included)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def internal_graph() -> dict[str, set[str]]:
    return {name: {dep for dep in imports(name) if dep in MODULES and dep != name} for name in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def test_no_import_cycles_anywhere_in_the_package() -> None:
    assert cycles(internal_graph()) == []


def test_the_cycle_finder_finds_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_cli_and_the_ui_name_no_backend_and_import_no_backend_or_sdk() -> None:
    names = set(registry.entries())
    for name, path in MODULES.items():
        if not name.startswith(("orchestrator.cli", "orchestrator.ui")):
            continue
        reached = imports(name)
        assert not [m for m in reached if m.startswith("orchestrator.backends")], name
        assert not [m for m in reached if m.split(".")[0] in SDKS], name
        constants = {node.value for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Constant)}
        assert not constants & names, f"{name} names a backend"
        assert "hasattr(" not in path.read_text(), f"{name} probes for capabilities"


def test_the_dashboards_pages_and_scripts_name_no_backend() -> None:
    names = set(registry.entries())
    files = [path for folder in ("static", "templates") for path in (PACKAGE / "ui" / folder).iterdir()]
    assert files
    for path in files:
        words = set(re.findall(r"[a-z]+", path.read_text(encoding="utf-8").lower()))
        assert not words & names, f"{path.name} names a backend"


@pytest.mark.parametrize("name", [m for m in MODULES if not m.startswith(("orchestrator.cli", "orchestrator.backends"))])
def test_the_core_imports_no_click_and_no_sdk(name: str) -> None:
    reached = {m.split(".")[0] for m in imports(name)}
    assert not reached & {"click", *SDKS}, f"{name} imports {reached & {'click', *SDKS}}"


def test_the_core_reaches_backends_only_through_the_registry() -> None:
    for name in MODULES:
        if name.startswith(("orchestrator.backends", "orchestrator.cli")):
            continue
        assert not [m for m in imports(name) if m.startswith("orchestrator.backends")], name


def test_the_package_root_is_small_and_no_module_is_long() -> None:
    root = [path for path in PACKAGE.glob("*.py")]
    assert len(root) <= 15, sorted(p.name for p in root)
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > 400}
    assert long == {}


def test_every_registered_backend_has_its_folder_and_a_pure_block() -> None:
    for name, entry in registry.entries().items():
        assert (PACKAGE / "backends" / name).is_dir()
        block_module = entry.block.partition(":")[0]
        assert not [m for m in imports(block_module) if m.split(".")[0] in SDKS], block_module
