"""Labels CSVs in the Kaggle format (``Id,Target``; predictions ``Id,Predicted``).

Reading accepts rows in any order and class indices in any order, merges
duplicates within a row, and keeps any extra columns (e.g. ``Antibody``).
Anything else -- a missing header or column, an index outside 0-27, a
non-integer, a duplicate id, an empty file -- raises :class:`LabelsCSVError`
naming the file and the line.  Writing sorts the indices, keeps the row order
given and replaces the destination atomically (temporary file in the same
folder, fsync, ``os.replace``: :mod:`napari_hpa.fileio`), so a reader never sees a
partial file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .classes import NUM_CLASSES
from .errors import InvalidValueError, LabelsCSVError
# the atomic writer moved to .fileio; its names are still importable from here
from .fileio import atomic_write_bytes, atomic_write_group, atomic_write_text, check_outputs  # noqa: F401

if TYPE_CHECKING:
    import numpy as np

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
    """``"7 1 2 0"`` -> ``(0, 1, 2, 7)``; raises :class:`~napari_hpa.errors.InvalidValueError`
    (a ``ValueError``) with the reason."""
    out = set()
    for tok in text.split():
        try:
            idx = int(tok)
        except ValueError:
            raise InvalidValueError(f"class index {tok!r} is not an integer") from None
        if not 0 <= idx < NUM_CLASSES:
            raise InvalidValueError(f"class index {idx} is outside 0-{NUM_CLASSES - 1}")
        out.add(idx)
    return tuple(sorted(out))


def multi_hot(targets: Iterable[Iterable[int]]) -> np.ndarray:
    """``[N, 28]`` bool: row ``i`` is true at the classes of the ``i``-th target."""
    import numpy as np

    targets = list(targets)
    out = np.zeros((len(targets), NUM_CLASSES), dtype=bool)
    for i, target in enumerate(targets):
        out[i, list(target)] = True
    return out


def format_target(target: Iterable[int]) -> str:
    """Space-separated class indices, ascending, duplicates merged."""
    return " ".join(str(i) for i in sorted(set(int(i) for i in target)))


def _csv_rows(path: Path, expected: str):
    """A csv reader over ``path``; a missing, unreadable or empty file is a LabelsCSVError."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise LabelsCSVError("file not found", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelsCSVError(f"cannot be read ({exc})", path=path) from None
    if not text.strip():
        raise LabelsCSVError(f"the file is empty (expected {expected})", path=path)
    return _checked_rows(csv.reader(io.StringIO(text, newline="")), path)


def _checked_rows(reader, path: Path):
    """The rows of ``reader``; a malformed line (a field over the csv module's size limit, a
    NUL byte, an unterminated quote) is a LabelsCSVError naming the file and line."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise LabelsCSVError(f"is not valid CSV ({exc})", path=path, line=reader.line_num) from None
        yield row


def is_plain_id(image_id: str) -> bool:
    """Whether an image id names files inside one folder: no path separator, NUL, '.' or '..'."""
    return not any(c in image_id for c in "/\\\x00") and image_id not in (".", "..")


def _data_rows(rows, header: list[str], i_id: int, path: Path, fields: str):
    """``(line, id, row)`` for each data row, refusing wrong field counts, empty or repeated ids."""
    seen: set[str] = set()
    for lineno, row in enumerate(rows, start=2):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        if len(row) != len(header):
            raise LabelsCSVError(
                f"expected {len(header)} fields ({fields}), found {len(row)}", path=path, line=lineno
            )
        image_id = row[i_id].strip()
        if not image_id:
            raise LabelsCSVError("the Id is empty", path=path, line=lineno)
        if image_id in seen:
            raise LabelsCSVError(f"duplicate Id {image_id!r}", path=path, line=lineno)
        if not is_plain_id(image_id):
            raise LabelsCSVError(
                f"Id {image_id!r} holds a path separator or is '..': an id names the files of one "
                "set in one folder", path=path, line=lineno)
        seen.add(image_id)
        yield lineno, image_id, row


def read_labels(path: str | Path, column: str | None = None) -> LabelTable:
    """Read a Kaggle-format labels CSV.

    ``column`` is the label column; by default ``Target``, or ``Predicted`` when
    the file has that instead.
    """
    path = Path(path)
    rows = _csv_rows(path, "a header 'Id,Target'")
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
    for lineno, image_id, row in _data_rows(rows, header, i_id, path, ",".join(header)):
        try:
            table.targets[image_id] = parse_target(row[i_target])
        except InvalidValueError as exc:
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
    return atomic_write_text(path, labels_csv_text(targets, column=column, extra=extra))


def labels_csv_text(
    targets: Mapping[str, Iterable[int]],
    *,
    column: str = "Target",
    extra: Mapping[str, Mapping[str, object]] | None = None,
) -> str:
    """The text of a labels CSV: ``Id,<column>[,extra...]`` rows in the mapping's order."""
    extra = extra or {}
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["Id", column, *extra])
    for image_id, target in targets.items():
        writer.writerow([image_id, format_target(target), *(col[image_id] for col in extra.values())])
    return buf.getvalue()


# -- probabilities CSV ---------------------------------------------------------


def _probability_column_index(name: str) -> int | None:
    """Class index of a probabilities column: a class name, or its index ``0``..``27``."""
    from .classes import CLASS_NAMES

    name = name.strip()
    if name in CLASS_NAMES:
        return CLASS_NAMES.index(name)
    if name.isdigit() and int(name) < NUM_CLASSES and str(int(name)) == name:
        return int(name)
    return None


def _first_ids(ids: Sequence[str], n: int = 3) -> str:
    """``'a', 'b', 'c' and 4 more``: ids for an error message."""
    more = f" and {len(ids) - n} more" if len(ids) > n else ""
    return ", ".join(repr(i) for i in ids[:n]) + more


def read_probabilities(
    path: str | Path, expected_ids: Iterable[str] | None = None, *, complete: bool = True
) -> tuple[list[str], np.ndarray]:
    """Read a probabilities CSV: ``Id`` + one column per class -> ``(ids, (N, 28) float64)``.

    Class columns are named with the class names (``Nucleoplasm``, ...) or with
    their indices ``0``..``27``, in any order; all 28 must be there, once.
    Values must be numbers in [0, 1].  With ``expected_ids`` (e.g. the ids of a
    labels CSV) an id not in it, or (with ``complete``) an expected id with no row, is an
    error too.
    Rows come back in file order.  Every error is a :class:`LabelsCSVError`
    naming the file, the line and the column.
    """
    import numpy as np

    from .classes import CLASS_NAMES

    path = Path(path)
    rows = _csv_rows(path, "a header 'Id' + one column per class")
    header = [h.strip() for h in next(rows)]
    if "Id" not in header:
        raise LabelsCSVError(
            "the header has no 'Id' column (expected 'Id' + one column per class)",
            path=path,
            line=1,
        )
    i_id = header.index("Id")
    col_class: list[int] = []  # class index of each column other than Id
    seen: dict[int, str] = {}
    for j, name in enumerate(header):
        if j == i_id:
            continue
        k = _probability_column_index(name)
        if k is None:
            raise LabelsCSVError(
                f"column {j + 1} {name!r} is neither a class name nor a class index 0-27",
                path=path,
                line=1,
            )
        if k in seen:
            raise LabelsCSVError(
                f"columns {seen[k]!r} and {name!r} are both class {k} ({CLASS_NAMES[k]})",
                path=path,
                line=1,
            )
        seen[k] = name
        col_class.append(k)
    missing = [k for k in range(NUM_CLASSES) if k not in seen]
    if missing:
        names = ", ".join(f"{k} ({CLASS_NAMES[k]})" for k in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise LabelsCSVError(f"no column for class {names}{more}", path=path, line=1)
    data_cols = [j for j in range(len(header)) if j != i_id]
    order = np.argsort(col_class)  # column position -> class order

    expected = None if expected_ids is None else set(expected_ids)
    ids: list[str] = []
    values: list[list[str]] = []
    lines: list[int] = []
    for lineno, image_id, row in _data_rows(rows, header, i_id, path, "Id + 28 classes"):
        if expected is not None and image_id not in expected:
            raise LabelsCSVError(
                f"Id {image_id!r} is not among the labelled ids", path=path, line=lineno
            )
        ids.append(image_id)
        values.append([row[j] for j in data_cols])
        lines.append(lineno)
    if complete and expected is not None and len(ids) != len(expected):
        found = set(ids)
        absent = [i for i in expected_ids if i not in found]  # type: ignore[union-attr]
        raise LabelsCSVError(f"no row for Id {_first_ids(absent)}", path=path)

    try:
        probs = np.array(values, dtype=np.float64).reshape(len(values), NUM_CLASSES)
    except ValueError:
        probs = None
    bad = None
    if probs is None:
        for r, row in enumerate(values):
            for c, v in enumerate(row):
                try:
                    float(v)
                except ValueError:
                    bad = (r, c, f"{v!r} is not a number")
                    break
            if bad:
                break
    else:
        outside = ~((probs >= 0) & (probs <= 1))  # NaN counts as outside
        if outside.any():
            r, c = (int(x) for x in np.argwhere(outside)[0])
            bad = (r, c, f"{values[r][c].strip()} is outside [0, 1]")
    if bad is not None:
        r, c, problem = bad
        name = header[data_cols[c]]
        raise LabelsCSVError(
            f"Id {ids[r]!r}, column {name!r}: {problem}", path=path, line=lines[r]
        )
    return ids, np.ascontiguousarray(probs[:, order])


def read_probability_files(
    paths: Sequence[str | Path], expected_ids: Sequence[str]
) -> tuple[list[str], np.ndarray]:
    """Read several probabilities CSVs that together cover ``expected_ids`` once each.

    This is how K-fold out-of-fold probabilities come in: each fold's run folder holds
    ``val_probs.csv`` for its held-out ids.  An id in two files, an id not expected, or an
    expected id in none of the files is a :class:`LabelsCSVError`.  Returns the rows of
    all files, in file order.
    """
    import numpy as np

    paths = [Path(p) for p in paths]
    if len(paths) == 1:
        return read_probabilities(paths[0], expected_ids)
    ids: list[str] = []
    parts = []
    first_file: dict[str, Path] = {}
    for path in paths:
        p_ids, p = read_probabilities(path, expected_ids, complete=False)
        for image_id in p_ids:
            if image_id in first_file:
                raise LabelsCSVError(
                    f"Id {image_id!r} is in {first_file[image_id]} too; each id may be in one file only",
                    path=path,
                )
            first_file[image_id] = path
        ids += p_ids
        parts.append(p)
    absent = [i for i in expected_ids if i not in first_file]
    if absent:
        raise LabelsCSVError(
            f"no row for Id {_first_ids(absent)} in any of the {len(paths)} probabilities files",
            path=paths[0],
        )
    return ids, np.concatenate(parts)


def write_probabilities(
    path: str | Path, ids: Iterable[str], probs, *, digits: int = 6
) -> Path:
    """Write ``Id`` + the 28 class-name columns, one row per id, atomically."""
    import numpy as np

    from .classes import CLASS_NAMES

    ids = list(ids)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (len(ids), NUM_CLASSES):
        raise ValueError(
            f"probabilities have shape {probs.shape}, expected ({len(ids)}, {NUM_CLASSES})"
        )
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["Id", *CLASS_NAMES])
    fmt = f"{{:.{digits}g}}"
    for image_id, row in zip(ids, probs):
        writer.writerow([image_id, *(fmt.format(v) for v in row)])
    return atomic_write_text(path, buf.getvalue())
