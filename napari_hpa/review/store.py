"""The label-review session: one SQLite file holding labels, edits and review state.

A session is made from a labels CSV (Kaggle ``Id,Target``), optionally a folder
of image sets and a probabilities CSV, and is then the only place labels are
edited: every edit is one SQLite transaction (WAL journal,
``synchronous=FULL``), committed before the method returns, so a crash or a
kill loses nothing that returned.  Exports are read from the store.

:class:`ReviewSession` is the one front over the parts of a session: :mod:`.db` (the
file: its schema, import, opening, transactions, meta and state), :mod:`.edits` (the edit
log, undo and redo), :mod:`.queue` (the scores, the queue and the cursor),
:mod:`.highlights` (where labels and model disagree, a pure function) and
:mod:`.export` (the corrected CSV and the audit).  This module holds the front, the
per-image records and the lookup of an image's files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..classes import CHANNELS, NUM_CLASSES
from ..errors import SessionError
from ..imageset import CHANNEL_EXTENSIONS, SetSource
from ..labels import Target, format_target, is_plain_id, parse_target
from . import export as _export
from .decisions import Proposal, accept_plan, proposals
from .db import SCHEMA_VERSION, SCORE_KIND, SessionDB, create_file
from .edits import EDIT_KINDS, Edit, EditLog, default_reviewer
from .highlights import Highlights, highlights_of, predicted_set
from .queue import Cursor, Queue, QueueFilter, compute_issues, stored_scores


@dataclass(frozen=True)
class ImageRecord:
    """Everything the review view needs about one image (one indexed query)."""

    id: str
    index: int  # position in the input order
    original: Target
    labels: Target
    reviewed: bool
    note: str
    probs: np.ndarray | None  # (28,) float64
    #: P(labels right) from the last :meth:`ReviewSession.compute_issues`, or ``None``
    #: when not computed or the labels changed since
    score: float | None = None
    unsure: bool = False

    @property
    def changed(self) -> bool:
        return self.labels != self.original


def _as_target(target: str | Iterable[int]) -> Target:
    if isinstance(target, str):
        return parse_target(target)
    return parse_target(" ".join(str(int(i)) for i in target))


class ReviewSession:
    """A label-review session file.  Use :meth:`create` or :meth:`open`.

    Methods taking ``image_id`` raise :class:`SessionError` for an unknown id.
    Edits return the :class:`Edit` they appended, or ``None`` when nothing changed.
    The object may be shared between threads (calls are serialised).
    """

    # ------------------------------------------------------------------ construction

    def __init__(self, db: SessionDB, reviewer: str | None = None):
        self._db = db
        self._conn = db.conn  # the SQLite connection (its pragmas are checked by tests)
        self.path = db.path
        self.reviewer = reviewer or default_reviewer()
        self._edits = EditLog(db)
        self._queue = Queue(db)
        #: a label edit also marks the image reviewed (one decision, undone as one)
        self.review_on_edit = False

    @classmethod
    def create(
        cls,
        path: str | Path,
        images_dir: str | Path | None,
        labels_csv: str | Path,
        probs_csv: str | Path | Sequence[str | Path] | None = None,
        *,
        thresholds: float | Sequence[float] | None = None,
        overwrite: bool = False,
        reviewer: str | None = None,
    ) -> ReviewSession:
        """Import ``labels_csv`` (and ``probs_csv``) into a new session file at ``path``.

        ``probs_csv`` may be a list of files that together cover every id once (the
        ``val_probs.csv`` of each fold of a K-fold training: out-of-fold probabilities).

        ``images_dir`` is searched once for image sets (none need exist).  The
        file is built under a temporary name and moved into place, so a failed
        or interrupted import leaves no session behind.  Bad inputs raise
        :class:`~napari_hpa.errors.LabelsCSVError` naming the file and line.
        """
        path = Path(path)
        create_file(path, images_dir, labels_csv, probs_csv, thresholds, overwrite)
        return cls.open(path, reviewer=reviewer)

    @classmethod
    def open(cls, path: str | Path, *, reviewer: str | None = None) -> ReviewSession:
        """Open an existing session; a missing, foreign, corrupt or newer file raises
        :class:`SessionError` naming it."""
        return cls(SessionDB.open(Path(path)), reviewer)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ReviewSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self._db.ids)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._db.rows

    def __repr__(self) -> str:
        return f"ReviewSession({str(self.path)!r}, {len(self)} images)"

    # ------------------------------------------------------------------ reading

    @property
    def ids(self) -> tuple[str, ...]:
        """All ids, in the input order."""
        return self._db.ids

    def index(self, image_id: str) -> int:
        """Position of ``image_id`` in the input order."""
        return self._db.row(image_id)

    @property
    def meta(self) -> dict[str, str]:
        return dict(self._db.meta)

    @property
    def has_probabilities(self) -> bool:
        return self._db.has_probabilities

    @property
    def thresholds(self) -> np.ndarray:
        return self._db.thresholds.copy()

    def set_thresholds(self, thresholds: float | Sequence[float]) -> None:
        """Per-class thresholds for :meth:`predicted` and the highlights (persisted)."""
        self._db.set_thresholds(thresholds)

    def _record(self, image_id: str) -> tuple[ImageRecord, int | None, str | None]:
        """The record of ``image_id`` and its stored issue bits and their basis (one query)."""
        db = self._db
        row = db.row(image_id)
        original, labels, reviewed, note, probs, score, issues, basis, unsure = db.query_one(
            "SELECT original, labels, reviewed, note, probs, score, issues, issues_basis, unsure "
            "FROM images WHERE row=?",
            (row,),
        )
        rec = ImageRecord(
            image_id,
            row,
            db.target(original),
            db.target(labels),
            bool(reviewed),
            note,
            None if probs is None else db.probs(probs),
            score if basis == labels and db.meta.get("score") == SCORE_KIND else None,
            bool(unsure),
        )
        return rec, issues, basis

    def record(self, image_id: str) -> ImageRecord:
        """One image's labels, original labels, review mark, note, probabilities and score."""
        return self._record(image_id)[0]

    def labels(self, image_id: str) -> Target:
        """The current label set (ascending class indices)."""
        row = self._db.row(image_id)
        (text,) = self._db.query_one("SELECT labels FROM images WHERE row=?", (row,))
        return self._db.target(text)

    def original(self, image_id: str) -> Target:
        """The label set as imported."""
        row = self._db.row(image_id)
        (text,) = self._db.query_one("SELECT original FROM images WHERE row=?", (row,))
        return self._db.target(text)

    def is_reviewed(self, image_id: str) -> bool:
        return self.record(image_id).reviewed

    def note(self, image_id: str) -> str:
        return self.record(image_id).note

    def probabilities(self, image_id: str) -> np.ndarray | None:
        """The 28 model probabilities, or ``None`` when the session has none."""
        return self.record(image_id).probs

    def predicted(self, image_id: str) -> Target | None:
        """Classes with ``p >= threshold``, the top class always included; ``None``
        without probabilities."""
        return predicted_set(self.probabilities(image_id), self._db.thresholds)

    @property
    def calibration(self) -> np.ndarray | None:
        """The per-class Platt scaling ``(2, 28)`` fitted by the last :meth:`compute_issues`,
        or ``None``."""
        text = self._db.meta.get("calibration")
        if not text:
            return None
        try:
            ab = np.asarray(json.loads(text), dtype=np.float64)
        except (ValueError, TypeError):
            return None
        return ab if ab.shape == (2, NUM_CLASSES) and np.isfinite(ab).all() else None

    def proposals(self, image_id: str) -> tuple[Proposal, ...]:
        """The model's proposals for the current labels of ``image_id``, strongest first
        (:func:`.decisions.proposals`)."""
        rec = self.record(image_id)
        return proposals(rec.labels, rec.probs, self._db.thresholds, self.calibration)

    def _highlights(self, labels: Target, probs: np.ndarray, issues, basis) -> Highlights:
        basis = () if issues is None else self._db.target(basis)
        return highlights_of(labels, probs, self._db.thresholds, issues, basis)

    def highlights(self, image_id: str) -> Highlights:
        """Where the current labels and the model disagree, per class (empty without
        probabilities)."""
        row = self._db.row(image_id)
        labels, probs, issues, basis = self._db.query_one(
            "SELECT labels, probs, issues, issues_basis FROM images WHERE row=?", (row,)
        )
        if probs is None:
            return Highlights()
        p = self._db.probs(probs)
        return self._highlights(self._db.target(labels), p, issues, basis)

    def record_with_highlights(self, image_id: str) -> tuple[ImageRecord, Highlights]:
        """:meth:`record` and :meth:`highlights` of one image, from one query."""
        rec, issues, basis = self._record(image_id)
        if rec.probs is None:
            return rec, Highlights()
        return rec, self._highlights(rec.labels, rec.probs, issues, basis)

    def labels_array(self) -> np.ndarray:
        """``(N, 28)`` bool of the current labels, input order."""
        return self._db.labels_array()

    def probabilities_array(self) -> np.ndarray | None:
        """``(N, 28)`` float64 probabilities, input order; ``None`` without them."""
        return self._db.probabilities_array()

    def reviewed_array(self) -> np.ndarray:
        return self._db.reviewed_array()

    def changed_ids(self) -> list[str]:
        with self._db.lock:
            rows = self._db.conn.execute(
                "SELECT row FROM images WHERE labels != original ORDER BY row"
            ).fetchall()
        return [self._db.ids[r[0]] for r in rows]

    def history(self, image_id: str | None = None, *, limit: int | None = None) -> list[Edit]:
        """The edit log (of one image, or all), oldest first; ``limit`` keeps the latest."""
        return self._edits.history(image_id, limit=limit)

    # ------------------------------------------------------------------ images

    @property
    def images_dir(self) -> Path | None:
        d = self._db.meta.get("images_dir")
        return Path(d) if d else None

    def image_source(self, image_id: str) -> SetSource | None:
        """Where the image set of ``image_id`` lives now, or ``None`` if no file of it
        exists.  An incomplete set is returned (reading it names what is missing)."""
        row = self._db.row(image_id)
        folder = self.images_dir
        if folder is None:
            return None
        (stored,) = self._db.query_one("SELECT source FROM images WHERE row=?", (row,))
        inside = folder.resolve()
        if stored:
            try:
                d = json.loads(stored)
                if "tiff" in d:
                    src = SetSource(image_id, tiff=folder / d["tiff"])
                else:
                    src = SetSource(
                        image_id, {ch: tuple(folder / p for p in ps) for ch, ps in d.items()}
                    )
            except (ValueError, TypeError, AttributeError):  # a tampered value: probe instead
                src = SetSource(image_id)
            # files outside the images folder (a tampered session) are never looked at
            if src.paths and all(inside in p.resolve().parents and p.is_file() for p in src.paths):
                return src
        if not is_plain_id(image_id):
            return None
        # probe by name (files added or moved since the import)
        files: dict[str, tuple[Path, ...]] = {}
        for ch in CHANNELS:
            for ext in CHANNEL_EXTENSIONS:
                for e in (ext, ext.upper()):
                    p = folder / f"{image_id}_{ch}.{e}"
                    if p.is_file():
                        files[ch] = files.get(ch, ()) + (p,)
        if files:
            return SetSource(image_id, files)
        for name in (f"{image_id}.ome.tif", f"{image_id}.ome.tiff", f"{image_id}.tif",
                     f"{image_id}.tiff"):
            if (folder / name).is_file():
                return SetSource(image_id, tiff=folder / name)
        return None

    def has_image(self, image_id: str) -> bool:
        """Whether any file of the image set of ``image_id`` is present."""
        return self.image_source(image_id) is not None

    # ------------------------------------------------------------------ edits

    def set_labels(
        self,
        image_id: str,
        target: str | Iterable[int],
        *,
        note: str | None = None,
        reviewer: str | None = None,
        kind: str = "set",
    ) -> Edit | None:
        """Replace the label set (``"0 25"`` or ``[0, 25]``); ``ValueError`` for a bad class."""
        after = format_target(_as_target(target))
        return self._label_edit(image_id, lambda before: after, kind, note, reviewer)

    def _label_edit(self, image_id, compute, kind, note, reviewer) -> Edit | None:
        """A label edit; with :attr:`review_on_edit` it marks the image reviewed in the same
        decision (one undo)."""
        reviewer = reviewer or self.reviewer
        if not self.review_on_edit:
            return self._edits.edit(image_id, "labels", compute, kind, note, reviewer)
        return self._edits.decide(image_id, [("labels", compute), ("reviewed", lambda b: "1")],
                                  kind, note, reviewer)

    def toggle(
        self, image_id: str, cls: int, *, note: str | None = None, reviewer: str | None = None
    ) -> Edit:
        """Add class ``cls`` if absent, remove it if present."""
        cls = int(cls)
        if not 0 <= cls < NUM_CLASSES:
            raise ValueError(f"class index {cls} is outside 0-{NUM_CLASSES - 1}")

        def flip(before: str) -> str:
            s = set(self._db.target(before))
            s ^= {cls}
            return format_target(s)

        return self._label_edit(image_id, flip, "toggle", note, reviewer)

    def accept_predicted(
        self, image_id: str, *, note: str | None = None, reviewer: str | None = None
    ) -> Edit | None:
        """Set the labels to the model's predicted set (:meth:`predicted`)."""
        pred = self.predicted(image_id)
        if pred is None:
            raise SessionError(
                "has no model probabilities, so there is no predicted set to accept",
                path=self.path,
            )
        return self.set_labels(image_id, pred, note=note, reviewer=reviewer, kind="accept")

    def accept_proposals(
        self, image_id: str, *, note: str | None = None, reviewer: str | None = None
    ) -> Edit | None:
        """Apply the strong proposals of :meth:`proposals` in one edit; the weak ones are
        kept (:func:`.decisions.accept_plan`)."""
        rec = self.record(image_id)
        if rec.probs is None:
            raise SessionError(
                "has no model probabilities, so there are no proposals to accept", path=self.path
            )
        plan = accept_plan(rec.labels, self.proposals(image_id))
        return self.set_labels(image_id, plan.after, note=note, reviewer=reviewer,
                               kind="accept")

    def mark_reviewed(
        self, image_id: str, reviewed: bool = True, *, reviewer: str | None = None
    ) -> Edit | None:
        value = "1" if reviewed else "0"
        return self._edits.edit(image_id, "reviewed", lambda before: value, "review", None,
                                reviewer or self.reviewer)

    def mark_unsure(
        self, image_id: str, unsure: bool = True, *, reviewer: str | None = None
    ) -> Edit | None:
        """The reviewer's "unsure" mark (logged, undoable, exported in the review CSV)."""
        value = "1" if unsure else "0"
        return self._edits.edit(image_id, "unsure", lambda before: value, "unsure", None,
                                reviewer or self.reviewer)

    @property
    def saved_reviewer(self) -> str | None:
        """The reviewer name last remembered in this session (:meth:`remember_reviewer`)."""
        return self._db.state("reviewer") or None

    def remember_reviewer(self, name: str) -> None:
        """Sign the following edits with ``name`` and remember it in the session file."""
        name = str(name).strip()
        if not name:
            raise ValueError("the reviewer name is empty")
        with self._db.write() as c:
            c.execute("INSERT OR REPLACE INTO state VALUES ('reviewer', ?)", (name,))
        self.reviewer = name

    def progress(self) -> tuple[int, int, int]:
        """``(reviewed, changed, images)`` of the current queue."""
        where = "1" if self._queue.everything else "row IN (SELECT row FROM queue)"
        with self._db.read() as c:
            reviewed, changed, n = c.execute(
                f"SELECT COALESCE(SUM(reviewed != 0), 0), COALESCE(SUM(labels != original), 0), "
                f"COUNT(*) FROM images WHERE {where}"
            ).fetchone()
        return int(reviewed), int(changed), int(n)

    def set_note(self, image_id: str, note: str, *, reviewer: str | None = None) -> Edit | None:
        """The image's free-text note (logged like any edit, undoable)."""
        text = str(note)
        return self._edits.edit(image_id, "note", lambda before: text, "note", None,
                                reviewer or self.reviewer)

    def undo(self, *, reviewer: str | None = None) -> Edit | None:
        """Invert the latest edit not yet undone (appends a ``kind='undo'`` edit);
        ``None`` when there is nothing to undo."""
        return self._edits.invert("undo", reviewer or self.reviewer)

    def redo(self, *, reviewer: str | None = None) -> Edit | None:
        """Invert the latest undo (appends ``kind='redo'``); ``None`` when nothing to redo."""
        return self._edits.invert("redo", reviewer or self.reviewer)

    @property
    def can_undo(self) -> bool:
        return self._edits.can_undo

    @property
    def can_redo(self) -> bool:
        return self._edits.can_redo

    # ------------------------------------------------------------------ ordering

    def compute_issues(self) -> np.ndarray:
        """The probability that each image's labels are right (input order,
        :func:`.ordering.label_confidence`), stored with cleanlab's per-class issue mask
        used by :meth:`highlights`.  Needs probabilities."""
        return compute_issues(self._db)

    def queue(
        self, order: str = "listed", class_filter: int | Iterable[int] | None = None,
        filters: QueueFilter | None = None,
    ) -> list[str]:
        """The ids in queue ``order`` (see :mod:`.ordering`), computed now.  The queue is not
        persisted (:meth:`set_queue` does that), but the ``suspicious`` order stores the
        scores and issue masks it computes (:meth:`compute_issues`).

        ``class_filter`` keeps only images whose current labels hold any of the classes;
        ``filters`` (:class:`.QueueFilter`) those predicted, changed, noted, unsure, unreviewed.
        """
        return self._queue.build(order, class_filter, filters)

    def scores(self) -> np.ndarray | None:
        """The stored :meth:`compute_issues` scores (input order; NaN where not computed),
        or ``None``."""
        return stored_scores(self._db)

    def set_queue(
        self, order: str = "listed", class_filter: int | Iterable[int] | None = None,
        filters: QueueFilter | None = None, selection: Sequence[str] | None = None,
    ) -> list[str]:
        """Compute the queue and persist it (with its filters) with the position reset to 0;
        order ``selection`` keeps the ids of ``selection`` (default: the last one kept)."""
        return self._queue.persist(order, class_filter, filters, selection)

    @property
    def queue_order(self) -> str:
        return self._queue.order

    @property
    def class_filter(self) -> list[int] | None:
        return self._queue.class_filter

    @property
    def queue_filters(self) -> QueueFilter:
        return self._queue.filters

    @property
    def queue_ids(self) -> tuple[str, ...]:
        """The persisted queue (all ids as listed until :meth:`set_queue` is called)."""
        return self._queue.ids

    @property
    def cursor(self) -> Cursor:
        """The persisted queue, position, order and class filter, read together."""
        return self._queue.cursor()

    @property
    def position(self) -> int:
        """Index of the current image in :attr:`queue_ids` (persisted)."""
        return self._queue.position

    @position.setter
    def position(self, value: int) -> None:
        self._queue.position = value

    @property
    def current_id(self) -> str | None:
        return self._queue.current_id

    def next(self) -> str | None:
        """Move to the next image of the queue (stays at the last); returns its id."""
        return self._queue.next()

    def previous(self) -> str | None:
        return self._queue.previous()

    def jump(self, image_id: str) -> int:
        """Make ``image_id`` current; returns its queue position."""
        return self._queue.jump(image_id)

    # ------------------------------------------------------------------ summary, export

    def summary(self) -> dict:
        with self._db.read() as c:

            def count(sql: str) -> int:
                return c.execute(f"SELECT COUNT(*) FROM {sql}").fetchone()[0]

            n_changed = count("images WHERE labels != original")
            n_reviewed = count("images WHERE reviewed")
            n_found = count("images WHERE source IS NOT NULL")
            n_edits = count("edits")
        meta = self._db.meta
        return {
            "session": str(self.path),
            "images": len(self),
            "images_found_at_import": n_found,
            "changed": n_changed,
            "reviewed": n_reviewed,
            "edits": n_edits,
            "probabilities": self.has_probabilities,
            "queue_order": self.queue_order,
            "class_filter": self.class_filter,
            "position": self.position,
            "images_dir": meta.get("images_dir", ""),
            "labels_csv": meta.get("labels_csv", ""),
            "created": meta.get("created", ""),
            "schema_version": SCHEMA_VERSION,
        }

    def export(
        self,
        out_csv: str | Path,
        *,
        changed_only: bool = False,
        audit: str | Path | None = None,
        review: str | Path | None = None,
    ) -> dict:
        """Write the current labels as a Kaggle ``Id,Target`` CSV (input order, indices
        ascending, extra import columns such as ``Antibody`` kept), atomically.

        ``changed_only`` writes only images whose labels differ from the import.
        ``audit`` also writes every edit (labels, marks, notes, undo, redo):
        ``Id,Before,After,Time,Reviewer,Note,Kind,Field``.  ``review`` also writes one row per
        image, input order: ``Id,Reviewed,Unsure,Note,Reviewer,Time`` (reviewer and time of
        its latest edit, empty if none).  All files or none; the session is only read.
        Returns counts.
        """
        return _export.export(self._db, out_csv, changed_only=changed_only, audit=audit,
                              review=review)


__all__ = [
    "EDIT_KINDS",
    "Edit",
    "Highlights",
    "ImageRecord",
    "ReviewSession",
    "SCHEMA_VERSION",
    "default_reviewer",
]
