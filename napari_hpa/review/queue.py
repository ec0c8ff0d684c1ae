"""The review queue of a session: the label-confidence scores and issue masks that the
orders and highlights use, building a queue in an order of :mod:`.ordering` with a class
filter and the :class:`QueueFilter` (predicted class, changed, has a note, unsure, not yet
reviewed), persisting it, and the cursor (position, current id, next, previous, jump).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ..classes import NUM_CLASSES
from ..errors import SessionError
from ..labels import format_target
from . import ordering
from .db import SCORE_KIND, SessionDB


def filter_classes(class_filter: int | Iterable[int] | None) -> list[int]:
    if class_filter is None:
        return []
    if isinstance(class_filter, (int, np.integer)):
        class_filter = [class_filter]
    out = sorted({int(k) for k in class_filter})
    for k in out:
        if not 0 <= k < NUM_CLASSES:
            raise ValueError(f"class index {k} is outside 0-{NUM_CLASSES - 1}")
    return out


@dataclass(frozen=True)
class QueueFilter:
    """Which images a queue keeps, besides the class filter (all conditions together):
    the model predicts any of ``predicted`` (classes; needs probabilities), the labels differ
    from the import (``changed``), the image has a note (``noted``), is marked unsure, is not
    yet marked reviewed (``unreviewed``).  Any queue order combines with it."""

    predicted: tuple[int, ...] = ()
    changed: bool = False
    noted: bool = False
    unsure: bool = False
    unreviewed: bool = False

    def __post_init__(self):
        object.__setattr__(self, "predicted", tuple(filter_classes(self.predicted)))

    def __bool__(self) -> bool:
        return bool(self.predicted) or self.changed or self.noted or self.unsure or self.unreviewed

    @property
    def words(self) -> str:
        """``"predicted 6, changed, not yet reviewed"``; empty when it keeps everything."""
        parts = [f"predicted {' or '.join(map(str, self.predicted))}"] if self.predicted else []
        parts += [w for on, w in ((self.changed, "changed"), (self.noted, "with a note"),
                                  (self.unsure, "unsure"), (self.unreviewed, "not yet reviewed"))
                  if on]
        return ", ".join(parts)

    def to_json(self) -> str:
        d = asdict(self)
        d["predicted"] = list(self.predicted)
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str | None) -> QueueFilter:
        d = json.loads(text) if text else {}
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def keep(self, db: SessionDB, labels: np.ndarray, probs: np.ndarray | None) -> np.ndarray:
        """``(N,)`` bool: the images of ``db`` (input order) it keeps."""
        keep = np.ones(len(db.ids), dtype=bool)
        if self.predicted:
            if probs is None:
                raise SessionError("has no model probabilities, which the filter on predicted "
                                   "classes needs: import it with --probs", path=db.path)
            pred = ordering.predicted_sets(probs, db.thresholds)
            keep &= pred[:, list(self.predicted)].any(axis=1)
        if self.changed or self.noted or self.unsure or self.unreviewed:
            with db.lock:
                rows = db.conn.execute("SELECT labels != original, note != '', unsure, reviewed "
                                       "FROM images ORDER BY row").fetchall()
            flags = np.array(rows, dtype=bool).reshape(-1, 4)
            for on, col in ((self.changed, flags[:, 0]), (self.noted, flags[:, 1]),
                            (self.unsure, flags[:, 2]), (self.unreviewed, ~flags[:, 3])):
                if on:
                    keep &= col
        return keep


def _everything(order: str, class_filter, filters: QueueFilter) -> bool:
    """Whether a queue is all the images as listed (not stored row by row)."""
    return order == "listed" and not class_filter and not filters


def compute_issues(db: SessionDB) -> np.ndarray:
    """The probability that each image's labels are right (input order,
    :func:`.ordering.label_confidence`), stored with cleanlab's per-class issue mask."""
    probs = db.probabilities_array()
    if probs is None:
        raise SessionError(
            "has no model probabilities: import it with --probs to rank by suspicion",
            path=db.path,
        )
    labels = db.labels_array()
    ab = ordering.calibration(labels, probs)
    scores = ordering.label_confidence(labels, probs, ab)
    mask = ordering.issue_mask(labels, probs)
    weights = (1 << np.arange(NUM_CLASSES, dtype=np.int64))
    bits = (mask.astype(np.int64) * weights).sum(axis=1)
    basis = [format_target(np.flatnonzero(r)) for r in labels]
    with db.write() as c:
        c.executemany(
            "UPDATE images SET score=?, issues=?, issues_basis=? WHERE row=?",
            ((float(s), int(b), t, n) for n, (s, b, t) in enumerate(zip(scores, bits, basis))),
        )
        c.execute("INSERT OR REPLACE INTO meta VALUES ('score', ?)", (SCORE_KIND,))
        c.execute("INSERT OR REPLACE INTO meta VALUES ('calibration', ?)",
                  (json.dumps(ab.tolist()),))
    db.meta["score"] = SCORE_KIND
    db.meta["calibration"] = json.dumps(ab.tolist())
    return scores


def stored_scores(db: SessionDB) -> np.ndarray | None:
    """The stored :func:`compute_issues` scores (input order; NaN where not computed),
    or ``None``."""
    if db.meta.get("score") != SCORE_KIND:
        return None  # none yet, or cleanlab's, stored by an earlier version
    with db.lock:
        vals = [r[0] for r in db.conn.execute("SELECT score FROM images ORDER BY row")]
    if all(v is None for v in vals):
        return None
    return np.array([np.nan if v is None else v for v in vals], dtype=np.float64)


@dataclass(frozen=True)
class Cursor:
    """The persisted queue and where the review stands in it, read at one time."""

    ids: tuple[str, ...]  # the queue
    position: int  # as stored (the current id is clamped to the queue)
    order: str
    class_filter: list[int] | None
    filters: QueueFilter = QueueFilter()

    @property
    def current_id(self) -> str | None:
        if not self.ids:
            return None
        return self.ids[min(self.position, len(self.ids) - 1)]


class Queue:
    """The ``queue`` and ``state`` tables of one session file."""

    def __init__(self, db: SessionDB):
        self._db = db
        self._cache: tuple[str, ...] | None = None

    def _selection_rows(self, selection: Sequence[str] | None) -> np.ndarray:
        """The rows of ``selection`` (ids, in their order), or of the stored selection."""
        db = self._db
        if selection is None:
            stored = db.state("selection")
            if stored is None:
                raise SessionError("has no selection to review: select fields on the HPA map "
                                   "and send them to the review", path=db.path)
            return np.asarray(json.loads(stored), dtype=np.int64)
        unknown = [i for i in selection if i not in db.rows]
        if unknown:
            raise SessionError(f"{len(unknown)} of the {len(selection)} selected fields are not "
                               f"in this session (first: {unknown[0]!r})", path=db.path)
        return np.asarray(list(dict.fromkeys(db.rows[i] for i in selection)), dtype=np.int64)

    def build(
        self, order: str = "listed", class_filter: int | Iterable[int] | None = None,
        filters: QueueFilter | None = None, selection: Sequence[str] | None = None,
    ) -> list[str]:
        """The ids in queue ``order`` with ``class_filter`` and ``filters``, computed now; the
        ``suspicious`` order stores the scores it computes (:func:`compute_issues`).  The
        ``selection`` order keeps ``selection`` (ids, in that order; default: the last
        selection persisted)."""
        db = self._db
        if order == ordering.SELECTION:
            return self._filtered(self._selection_rows(selection), class_filter, filters)
        if order not in ordering.ORDERS:
            raise ValueError(
                f"unknown queue order {order!r}; choose one of {', '.join(ordering.ORDERS)}"
            )
        probs = db.probabilities_array()
        if order in ordering.NEEDS_PROBABILITIES and probs is None:
            raise SessionError(
                f"has no model probabilities, which the queue order {order!r} "
                f"({ordering.ORDERS[order]}) needs: import it with --probs",
                path=db.path,
            )
        labels = db.labels_array()
        scores = compute_issues(db) if order == "suspicious" else None
        idx = ordering.order_indices(
            order, labels, probs, db.reviewed_array(), db.thresholds, scores=scores
        )
        return self._filtered(idx, class_filter, filters, labels, probs)

    def _filtered(self, idx: np.ndarray, class_filter, filters: QueueFilter | None,
                  labels: np.ndarray | None = None, probs: np.ndarray | None = None) -> list[str]:
        db = self._db
        classes = filter_classes(class_filter)
        if classes or filters:
            labels = db.labels_array() if labels is None else labels
        if classes:
            keep = labels[:, classes].any(axis=1)
            idx = idx[keep[idx]]
        if filters:
            if probs is None and filters.predicted:
                probs = db.probabilities_array()
            idx = idx[filters.keep(db, labels, probs)[idx]]
        return [db.ids[i] for i in idx]

    def persist(
        self, order: str = "listed", class_filter: int | Iterable[int] | None = None,
        filters: QueueFilter | None = None, selection: Sequence[str] | None = None,
    ) -> list[str]:
        """Build the queue and persist it with the position reset to 0 (and ``selection``,
        for the ``selection`` order)."""
        filters = filters or QueueFilter()
        ids = self.build(order, class_filter, filters, selection)
        classes = filter_classes(class_filter)
        everything = _everything(order, classes, filters)
        with self._db.write() as c:
            c.execute("DELETE FROM queue")
            if not everything:
                c.executemany(
                    "INSERT INTO queue VALUES (?, ?)",
                    ((n, self._db.rows[i]) for n, i in enumerate(ids)),
                )
            c.executemany(
                "INSERT OR REPLACE INTO state VALUES (?, ?)",
                [("order", order), ("class_filter", json.dumps(classes or None)),
                 ("filters", filters.to_json()), ("position", "0")],
            )
            if order == ordering.SELECTION and selection is not None:
                rows = self._selection_rows(selection).tolist()
                c.execute("INSERT OR REPLACE INTO state VALUES ('selection', ?)", (json.dumps(rows),))
        self._cache = tuple(ids)
        return ids

    # ------------------------------------------------------------------ persisted state

    @property
    def order(self) -> str:
        return self._db.state("order") or "listed"

    @property
    def class_filter(self) -> list[int] | None:
        return json.loads(self._db.state("class_filter") or "null")

    @property
    def filters(self) -> QueueFilter:
        return QueueFilter.from_json(self._db.state("filters"))

    @property
    def everything(self) -> bool:
        """Whether the persisted queue is all the images as listed."""
        state = self._db.states()
        return _everything(state.get("order") or "listed",
                           json.loads(state.get("class_filter") or "null"),
                           QueueFilter.from_json(state.get("filters")))

    def _load_ids(self, order: str, class_filter: list[int] | None,
                  filters: QueueFilter) -> tuple[str, ...]:
        """The persisted queue, given the stored order and filters: read once, then kept."""
        if self._cache is None:
            with self._db.lock:
                rows = self._db.conn.execute("SELECT row FROM queue ORDER BY pos").fetchall()
            everything = _everything(order, class_filter, filters)
            self._cache = (
                self._db.ids if everything else tuple(self._db.ids[r[0]] for r in rows)
            )
        return self._cache

    @property
    def ids(self) -> tuple[str, ...]:
        """The persisted queue (all ids as listed until :meth:`persist` is called)."""
        if self._cache is None:
            return self.cursor().ids
        return self._cache

    def cursor(self) -> Cursor:
        """The queue, position, order and class filter, from one query of the state."""
        state = self._db.states()
        order = state.get("order") or "listed"
        class_filter = json.loads(state.get("class_filter") or "null")
        filters = QueueFilter.from_json(state.get("filters"))
        return Cursor(self._load_ids(order, class_filter, filters),
                      int(state.get("position") or 0), order, class_filter, filters)

    @property
    def position(self) -> int:
        """Index of the current image in :attr:`ids` (persisted)."""
        return int(self._db.state("position") or 0)

    @position.setter
    def position(self, value: int) -> None:
        value = int(value)
        n = len(self.ids)
        if not (0 <= value < max(n, 1)):
            raise ValueError(f"position {value} is outside the queue (0-{max(n - 1, 0)})")
        with self._db.write() as c:
            c.execute("INSERT OR REPLACE INTO state VALUES ('position', ?)", (str(value),))

    # ------------------------------------------------------------------ moving

    @property
    def current_id(self) -> str | None:
        q = self.ids
        if not q:
            return None
        return q[min(self.position, len(q) - 1)]

    def next(self) -> str | None:
        """Move to the next image of the queue (stays at the last); returns its id."""
        q = self.ids
        if q:
            self.position = min(self.position + 1, len(q) - 1)
        return self.current_id

    def previous(self) -> str | None:
        if self.ids:
            self.position = max(self.position - 1, 0)
        return self.current_id

    def jump(self, image_id: str) -> int:
        """Make ``image_id`` current; returns its queue position."""
        self._db.row(image_id)
        try:
            pos = self.ids.index(image_id)
        except ValueError:
            raise SessionError(
                f"image {image_id!r} is not in the current queue (order {self.order!r}, "
                f"class filter {self.class_filter}); clear the filter to reach it",
                path=self._db.path,
            ) from None
        self.position = pos
        return pos
