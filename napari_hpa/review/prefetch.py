"""Reading the image sets of a review queue ahead of need (no Qt): :func:`load_set`, which
finds and reads one id's set and never raises, :func:`missing_message`, and
:class:`PrefetchCache`, the general cache of :mod:`napari_hpa.prefetch` keyed by a
session's image ids.  ``LoadedSet`` is importable from here too, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from functools import partial

from ..classes import CHANNELS
from ..imageset import CHANNEL_EXTENSIONS
from ..prefetch import LoadedSet, read_source
from ..prefetch import PrefetchCache as _PrefetchCache
from .store import ReviewSession

__all__ = ["LoadedSet", "PrefetchCache", "load_set", "missing_message"]


def missing_message(session: ReviewSession, image_id: str) -> str:
    folder = session.images_dir
    exts = ",".join(CHANNEL_EXTENSIONS)
    if folder is None:
        return (f"images missing for {image_id} (the session has no images folder; expected "
                f"{image_id}_{{{','.join(CHANNELS)}}}.{{{exts}}})")
    return (f"images missing for {image_id} (expected {folder}/{image_id}_"
            f"{{{','.join(CHANNELS)}}}.{{{exts}}} or {folder}/{image_id}.tif)")


def load_set(session: ReviewSession, image_id: str) -> LoadedSet:
    """Find and read the image set of ``image_id``; never raises (runs in a pool thread)."""
    return read_source(image_id, lambda: session.image_source(image_id),
                       lambda: missing_message(session, image_id))


class PrefetchCache(_PrefetchCache):
    """:class:`napari_hpa.prefetch.PrefetchCache` whose reads go through a review session."""

    def __init__(self, workers: int = 2):
        super().__init__(workers=workers, thread_name_prefix="hpa-review-read")

    def request(self, session: ReviewSession, image_id: str) -> Future:
        """The future of ``image_id``'s set: the one already started, or a new read."""
        return self.request_id(image_id, partial(load_set, session))

    def prefetch(self, session: ReviewSession, queue: Sequence[str], position: int,
                 ahead: int, size: int) -> None:
        """Start reading the ``ahead`` images after ``position`` in ``queue`` and the one
        before it; forget the least recently requested others beyond ``size`` futures."""
        self.prefetch_ids(queue, position, ahead, size, partial(load_set, session))
