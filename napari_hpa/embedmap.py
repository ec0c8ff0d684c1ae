"""A whole folder at once: a 2-D map of the fields' embeddings and each field's nearest
neighbours (no Qt; ``napari-hpa map``).

The input is what ``predict --embeddings`` and ``index`` write: an ``.npz`` with ``ids`` and
``embeddings``.  :func:`embedding_map` lays the embeddings out in two dimensions with UMAP on
cosine distance when ``umap-learn`` is installed, else with PCA (always available, exact and
deterministic); either way the same ``seed`` gives the same coordinates.
:func:`nearest_neighbours` is an exact cosine search, in blocks so that memory stays small
for tens of thousands of fields.  :func:`map_csv` writes ``Id,x,y,neighbours,similarities``
(the neighbours' ids and cosine similarities, best first, space-separated).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FileError

METHODS = ("auto", "umap", "pca")
DEFAULT_NEIGHBOURS = 5


@dataclass
class EmbeddingMap:
    ids: list[str]
    xy: np.ndarray  # [N, 2]
    method: str  # "umap" or "pca" ("csv": read from a map CSV)
    neighbours: np.ndarray  # [N, k] row indices, best first
    similarities: np.ndarray  # [N, k] cosine similarities


def load_embeddings(path: str | Path) -> tuple[list[str], np.ndarray]:
    """``(ids, embeddings [N, D] float32)`` of an ``.npz`` written by ``predict --embeddings``."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            ids = [str(i) for i in z["ids"]]
            emb = np.asarray(z["embeddings"], dtype=np.float32)
    except FileNotFoundError:
        raise FileError("no such embeddings file", path) from None
    except (OSError, KeyError, ValueError) as exc:
        raise FileError(f"not an embeddings file (.npz with 'ids' and 'embeddings'): {exc}", path) from None
    if emb.ndim != 2 or len(ids) != len(emb):
        raise FileError(f"'embeddings' has shape {emb.shape} for {len(ids)} ids; [N, D] is needed", path)
    if len(ids) < 3:
        raise FileError(f"{len(ids)} embeddings: a map needs at least 3", path)
    if len(set(ids)) != len(ids):
        raise FileError("an id appears twice", path)
    bad = ~np.isfinite(emb).all(1)
    if bad.any():
        raise FileError(f"{int(bad.sum())} embeddings hold NaN or infinite values "
                        f"(first: {ids[int(np.flatnonzero(bad)[0])]!r})", path)
    return ids, emb


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def nearest_neighbours(emb: np.ndarray, k: int = DEFAULT_NEIGHBOURS, block: int = 1024):
    """``(indices [N, k], similarities [N, k])``: each row's ``k`` most cosine-similar other
    rows, best first (ties by index)."""
    x = _unit(np.asarray(emb, dtype=np.float32))
    n = len(x)
    k = min(k, n - 1)
    idx = np.zeros((n, k), dtype=np.int64)
    sim = np.zeros((n, k), dtype=np.float32)
    for start in range(0, n, block):
        s = x[start : start + block] @ x.T
        rows = np.arange(len(s))
        s[rows, start + rows] = -np.inf  # not itself
        part = np.argpartition(-s, k - 1, axis=1)[:, :k] if k < n - 1 else np.tile(np.arange(n), (len(s), 1))
        part_sim = np.take_along_axis(s, part, 1)
        order = np.lexsort((part, -part_sim), axis=1)
        idx[start : start + len(s)] = np.take_along_axis(part, order, 1)[:, :k]
        sim[start : start + len(s)] = np.take_along_axis(part_sim, order, 1)[:, :k]
    return idx, sim


def _pca(x: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    xy = PCA(n_components=2, svd_solver="full", random_state=seed).fit_transform(x)
    signs = np.sign(xy[np.argmax(np.abs(xy), axis=0), [0, 1]])  # a fixed orientation
    return (xy * np.where(signs == 0, 1, signs)).astype(np.float32)


def embedding_map(ids, emb: np.ndarray, *, method: str = "auto", seed: int = 0,
                  k: int = DEFAULT_NEIGHBOURS) -> EmbeddingMap:
    """The 2-D map and the neighbours of ``emb`` (rows named by ``ids``)."""
    if method not in METHODS:
        raise FileError(f"unknown map method {method!r}; choose one of {', '.join(METHODS)}")
    if k < 1:
        raise FileError(f"--neighbours must be at least 1, not {k}")
    x = _unit(np.asarray(emb, dtype=np.float32))
    used = method
    if method in ("auto", "umap"):
        try:
            import umap  # optional: umap-learn
        except ImportError:
            if method == "umap":
                raise FileError("--method umap needs umap-learn: pip install umap-learn") from None
            used = "pca"
        else:
            used = "umap"
            xy = umap.UMAP(n_components=2, metric="cosine", random_state=seed, n_jobs=1,
                           n_neighbors=min(15, len(x) - 1)).fit_transform(x).astype(np.float32)
    if used == "pca":
        xy = _pca(x, seed)
    idx, sim = nearest_neighbours(x, k)
    return EmbeddingMap(list(ids), xy, used, idx, sim)


MAP_HEADER = ["Id", "x", "y", "neighbours", "similarities"]


def read_map_csv(path: str | Path) -> EmbeddingMap:
    """The :class:`EmbeddingMap` of a CSV written by :func:`map_csv` (``napari-hpa map``)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except FileNotFoundError:
        raise FileError("no such map CSV", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FileError(f"cannot read the map CSV: {exc}", path) from None
    if not rows or [h.strip() for h in rows[0]] != MAP_HEADER:
        raise FileError(f"is not a map CSV (the header must be {','.join(MAP_HEADER)}, as "
                        "'napari-hpa map' writes)", path)
    body = [(n, r) for n, r in enumerate(rows[1:], start=2) if r]
    ids = [r[0] for _, r in body]
    if len(ids) < 3 or len(set(ids)) != len(ids):
        raise FileError("needs at least 3 rows with different ids", path)
    row_of = {i: n for n, i in enumerate(ids)}
    xy = np.zeros((len(ids), 2), dtype=np.float32)
    nbrs, sims = [], []
    for n, (line, r) in enumerate(body):
        try:
            if len(r) != 5:
                raise ValueError(f"{len(r)} fields instead of 5")
            xy[n] = float(r[1]), float(r[2])
            nbrs.append([row_of[i] for i in r[3].split()])
            sims.append([float(v) for v in r[4].split()])
        except KeyError as exc:
            raise FileError(f"line {line}: neighbour {exc.args[0]!r} is not a row of the map", path) from None
        except ValueError as exc:
            raise FileError(f"line {line}: {exc}", path) from None
        if len(nbrs[-1]) != len(sims[-1]) or len(nbrs[-1]) != len(nbrs[0]):
            raise FileError(f"line {line}: neighbours and similarities do not match "
                            "(each row needs the same number of both)", path)
    if not np.isfinite(xy).all():
        raise FileError("holds coordinates that are not finite numbers", path)
    return EmbeddingMap(ids, xy, "csv", np.asarray(nbrs, dtype=np.int64).reshape(len(ids), -1),
                        np.asarray(sims, dtype=np.float32).reshape(len(ids), -1))


def map_csv(m: EmbeddingMap) -> str:
    """``Id,x,y,neighbours,similarities`` as text (ids in the input's order)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(MAP_HEADER)
    for i, image_id in enumerate(m.ids):
        w.writerow([image_id, f"{m.xy[i, 0]:.6f}", f"{m.xy[i, 1]:.6f}",
                    " ".join(m.ids[j] for j in m.neighbours[i]),
                    " ".join(f"{s:.4f}" for s in m.similarities[i])])
    return buf.getvalue()
