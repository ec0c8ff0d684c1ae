"""Member outputs kept on disk, so that ``ensemble build`` does not run the models again.

Fitting an ensemble's weights, thresholds or stacking needs every member's outputs on
the validation folder; computing them is the long part (tens of minutes on thousands
of fields), and they do not change when only the fit does.  A :class:`MemberCache`
keeps each member's :class:`~.ensemble.MemberOutput` rows per image id in one file per
member, named by what the outputs depend on: the member file's SHA-256, the TTA and how
its views are combined, and the execution providers.  A row counts only while its
image set's files are the ones it was computed from (path, size and modification time);
anything else is computed again.  The images are still decoded (the domain record
needs them); only the models are skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ..fileio import atomic_save_npz
from ..imageset import SetSource
from .ensemble import Member, MemberOutput

_ARRAYS = ("probs", "plain_logits", "nonfinite", "attention", "embedding", "plain_embedding")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/napari-hpa/members`` (``~/.cache/...`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "napari-hpa" / "members"


def source_signature(source: SetSource) -> str:
    """What an image set's outputs depend on: its files' paths, sizes and modification times."""
    parts = []
    for path in sorted(source.paths):
        st = path.stat()
        parts.append(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _Entry:
    """One member's rows: id -> (signature, {array name: row})."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: dict[str, tuple[str, dict[str, np.ndarray]]] = {}
        self.dirty = False
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as z:
                    ids, sigs = [str(i) for i in z["ids"]], [str(s) for s in z["signatures"]]
                    arrays = {k: z[k] for k in _ARRAYS if k in z.files}
                for j, (image_id, sig) in enumerate(zip(ids, sigs)):
                    self.rows[image_id] = (sig, {k: v[j] for k, v in arrays.items()})
            except Exception:  # noqa: BLE001 - an unreadable cache is an empty one
                self.rows = {}

    def save(self) -> None:
        if not self.dirty or not self.rows:
            return
        ids = sorted(self.rows)
        names = set.intersection(*(set(self.rows[i][1]) for i in ids))
        arrays = {k: np.stack([self.rows[i][1][k] for i in ids]) for k in _ARRAYS if k in names}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_save_npz(self.path, ids=np.array(ids),
                        signatures=np.array([self.rows[i][0] for i in ids]), **arrays)
        self.dirty = False


class MemberCache:
    """Member outputs per image id for one set of image sets (``sources``)."""

    def __init__(self, folder: str | Path, sources: Iterable[SetSource]):
        self.folder = Path(folder)
        self.signatures = {s.id: source_signature(s) for s in sources}
        self._entries: dict[tuple, _Entry] = {}
        self._sha: dict[Path, str] = {}
        self.hits = self.misses = 0  # batches of one member answered from the cache, or run

    def _entry(self, member: Member, tta: str, combine: str) -> _Entry:
        path = Path(member.spec.path)
        if path not in self._sha:
            self._sha[path] = _sha256(path)
        key = (self._sha[path], tta, combine, tuple(member.providers))
        if key not in self._entries:
            name = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:24]
            self._entries[key] = _Entry(self.folder / f"{path.stem}-{name}.npz")
        return self._entries[key]

    def get(self, member: Member, ids: Sequence[str], tta: str, combine: str,
            want_attention: bool, want_embedding: bool) -> MemberOutput | None:
        """The cached outputs of ``member`` for ``ids``, or None unless every row is there,
        current, and holds what is wanted."""
        entry = self._entry(member, tta, combine)
        rows = []
        for image_id in ids:
            sig, row = entry.rows.get(image_id, (None, None))
            if row is None or sig != self.signatures.get(image_id):
                self.misses += 1
                return None
            rows.append(row)
        needed = ["probs", "plain_logits", "nonfinite"]
        needed += ["attention"] * want_attention + ["embedding"] * want_embedding
        needed += ["plain_embedding"] * member.info.has_embedding
        if not all(k in row for row in rows for k in needed):
            self.misses += 1
            return None
        self.hits += 1
        stack = {k: np.stack([row[k] for row in rows]) for k in needed}
        return MemberOutput(**stack)

    def put(self, member: Member, ids: Sequence[str], tta: str, combine: str, out: MemberOutput) -> None:
        entry = self._entry(member, tta, combine)
        for j, image_id in enumerate(ids):
            sig = self.signatures.get(image_id)
            if sig is None:
                continue
            row = {k: getattr(out, k)[j] for k in _ARRAYS if getattr(out, k) is not None}
            old = entry.rows.get(image_id)
            if old is not None and old[0] == sig:  # keep what was cached and is not recomputed
                row = {**old[1], **row}
            entry.rows[image_id] = (sig, row)
        entry.dirty = True

    def save(self) -> None:
        """Write every member file that gained rows (atomically)."""
        for entry in self._entries.values():
            entry.save()
