"""Typed errors of the core.  Each message says what was wrong and where."""

from __future__ import annotations

from pathlib import Path


class HPAError(Exception):
    """Base class of every error napari-hpa raises on bad input."""


class FileError(HPAError):
    """Something wrong with one file (a model, a manifest, a record): the message names it."""

    def __init__(self, problem: str, path: str | Path | None = None):
        self.problem = problem
        self.path = path
        super().__init__(f"{path}: {problem}" if path else problem)


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


class LabelsCSVError(HPAError):
    """A labels CSV that breaks the Kaggle ``Id,Target`` format: names file and line."""

    def __init__(self, problem: str, *, path: str | Path, line: int | None = None):
        self.problem = problem
        self.path = Path(path)
        self.line = line
        at = f"{path}" if line is None else f"{path}, line {line}"
        super().__init__(f"{at}: {problem}")


class SessionError(HPAError):
    """A label-review session file that cannot be used: names the file."""

    def __init__(self, problem: str, *, path: str | Path | None = None):
        self.problem = problem
        self.path = None if path is None else Path(path)
        super().__init__(f"{path}: {problem}" if path is not None else problem)


class TrainingError(HPAError):
    """Bad input to training, export, evaluation or ensemble building (data folder,
    labels, architecture, checkpoint): raised before any long work starts."""


class SynthError(HPAError, ValueError):
    """Bad arguments to the synthetic data generator (size, seed, frequencies, class indices,
    output folder): the message names the argument and the value given.  Also a
    ``ValueError``, which the generator raised before."""
