"""Opening image sets in a real napari viewer (runs under Xvfb)."""

from __future__ import annotations

import numpy as np
import pytest
from hpa_testing import REAL_KAGGLE_ID, REAL_V18_ID, random_set, write_channel_files

from napari_hpa.classes import CHANNEL_STAINS, CHANNELS

pytestmark = pytest.mark.gui


def _check_layers(viewer, set_id, data, paths=None):
    assert [layer.name for layer in viewer.layers] == [
        f"{set_id} {CHANNEL_STAINS[ch]}" for ch in CHANNELS
    ]
    top = float(np.iinfo(data.dtype).max)
    for i, (layer, ch) in enumerate(zip(viewer.layers, CHANNELS)):
        assert layer.colormap.name == ch
        assert str(layer.blending) == "additive"
        assert tuple(layer.contrast_limits) == (0.0, top)
        assert layer.data.dtype == data.dtype
        np.testing.assert_array_equal(np.asarray(layer.data), data[i])
        assert layer.metadata["hpa_id"] == set_id
        assert layer.metadata["hpa_channel"] == ch
        if paths is not None:
            assert layer.metadata["path"] == str(paths[ch])


def test_open_one_channel_file_opens_four_layers(make_napari_viewer, tmp_path):
    data = random_set()
    paths = write_channel_files(tmp_path, "s1", data)
    viewer = make_napari_viewer()
    viewer.open(str(paths["green"]), plugin="napari-hpa")
    _check_layers(viewer, "s1", data, paths)


def test_open_all_four_files_of_a_set_opens_it_once(make_napari_viewer, tmp_path):
    data = random_set()
    paths = write_channel_files(tmp_path, "s1", data)
    viewer = make_napari_viewer()
    viewer.open([str(p) for p in paths.values()], plugin="napari-hpa", stack=False)
    _check_layers(viewer, "s1", data, paths)


def test_open_16bit_tiff_channel_files(make_napari_viewer, tmp_path):
    data = random_set(dtype=np.uint16)
    paths = write_channel_files(tmp_path, "s16", data, "tif")
    viewer = make_napari_viewer()
    viewer.open(str(paths["blue"]), plugin="napari-hpa")
    _check_layers(viewer, "s16", data, paths)


def test_open_real_hpa_png_set(make_napari_viewer, real_dir):
    from napari_hpa.imageset import read_set

    expected = read_set(real_dir / f"{REAL_KAGGLE_ID}_red.png")
    viewer = make_napari_viewer()
    viewer.open(str(real_dir / f"{REAL_KAGGLE_ID}_red.png"), plugin="napari-hpa")
    _check_layers(viewer, REAL_KAGGLE_ID, expected.data, expected.paths)


def test_open_real_v18_jpeg_set(make_napari_viewer, real_dir):
    from napari_hpa.imageset import read_set

    expected = read_set(real_dir / f"{REAL_V18_ID}_blue.jpg")
    viewer = make_napari_viewer()
    viewer.open(str(real_dir / f"{REAL_V18_ID}_blue.jpg"), plugin="napari-hpa")
    _check_layers(viewer, REAL_V18_ID, expected.data, expected.paths)


def test_set_already_open_is_not_added_twice(make_napari_viewer, tmp_path):
    """napari calls the reader once per dropped file: four files give one set."""
    data = random_set()
    paths = write_channel_files(tmp_path, "s1", data)
    viewer = make_napari_viewer()
    for p in paths.values():
        viewer.open(str(p), plugin="napari-hpa")
    _check_layers(viewer, "s1", data, paths)
    other = write_channel_files(tmp_path / "other", "s1", data)  # same id, other files
    viewer.open(str(other["red"]), plugin="napari-hpa")
    assert len(viewer.layers) == 8


def test_open_folder_opens_first_set_and_says_how_many(make_napari_viewer, tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr("napari_hpa._reader._notify", shown.append)
    sets = {name: random_set(seed=i) for i, name in enumerate(["c", "a", "b"])}
    for name, data in sets.items():
        write_channel_files(tmp_path, name, data)
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path), plugin="napari-hpa")
    _check_layers(viewer, "a", sets["a"])
    assert viewer.layers[0].metadata["sets_in_folder"] == 3
    assert len(shown) == 1 and "holds 3 image sets" in shown[0] and "'a'" in shown[0]


def test_open_multichannel_tiff(make_napari_viewer, tmp_path):
    import tifffile

    data = random_set(dtype=np.uint16)
    tifffile.imwrite(tmp_path / "f.tif", np.moveaxis(data, 0, -1), photometric="minisblack")
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "f.tif"), plugin="napari-hpa")
    _check_layers(viewer, "f", data)


def test_bad_set_error_reaches_the_user(make_napari_viewer, tmp_path):
    paths = write_channel_files(tmp_path, "bad", random_set())
    paths["blue"].unlink()
    viewer = make_napari_viewer()
    with pytest.raises(Exception) as err:
        viewer.open(str(paths["red"]), plugin="napari-hpa")
    text = f"{err.value} {err.value.__cause__}"
    assert "'bad'" in text and "'blue'" in text and "bad_blue.png" in text
    assert len(viewer.layers) == 0


def test_sample_data(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-hpa", "synthetic_field")
    assert len(viewer.layers) == 4
    set_id = viewer.layers[0].metadata["hpa_id"]
    assert [layer.name for layer in viewer.layers] == [
        f"{set_id} {CHANNEL_STAINS[ch]}" for ch in CHANNELS
    ]
    assert viewer.layers[0].metadata["true_labels"]
    assert all(layer.data.dtype == np.uint8 for layer in viewer.layers)
