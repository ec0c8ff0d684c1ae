"""The layers of docs/architecture.md: the core imports neither Qt, napari nor torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

CORE = [
    "napari_hpa",
    "napari_hpa.classes",
    "napari_hpa.errors",
    "napari_hpa.imageset",
    "napari_hpa.labels",
    "napari_hpa.synth",
    "napari_hpa.cli",
    "napari_hpa.metrics",
    "napari_hpa.evaluate",
    "napari_hpa.ensemble_cli",
    "napari_hpa.train",
    "napari_hpa.review",
    "napari_hpa.review.store",
    "napari_hpa.review.db",
    "napari_hpa.review.edits",
    "napari_hpa.review.queue",
    "napari_hpa.review.highlights",
    "napari_hpa.review.export",
    "napari_hpa.review.prefetch",
    "napari_hpa.review.view",
    "napari_hpa.review.ordering",
    "napari_hpa.review.cli",
    "napari_hpa.engine",
    "napari_hpa.engine.batch",
    "napari_hpa.classify",
    "napari_hpa.similar",
    "napari_hpa.bundled",
    "napari_hpa.info",
    "napari_hpa.engine.domain",
    "napari_hpa.engine.foreign",
    "napari_hpa.engine.onnx_tools",
    "napari_hpa.importer",
    "napari_hpa.models_cli",
    "napari_hpa.layers",
    "napari_hpa.engine.manifest",
]
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
