"""``napari-hpa map``: a deterministic 2-D map and exact nearest neighbours of embeddings."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from napari_hpa.cli import main
from napari_hpa.embedmap import embedding_map, load_embeddings, nearest_neighbours
from napari_hpa.errors import FileError


def _emb(n=60, d=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, d))
    return (centres[np.arange(n) % 3] + 0.3 * rng.normal(size=(n, d))).astype(np.float32)


def test_neighbours_match_a_brute_force_cosine_search():
    x = _emb(75)
    idx, sim = nearest_neighbours(x, k=4, block=16)  # blocks that do not divide N
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    full = u @ u.T
    np.fill_diagonal(full, -np.inf)
    for i in range(len(x)):
        expected = np.argsort(-full[i], kind="stable")[:4]
        assert list(idx[i]) == list(expected)
        np.testing.assert_allclose(sim[i], full[i, expected], rtol=1e-5)
    every, _ = nearest_neighbours(x[:5], k=10)  # more neighbours asked than there are
    assert every.shape == (5, 4) and all(i not in every[i] for i in range(5))


def test_the_map_is_deterministic_and_keeps_clusters_apart():
    x = _emb()
    a = embedding_map([f"f{i}" for i in range(len(x))], x, method="pca", seed=3)
    b = embedding_map([f"f{i}" for i in range(len(x))], x.copy(), method="pca", seed=3)
    assert a.method == "pca" and a.xy.shape == (60, 2)
    np.testing.assert_array_equal(a.xy, b.xy)
    groups = np.arange(60) % 3
    centres = np.stack([a.xy[groups == g].mean(0) for g in range(3)])
    spread = max(np.linalg.norm(a.xy[groups == g] - centres[g], axis=1).mean() for g in range(3))
    gaps = [np.linalg.norm(centres[i] - centres[j]) for i in range(3) for j in range(i + 1, 3)]
    assert min(gaps) > 2 * spread


def test_the_command_writes_ids_coordinates_and_neighbours(tmp_path, capsys):
    x = _emb(30)
    ids = [f"id{i:02d}" for i in range(30)]
    src = tmp_path / "emb.npz"
    np.savez(src, ids=np.array(ids), embeddings=x)
    out = tmp_path / "map.csv"
    assert main(["map", str(src), "--out", str(out), "--neighbours", "3", "--method", "pca"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["Id"] for r in rows] == ids
    idx, sim = nearest_neighbours(x, 3)
    for i, r in enumerate(rows):
        assert r["neighbours"].split() == [ids[j] for j in idx[i]]
        assert [float(s) for s in r["similarities"].split()] == pytest.approx(sim[i], abs=1e-4)
        float(r["x"]), float(r["y"])
    again = tmp_path / "again.csv"
    assert main(["map", str(src), "--out", str(again), "--neighbours", "3", "--method", "pca"]) == 0
    assert again.read_bytes() == out.read_bytes()
    assert main(["map", str(src), "--out", str(src)]) == 2  # never over its input
    assert "destroy" in capsys.readouterr().err


@pytest.mark.parametrize("arrays, message", [
    ({"ids": np.array(["a", "b", "c"])}, "not an embeddings file"),
    ({"ids": np.array(["a", "b"]), "embeddings": np.zeros((2, 4))}, "at least 3"),
    ({"ids": np.array(["a", "a", "b"]), "embeddings": np.zeros((3, 4))}, "twice"),
    ({"ids": np.array(["a", "b", "c"]), "embeddings": np.array([[1, 0], [0, np.nan], [1, 1]])}, "NaN"),
    ({"ids": np.array(["a", "b", "c"]), "embeddings": np.zeros((2, 4))}, "shape"),
])
def test_bad_embeddings_files_are_named(tmp_path, arrays, message):
    path = tmp_path / "e.npz"
    np.savez(path, **arrays)
    with pytest.raises(FileError, match=message):
        load_embeddings(path)
    with pytest.raises(FileError, match="no such"):
        load_embeddings(tmp_path / "none.npz")


def test_umap_layouts_are_deterministic_for_a_seed_and_keep_clusters_apart():
    x = _emb(90)
    ids = [f"f{i}" for i in range(len(x))]
    a = embedding_map(ids, x, method="umap", seed=5)
    b = embedding_map(ids, x.copy(), method="auto", seed=5)
    assert a.method == b.method == "umap"
    np.testing.assert_array_equal(a.xy, b.xy)
    groups = np.arange(len(x)) % 3
    centres = np.stack([a.xy[groups == g].mean(0) for g in range(3)])
    spread = max(np.linalg.norm(a.xy[groups == g] - centres[g], axis=1).mean() for g in range(3))
    assert min(np.linalg.norm(centres[i] - centres[j]) for i in range(3) for j in range(i + 1, 3)) > 2 * spread
