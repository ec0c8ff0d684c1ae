"""Export of a review session: the corrected labels as a Kaggle ``Id,Target`` CSV and the
audit CSV of every label edit, read from one snapshot of the file and written together,
atomically.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..fileio import atomic_write_group
from ..labels import labels_csv_text
from .db import SessionDB


def export(
    db: SessionDB,
    out_csv: str | Path,
    *,
    changed_only: bool = False,
    audit: str | Path | None = None,
) -> dict:
    """Write the session's current labels to ``out_csv`` and, given ``audit``, every label
    edit to that file, both or neither (see :meth:`.ReviewSession.export`); returns counts."""
    extra_cols = json.loads(db.meta.get("extra_columns", "[]"))
    with db.read() as c:
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
        targets[image_id] = db.target(labels)
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
            w.writerow([db.ids[row], *rest])
        files[Path(audit)] = buf.getvalue().encode("utf-8")
    atomic_write_group(files)  # both files or neither
    return {"written": len(targets), "changed": changed, "audit_edits": len(edits)}
