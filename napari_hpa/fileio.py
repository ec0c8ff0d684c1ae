"""Files written so that nothing is lost: the project's one atomic writer, and the check
every command makes of its output paths before any work.

A file is written to a temporary file beside it, flushed and fsynced, then put in place
with ``os.replace`` (and the folder fsynced), so a reader sees the old content or the
new, never a part; :func:`atomic_write_group` does it for all the outputs of one command
together.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from .errors import HPAError, file_errors


def check_outputs(files, folders=(), inputs=(), *, make_folders: bool = True) -> None:
    """Refuse, before any work, what would lose data or fail late: two outputs of one command
    on one path, an output on one of its inputs, a file output that is a folder (or the
    reverse), an output whose folder cannot be written (``make_folders=False``: a file's folder
    must exist already, for commands that do not make it).  ``files`` and ``folders``:
    ``(option, path or None)`` pairs; ``inputs``: ``(what, path)`` pairs or plain paths."""
    sources = {}
    for item in inputs:
        what, path = item if isinstance(item, tuple) else ("an input", item)
        sources[Path(path).resolve()] = what
    seen: dict[Path, str] = {}
    for option, path, is_folder in [(o, p, False) for o, p in files] + [(o, p, True) for o, p in folders]:
        if path is None:
            continue
        path = Path(path)
        key = path.resolve()
        if key in seen:
            raise HPAError(f"{option} and {seen[key]} name the same path {path}: each output needs its own")
        if key in sources:
            raise HPAError(f"{option} {path} is {sources[key]}: writing it would destroy it")
        seen[key] = option
        if path.exists() and path.is_dir() != is_folder:
            raise HPAError(f"{option} {path} is a {'file' if is_folder else 'folder'}; "
                           f"a {'folder' if is_folder else 'file'} is needed")
        folder = next((p for p in key.parents if p.exists()), None)
        if not make_folders and not is_folder and folder != key.parent:
            raise HPAError(f"{option} {path}: cannot write there, no such folder {path.parent}")
        if folder is None or not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            raise HPAError(f"{option} {path}: cannot write in {folder or key.parent}")


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` so that ``path`` is always old or new, never partial."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that ``path`` is always old or new, never partial."""
    return atomic_write_group({Path(path): data})[0]


def atomic_write_group(files: Mapping[Path, bytes]) -> list[Path]:
    """Write several files as one: every new content goes to a temporary file beside its
    target first (written and fsynced), and only when all are there do they replace the
    targets.  A failure while writing (a full disk, a folder that cannot be written)
    replaces none of them and is a :class:`~napari_hpa.errors.WriteError` (an ``OSError``)."""
    temps: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            path = Path(path)
            folder = path.parent if str(path.parent) else Path(".")
            with file_errors(path, writing=True):
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
                temps.append((tmp, path))
                os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
        for tmp, path in temps:
            with file_errors(path, writing=True):
                os.replace(tmp, path)
    except BaseException:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)
        raise
    for folder in {(p.parent if str(p.parent) else Path(".")) for _, p in temps}:
        fsync_dir(folder)
    return [p for _, p in temps]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(folder: Path) -> None:
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


def atomic_save_npz(path: str | Path, *, compressed: bool = True, **arrays) -> Path:
    """``numpy.savez[_compressed]`` to ``path``, atomically."""
    import numpy as np

    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())
