"""Tests for the synthetic HPA-like field generator (napari_hpa.synth)."""

from __future__ import annotations

import csv
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from napari_hpa import synth
from napari_hpa.classes import CHANNELS, NUM_CLASSES
from napari_hpa.labels import read_labels
from napari_hpa.synth import dataset as synth_dataset

SIZE = 128


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "ds"
    summary = synth.generate_dataset(out, 10, 5, size=SIZE, noise_rate=0.3, fields_per_antibody=3)
    return out, summary


def _read_png(path):
    with Image.open(path) as im:
        return im.mode, np.asarray(im)


# ---------------------------------------------------------------- fields


def test_field_shapes_and_types():
    f = synth.generate_field(3, size=SIZE)
    assert f.image.shape == (4, SIZE, SIZE) and f.image.dtype == np.uint8
    assert f.masks.shape == (NUM_CLASSES, SIZE, SIZE) and f.masks.dtype == bool
    assert f.labels == tuple(sorted(f.labels)) and 1 <= len(f.labels) <= 4
    assert isinstance(f.antibody, str) and f.id


def test_field_determinism():
    a = synth.generate_field(11, size=SIZE)
    b = synth.generate_field(11, size=SIZE)
    c = synth.generate_field(12, size=SIZE)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.masks, b.masks) and a.labels == b.labels
    assert not np.array_equal(a.image, c.image)


@pytest.mark.parametrize("cls", range(NUM_CLASSES))
def test_every_class_has_mask_inside_cells(cls):
    f = synth.generate_field(100 + cls, size=SIZE, labels=[cls])
    assert f.labels == (cls,)
    assert f.masks[cls].any()
    others = np.delete(np.arange(NUM_CLASSES), cls)
    assert not f.masks[others].any()
    # mask pixels lie where the cells are: the nucleus or cytoplasm is bright in
    # red, blue or yellow somewhere near every mask pixel (not in empty background)
    cells = f.image[[0, 2, 3]].max(0) > 3
    assert (cells[f.masks[cls]]).mean() > 0.4
    # the green channel is brighter inside the mask than outside it
    g = f.image[1].astype(float)
    assert g[f.masks[cls]].mean() > g[~f.masks[cls]].mean()


def test_multi_label_masks_consistent():
    for seed in range(6):
        f = synth.generate_field(seed, size=SIZE)
        present = set(np.flatnonzero(f.masks.reshape(NUM_CLASSES, -1).any(1)).tolist())
        assert present == set(f.labels)


def test_bad_field_arguments():
    with pytest.raises(ValueError, match="size"):
        synth.generate_field(1, size=32)
    with pytest.raises(ValueError, match="freq"):
        synth.generate_field(1, size=SIZE, freq="zipf")
    with pytest.raises(ValueError, match="class index"):
        synth.generate_field(1, size=SIZE, labels=[28])
    with pytest.raises(ValueError, match="seed"):
        synth.generate_field(-1, size=SIZE)


def test_sample_field():
    f = synth.sample_field(size=256)
    assert f.labels == synth.SAMPLE_LABELS
    assert f.image.shape == (4, 256, 256)
    for c in f.labels:
        assert f.masks[c].any()


# ---------------------------------------------------------------- labels


def test_label_counts_and_compatibility():
    sets = synth.draw_label_sets(2000, 1, "uniform") + synth.draw_label_sets(2000, 1, "kaggle")
    for s in sets:
        assert 1 <= len(s) <= 4
        assert list(s) == sorted(set(s))
        for pair in synth.INCOMPATIBLE:
            assert not pair <= set(s)
    counts = Counter(len(s) for s in sets)
    assert counts[1] > counts[3] > counts[4]


def test_uniform_frequencies_roughly_balanced():
    sets = synth.draw_label_sets(4000, 3, "uniform")
    counts = np.bincount([c for s in sets for c in s], minlength=NUM_CLASSES)
    mean = counts.mean()
    assert counts.min() > 0.6 * mean, counts
    assert counts.max() < 1.5 * mean, counts
    # small sample too (400 draws): no class missing, none dominating
    small = np.bincount([c for s in synth.draw_label_sets(400, 4, "uniform") for c in s], minlength=NUM_CLASSES)
    assert small.min() >= 5 and small.max() < 4 * small.mean()


def test_kaggle_frequency_ordering():
    sets = synth.draw_label_sets(3000, 2, "kaggle")
    counts = np.bincount([c for s in sets for c in s], minlength=NUM_CLASSES)
    assert counts.argmax() == 0  # Nucleoplasm
    assert counts[25] > counts[7] > counts[10]  # Cytosol > Golgi > Lysosomes
    assert counts[0] > 0.3 * len(sets)


def test_draw_labels_deterministic():
    assert synth.draw_label_sets(50, 9) == synth.draw_label_sets(50, 9)
    assert synth.draw_label_sets(50, 9)[:20] == synth.draw_label_sets(20, 9)
    with pytest.raises(ValueError, match="freq"):
        synth.draw_label_sets(3, 1, "bogus")


# ---------------------------------------------------------------- datasets


def test_dataset_files(dataset):
    out, summary = dataset
    table = read_labels(out / "labels.csv")
    assert table.ids == summary.ids == [f"synth_5_{i:06d}" for i in range(10)]
    assert set(table.extra) == {"Antibody"}
    for fid in table.ids:
        for ch in CHANNELS:
            mode, a = _read_png(out / f"{fid}_{ch}.png")
            assert mode == "L" and a.shape == (SIZE, SIZE) and a.dtype == np.uint8
        m = synth.load_masks(out / "masks" / f"{fid}.npz")
        assert m.shape == (NUM_CLASSES, SIZE, SIZE) and m.dtype == bool
        present = set(np.flatnonzero(m.reshape(NUM_CLASSES, -1).any(1)).tolist())
        assert present == set(table.targets[fid])
    import json

    meta = json.loads((out / "synth.json").read_text())
    assert meta["generator_version"] == synth.GENERATOR_VERSION
    assert meta["n"] == 10 and meta["seed"] == 5 and meta["size"] == SIZE and meta["fields_per_antibody"] == 3


def test_image_independent_of_n(tmp_path, dataset):
    out, summary = dataset
    small = synth.generate_dataset(tmp_path / "small", 5, 5, size=SIZE, fields_per_antibody=3)
    assert small.ids == summary.ids[:5]
    for fid in small.ids:
        assert small.labels[fid] == summary.labels[fid]
        for ch in CHANNELS:
            a = _read_png(tmp_path / "small" / f"{fid}_{ch}.png")[1]
            b = _read_png(out / f"{fid}_{ch}.png")[1]
            assert np.array_equal(a, b)
        assert np.array_equal(synth.load_masks(tmp_path / "small" / "masks" / f"{fid}.npz"),
                              synth.load_masks(out / "masks" / f"{fid}.npz"))


def test_dataset_deterministic_files(tmp_path):
    a = tmp_path / "a"
    b = tmp_path / "b"
    synth.generate_dataset(a, 3, 21, size=SIZE, noise_rate=0.5)
    synth.generate_dataset(b, 3, 21, size=SIZE, noise_rate=0.5, compress_level=1)
    for p in a.glob("*.png"):
        assert np.array_equal(_read_png(p)[1], _read_png(b / p.name)[1])
        assert p.stat().st_size > (b / p.name).stat().st_size
    c = tmp_path / "c"
    synth.generate_dataset(c, 3, 21, size=SIZE, noise_rate=0.5)
    b = c
    for name in sorted(p.name for p in a.iterdir() if p.is_file() and p.name != "synth.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for p in (a / "masks").iterdir():
        assert np.array_equal(synth.load_masks(p), synth.load_masks(b / "masks" / p.name))


def test_antibody_grouping(dataset):
    out, summary = dataset
    table = read_labels(out / "labels.csv")
    abs_ = table.extra["Antibody"]
    ids = table.ids
    for i, fid in enumerate(ids):
        for j, gid in enumerate(ids):
            same_group = i // 3 == j // 3
            assert (abs_[fid] == abs_[gid]) == same_group
            if same_group:
                assert table.targets[fid] == table.targets[gid]


def test_antibody_params_shared():
    rng = np.random.default_rng(0)
    p = synth.draw_antibody_params(rng, (2, 7))
    a = synth.generate_field(1, size=SIZE, labels=(2, 7), antibody_params=p)
    b = synth.generate_field(2, size=SIZE, labels=(2, 7), antibody_params=p)
    assert a.labels == b.labels and not np.array_equal(a.image, b.image)


def test_noise_files_exact(dataset):
    out, summary = dataset
    clean = read_labels(out / "labels.csv")
    noisy = read_labels(out / "labels_noisy.csv")
    assert noisy.ids == clean.ids
    assert noisy.extra["Antibody"] == clean.extra["Antibody"]
    changed = [fid for fid in clean.ids if clean.targets[fid] != noisy.targets[fid]]
    with open(out / "noise.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["Id"] for r in rows] == changed
    assert len(rows) == round(0.3 * 10)
    for r in rows:
        t = set(map(int, r["Target"].split()))
        nz = set(map(int, r["Noisy"].split()))
        assert t == set(clean.targets[r["Id"]]) and nz == set(noisy.targets[r["Id"]])
        if r["Change"] == "dropped":
            assert nz < t and len(t - nz) == 1
        elif r["Change"] == "added":
            assert t < nz and len(nz - t) == 1
        else:
            assert r["Change"] == "swapped"
            assert len(t) == len(nz) and len(t - nz) == 1
        assert 1 <= len(nz) <= 4


@pytest.mark.parametrize("rate,n", [(0.5, 7), (1.0, 4), (0.01, 30)])
def test_noise_count(tmp_path, rate, n, monkeypatch):
    # rendering is not what is tested here: make it trivial
    monkeypatch.setattr(synth_dataset, "write_field", lambda out_dir, fld, level=0: None)
    monkeypatch.setattr(synth_dataset, "generate_field", _fake_field)
    s = synth.generate_dataset(tmp_path / "d", n, 1, size=64, noise_rate=rate)
    assert len(s.noisy) == round(rate * n)
    with open(tmp_path / "d" / "noise.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == round(rate * n)


def _fake_field(seed, size, labels, *, antibody_params=None, id="x", antibody="ab", freq="uniform", version=2):
    return synth.SyntheticField(id=id, image=np.zeros((4, size, size), np.uint8),
                                masks=np.zeros((NUM_CLASSES, size, size), bool), labels=tuple(labels),
                                antibody=antibody)


def test_no_noise_files_without_noise(tmp_path):
    synth.generate_dataset(tmp_path / "d", 1, 1, size=64)
    assert not (tmp_path / "d" / "noise.csv").exists()
    assert not (tmp_path / "d" / "labels_noisy.csv").exists()


def test_progress_called(tmp_path):
    calls = []
    synth.generate_dataset(tmp_path / "d", 2, 1, size=64, progress=lambda i, n: calls.append((i, n)))
    assert calls == [(1, 2), (2, 2)]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"n": 0}, "n must"),
        ({"size": 63}, "size"),
        ({"noise_rate": 1.5}, "noise_rate"),
        ({"noise_rate": -0.1}, "noise_rate"),
        ({"fields_per_antibody": 0}, "fields_per_antibody"),
        ({"freq": "zipf"}, "freq"),
        ({"compress_level": 10}, "compress_level"),
    ],
)
def test_bad_dataset_arguments(tmp_path, kwargs, match):
    args = {"n": 2, "size": 64}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        synth.generate_dataset(tmp_path / "d", args.pop("n"), 1, **args)
    assert not (tmp_path / "d" / "labels.csv").exists()


def test_refuses_existing_dataset(tmp_path):
    synth.generate_dataset(tmp_path / "d", 1, 1, size=64)
    before = (tmp_path / "d" / "labels.csv").read_bytes()
    with pytest.raises(ValueError, match="labels.csv"):
        synth.generate_dataset(tmp_path / "d", 1, 2, size=64)
    assert (tmp_path / "d" / "labels.csv").read_bytes() == before


def test_mask_roundtrip(tmp_path):
    m = np.zeros((NUM_CLASSES, 37, 45), bool)
    m[3, 5:9, 2:40] = True
    m[27, 0, 44] = True
    synth.save_masks(tmp_path / "m.npz", m)
    assert np.array_equal(synth.load_masks(tmp_path / "m.npz"), m)
    np.savez_compressed(tmp_path / "full.npz", masks=m)
    assert np.array_equal(synth.load_masks(tmp_path / "full.npz"), m)


@pytest.mark.parametrize("cls", [11, 12, 21])
def test_filament_and_rim_patterns_stay_in_cells(cls):
    # intermediate filaments, actin and the membrane rim must not leak into background
    f = synth.generate_field(300 + cls, size=256, labels=[cls])
    from scipy.ndimage import binary_dilation

    cells = binary_dilation(f.image[[0, 2, 3]].max(0) > 6, iterations=3)
    g = f.image[1].astype(float)
    assert g[~cells].mean() < 3 and np.percentile(g[~cells], 99) < 20


def test_a_field_too_small_for_its_classes_is_a_clear_error(tmp_path):
    from napari_hpa.errors import SynthError
    from napari_hpa.synth import generate_dataset

    # seed 5 at 64 px draws cell junctions and actin filaments where no layout fits them
    with pytest.raises(SynthError, match="64-px field .* a larger --size helps"):
        generate_dataset(tmp_path / "d", 44, seed=5, size=64)
