"""What the embedding map shows of each field (no Qt): the map of a ``predict`` run joined
with what is known of each field, the colourings, and the selections worth reviewing.

:func:`load_field_map` takes a ``predict`` output folder (its ``embeddings.npz``, and its
submission and domain CSVs when present), an embeddings ``.npz`` or a map CSV written by
``napari-hpa map``; it lays the embeddings out (:mod:`napari_hpa.embedmap`) unless a map CSV
is given, and joins a labels CSV and a review session when given.  The result,
:class:`FieldMap`, holds per field:

* ``predicted``: the run's predicted classes; ``labelled``: the labels (the review session's
  current labels, else the labels CSV's);
* ``verdict``: ``in domain``, ``out of domain`` or ``unknown``;
* ``review``: ``reviewed``, ``changed``, ``unsure``, ``to review`` or ``not in session``;
* ``outlier``: one minus the mean cosine similarity to its nearest neighbours (high: alone);
* ``disagreement``: one minus the mean Jaccard similarity between the field's classes and
  its neighbours' (labelled classes where known, else predicted): high where the labels do
  not look like the neighbours'.

:meth:`FieldMap.features` is the table a napari Points layer carries;
:meth:`FieldMap.colour_values` the values a colouring uses (a class name per field for the
class colourings: of a multi-label set the class rarest in the folder, which tells most).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .classes import CLASSES
from .embedmap import DEFAULT_NEIGHBOURS, EmbeddingMap, embedding_map, load_embeddings, read_map_csv
from .errors import FileError

#: colouring -> (what the user sees, "class" | "category" | "value")
COLOUR_BY: dict[str, tuple[str, str]] = {
    "predicted": ("predicted class", "class"),
    "labelled": ("labelled class", "class"),
    "verdict": ("domain verdict", "category"),
    "review": ("review state", "category"),
    "disagreement": ("label / neighbour disagreement", "value"),
    "outlier": ("outlier score", "value"),
}
NONE = "(none)"
_GREY, _DARK = (0.62, 0.62, 0.62), (0.33, 0.33, 0.33)
#: the fixed colours of the categories (RGB, 0-1)
CATEGORY_COLOURS: dict[str, tuple[float, float, float]] = {
    "in domain": (0.30, 0.69, 0.31), "out of domain": (1.0, 0.32, 0.32), "unknown": _DARK,
    "to review": _GREY, "reviewed": (0.30, 0.69, 0.31), "changed": (0.26, 0.65, 0.96),
    "unsure": (1.0, 0.70, 0.0), "not in session": _DARK, NONE: (0.92, 0.92, 0.92), "": _DARK,
}
#: the ramp of the value colourings, low to high
_RAMP = np.array([(0.23, 0.30, 0.58), (0.95, 0.80, 0.20), (0.95, 0.20, 0.15)])


def class_colour(index: int) -> tuple[float, float, float]:
    """A class's colour: hues a golden angle apart, lightness alternating."""
    import colorsys

    return colorsys.hsv_to_rgb((index * 0.618034) % 1.0, 0.55 + 0.35 * (index % 2),
                               1.0 - 0.22 * (index % 3 == 2))


_CLASS_OF_NAME = {c.name: c.index for c in CLASSES}
_PALETTE = np.array([class_colour(c.index) for c in CLASSES])


def ramp(values: np.ndarray) -> np.ndarray:
    """``[N, 3]`` colours of ``values`` on the ramp from 0 to their 99th percentile (or 1,
    whichever is lower; NaN grey)."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    top = min(float(np.percentile(v[finite], 99)), 1.0) if finite.any() else 1.0
    t = np.clip(np.where(finite, v, 0) / max(top, 1e-6), 0, 1) * (len(_RAMP) - 1)
    lo = np.minimum(t.astype(int), len(_RAMP) - 2)
    frac = (t - lo)[:, None]
    out = _RAMP[lo] * (1 - frac) + _RAMP[lo + 1] * frac
    out[~finite] = _GREY
    return out


@dataclass
class FieldMap:
    map: EmbeddingMap
    predicted: list[tuple[int, ...] | None]
    labelled: list[tuple[int, ...] | None]
    verdict: list[str]
    review: list[str]
    outlier: np.ndarray  # [N] float32
    disagreement: np.ndarray  # [N] float32
    sources: dict[str, str]  # what was read: "embeddings", "map", "predictions", "labels", "session"
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def prepare(self) -> FieldMap:
        """Work out the features and every colouring now (in a worker thread, say), so that
        showing the map later only hands arrays over."""
        self.features()
        for by in COLOUR_BY:
            self.colours(by)
        return self

    def _cached(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def ids(self) -> list[str]:
        return self.map.ids

    def __len__(self) -> int:
        return len(self.map.ids)

    def features(self) -> dict[str, list | np.ndarray]:
        """The columns of the Points layer: id, predicted, labelled, verdict, review,
        disagreement and outlier (class lists as ``"0 Nucleoplasm, 25 Cytosol"``)."""
        return self._cached("features", lambda: {
            "id": list(self.ids),
            "predicted": [_names(s) for s in self.predicted],
            "labelled": [_names(s) for s in self.labelled],
            "verdict": list(self.verdict),
            "review": list(self.review),
            "disagreement": np.round(self.disagreement, 3),
            "outlier": np.round(self.outlier, 3),
        })

    def colour_values(self, by: str) -> list[str] | np.ndarray:
        """Per field, the value colouring ``by`` (a key of :data:`COLOUR_BY`) uses."""
        if by not in COLOUR_BY:
            raise ValueError(f"unknown colouring {by!r}; choose one of {', '.join(COLOUR_BY)}")
        if by in ("predicted", "labelled"):
            return self._cached(("values", by), lambda: main_classes(getattr(self, by)))
        if by in ("disagreement", "outlier"):
            return getattr(self, by)
        return list(getattr(self, by))

    def colours(self, by: str) -> np.ndarray:
        """``[N, 4]`` RGBA colours of the fields coloured ``by``."""
        return self._cached(("colours", by), lambda: self._colours(by))

    def _colours(self, by: str) -> np.ndarray:
        values = self.colour_values(by)
        if COLOUR_BY[by][1] == "value":
            rgb = ramp(values)
        else:
            names = sorted(set(values))
            table = np.array([_PALETTE[_CLASS_OF_NAME[v]] if v in _CLASS_OF_NAME
                              else CATEGORY_COLOURS.get(v, _DARK) for v in names]).reshape(-1, 3)
            index = {v: i for i, v in enumerate(names)}
            rgb = table[np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values))]
        return np.concatenate([rgb.reshape(-1, 3), np.ones((len(self), 1))], axis=1).astype(np.float32)

    def legend(self, by: str, limit: int = 12) -> list[tuple[str, tuple[float, float, float], int]]:
        """``(name, colour, count)`` of the colouring's categories, most frequent first (at
        most ``limit``); for a value colouring, the ramp's stops (0, half the top, the top:
        the 99th percentile or 1) with the fields from each stop to the next."""
        values = self.colour_values(by)
        if COLOUR_BY[by][1] == "value":
            finite = np.asarray(values)[np.isfinite(values)]
            top = min(float(np.percentile(finite, 99)), 1.0) if len(finite) else 1.0
            out = [("0", tuple(_RAMP[0]), int((finite < top / 2).sum())),
                   (f"{top / 2:.2f}", tuple(_RAMP[1]), int(((finite >= top / 2) & (finite < top)).sum())),
                   (f"{top:.2f} or more", tuple(_RAMP[-1]), int((finite >= top).sum()))]
            return out + ([("unknown", _GREY, len(values) - len(finite))] if len(finite) < len(values) else [])
        colours = self.colours(by)
        first = {}
        for i, v in enumerate(values):
            first.setdefault(v, i)
        counts = Counter(values)
        return [(v or "unknown", tuple(float(x) for x in colours[first[v], :3]), n)
                for v, n in counts.most_common(limit)]

    def top(self, by: str, n: int) -> list[int]:
        """The ``n`` fields scoring highest on ``by`` (``outlier`` or ``disagreement``),
        highest first (ties by position)."""
        if by not in ("outlier", "disagreement"):
            raise ValueError(f"can only select by outlier or disagreement, not {by!r}")
        values = getattr(self, by)
        order = np.lexsort((np.arange(len(values)), -values))
        return [int(i) for i in order if np.isfinite(values[i])][: max(n, 0)]


def _names(classes: tuple[int, ...] | None) -> str:
    if classes is None:
        return ""
    return ", ".join(f"{c} {CLASSES[c].name}" for c in classes) or NONE


def main_classes(sets: list[tuple[int, ...] | None]) -> list[str]:
    """One class name per field: of its classes the one rarest among all fields (ties: the
    lower index), ``(none)`` for an empty set, ``""`` where unknown."""
    counts = Counter(c for s in sets if s for c in s)
    out = []
    for s in sets:
        if s is None:
            out.append("")
        elif not s:
            out.append(NONE)
        else:
            out.append(CLASSES[min(s, key=lambda c: (counts[c], c))].name)
    return out


def _jaccard(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    sa, sb = set(a), set(b)
    return 1.0 if not sa and not sb else len(sa & sb) / len(sa | sb)


def neighbour_disagreement(sets: list[tuple[int, ...] | None], neighbours: np.ndarray) -> np.ndarray:
    """``1 - mean Jaccard(set, neighbour's set)`` over the neighbours whose set is known
    (NaN where the field's own set or all its neighbours' are unknown)."""
    out = np.full(len(sets), np.nan, dtype=np.float32)
    for i, s in enumerate(sets):
        if s is None:
            continue
        sims = [_jaccard(s, sets[j]) for j in neighbours[i] if sets[j] is not None]
        if sims:
            out[i] = 1.0 - float(np.mean(sims))
    return out


def _review_states(ids: list[str], session) -> list[str]:
    from .review import QueueFilter

    in_session = set(session.ids)
    reviewed = dict(zip(session.ids, session.reviewed_array()))
    changed = set(session.changed_ids())
    unsure = set(session.queue("listed", filters=QueueFilter(unsure=True)))
    out = []
    for i in ids:
        if i not in in_session:
            out.append("not in session")
        elif i in unsure:
            out.append("unsure")
        elif i in changed:
            out.append("changed")
        else:
            out.append("reviewed" if reviewed[i] else "to review")
    return out


def _resolve(path: Path) -> tuple[Path | None, Path | None, Path | None]:
    """``(embeddings, map CSV, predictions folder)`` of what the user chose."""
    from .folder import OUTPUT_NAMES  # not at import: the command line's parser reads COLOUR_BY
    if path.is_dir():
        emb = path / OUTPUT_NAMES["embeddings"]
        if not emb.is_file():
            raise FileError(f"holds no {OUTPUT_NAMES['embeddings']}: run predict with "
                            "--embeddings (or the batch dock with embeddings ticked)", path)
        return emb, None, path
    if not path.is_file():
        raise FileError("no such file or folder", path)
    if path.suffix.lower() == ".csv":
        return None, path, path.parent
    return path, None, path.parent


def load_field_map(
    path: str | Path,
    *,
    labels: str | Path | None = None,
    session=None,
    method: str = "auto",
    seed: int = 0,
    k: int = DEFAULT_NEIGHBOURS,
    progress: Callable[[str], None] | None = None,
) -> FieldMap:
    """The :class:`FieldMap` of ``path`` (a predict output folder, an embeddings ``.npz`` or
    a map CSV), with ``labels`` (a labels CSV) and ``session`` (a
    :class:`~napari_hpa.review.ReviewSession`) joined when given.  ``progress`` is told
    each step in words."""
    from .folder import OUTPUT_NAMES, read_predictions
    from .labels import read_labels

    say = progress or (lambda _text: None)
    path = Path(path)
    emb_path, map_path, run = _resolve(path)
    sources: dict[str, str] = {}
    if map_path is not None:
        say("reading the map")
        m = read_map_csv(map_path)
        sources["map"] = str(map_path)
    else:
        say("reading the embeddings")
        ids, emb = load_embeddings(emb_path)
        sources["embeddings"] = str(emb_path)
        say(f"laying out {len(ids):,} fields")
        m = embedding_map(ids, emb, method=method, seed=seed, k=k)
    n = len(m.ids)
    predicted: list[tuple[int, ...] | None] = [None] * n
    verdict = ["unknown"] * n
    names = [OUTPUT_NAMES[key] for key in ("submission", "domain")]
    if run is not None and any((run / name).is_file() for name in names):
        say("reading the predictions")
        preds = read_predictions(run)
        predicted = [preds.labels.get(i) for i in m.ids]
        for j, image_id in enumerate(m.ids):
            v = preds.domain.get(image_id, (None,))[0]
            verdict[j] = {True: "in domain", False: "out of domain", None: "unknown"}[v]
        sources["predictions"] = str(run)
    labelled: list[tuple[int, ...] | None] = [None] * n
    if labels is not None:
        say("reading the labels")
        table = read_labels(labels).targets
        labelled = [table.get(i) for i in m.ids]
        sources["labels"] = str(labels)
    review = ["not in session"] * n
    if session is not None:
        say("reading the review session")
        current = dict(zip(session.ids, session.labels_array()))
        labelled = [tuple(int(c) for c in np.flatnonzero(current[i])) if i in current else labelled[j]
                    for j, i in enumerate(m.ids)]
        review = _review_states(m.ids, session)
        sources["session"] = str(session.path)
    basis = [lab if lab is not None else pred for lab, pred in zip(labelled, predicted)]
    return FieldMap(
        map=m, predicted=predicted, labelled=labelled, verdict=verdict, review=review,
        outlier=(1.0 - m.similarities.mean(axis=1)).astype(np.float32),
        disagreement=neighbour_disagreement(basis, m.neighbours), sources=sources,
    )
