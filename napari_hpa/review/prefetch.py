"""Reading the image sets of a review queue ahead of need (no Qt): :func:`load_set`, which
finds and reads one id's set and never raises, :func:`missing_message`, and
:class:`PrefetchCache`, the futures of a small thread pool keyed by image id, filled with
the next images of the queue and bounded in size.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from ..classes import CHANNELS
from ..errors import HPAError
from ..imageset import CHANNEL_EXTENSIONS, ImageSet, read_set
from .store import ReviewSession


@dataclass(frozen=True)
class LoadedSet:
    """The outcome of reading one id's image set (in the prefetch pool)."""

    id: str
    image_set: ImageSet | None
    message: str | None  # why there is no image set
    read_ms: float


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
    t0 = time.perf_counter()
    try:
        source = session.image_source(image_id)
        if source is None:
            image_set, message = None, missing_message(session, image_id)
        else:
            image_set, message = read_set(source), None
    except HPAError as exc:
        image_set, message = None, f"images missing or unreadable for {image_id}: {exc}"
    except Exception as exc:  # a closed session, an unexpected reader failure
        image_set = None
        message = f"cannot read the images of {image_id}: {type(exc).__name__}: {exc}"
    return LoadedSet(image_id, image_set, message, (time.perf_counter() - t0) * 1000)


class PrefetchCache:
    """Futures of :func:`load_set`, keyed by image id, run in a pool of ``workers`` threads;
    the most recently requested last."""

    def __init__(self, workers: int = 2):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hpa-review-read")
        self._futures: OrderedDict[str, Future] = OrderedDict()

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._futures

    def __getitem__(self, image_id: str) -> Future:
        return self._futures[image_id]

    def __len__(self) -> int:
        return len(self._futures)

    def get(self, image_id: str) -> Future | None:
        return self._futures.get(image_id)

    def request(self, session: ReviewSession, image_id: str) -> Future:
        """The future of ``image_id``'s set: the one already started, or a new read."""
        fut = self._futures.get(image_id)
        if fut is None or fut.cancelled():
            fut = self._pool.submit(load_set, session, image_id)
            self._futures[image_id] = fut
        self._futures.move_to_end(image_id)
        return fut

    def prefetch(self, session: ReviewSession, queue: Sequence[str], position: int,
                 ahead: int, size: int) -> None:
        """Start reading the ``ahead`` images after ``position`` in ``queue`` and the one
        before it, then forget (cancelling) the least recently requested others beyond
        ``size`` futures."""
        if not 0 <= position < len(queue):
            return
        wanted = [position + d for d in range(1, ahead + 1)] + [position - 1]
        keep = {queue[position]} | {queue[p] for p in wanted if 0 <= p < len(queue)}
        for p in wanted:
            if 0 <= p < len(queue):
                self.request(session, queue[p])
        if queue[position] in self._futures:
            self._futures.move_to_end(queue[position])
        while len(self._futures) > size:
            old = next((i for i in self._futures if i not in keep), None)
            if old is None:
                break
            self._futures.pop(old).cancel()

    def clear(self) -> None:
        """Cancel and forget every future (the next request reads afresh)."""
        for fut in self._futures.values():
            fut.cancel()
        self._futures.clear()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
