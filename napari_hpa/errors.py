"""Typed errors of the core.  Each message says what was wrong and where.

Every error of bad input (a file, a folder, a value) is an :class:`HPAError`, which the
command line reports in one line with exit status 2; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class HPAError(Exception):
    """Base class of every error napari-hpa raises on bad input."""


class FileError(HPAError):
    """Something wrong with one file (a model, a manifest, a record): the message names it."""

    def __init__(self, problem: str, path: str | Path | None = None):
        self.problem = problem
        self.path = path
        super().__init__(f"{path}: {problem}" if path else problem)


class WriteError(FileError, OSError):
    """An output that cannot be written (a folder that is not writable, a full disk); also
    an ``OSError``, which the atomic writers raised before."""


class InvalidValueError(HPAError, ValueError):
    """A value that is malformed or out of range (a label set, a threshold); also a
    ``ValueError``, which the helpers that check such values raised before."""


@contextmanager
def file_errors(path: str | Path, *, writing: bool) -> Iterator[None]:
    """At an I/O boundary: an ``OSError`` while reading (or ``writing``) the user's ``path``
    becomes a :class:`FileError` (a :class:`WriteError`) naming the path and the OS's reason."""
    try:
        yield
    except FileError:
        raise
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if writing:
            raise WriteError(f"cannot write to it ({reason})", path) from exc
        raise FileError(f"cannot be read ({reason})", path) from exc


class ImageSetError(HPAError):
    """An image set that cannot be read: names the id, the channel and the file."""

    def __init__(
        self,
        problem: str,
        *,
        set_id: str | None = None,
        channel: str | None = None,
        path: str | Path | None = None,
    ):
        self.problem = problem
        self.set_id = set_id
        self.channel = channel
        self.path = None if path is None else Path(path)
        where = []
        if set_id is not None:
            where.append(f"image set {set_id!r}")
        if channel is not None:
            where.append(f"channel {channel!r}")
        if path is not None:
            where.append(f"file {str(path)!r}")
        super().__init__(f"{', '.join(where)}: {problem}" if where else problem)


class LabelsCSVError(FileError):
    """A labels CSV that breaks the Kaggle ``Id,Target`` format: names file and line."""

    def __init__(self, problem: str, *, path: str | Path, line: int | None = None):
        super().__init__(problem, f"{path}" if line is None else f"{path}, line {line}")
        self.path = Path(path)
        self.line = line


class SessionError(FileError):
    """A label-review session file that cannot be used: names the file."""

    def __init__(self, problem: str, *, path: str | Path | None = None):
        super().__init__(problem, None if path is None else Path(path))


class TrainingError(HPAError):
    """Bad input to training, export, evaluation or ensemble building (data folder,
    labels, architecture, checkpoint): raised before any long work starts."""


class SynthError(HPAError, ValueError):
    """Bad arguments to the synthetic data generator (size, seed, frequencies, class indices,
    output folder): the message names the argument and the value given.  Also a
    ``ValueError``, which the generator raised before."""
