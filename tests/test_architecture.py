"""The layers of docs/architecture.md: the core imports neither Qt, napari nor torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import napari_hpa

ROOT = Path(napari_hpa.__file__).parent
#: the napari adapters and the training layer; every other module is the core
NOT_CORE = ("napari_hpa._qt", "napari_hpa.train", "napari_hpa._reader", "napari_hpa._sample_data",
            "napari_hpa.demo")
#: core modules that may import the napari adapters and training inside a command function
COMMAND_LINE = ("napari_hpa.cli",)
#: a core module that hands one job to the training layer, inside the function that needs it
TRAINING_FOR = {"napari_hpa.importer": "a PyTorch checkpoint is rebuilt by train.hpa_densenet"}
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _in(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


CORE = [m for m in MODULES if not _in(m, NOT_CORE)]


def _imports(name: str) -> list[tuple[str, int]]:
    """Every module ``name`` imports, at the top or inside a function: ``(module, line)``."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            for a in node.names:  # ``from . import tta`` names a module
                full = f"{module}.{a.name}"
                found.append((full if full in MODULES else module, node.lineno))
    return found


FORBIDDEN = ["torch", "timm", "napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "vispy"]


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_gui_or_torch(module):
    code = (
        f"import sys, {module}\n"
        f"bad = sorted(m for m in {FORBIDDEN!r} if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{module} imports {out.stdout.strip()}"


def test_the_core_is_found():
    assert {"napari_hpa.imageset", "napari_hpa.engine.ensemble", "napari_hpa.review.store"} <= set(CORE)
    assert "napari_hpa._qt.classifier" not in CORE and "napari_hpa.train.loop" not in CORE


@pytest.mark.parametrize("module", [m for m in CORE if not _in(m, COMMAND_LINE)])
def test_core_source_never_imports_gui_or_torch_even_lazily(module):
    allowed = ("napari_hpa.train",) if module in TRAINING_FOR else ()
    bad = [f"{m} (line {line})" for m, line in _imports(module)
           if _in(m, FORBIDDEN) or (_in(m, NOT_CORE) and not _in(m, allowed))]
    assert not bad, f"{module} imports {', '.join(bad)}"


def test_no_module_is_over_600_lines():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"over {MAX_LINES} lines: {long}"


def _reach(graph, start) -> set[str]:
    seen, todo = set(), list(graph[start])
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(graph[m])
    return seen


def test_no_import_circle_lazy_imports_included():
    graph = {m: {t for t, _ in _imports(m) if t in MODULES and t != m} for m in MODULES}
    reach = {m: _reach(graph, m) for m in graph}
    circles = {frozenset({m, *(o for o in reach[m] if m in reach[o])}) for m in graph if m in reach[m]}
    assert not circles, f"import circles: {sorted(sorted(c) for c in circles)}"
