"""The edit log of a review session: :class:`Edit`, appending an edit with its row change in
one transaction, undo and redo, and the history.

Undo and redo never delete: :meth:`EditLog.invert` with ``"undo"`` appends the inverse of
the latest edit not yet undone (``kind='undo'``, ``undoes`` = its seq), and with ``"redo"``
the inverse of the latest undo (``kind='redo'``) -- redo is the undo of an undo.  Any
other edit clears the redo stack, as in an editor.  The stacks are a fold over the log
in ``seq`` order; each call folds in only the edits appended since the previous call (by
this process or any other), so they survive a restart and are shared by every process
using the file without the whole log being read each time.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from dataclasses import dataclass

from .db import SessionDB, now

EDIT_KINDS = ("set", "toggle", "accept", "review", "unsure", "note", "undo", "redo")
#: the kind of an edit of a field that follows the first of a decision
_KIND = {"reviewed": "review", "unsure": "unsure", "note": "note", "labels": "set"}
_FIELD_SQL = {"labels": "labels", "reviewed": "reviewed", "note": "note", "unsure": "unsure"}
_FLAGS = frozenset({"reviewed", "unsure"})


@dataclass(frozen=True)
class Edit:
    """One row of the edit log."""

    seq: int
    id: str
    kind: str  # set, toggle, accept, review, unsure, note, undo, redo
    field: str  # labels, reviewed, unsure, note
    before: str
    after: str
    time: str  # ISO 8601, UTC
    reviewer: str
    note: str
    undoes: int | None = None


def default_reviewer() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in the environment
        return "unknown"


class EditLog:
    """The ``edits`` table of one session file, and the undo and redo stacks it implies."""

    def __init__(self, db: SessionDB):
        self._db = db
        self._seen = 0  # the latest seq folded into the stacks (0: none)
        self._undo: list[int] = []
        self._redo: list[int] = []

    # ------------------------------------------------------------------ appending

    def _log(self, c, row, kind, field, before, after, note, reviewer, undoes=None,
             decision=None) -> Edit:
        t = now()
        note = note or ""
        cur = c.execute(
            "INSERT INTO edits (row, kind, field, before, after, time, reviewer, note, undoes, "
            "decision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (row, kind, field, before, after, t, reviewer, note, undoes, decision),
        )
        return Edit(cur.lastrowid, self._db.ids[row], kind, field, before, after, t, reviewer,
                    note, undoes)

    @staticmethod
    def _get_field(c, row: int, field: str) -> str:
        value = c.execute(
            f"SELECT {_FIELD_SQL[field]} FROM images WHERE row=?", (row,)
        ).fetchone()[0]
        return str(value)

    @staticmethod
    def _set_field(c, row: int, field: str, value: str) -> None:
        stored = int(value) if field in _FLAGS else value
        c.execute(f"UPDATE images SET {_FIELD_SQL[field]}=? WHERE row=?", (stored, row))

    def edit(
        self,
        image_id: str,
        field: str,
        compute: Callable[[str], str],
        kind: str,
        note: str | None,
        reviewer: str,
    ) -> Edit | None:
        """Set ``field`` of ``image_id`` to ``compute(its value)`` and log it, in one
        transaction; ``None`` (nothing logged) when the value does not change."""
        row = self._db.row(image_id)
        with self._db.write() as c:
            before = self._get_field(c, row, field)
            after = compute(before)
            if after == before:
                return None
            self._set_field(c, row, field, after)
            return self._log(c, row, kind, field, before, after, note, reviewer)

    def decide(
        self,
        image_id: str,
        changes: list[tuple[str, Callable[[str], str]]],
        kind: str,
        note: str | None,
        reviewer: str,
    ) -> Edit | None:
        """One decision changing several fields of ``image_id`` (``(field, compute)`` pairs,
        applied in order) in one transaction, undone as one.  Only the first field decides:
        when it does not change, nothing is logged.  Returns the first edit."""
        row = self._db.row(image_id)
        with self._db.write() as c:
            logged: list[Edit] = []
            for n, (field, compute) in enumerate(changes):
                before = self._get_field(c, row, field)
                after = compute(before)
                if after == before:
                    if n == 0:
                        return None
                    continue
                self._set_field(c, row, field, after)
                first = logged[0].seq if logged else None
                logged.append(self._log(c, row, kind if n == 0 else _KIND[field], field,
                                        before, after, note if n == 0 else "", reviewer,
                                        decision=first))
            if len(logged) > 1:  # the first edit of a decision names itself
                c.execute("UPDATE edits SET decision=? WHERE seq=?", (logged[0].seq,
                                                                     logged[0].seq))
            return logged[0]

    # ------------------------------------------------------------------ undo, redo

    def _stacks(self, c) -> tuple[list[int], list[int]]:
        """The undo and redo stacks (seqs), brought up to date in the transaction ``c``."""
        # one entry per decision: its edits share COALESCE(decision, seq)
        new = c.execute(
            "SELECT seq, kind, COALESCE(decision, seq) FROM edits WHERE seq >= ? ORDER BY seq",
            (self._seen,),
        ).fetchall()
        if self._seen:
            if new and new[0][0] == self._seen:
                new = new[1:]
            else:  # not the log folded so far (another file in its place): fold it afresh
                self._seen, self._undo, self._redo = 0, [], []
                new = c.execute(
                    "SELECT seq, kind, COALESCE(decision, seq) FROM edits ORDER BY seq"
                ).fetchall()
        undo, redo = self._undo, self._redo
        for seq, kind, group in new:
            if group != seq:  # a later edit of a decision already folded
                self._seen = seq
                continue
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
            self._seen = seq
        return undo, redo

    def invert(self, which: str, reviewer: str) -> Edit | None:
        """Append the inverse of the top of the ``"undo"`` or ``"redo"`` stack; ``None``
        when that stack is empty."""
        with self._db.write() as c:
            undo, redo = self._stacks(c)
            stack = undo if which == "undo" else redo
            if not stack:
                return None
            target = stack[-1]
            rows = c.execute(
                "SELECT seq, row, field, before FROM edits "
                "WHERE seq=? OR decision=? ORDER BY seq DESC", (target, target)
            ).fetchall()
            logged: list[Edit] = []
            for seq, row, field, old in rows:  # the last edit of the decision first
                current = self._get_field(c, row, field)
                self._set_field(c, row, field, old)
                first = logged[0].seq if logged else None
                logged.append(self._log(c, row, which, field, current, old, "", reviewer,
                                        undoes=seq, decision=first))
            if len(logged) > 1:
                c.execute("UPDATE edits SET decision=? WHERE seq=?", (logged[0].seq,
                                                                     logged[0].seq))
            return logged[0]

    @property
    def can_undo(self) -> bool:
        with self._db.read() as c:
            return bool(self._stacks(c)[0])

    @property
    def can_redo(self) -> bool:
        with self._db.read() as c:
            return bool(self._stacks(c)[1])

    # ------------------------------------------------------------------ reading

    def history(self, image_id: str | None = None, *, limit: int | None = None) -> list[Edit]:
        """The edit log (of one image, or all), oldest first; ``limit`` keeps the latest."""
        sql = "SELECT seq, row, kind, field, before, after, time, reviewer, note, undoes FROM edits"
        args: tuple = ()
        if image_id is not None:
            sql += " WHERE row=?"
            args = (self._db.row(image_id),)
        sql += " ORDER BY seq DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._db.lock:
            rows = self._db.conn.execute(sql, args).fetchall()
        return [Edit(s, self._db.ids[r], *rest) for s, r, *rest in reversed(rows)]
