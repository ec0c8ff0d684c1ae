"""Labels CSVs in the Kaggle format (``Id,Target``; predictions ``Id,Predicted``).

Reading accepts rows in any order and class indices in any order, merges
duplicates within a row, and keeps any extra columns (e.g. ``Antibody``).
Anything else -- a missing header or column, an index outside 0-27, a
non-integer, a duplicate id, an empty file -- raises :class:`LabelsCSVError`
naming the file and the line.  Writing sorts the indices, keeps the row order
given and replaces the destination atomically (temporary file in the same
folder, fsync, ``os.replace``), so a reader never sees a partial file.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .classes import NUM_CLASSES
from .errors import LabelsCSVError

Target = tuple[int, ...]


@dataclass
class LabelTable:
    """The rows of a labels CSV, in file order."""

    targets: dict[str, Target]
    #: Extra columns: column name -> {id: value}.
    extra: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Name of the label column that was read (``Target`` or ``Predicted``).
    column: str = "Target"

    @property
    def ids(self) -> list[str]:
        return list(self.targets)

    def __len__(self) -> int:
        return len(self.targets)


def parse_target(text: str) -> Target:
    """``"7 1 2 0"`` -> ``(0, 1, 2, 7)``; raises ``ValueError`` with the reason."""
    out = set()
    for tok in text.split():
        try:
            idx = int(tok)
        except ValueError:
            raise ValueError(f"class index {tok!r} is not an integer") from None
        if not 0 <= idx < NUM_CLASSES:
            raise ValueError(f"class index {idx} is outside 0-{NUM_CLASSES - 1}")
        out.add(idx)
    return tuple(sorted(out))


def format_target(target: Iterable[int]) -> str:
    """Space-separated class indices, ascending, duplicates merged."""
    return " ".join(str(i) for i in sorted(set(int(i) for i in target)))


def read_labels(path: str | Path, column: str | None = None) -> LabelTable:
    """Read a Kaggle-format labels CSV.

    ``column`` is the label column; by default ``Target``, or ``Predicted`` when
    the file has that instead.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise LabelsCSVError("file not found", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelsCSVError(f"cannot be read ({exc})", path=path) from None
    if not text.strip():
        raise LabelsCSVError("the file is empty (expected a header 'Id,Target')", path=path)

    rows = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip() for h in next(rows)]
    if "Id" not in header:
        raise LabelsCSVError(
            f"the header {','.join(header)!r} has no 'Id' column "
            "(expected a header 'Id,Target')",
            path=path,
            line=1,
        )
    if column is None:
        column = "Target" if "Target" in header or "Predicted" not in header else "Predicted"
    if column not in header:
        raise LabelsCSVError(
            f"the header {','.join(header)!r} has no {column!r} column", path=path, line=1
        )
    if len(set(header)) != len(header):
        raise LabelsCSVError(f"the header {','.join(header)!r} repeats a column", path=path, line=1)
    i_id, i_target = header.index("Id"), header.index(column)
    extra_names = [h for h in header if h not in ("Id", column)]
    table = LabelTable(targets={}, extra={h: {} for h in extra_names}, column=column)
    for lineno, row in enumerate(rows, start=2):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        if len(row) != len(header):
            raise LabelsCSVError(
                f"expected {len(header)} fields ({','.join(header)}), found {len(row)}",
                path=path,
                line=lineno,
            )
        image_id = row[i_id].strip()
        if not image_id:
            raise LabelsCSVError("the Id is empty", path=path, line=lineno)
        if image_id in table.targets:
            raise LabelsCSVError(f"duplicate Id {image_id!r}", path=path, line=lineno)
        try:
            table.targets[image_id] = parse_target(row[i_target])
        except ValueError as exc:
            raise LabelsCSVError(f"Id {image_id!r}: {exc}", path=path, line=lineno) from None
        for h in extra_names:
            table.extra[h][image_id] = row[header.index(h)]
    return table


def write_labels(
    path: str | Path,
    targets: Mapping[str, Iterable[int]],
    *,
    column: str = "Target",
    extra: Mapping[str, Mapping[str, object]] | None = None,
) -> Path:
    """Write ``Id,<column>[,extra...]`` rows in the mapping's order, atomically."""
    extra = extra or {}
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["Id", column, *extra])
    for image_id, target in targets.items():
        writer.writerow([image_id, format_target(target), *(col[image_id] for col in extra.values())])
    return atomic_write_text(path, buf.getvalue())


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` so that ``path`` is always old or new, never partial."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OSError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(folder)
    return path


def _fsync_dir(folder: Path) -> None:
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
