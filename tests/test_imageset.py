"""Reading image sets in every supported format, and the errors for bad input."""

from __future__ import annotations

import shutil

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from hpa_testing import REAL_KAGGLE_ID, REAL_V18_ID, random_set, write_channel_files
from skimage.transform import resize

from napari_hpa.classes import CHANNELS
from napari_hpa.errors import ImageSetError
from napari_hpa.imageset import (
    find_sets,
    read_channel_file,
    read_set,
    source_for_path,
    tiff_is_multichannel,
    to_model_input,
)

# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize("ext", ["png", "tif"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_channel_files_any_channel_opens_the_set(tmp_path, ext, dtype):
    data = random_set(dtype=dtype)
    paths = write_channel_files(tmp_path, "abc", data, ext)
    for ch in CHANNELS:
        s = read_set(paths[ch])
        assert s.id == "abc"
        assert s.data.dtype == dtype
        np.testing.assert_array_equal(s.data, data)
        assert s.paths == paths


def test_real_hpa_png_set_2048(real_dir):
    s = read_set(real_dir / f"{REAL_KAGGLE_ID}_yellow.png")
    assert s.id == REAL_KAGGLE_ID
    assert s.data.shape == (4, 2048, 2048) and s.data.dtype == np.uint8
    for i, ch in enumerate(CHANNELS):
        np.testing.assert_array_equal(s.data[i], iio.imread(real_dir / f"{REAL_KAGGLE_ID}_{ch}.png"))


def test_kaggle_2018_png_set_512(real_dir, tmp_path):
    """The Kaggle 2018 format: 512x512 8-bit grayscale PNG per channel."""
    full = read_set(real_dir / f"{REAL_KAGGLE_ID}_red.png").data
    small = np.stack(
        [(resize(c, (512, 512), anti_aliasing=True, preserve_range=True)).astype(np.uint8) for c in full]
    )
    write_channel_files(tmp_path, "kaggle", small)
    s = read_set(tmp_path / "kaggle_blue.png")
    assert s.data.shape == (4, 512, 512)
    np.testing.assert_array_equal(s.data, small)
    # the real single 512x512 Kaggle channels decode as 8-bit 2-D planes
    blue = read_channel_file(real_dir / "00822d20-bbc1-11e8-b2bb-ac1f6b6435d0_blue.png", "blue", "x")
    assert blue.shape == (512, 512) and blue.dtype == np.uint8


def test_hpa_3072_png_set(tmp_path):
    data = random_set((3072, 3072), seed=3)
    write_channel_files(tmp_path, "big", data)
    s = read_set(tmp_path)
    assert s.data.shape == (4, 3072, 3072)
    np.testing.assert_array_equal(s.data, data)


def test_real_v18_rgb_jpeg_colour_baked_in(real_dir):
    s = read_set(real_dir / f"{REAL_V18_ID}_green.jpg")
    assert s.data.shape == (4, 2048, 2048) and s.data.dtype == np.uint8
    rgb = {ch: iio.imread(real_dir / f"{REAL_V18_ID}_{ch}.jpg") for ch in CHANNELS}
    np.testing.assert_array_equal(s.channel("red"), rgb["red"][..., 0])
    np.testing.assert_array_equal(s.channel("green"), rgb["green"][..., 1])
    np.testing.assert_array_equal(s.channel("blue"), rgb["blue"][..., 2])
    y = rgb["yellow"]
    expected = ((y[..., 0].astype(int) + y[..., 1]) // 2).astype(np.uint8)
    np.testing.assert_array_equal(s.channel("yellow"), expected)
    # the colour went to the right plane: each plane is bright where its file is
    assert s.channel("yellow").mean() > 30 and s.channel("blue").mean() > 10


def test_real_16bit_png_channel(real_dir, tmp_path):
    green = iio.imread(real_dir / "1000_A12_2_green.png")
    assert green.dtype == np.uint16
    shutil.copy(real_dir / "1000_A12_2_green.png", tmp_path / "s16_green.png")
    others = random_set(green.shape, np.uint16, seed=1)
    for ch, plane in zip(CHANNELS, others):
        if ch != "green":
            iio.imwrite(tmp_path / f"s16_{ch}.png", plane)
    s = read_set(tmp_path / "s16_green.png")
    assert s.data.dtype == np.uint16
    np.testing.assert_array_equal(s.channel("green"), green)
    np.testing.assert_array_equal(s.channel("red"), others[0])


@pytest.mark.parametrize("layout", ["CYX", "YXC"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_multichannel_tiff(tmp_path, layout, dtype):
    data = random_set(dtype=dtype, seed=2)
    stored = data if layout == "CYX" else np.moveaxis(data, 0, -1)
    path = tmp_path / "field.tif"
    tifffile.imwrite(path, stored, photometric="minisblack")
    assert tiff_is_multichannel(path)
    s = read_set(path)
    assert s.id == "field"
    np.testing.assert_array_equal(s.data, data)


def test_ome_tiff_channel_names_reorder(tmp_path):
    data = random_set(dtype=np.uint16, seed=4)
    # stored as nucleus, ER, microtubules, protein
    order = [2, 3, 0, 1]
    path = tmp_path / "plate1_A1.ome.tif"
    tifffile.imwrite(
        path,
        data[order],
        ome=True,
        metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "ER", "Microtubules", "Protein"]}},
    )
    s = read_set(path)
    assert s.id == "plate1_A1"
    np.testing.assert_array_equal(s.data, data)


def test_folder_lists_sets_sorted(tmp_path):
    for name in ["b", "a", "c"]:
        write_channel_files(tmp_path, name, random_set(seed=ord(name)))
    tifffile.imwrite(tmp_path / "aa.tif", random_set(), photometric="minisblack")
    (tmp_path / "notes.txt").write_text("unrelated")
    assert [s.id for s in find_sets(tmp_path)] == ["a", "aa", "b", "c"]
    source, count = source_for_path(tmp_path)
    assert (source.id, count) == ("a", 4)


def test_to_model_input(tmp_path):
    data = random_set((100, 60), np.uint16)
    x = to_model_input(data, 32)
    assert x.shape == (4, 32, 32) and x.dtype == np.float32
    assert 0 <= x.min() and x.max() <= 1
    same = to_model_input(np.full((4, 8, 8), 255, np.uint8), 8)
    assert np.all(same == 1.0)


# --------------------------------------------------------------------------- bad input


def test_missing_channel_names_id_channel_and_file(tmp_path):
    paths = write_channel_files(tmp_path, "s1", random_set())
    paths["yellow"].unlink()
    with pytest.raises(ImageSetError) as err:
        read_set(paths["red"])
    msg = str(err.value)
    assert "'s1'" in msg and "'yellow'" in msg and "s1_yellow.png" in msg and "missing" in msg
    assert err.value.channel == "yellow" and err.value.set_id == "s1"


def test_mismatched_shapes(tmp_path):
    paths = write_channel_files(tmp_path, "s2", random_set())
    iio.imwrite(paths["blue"], np.zeros((32, 32), np.uint8))
    with pytest.raises(ImageSetError) as err:
        read_set(tmp_path)
    msg = str(err.value)
    assert "'s2'" in msg and "'blue'" in msg and "s2_blue.png" in msg
    assert "(32, 32)" in msg and "(64, 80)" in msg


def test_mismatched_dtypes(tmp_path):
    paths = write_channel_files(tmp_path, "s3", random_set())
    iio.imwrite(paths["green"], np.zeros((64, 80), np.uint16))
    with pytest.raises(ImageSetError, match=r"channel 'green'.*uint16"):
        read_set(paths["red"])


def test_truncated_file(tmp_path):
    paths = write_channel_files(tmp_path, "s4", random_set((256, 256)))
    raw = paths["green"].read_bytes()
    paths["green"].write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ImageSetError) as err:
        read_set(paths["red"])
    msg = str(err.value)
    assert "'s4'" in msg and "'green'" in msg and "s4_green.png" in msg and "truncated" in msg


def test_unreadable_file(tmp_path):
    paths = write_channel_files(tmp_path, "s5", random_set())
    paths["red"].write_bytes(b"this is not an image")
    with pytest.raises(ImageSetError, match=r"'s5'.*'red'.*s5_red.png.*cannot be read"):
        read_set(paths["blue"])


def test_two_files_for_one_channel(tmp_path):
    write_channel_files(tmp_path, "s6", random_set())
    iio.imwrite(tmp_path / "s6_red.tif", np.zeros((64, 80), np.uint8))
    with pytest.raises(ImageSetError, match=r"channel 'red'.*2 files"):
        read_set(tmp_path / "s6_green.png")


@pytest.mark.parametrize(
    "shape", [(3, 64, 64), (64, 64), (2, 4, 64, 64), (5, 64, 64)], ids=str
)
def test_tiff_unsupported_shape(tmp_path, shape):
    path = tmp_path / "odd.tif"
    tifffile.imwrite(path, np.zeros(shape, np.uint8), photometric="minisblack")
    assert not tiff_is_multichannel(path)
    with pytest.raises(ImageSetError) as err:
        read_set(path)
    msg = str(err.value)
    assert "'odd'" in msg and "odd.tif" in msg and "unsupported array shape" in msg


def test_channel_file_unsupported_shape(tmp_path):
    paths = write_channel_files(tmp_path, "s7", random_set())
    tifffile.imwrite(tmp_path / "s7_red.tif", np.zeros((2, 3, 64, 80), np.uint8), photometric="minisblack")
    paths["red"].unlink()
    with pytest.raises(ImageSetError, match=r"'red'.*s7_red.tif.*unsupported array shape"):
        read_set(tmp_path)


def test_empty_folder_and_missing_path(tmp_path):
    with pytest.raises(ImageSetError, match="holds no image sets"):
        read_set(tmp_path)
    with pytest.raises(ImageSetError, match="does not exist"):
        read_set(tmp_path / "nope_red.png")
