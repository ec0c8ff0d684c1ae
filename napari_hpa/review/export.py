"""Export of a review session: the corrected labels as a Kaggle ``Id,Target`` CSV, the audit
CSV of every edit and the review CSV of every image's marks, read from one snapshot of the
file and written together, atomically.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..fileio import atomic_write_group
from ..labels import labels_csv_text
from .db import SessionDB

AUDIT_COLUMNS = ("Id", "Before", "After", "Time", "Reviewer", "Note", "Kind", "Field")
REVIEW_COLUMNS = ("Id", "Reviewed", "Unsure", "Note", "Reviewer", "Time")


def _csv(header, rows) -> bytes:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


def export(
    db: SessionDB,
    out_csv: str | Path,
    *,
    changed_only: bool = False,
    audit: str | Path | None = None,
    review: str | Path | None = None,
) -> dict:
    """Write the session's current labels to ``out_csv``; given ``audit``, every edit (labels,
    review and unsure marks, notes, undo and redo) to that file; given ``review``, one row per
    image (input order) with its review mark, unsure mark, note and the reviewer and time of
    its latest edit.  All of them or none (see :meth:`.ReviewSession.export`); returns counts."""
    extra_cols = json.loads(db.meta.get("extra_columns", "[]"))
    with db.read() as c:
        rows = c.execute(
            "SELECT id, labels, original, extra, reviewed, unsure, note FROM images ORDER BY row"
        ).fetchall()
        edits = (
            c.execute(
                "SELECT row, before, after, time, reviewer, note, kind, field FROM edits "
                "ORDER BY seq"
            ).fetchall()
            if audit is not None
            else []
        )
        latest = (
            dict(
                (r[0], (r[1], r[2]))
                for r in c.execute(
                    "SELECT e.row, e.reviewer, e.time FROM edits e JOIN "
                    "(SELECT row, MAX(seq) AS seq FROM edits GROUP BY row) m ON e.seq = m.seq"
                )
            )
            if review is not None
            else {}
        )
    targets = {}
    extra: dict[str, dict[str, str]] = {col: {} for col in extra_cols}
    marks = []
    changed = 0
    for n, (image_id, labels, original, ex, reviewed, unsure, note) in enumerate(rows):
        if review is not None:
            who, when = latest.get(n, ("", ""))
            marks.append([image_id, int(bool(reviewed)), int(bool(unsure)), note or "", who, when])
        if labels != original:
            changed += 1
        elif changed_only:
            continue
        targets[image_id] = db.target(labels)
        if extra_cols:
            d = json.loads(ex) if ex else {}
            for col in extra_cols:
                extra[col][image_id] = d.get(col, "")
    files = {Path(out_csv): labels_csv_text(targets, extra=extra or None).encode("utf-8")}
    if audit is not None:
        files[Path(audit)] = _csv(AUDIT_COLUMNS, ([db.ids[row], *rest] for row, *rest in edits))
    if review is not None:
        files[Path(review)] = _csv(REVIEW_COLUMNS, marks)
    atomic_write_group(files)  # all of them or none
    return {"written": len(targets), "changed": changed, "audit_edits": len(edits),
            "review_rows": len(marks)}
