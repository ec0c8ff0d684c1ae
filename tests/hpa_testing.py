"""Helpers shared by the tests (import them from here, not from conftest)."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np

from napari_hpa.classes import CHANNELS

#: Real HPA images (CC BY-SA 3.0, Human Protein Atlas, www.proteinatlas.org),
#: read from the shared data folder beside the repository, never copied into it.
REAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
KAGGLE_TRAIN_CSV = REAL_DIR.parent / "kaggle2018_train.csv"
REAL_KAGGLE_ID = "000a6c98-bb9b-11e8-b2b9-ac1f6b6435d0"
REAL_V18_ID = "800_A6_1"
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str):
    """The module ``benchmarks/{name}.py`` (the benchmarks are scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def random_set(shape=(64, 80), dtype=np.uint8, seed=0) -> np.ndarray:
    """A (4, H, W) array whose channels differ, so channel mix-ups show."""
    rng = np.random.default_rng(seed)
    hi = np.iinfo(dtype).max
    data = rng.integers(0, hi, size=(4, *shape), dtype=np.uint64).astype(dtype)
    for i in range(4):
        data[i, 0, 0] = i  # a marker per channel
    return data


def write_channel_files(folder: Path, set_id: str, data: np.ndarray, ext: str = "png") -> dict:
    """Write ``data`` (4, H, W) as ``{id}_{channel}.{ext}``; returns channel -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for ch, plane in zip(CHANNELS, data):
        p = folder / f"{set_id}_{ch}.{ext}"
        if ext in ("tif", "tiff"):
            import tifffile

            tifffile.imwrite(p, plane)
        else:
            iio.imwrite(p, plane)
        paths[ch] = p
    return paths
