"""The review session's SQLite file: its schema, building it from the import, opening and
checking it, and :class:`SessionDB`, the open connection with its write and read
transactions, meta and state keys, the id list and the column readers that the other
parts of a session share.

Every edit is one SQLite transaction (WAL journal, ``synchronous=FULL``), committed
before the method returns, so a crash or a kill loses nothing that returned.

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
           issues_basis TEXT,                   -- bits, and the labels they were computed on
           unsure INTEGER)                      -- the reviewer's "unsure" mark (schema 2)
    edits(seq INTEGER PRIMARY KEY AUTOINCREMENT,-- append-only log
          row INTEGER, kind TEXT, field TEXT,   -- kind: set toggle accept review note undo redo
          before TEXT, after TEXT,              -- field: labels | reviewed | note
          time TEXT, reviewer TEXT, note TEXT,
          undoes INTEGER,                       -- undo/redo: the seq they invert
          decision INTEGER)                     -- the first seq of a decision of several
                                                -- edits (undone as one; schema 2)
    state(key TEXT PRIMARY KEY, value TEXT)     -- queue order, class filter, position
    queue(pos INTEGER PRIMARY KEY, row INTEGER) -- the current queue (empty = all, as listed)
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import threading
from collections.abc import Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..classes import NUM_CLASSES
from ..errors import SessionError
from ..fileio import fsync_dir
from ..imageset import SetSource, find_sets
from ..labels import (
    Target,
    format_target,
    multi_hot,
    read_labels,
    read_probability_files,
)
from . import ordering

SCHEMA_VERSION = 2
FORMAT = "napari-hpa review session"
SQLITE_MAGIC = b"SQLite format 3\x00"
#: What the ``score`` column holds (meta ``score``); earlier versions stored cleanlab's
#: label-quality score there without this key.
SCORE_KIND = "label_confidence"

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
    issues_basis TEXT,
    unsure INTEGER NOT NULL DEFAULT 0
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
    undoes INTEGER REFERENCES edits(seq),
    decision INTEGER
);
CREATE INDEX edits_by_row ON edits(row);
CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE queue (pos INTEGER PRIMARY KEY, row INTEGER NOT NULL);
"""


def now() -> str:
    """The time now, UTC, ISO 8601 to the millisecond (as stored in the file)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


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


def create_file(
    path: Path,
    images_dir: str | Path | None,
    labels_csv: str | Path,
    probs_csv: str | Path | Sequence[str | Path] | None,
    thresholds: float | Sequence[float] | None,
    overwrite: bool,
) -> None:
    """Build a new session file at ``path`` from the import (see
    :meth:`~napari_hpa.review.store.ReviewSession.create`): under a temporary name,
    then moved into place, so a failed or interrupted import leaves no session behind."""
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
        "created": now(),
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
    fsync_dir(folder_out)


def _upgrade(conn: sqlite3.Connection, version: int) -> None:
    """Bring a session of an earlier schema up to :data:`SCHEMA_VERSION`, in one transaction
    (schema 2 adds the unsure mark and the decision an edit belongs to)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if version < 2:
            conn.execute("ALTER TABLE images ADD COLUMN unsure INTEGER NOT NULL DEFAULT 0")
            conn.execute("ALTER TABLE edits ADD COLUMN decision INTEGER")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class SessionDB:
    """An open session file: the connection, its lock, the meta keys, the thresholds and
    the id list.  Use :meth:`open`.  Calls are serialised by the lock, so the object may
    be shared between threads."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = Path(path)
        self.conn = conn
        self.lock = threading.RLock()
        self.meta: dict[str, str] = dict(conn.execute("SELECT key, value FROM meta"))
        self.thresholds = ordering.as_thresholds(json.loads(self.meta.get("thresholds", "0.5")))
        self.ids: tuple[str, ...] = tuple(
            r[0] for r in conn.execute("SELECT id FROM images ORDER BY row")
        )
        self.rows = {i: r for r, i in enumerate(self.ids)}

    @classmethod
    def open(cls, path: Path) -> SessionDB:
        """Open an existing session; a missing, foreign, corrupt or newer file raises
        :class:`SessionError` naming it."""
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
                if version < SCHEMA_VERSION:
                    _upgrade(conn, version)
            except sqlite3.OperationalError as exc:  # read-only file or folder, locked
                raise SessionError(f"cannot be opened for editing: {_sqlite_reason(exc)}", path=path) from None
            return cls(path, conn)
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
        with self.lock:
            self.conn.close()

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def write(self):
        """One immediate transaction, committed (durably) on exit.  SQLite's failures to write
        (a read-only file or folder, a lock held elsewhere, a full disk) are a SessionError
        saying so, and the edit is not saved (the session is as before)."""
        with self.lock:
            c = self.conn
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
    def read(self):
        """A read transaction: one consistent snapshot."""
        with self.lock:
            c = self.conn
            c.execute("BEGIN")
            try:
                yield c
            finally:
                c.execute("COMMIT")

    def query_one(self, sql: str, args: tuple = ()) -> tuple | None:
        """The first row of one query (outside a transaction), or ``None``."""
        with self.lock:
            return self.conn.execute(sql, args).fetchone()

    # ------------------------------------------------------------------ stored values

    def row(self, image_id: str) -> int:
        """The row (input position) of ``image_id``; an unknown id names the file."""
        try:
            return self.rows[image_id]
        except KeyError:
            raise SessionError(f"no image {image_id!r} in this session", path=self.path) from None

    def target(self, text) -> Target:
        """A stored label set; a value that is not one (a damaged or edited file) names the file."""
        try:
            target = tuple(int(t) for t in str(text).split())
        except ValueError:
            target = None
        if target is None or not all(0 <= t < NUM_CLASSES for t in target):
            raise SessionError(f"is damaged: a stored label set {str(text)[:60]!r} is not class "
                               f"indices 0-{NUM_CLASSES - 1}", path=self.path)
        return target

    def probs(self, blob) -> np.ndarray:
        """Stored probabilities (28 little-endian float64); anything else names the file."""
        if not isinstance(blob, bytes) or len(blob) != 8 * NUM_CLASSES:
            raise SessionError(f"is damaged: stored probabilities are not {NUM_CLASSES} numbers", path=self.path)
        p = np.frombuffer(blob, dtype="<f8").copy()
        if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
            raise SessionError("is damaged: stored probabilities outside [0, 1]", path=self.path)
        return p

    # ------------------------------------------------------------------ meta and state

    @property
    def has_probabilities(self) -> bool:
        return self.meta.get("has_probs") == "1"

    def set_thresholds(self, thresholds: float | Sequence[float]) -> None:
        t = ordering.as_thresholds(thresholds)
        with self.write() as c:
            c.execute(
                "INSERT OR REPLACE INTO meta VALUES ('thresholds', ?)", (json.dumps(t.tolist()),)
            )
        self.thresholds = t
        self.meta["thresholds"] = json.dumps(t.tolist())

    def state(self, key: str) -> str | None:
        row = self.query_one("SELECT value FROM state WHERE key=?", (key,))
        return row[0] if row else None

    def states(self) -> dict[str, str]:
        """Every state key, in one query."""
        with self.lock:
            return dict(self.conn.execute("SELECT key, value FROM state"))

    # ------------------------------------------------------------------ whole columns

    def labels_array(self) -> np.ndarray:
        """``(N, 28)`` bool of the current labels, input order."""
        with self.lock:
            texts = [r[0] for r in self.conn.execute("SELECT labels FROM images ORDER BY row")]
        return multi_hot(self.target(text) for text in texts)

    def probabilities_array(self) -> np.ndarray | None:
        """``(N, 28)`` float64 probabilities, input order; ``None`` without them."""
        if not self.has_probabilities:
            return None
        with self.lock:
            blobs = [r[0] for r in self.conn.execute("SELECT probs FROM images ORDER BY row")]
        return np.stack([self.probs(b) for b in blobs])

    def reviewed_array(self) -> np.ndarray:
        with self.lock:
            return np.array(
                [r[0] for r in self.conn.execute("SELECT reviewed FROM images ORDER BY row")],
                dtype=bool,
            )
