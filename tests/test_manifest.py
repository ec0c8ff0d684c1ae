"""The npe2 manifest: valid, installed, and reader patterns that fit the core."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from npe2 import PluginManager, PluginManifest

from napari_hpa.imageset import FILENAME_PATTERNS

ROOT = Path(__file__).resolve().parents[1]


def test_manifest_valid_and_installed():
    pm = PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("napari-hpa")
    assert manifest.name == "napari-hpa"
    # the installed manifest is the one at the repository root
    assert manifest == PluginManifest.from_file(ROOT / "napari.yaml")


def test_reader_patterns_match_the_core():
    data = yaml.safe_load((ROOT / "napari.yaml").read_text())
    (reader,) = data["contributions"]["readers"]
    assert tuple(reader["filename_patterns"]) == FILENAME_PATTERNS
    assert reader["accepts_directories"] is True


@pytest.mark.parametrize(
    "name, ours",
    [
        ("abc_red.png", True),
        ("abc_green.jpg", True),
        ("abc_yellow.tif", True),
        ("plate_A1_1_blue.jpeg", True),
        ("field.ome.tif", True),
        ("holiday.png", False),
        ("photo_red_eye.jpg", False),
        ("scan.jpg", False),
        ("cells_mask.png", False),
    ],
)
def test_reader_offered_only_for_our_files(name, ours):
    pm = PluginManager.instance()
    pm.discover()
    plugins = {r.plugin_name for r in pm.iter_compatible_readers([name])}
    assert ("napari-hpa" in plugins) is ours


def test_get_reader_refuses_unrelated_files(tmp_path):
    import numpy as np
    import tifffile

    from napari_hpa._reader import get_reader

    (tmp_path / "empty").mkdir()
    tifffile.imwrite(tmp_path / "gray.tif", np.zeros((32, 32), np.uint8))
    assert get_reader(str(tmp_path / "empty")) is None
    assert get_reader(str(tmp_path / "gray.tif")) is None
    assert get_reader(str(tmp_path / "holiday.png")) is None


def test_wheel_carries_the_root_manifest(tmp_path):
    """A regular (non-editable) install gets the same napari.yaml as the repository root."""
    import subprocess
    import sys
    import zipfile

    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("napari_hpa-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("napari_hpa/napari.yaml") == (ROOT / "napari.yaml").read_bytes()
        (ep,) = [n for n in zf.namelist() if n.endswith("entry_points.txt")]
        assert "napari-hpa = napari_hpa:napari.yaml" in zf.read(ep).decode()
