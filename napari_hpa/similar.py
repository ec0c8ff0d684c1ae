"""Similar images: a reference index of embeddings, and nearest-neighbour look-up.

The 1st-place rule: a query whose nearest reference image has cosine
similarity above a threshold (0.65 by default) may take that image's labels.
An index is one ``.npz`` file: ``ids``, ``embeddings`` (L2-normalised rows),
``targets`` (Kaggle strings such as ``"0 25"``), ``paths`` (a file of each
set, to open it) and ``ensemble`` (which model made the embeddings).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .classes import CLASS_NAMES
from .errors import HPAError, file_errors
from .labels import format_target, parse_target, read_labels

DEFAULT_SIMILARITY = 0.65


class ReferenceIndexError(HPAError):
    """A reference index that cannot be built or used."""


@dataclass(frozen=True)
class Neighbour:
    id: str
    similarity: float
    labels: tuple[int, ...]
    path: str

    @property
    def label_names(self) -> list[str]:
        return [CLASS_NAMES[i] for i in self.labels]


@dataclass
class ReferenceIndex:
    ids: list[str]
    embeddings: np.ndarray  # [M, D]
    targets: list[tuple[int, ...]]
    paths: list[str]
    ensemble: str = ""

    def __len__(self) -> int:
        return len(self.ids)

    def save(self, path: str | Path) -> Path:
        from .fileio import atomic_save_npz

        path = Path(path)
        with file_errors(path, writing=True):
            path.parent.mkdir(parents=True, exist_ok=True)
        atomic_save_npz(
            path,
            compressed=False,
            ids=np.array(self.ids),
            embeddings=self.embeddings.astype(np.float32),
            targets=np.array([format_target(t) for t in self.targets]),
            paths=np.array(self.paths),
            ensemble=np.array(self.ensemble),
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> ReferenceIndex:
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(
                    ids=[str(i) for i in z["ids"]],
                    embeddings=z["embeddings"].astype(np.float32),
                    targets=[parse_target(str(t)) for t in z["targets"]],
                    paths=[str(p) for p in z["paths"]],
                    ensemble=str(z["ensemble"]),
                )
        except FileNotFoundError:
            raise ReferenceIndexError(f"{path}: no such index file") from None
        except (OSError, KeyError, ValueError) as exc:
            raise ReferenceIndexError(f"{path}: not a napari-hpa reference index ({exc})") from None

    def query(self, embedding: np.ndarray, k: int = 5, exclude: str | None = None) -> list[Neighbour]:
        """The ``k`` most similar reference images (cosine similarity), best first."""
        q = np.asarray(embedding, dtype=np.float32).ravel()
        if q.shape[0] != self.embeddings.shape[1]:
            raise ReferenceIndexError(
                f"the query embedding has {q.shape[0]} dimensions, the index "
                f"{self.embeddings.shape[1]} (made by another model?)"
            )
        q = q / max(float(np.linalg.norm(q)), 1e-12)
        sims = self.embeddings @ q
        order = np.argsort(-sims, kind="stable")
        out = []
        for j in order:
            if self.ids[j] == exclude:
                continue
            out.append(Neighbour(self.ids[j], float(sims[j]), self.targets[j], self.paths[j]))
            if len(out) == k:
                break
        return out


def suggest_labels(
    neighbours: list[Neighbour], threshold: float = DEFAULT_SIMILARITY
) -> tuple[int, ...] | None:
    """The nearest neighbour's labels if its similarity exceeds ``threshold``, else ``None``."""
    if neighbours and neighbours[0].similarity > threshold:
        return neighbours[0].labels
    return None


def build_index(
    ensemble,
    folder: str | Path,
    labels_csv: str | Path,
    *,
    batch_size: int = 8,
    workers: int = 2,
    on_error: Callable[[str, str, str], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReferenceIndex:
    """Embed every set of ``folder`` that ``labels_csv`` labels (with the prediction stream)."""
    from .engine.stream import collect_sources, failure_row, iter_predictions

    if ensemble.embedding_member is None:
        raise ReferenceIndexError(
            f"ensemble {ensemble.name!r} has no member with an 'embedding' output; "
            "similar images need one"
        )
    labels = read_labels(labels_csv)
    sources, problems = collect_sources([folder])
    sources = [s for s in sources if s.id in labels.targets]
    if not sources:
        raise ReferenceIndexError(f"{folder}: none of its image sets is labelled in {labels_csv}")
    for problem in problems:
        if on_error:
            on_error(*problem)
    ids, embeddings = [], []
    for item in iter_predictions(ensemble, sources, batch_size=batch_size, workers=workers,
                                 need_embeddings=True):
        for source, exc in item.failed:
            if on_error:
                on_error(*failure_row(source, exc))
        pred = item.prediction
        if pred is not None:
            for i, image_id in enumerate(pred.ids):
                if i in pred.failures:
                    if on_error:
                        on_error(image_id, "", f"image set {image_id!r}: {pred.failures[i]}")
                else:
                    ids.append(image_id)
                    embeddings.append(pred.embeddings[i].astype(np.float32))
        if progress:
            progress(item.done, item.total)
    dim = ensemble.embedding_member.info.embedding_dim
    path_of = {s.id: str(s.paths[0]) for s in sources}
    return ReferenceIndex(
        ids=ids,
        embeddings=np.stack(embeddings) if embeddings else np.zeros((0, dim), np.float32),
        targets=[labels.targets[i] for i in ids],
        paths=[path_of[i] for i in ids],
        ensemble=f"{ensemble.name}:{ensemble.embedding_member.name}",
    )
