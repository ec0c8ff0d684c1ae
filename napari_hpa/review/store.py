"""The label-review session: one SQLite file holding labels, edits and review state.

A session is made from a labels CSV (Kaggle ``Id,Target``), optionally a folder
of image sets and a probabilities CSV, and is then the only place labels are
edited: every edit is one SQLite transaction (WAL journal,
``synchronous=FULL``), committed before the method returns, so a crash or a
kill loses nothing that returned.  Exports are read from the store.

Schema (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`)::

    meta(key TEXT PRIMARY KEY, value TEXT)      -- format, schema, created, sources, score,
                                                -- thresholds (JSON), extra CSV columns
    images(row INTEGER PRIMARY KEY,             -- 0-based input order
           id TEXT UNIQUE, original TEXT,       -- targets as "0 25" (ascending)
           labels TEXT, reviewed INTEGER, note TEXT,
           probs BLOB,                          -- 28 little-endian float64, or NULL
           source TEXT,                         -- JSON: image files found at import, or NULL
           extra TEXT,                          -- JSON: extra CSV columns (e.g. Antibody)
           score REAL, issues INTEGER,          -- P(labels right), cleanlab per-class issue
           issues_basis TEXT)                   -- bits, and the labels they were computed on
    edits(seq INTEGER PRIMARY KEY AUTOINCREMENT,-- append-only log
          row INTEGER, kind TEXT, field TEXT,   -- kind: set toggle accept review note undo redo
          before TEXT, after TEXT,              -- field: labels | reviewed | note
          time TEXT, reviewer TEXT, note TEXT,
          undoes INTEGER)                       -- undo/redo: the seq they invert
    state(key TEXT PRIMARY KEY, value TEXT)     -- queue order, class filter, position
    queue(pos INTEGER PRIMARY KEY, row INTEGER) -- the current queue (empty = all, as listed)

Undo and redo never delete: :meth:`ReviewSession.undo` appends the inverse of
the latest edit not yet undone (``kind='undo'``, ``undoes`` = its seq), and
:meth:`ReviewSession.redo` appends the inverse of the latest undo
(``kind='redo'``) -- redo is the undo of an undo.  Any other edit clears the
redo stack, as in an editor.  The stacks are rebuilt from the log on each call,
so they survive a restart and are shared by every process using the file.
"""

from __future__ import annotations

import csv
import getpass
import io
import json
import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..classes import CHANNELS, NUM_CLASSES
from ..errors import SessionError
from ..imageset import CHANNEL_EXTENSIONS, SetSource, find_sets
from ..labels import (
    Target,
    _fsync_dir,
    atomic_write_group,
    format_target,
    is_plain_id,
    labels_csv_text,
    multi_hot,
    parse_target,
    read_labels,
    read_probability_files,
)
from . import ordering

SCHEMA_VERSION = 1
FORMAT = "napari-hpa review session"
SQLITE_MAGIC = b"SQLite format 3\x00"
EDIT_KINDS = ("set", "toggle", "accept", "review", "note", "undo", "redo")
#: What the ``score`` column holds (meta ``score``); earlier versions stored cleanlab's
#: label-quality score there without this key.
_SCORE_KIND = "label_confidence"

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE images (
    row INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    original TEXT NOT NULL,
    labels TEXT NOT NULL,
    reviewed INTEGER NOT NULL DEFAULT 0,
    note TEXT NOT NULL DEFAULT '',
    probs BLOB,
    source TEXT,
    extra TEXT,
    score REAL,
    issues INTEGER,
    issues_basis TEXT
);
CREATE TABLE edits (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    row INTEGER NOT NULL REFERENCES images(row),
    kind TEXT NOT NULL,
    field TEXT NOT NULL,
    before TEXT NOT NULL,
    after TEXT NOT NULL,
    time TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    undoes INTEGER REFERENCES edits(seq)
);
CREATE INDEX edits_by_row ON edits(row);
CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE queue (pos INTEGER PRIMARY KEY, row INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class Edit:
    """One row of the edit log."""

    seq: int
    id: str
    kind: str  # set, toggle, accept, review, note, undo, redo
    field: str  # labels, reviewed, note
    before: str
    after: str
    time: str  # ISO 8601, UTC
    reviewer: str
    note: str
    undoes: int | None = None


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

    @property
    def changed(self) -> bool:
        return self.labels != self.original


@dataclass(frozen=True)
class Highlights:
    """Classes of one image where label and model disagree (for the review view).

    ``labelled_improbable``: labelled, but the model's probability is under the
    class threshold or cleanlab flags the annotation.  ``probable_unlabelled``:
    not labelled, but the probability reaches the threshold or cleanlab flags it.
    ``cleanlab``: classes cleanlab flagged (only if the issue mask was computed
    and the class label has not been edited since).
    """

    labelled_improbable: tuple[int, ...] = ()
    probable_unlabelled: tuple[int, ...] = ()
    cleanlab: tuple[int, ...] = ()

    def flag(self, cls: int) -> str | None:
        if cls in self.labelled_improbable:
            return "labelled_improbable"
        if cls in self.probable_unlabelled:
            return "probable_unlabelled"
        return None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def default_reviewer() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in the environment
        return "unknown"


def _as_target(target: str | Iterable[int]) -> Target:
    if isinstance(target, str):
        return parse_target(target)
    return parse_target(" ".join(str(int(i)) for i in target))


def _source_json(source: SetSource, folder: Path) -> str:
    def rel(p: Path) -> str:
        try:
            return str(p.relative_to(folder))
        except ValueError:
            return str(p)

    if source.tiff is not None:
        return json.dumps({"tiff": rel(source.tiff)})
    return json.dumps({ch: [rel(p) for p in ps] for ch, ps in source.channel_files.items()})


def _sqlite_reason(exc: sqlite3.OperationalError) -> str:
    """Why SQLite could not read or write the file, in words."""
    text = str(exc).lower()
    if "readonly" in text or "read-only" in text:
        return "the file or its folder is read-only"
    if "locked" in text or "busy" in text:
        return "another program holds a lock on it (close it there, or wait)"
    if "full" in text:
        return "the disk is full"
    if "unable to open" in text:
        return "SQLite cannot open it (is its folder readable and writable?)"
    return f"SQLite: {exc}"


def _write_failure(exc: sqlite3.OperationalError) -> str:
    return f"cannot save the edit: {_sqlite_reason(exc)}; nothing was changed"


class ReviewSession:
    """A label-review session file.  Use :meth:`create` or :meth:`open`.

    Methods taking ``image_id`` raise :class:`SessionError` for an unknown id.
    Edits return the :class:`Edit` they appended, or ``None`` when nothing changed.
    The object may be shared between threads (calls are serialised).
    """

    # ------------------------------------------------------------------ construction

    def __init__(self, path: Path, conn: sqlite3.Connection, reviewer: str | None):
        self.path = Path(path)
        self._conn = conn
        self._lock = threading.RLock()
        self.reviewer = reviewer or default_reviewer()
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        self._meta = meta
        self._thresholds = ordering.as_thresholds(json.loads(meta.get("thresholds", "0.5")))
        self._ids: tuple[str, ...] = tuple(
            r[0] for r in conn.execute("SELECT id FROM images ORDER BY row")
        )
        self._rows = {i: r for r, i in enumerate(self._ids)}
        self._queue_cache: tuple[str, ...] | None = None

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
        if path.exists() and not overwrite:
            raise SessionError("already exists (choose another name, or overwrite)", path=path)
        t = ordering.as_thresholds(thresholds)
        table = read_labels(labels_csv)
        ids = table.ids
        probs = None
        probs_files = [] if probs_csv is None else (
            [probs_csv] if isinstance(probs_csv, (str, Path)) else list(probs_csv)
        )
        if probs_files:
            p_ids, p = read_probability_files(probs_files, ids)
            pos = {i: n for n, i in enumerate(p_ids)}
            probs = p[[pos[i] for i in ids]].astype("<f8")
        sources: dict[str, SetSource] = {}
        folder = None
        if images_dir is not None:
            folder = Path(images_dir).resolve()
            sources = {s.id: s for s in find_sets(folder)}
        extra_cols = list(table.extra)

        def rows():
            for n, image_id in enumerate(ids):
                target = format_target(table.targets[image_id])
                src = sources.get(image_id)
                yield (
                    n,
                    image_id,
                    target,
                    target,
                    None if probs is None else probs[n].tobytes(),
                    None if src is None else _source_json(src, folder),
                    json.dumps({c: table.extra[c][image_id] for c in extra_cols})
                    if extra_cols
                    else None,
                )

        meta = {
            "format": FORMAT,
            "schema_version": str(SCHEMA_VERSION),
            "created": _now(),
            "images_dir": "" if folder is None else str(folder),
            "labels_csv": str(Path(labels_csv).resolve()),
            "probs_csv": json.dumps([str(Path(f).resolve()) for f in probs_files]),
            "has_probs": "1" if probs is not None else "0",
            "thresholds": json.dumps(t.tolist()),
            "label_column": table.column,
            "extra_columns": json.dumps(extra_cols),
        }
        folder_out = path.parent if str(path.parent) else Path(".")
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder_out)
        except OSError as exc:
            raise SessionError(f"cannot be created ({exc.strerror or exc})", path=path) from exc
        os.close(fd)
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=OFF")
                conn.execute("PRAGMA synchronous=OFF")
                conn.execute("BEGIN")
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        conn.execute(stmt)
                conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
                conn.executemany(
                    "INSERT INTO images (row, id, original, labels, probs, source, extra) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows(),
                )
                conn.executemany(
                    "INSERT INTO state VALUES (?, ?)",
                    [("order", "listed"), ("class_filter", "null"), ("position", "0")],
                )
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
                conn.execute("PRAGMA journal_mode=WAL")
            finally:
                conn.close()
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            if overwrite:
                for suffix in ("-wal", "-shm"):
                    Path(str(path) + suffix).unlink(missing_ok=True)
            os.replace(tmp, path)
        except BaseException:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(tmp + suffix).unlink(missing_ok=True)
            raise
        _fsync_dir(folder_out)
        return cls.open(path, reviewer=reviewer)

    @classmethod
    def open(cls, path: str | Path, *, reviewer: str | None = None) -> ReviewSession:
        """Open an existing session; a missing, foreign, corrupt or newer file raises
        :class:`SessionError` naming it."""
        path = Path(path)
        if not path.is_file():
            raise SessionError("no such session file", path=path)
        try:
            with open(path, "rb") as fh:
                head = fh.read(100)
        except OSError as exc:
            raise SessionError(f"cannot be read ({exc.strerror or exc})", path=path) from None
        if len(head) < 100 or not head.startswith(SQLITE_MAGIC):
            raise SessionError(
                "is not a napari-hpa review session (not an SQLite database)", path=path
            )
        conn = None
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 10000")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise SessionError(
                    f"was written by a newer napari-hpa (session schema {version}; this version "
                    f"reads up to {SCHEMA_VERSION}); upgrade napari-hpa to open it",
                    path=path,
                )
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            fmt = None
            if "meta" in tables:
                row = conn.execute("SELECT value FROM meta WHERE key='format'").fetchone()
                fmt = row[0] if row else None
            if fmt != FORMAT or version < 1:
                raise SessionError(
                    "is an SQLite database but not a napari-hpa review session", path=path
                )
            missing = {"images", "edits", "state", "queue"} - tables
            if missing:
                raise SessionError(
                    f"is damaged: table(s) {', '.join(sorted(missing))} missing", path=path
                )
            check = conn.execute("PRAGMA quick_check").fetchall()
            if check != [("ok",)]:
                raise SessionError(
                    f"is corrupt ({'; '.join(r[0] for r in check[:3])})", path=path
                )
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
            except sqlite3.OperationalError as exc:  # read-only file or folder, locked
                raise SessionError(f"cannot be opened for editing: {_sqlite_reason(exc)}", path=path) from None
            return cls(path, conn, reviewer)
        except sqlite3.OperationalError as exc:  # the file is fine; its place or a lock is not
            if conn is not None:
                conn.close()
            raise SessionError(f"cannot be opened: {_sqlite_reason(exc)}", path=path) from None
        except sqlite3.DatabaseError as exc:
            if conn is not None:
                conn.close()
            raise SessionError(f"is corrupt or not a review session ({exc})", path=path) from None
        except BaseException:
            if conn is not None:
                conn.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ReviewSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._rows

    def __repr__(self) -> str:
        return f"ReviewSession({str(self.path)!r}, {len(self)} images)"

    # ------------------------------------------------------------------ plumbing

    def _target(self, text) -> Target:
        """A stored label set; a value that is not one (a damaged or edited file) names the file."""
        try:
            target = tuple(int(t) for t in str(text).split())
        except ValueError:
            target = None
        if target is None or not all(0 <= t < NUM_CLASSES for t in target):
            raise SessionError(f"is damaged: a stored label set {str(text)[:60]!r} is not class "
                               f"indices 0-{NUM_CLASSES - 1}", path=self.path)
        return target

    def _probs(self, blob) -> np.ndarray:
        """Stored probabilities (28 little-endian float64); anything else names the file."""
        if not isinstance(blob, bytes) or len(blob) != 8 * NUM_CLASSES:
            raise SessionError(f"is damaged: stored probabilities are not {NUM_CLASSES} numbers", path=self.path)
        p = np.frombuffer(blob, dtype="<f8").copy()
        if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
            raise SessionError("is damaged: stored probabilities outside [0, 1]", path=self.path)
        return p

    @contextmanager
    def _write(self):
        """One immediate transaction, committed (durably) on exit.  SQLite's failures to write
        (a read-only file or folder, a lock held elsewhere, a full disk) are a SessionError
        saying so, and the edit is not saved (the session is as before)."""
        with self._lock:
            c = self._conn
            try:
                c.execute("BEGIN IMMEDIATE")
                try:
                    yield c
                    c.execute("COMMIT")
                except BaseException:
                    if c.in_transaction:
                        c.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                raise SessionError(_write_failure(exc), path=self.path) from None

    @contextmanager
    def _read(self):
        """A read transaction: one consistent snapshot."""
        with self._lock:
            c = self._conn
            c.execute("BEGIN")
            try:
                yield c
            finally:
                c.execute("COMMIT")

    def _row(self, image_id: str) -> int:
        try:
            return self._rows[image_id]
        except KeyError:
            raise SessionError(f"no image {image_id!r} in this session", path=self.path) from None

    def _log(self, c, row, kind, field, before, after, note, reviewer, undoes=None) -> Edit:
        t = _now()
        reviewer = reviewer or self.reviewer
        note = note or ""
        cur = c.execute(
            "INSERT INTO edits (row, kind, field, before, after, time, reviewer, note, undoes) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (row, kind, field, before, after, t, reviewer, note, undoes),
        )
        return Edit(cur.lastrowid, self._ids[row], kind, field, before, after, t, reviewer, note,
                    undoes)

    _FIELD_SQL = {"labels": "labels", "reviewed": "reviewed", "note": "note"}

    def _get_field(self, c, row: int, field: str) -> str:
        value = c.execute(
            f"SELECT {self._FIELD_SQL[field]} FROM images WHERE row=?", (row,)
        ).fetchone()[0]
        return str(value)

    def _set_field(self, c, row: int, field: str, value: str) -> None:
        stored = int(value) if field == "reviewed" else value
        c.execute(f"UPDATE images SET {self._FIELD_SQL[field]}=? WHERE row=?", (stored, row))

    def _edit(self, image_id, field, compute, kind, note, reviewer) -> Edit | None:
        row = self._row(image_id)
        with self._write() as c:
            before = self._get_field(c, row, field)
            after = compute(before)
            if after == before:
                return None
            self._set_field(c, row, field, after)
            return self._log(c, row, kind, field, before, after, note, reviewer)

    # ------------------------------------------------------------------ reading

    @property
    def ids(self) -> tuple[str, ...]:
        """All ids, in the input order."""
        return self._ids

    def index(self, image_id: str) -> int:
        """Position of ``image_id`` in the input order."""
        return self._row(image_id)

    @property
    def meta(self) -> dict[str, str]:
        return dict(self._meta)

    @property
    def has_probabilities(self) -> bool:
        return self._meta.get("has_probs") == "1"

    @property
    def thresholds(self) -> np.ndarray:
        return self._thresholds.copy()

    def set_thresholds(self, thresholds: float | Sequence[float]) -> None:
        """Per-class thresholds for :meth:`predicted` and the highlights (persisted)."""
        t = ordering.as_thresholds(thresholds)
        with self._write() as c:
            c.execute(
                "INSERT OR REPLACE INTO meta VALUES ('thresholds', ?)", (json.dumps(t.tolist()),)
            )
        self._thresholds = t
        self._meta["thresholds"] = json.dumps(t.tolist())

    def record(self, image_id: str) -> ImageRecord:
        """One image's labels, original labels, review mark, note, probabilities and score."""
        row = self._row(image_id)
        with self._lock:
            original, labels, reviewed, note, probs, score, basis = self._conn.execute(
                "SELECT original, labels, reviewed, note, probs, score, issues_basis "
                "FROM images WHERE row=?",
                (row,),
            ).fetchone()
        return ImageRecord(
            image_id,
            row,
            self._target(original),
            self._target(labels),
            bool(reviewed),
            note,
            None if probs is None else self._probs(probs),
            score if basis == labels and self._meta.get("score") == _SCORE_KIND else None,
        )

    def labels(self, image_id: str) -> Target:
        """The current label set (ascending class indices)."""
        row = self._row(image_id)
        with self._lock:
            (text,) = self._conn.execute("SELECT labels FROM images WHERE row=?", (row,)).fetchone()
        return self._target(text)

    def original(self, image_id: str) -> Target:
        """The label set as imported."""
        row = self._row(image_id)
        with self._lock:
            (text,) = self._conn.execute(
                "SELECT original FROM images WHERE row=?", (row,)
            ).fetchone()
        return self._target(text)

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
        p = self.probabilities(image_id)
        if p is None:
            return None
        pred = ordering.predicted_sets(p, self._thresholds)[0]
        return tuple(int(k) for k in np.flatnonzero(pred))

    def highlights(self, image_id: str) -> Highlights:
        """Where the current labels and the model disagree, per class (empty without
        probabilities)."""
        row = self._row(image_id)
        with self._lock:
            labels, probs, issues, basis = self._conn.execute(
                "SELECT labels, probs, issues, issues_basis FROM images WHERE row=?", (row,)
            ).fetchone()
        if probs is None:
            return Highlights()
        p = self._probs(probs)
        y = np.zeros(NUM_CLASSES, dtype=bool)
        y[list(self._target(labels))] = True
        flagged = np.zeros(NUM_CLASSES, dtype=bool)
        if issues is not None:
            b = np.zeros(NUM_CLASSES, dtype=bool)
            b[list(self._target(basis))] = True
            bits = np.array([(issues >> k) & 1 for k in range(NUM_CLASSES)], dtype=bool)
            flagged = bits & (b == y)  # a class edited since no longer counts
        improbable = y & ((p < self._thresholds) | flagged)
        unlabelled = ~y & ((p >= self._thresholds) | flagged)
        as_tuple = lambda m: tuple(int(k) for k in np.flatnonzero(m))  # noqa: E731
        return Highlights(as_tuple(improbable), as_tuple(unlabelled), as_tuple(flagged))

    def labels_array(self) -> np.ndarray:
        """``(N, 28)`` bool of the current labels, input order."""
        with self._lock:
            texts = [r[0] for r in self._conn.execute("SELECT labels FROM images ORDER BY row")]
        return multi_hot(self._target(text) for text in texts)

    def probabilities_array(self) -> np.ndarray | None:
        """``(N, 28)`` float64 probabilities, input order; ``None`` without them."""
        if not self.has_probabilities:
            return None
        with self._lock:
            blobs = [r[0] for r in self._conn.execute("SELECT probs FROM images ORDER BY row")]
        return np.stack([self._probs(b) for b in blobs])

    def reviewed_array(self) -> np.ndarray:
        with self._lock:
            return np.array(
                [r[0] for r in self._conn.execute("SELECT reviewed FROM images ORDER BY row")],
                dtype=bool,
            )

    def changed_ids(self) -> list[str]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT row FROM images WHERE labels != original ORDER BY row"
            ).fetchall()
        return [self._ids[r[0]] for r in rows]

    def history(self, image_id: str | None = None, *, limit: int | None = None) -> list[Edit]:
        """The edit log (of one image, or all), oldest first; ``limit`` keeps the latest."""
        sql = "SELECT seq, row, kind, field, before, after, time, reviewer, note, undoes FROM edits"
        args: tuple = ()
        if image_id is not None:
            sql += " WHERE row=?"
            args = (self._row(image_id),)
        sql += " ORDER BY seq DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [Edit(s, self._ids[r], *rest) for s, r, *rest in reversed(rows)]

    # ------------------------------------------------------------------ images

    @property
    def images_dir(self) -> Path | None:
        d = self._meta.get("images_dir")
        return Path(d) if d else None

    def image_source(self, image_id: str) -> SetSource | None:
        """Where the image set of ``image_id`` lives now, or ``None`` if no file of it
        exists.  An incomplete set is returned (reading it names what is missing)."""
        row = self._row(image_id)
        folder = self.images_dir
        if folder is None:
            return None
        with self._lock:
            (stored,) = self._conn.execute(
                "SELECT source FROM images WHERE row=?", (row,)
            ).fetchone()
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
        return self._edit(image_id, "labels", lambda before: after, kind, note, reviewer)

    def toggle(
        self, image_id: str, cls: int, *, note: str | None = None, reviewer: str | None = None
    ) -> Edit:
        """Add class ``cls`` if absent, remove it if present."""
        cls = int(cls)
        if not 0 <= cls < NUM_CLASSES:
            raise ValueError(f"class index {cls} is outside 0-{NUM_CLASSES - 1}")

        def flip(before: str) -> str:
            s = set(self._target(before))
            s ^= {cls}
            return format_target(s)

        return self._edit(image_id, "labels", flip, "toggle", note, reviewer)

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

    def mark_reviewed(
        self, image_id: str, reviewed: bool = True, *, reviewer: str | None = None
    ) -> Edit | None:
        value = "1" if reviewed else "0"
        return self._edit(image_id, "reviewed", lambda before: value, "review", None, reviewer)

    def set_note(self, image_id: str, note: str, *, reviewer: str | None = None) -> Edit | None:
        """The image's free-text note (logged like any edit, undoable)."""
        text = str(note)
        return self._edit(image_id, "note", lambda before: text, "note", None, reviewer)

    def _stacks(self, c) -> tuple[list[int], list[int]]:
        undo: list[int] = []
        redo: list[int] = []
        for seq, kind in c.execute("SELECT seq, kind FROM edits ORDER BY seq"):
            if kind == "undo":
                if undo:
                    undo.pop()
                redo.append(seq)
            elif kind == "redo":
                if redo:
                    redo.pop()
                undo.append(seq)
            else:
                undo.append(seq)
                redo.clear()
        return undo, redo

    def _invert(self, which: str, reviewer: str | None) -> Edit | None:
        with self._write() as c:
            undo, redo = self._stacks(c)
            stack = undo if which == "undo" else redo
            if not stack:
                return None
            target = stack[-1]
            row, field, old = c.execute(
                "SELECT row, field, before FROM edits WHERE seq=?", (target,)
            ).fetchone()
            current = self._get_field(c, row, field)
            self._set_field(c, row, field, old)
            return self._log(c, row, which, field, current, old, "", reviewer, undoes=target)

    def undo(self, *, reviewer: str | None = None) -> Edit | None:
        """Invert the latest edit not yet undone (appends a ``kind='undo'`` edit);
        ``None`` when there is nothing to undo."""
        return self._invert("undo", reviewer)

    def redo(self, *, reviewer: str | None = None) -> Edit | None:
        """Invert the latest undo (appends ``kind='redo'``); ``None`` when nothing to redo."""
        return self._invert("redo", reviewer)

    @property
    def can_undo(self) -> bool:
        with self._read() as c:
            return bool(self._stacks(c)[0])

    @property
    def can_redo(self) -> bool:
        with self._read() as c:
            return bool(self._stacks(c)[1])

    # ------------------------------------------------------------------ ordering

    def compute_issues(self) -> np.ndarray:
        """The probability that each image's labels are right (input order,
        :func:`.ordering.label_confidence`), stored with cleanlab's per-class issue mask
        used by :meth:`highlights`.  Needs probabilities."""
        probs = self.probabilities_array()
        if probs is None:
            raise SessionError(
                "has no model probabilities: import it with --probs to rank by suspicion",
                path=self.path,
            )
        labels = self.labels_array()
        scores = ordering.label_confidence(labels, probs)
        mask = ordering.issue_mask(labels, probs)
        weights = (1 << np.arange(NUM_CLASSES, dtype=np.int64))
        bits = (mask.astype(np.int64) * weights).sum(axis=1)
        basis = [format_target(np.flatnonzero(r)) for r in labels]
        with self._write() as c:
            c.executemany(
                "UPDATE images SET score=?, issues=?, issues_basis=? WHERE row=?",
                ((float(s), int(b), t, n) for n, (s, b, t) in enumerate(zip(scores, bits, basis))),
            )
            c.execute("INSERT OR REPLACE INTO meta VALUES ('score', ?)", (_SCORE_KIND,))
        self._meta["score"] = _SCORE_KIND
        return scores

    def queue(
        self, order: str = "listed", class_filter: int | Iterable[int] | None = None
    ) -> list[str]:
        """The ids in queue ``order`` (see :mod:`.ordering`), computed now, not persisted.

        ``class_filter`` keeps only images whose current labels hold any of the classes.
        """
        if order not in ordering.ORDERS:
            raise ValueError(
                f"unknown queue order {order!r}; choose one of {', '.join(ordering.ORDERS)}"
            )
        probs = self.probabilities_array()
        if order in ordering.NEEDS_PROBABILITIES and probs is None:
            raise SessionError(
                f"has no model probabilities, which the queue order {order!r} "
                f"({ordering.ORDERS[order]}) needs: import it with --probs",
                path=self.path,
            )
        labels = self.labels_array()
        scores = self.compute_issues() if order == "suspicious" else None
        idx = ordering.order_indices(
            order, labels, probs, self.reviewed_array(), self._thresholds, scores=scores
        )
        classes = _filter_classes(class_filter)
        if classes:
            keep = labels[:, classes].any(axis=1)
            idx = idx[keep[idx]]
        return [self._ids[i] for i in idx]

    def scores(self) -> np.ndarray | None:
        """The stored :meth:`compute_issues` scores (input order; NaN where not computed),
        or ``None``."""
        if self._meta.get("score") != _SCORE_KIND:
            return None  # none yet, or cleanlab's, stored by an earlier version
        with self._lock:
            vals = [r[0] for r in self._conn.execute("SELECT score FROM images ORDER BY row")]
        if all(v is None for v in vals):
            return None
        return np.array([np.nan if v is None else v for v in vals], dtype=np.float64)

    def set_queue(
        self, order: str = "listed", class_filter: int | Iterable[int] | None = None
    ) -> list[str]:
        """Compute the queue and persist it with the position reset to 0."""
        ids = self.queue(order, class_filter)
        classes = _filter_classes(class_filter)
        everything = order == "listed" and not classes
        with self._write() as c:
            c.execute("DELETE FROM queue")
            if not everything:
                c.executemany(
                    "INSERT INTO queue VALUES (?, ?)",
                    ((n, self._rows[i]) for n, i in enumerate(ids)),
                )
            c.executemany(
                "INSERT OR REPLACE INTO state VALUES (?, ?)",
                [("order", order), ("class_filter", json.dumps(classes or None)),
                 ("position", "0")],
            )
        self._queue_cache = tuple(ids)
        return ids

    def _state(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM state WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    @property
    def queue_order(self) -> str:
        return self._state("order") or "listed"

    @property
    def class_filter(self) -> list[int] | None:
        return json.loads(self._state("class_filter") or "null")

    @property
    def queue_ids(self) -> tuple[str, ...]:
        """The persisted queue (all ids as listed until :meth:`set_queue` is called)."""
        if self._queue_cache is None:
            with self._lock:
                rows = self._conn.execute("SELECT row FROM queue ORDER BY pos").fetchall()
            everything = self.queue_order == "listed" and not self.class_filter
            self._queue_cache = (
                self._ids if everything else tuple(self._ids[r[0]] for r in rows)
            )
        return self._queue_cache

    @property
    def position(self) -> int:
        """Index of the current image in :attr:`queue_ids` (persisted)."""
        return int(self._state("position") or 0)

    @position.setter
    def position(self, value: int) -> None:
        value = int(value)
        n = len(self.queue_ids)
        if not (0 <= value < max(n, 1)):
            raise ValueError(f"position {value} is outside the queue (0-{max(n - 1, 0)})")
        with self._write() as c:
            c.execute("INSERT OR REPLACE INTO state VALUES ('position', ?)", (str(value),))

    @property
    def current_id(self) -> str | None:
        q = self.queue_ids
        if not q:
            return None
        return q[min(self.position, len(q) - 1)]

    def next(self) -> str | None:
        """Move to the next image of the queue (stays at the last); returns its id."""
        q = self.queue_ids
        if q:
            self.position = min(self.position + 1, len(q) - 1)
        return self.current_id

    def previous(self) -> str | None:
        if self.queue_ids:
            self.position = max(self.position - 1, 0)
        return self.current_id

    def jump(self, image_id: str) -> int:
        """Make ``image_id`` current; returns its queue position."""
        self._row(image_id)
        try:
            pos = self.queue_ids.index(image_id)
        except ValueError:
            raise SessionError(
                f"image {image_id!r} is not in the current queue (order {self.queue_order!r}, "
                f"class filter {self.class_filter}); clear the filter to reach it",
                path=self.path,
            ) from None
        self.position = pos
        return pos

    # ------------------------------------------------------------------ summary, export

    def summary(self) -> dict:
        with self._read() as c:

            def count(sql: str) -> int:
                return c.execute(f"SELECT COUNT(*) FROM {sql}").fetchone()[0]

            n_changed = count("images WHERE labels != original")
            n_reviewed = count("images WHERE reviewed")
            n_found = count("images WHERE source IS NOT NULL")
            n_edits = count("edits")
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
            "images_dir": self._meta.get("images_dir", ""),
            "labels_csv": self._meta.get("labels_csv", ""),
            "created": self._meta.get("created", ""),
            "schema_version": SCHEMA_VERSION,
        }

    def export(
        self,
        out_csv: str | Path,
        *,
        changed_only: bool = False,
        audit: str | Path | None = None,
    ) -> dict:
        """Write the current labels as a Kaggle ``Id,Target`` CSV (input order, indices
        ascending, extra import columns such as ``Antibody`` kept), atomically.

        ``changed_only`` writes only images whose labels differ from the import.
        ``audit`` also writes every label edit: ``Id,Before,After,Time,Reviewer,Note,Kind``.
        The session is only read.  Returns counts.
        """
        extra_cols = json.loads(self._meta.get("extra_columns", "[]"))
        with self._read() as c:
            rows = c.execute(
                "SELECT id, labels, original, extra FROM images ORDER BY row"
            ).fetchall()
            edits = (
                c.execute(
                    "SELECT row, before, after, time, reviewer, note, kind FROM edits "
                    "WHERE field='labels' ORDER BY seq"
                ).fetchall()
                if audit is not None
                else []
            )
        targets = {}
        extra: dict[str, dict[str, str]] = {col: {} for col in extra_cols}
        changed = 0
        for image_id, labels, original, ex in rows:
            if labels != original:
                changed += 1
            elif changed_only:
                continue
            targets[image_id] = self._target(labels)
            if extra_cols:
                d = json.loads(ex) if ex else {}
                for col in extra_cols:
                    extra[col][image_id] = d.get(col, "")
        files = {Path(out_csv): labels_csv_text(targets, extra=extra or None).encode("utf-8")}
        if audit is not None:
            buf = io.StringIO(newline="")
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(["Id", "Before", "After", "Time", "Reviewer", "Note", "Kind"])
            for row, *rest in edits:
                w.writerow([self._ids[row], *rest])
            files[Path(audit)] = buf.getvalue().encode("utf-8")
        atomic_write_group(files)  # both files or neither
        return {"written": len(targets), "changed": changed, "audit_edits": len(edits)}


def _filter_classes(class_filter: int | Iterable[int] | None) -> list[int]:
    if class_filter is None:
        return []
    if isinstance(class_filter, (int, np.integer)):
        class_filter = [class_filter]
    out = sorted({int(k) for k in class_filter})
    for k in out:
        if not 0 <= k < NUM_CLASSES:
            raise ValueError(f"class index {k} is outside 0-{NUM_CLASSES - 1}")
    return out


__all__ = [
    "EDIT_KINDS",
    "Edit",
    "Highlights",
    "ImageRecord",
    "ReviewSession",
    "SCHEMA_VERSION",
    "default_reviewer",
]
