"""Reading image sets ahead of need (no Qt): :class:`LoadedSet`, the outcome of one read,
:func:`read_source`, which reads one set and never raises, and :class:`PrefetchCache`, the
futures of a small thread pool keyed by image id, filled with the next sets of a list and
bounded in size.  The label review (:mod:`napari_hpa.review.prefetch`) and the folder walk
(:mod:`napari_hpa.folder`) both read through it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from .errors import HPAError
from .imageset import ImageSet, SetSource, read_set


@dataclass(frozen=True)
class LoadedSet:
    """The outcome of reading one id's image set (in the prefetch pool)."""

    id: str
    image_set: ImageSet | None
    message: str | None  # why there is no image set
    read_ms: float


Loader = Callable[[str], LoadedSet]


def read_source(image_id: str, find: Callable[[], SetSource | None],
                missing: Callable[[], str]) -> LoadedSet:
    """Read the set that ``find()`` names (``missing()`` is the message when it names none);
    never raises: a failure is the :class:`LoadedSet`'s message (runs in a pool thread)."""
    t0 = time.perf_counter()
    try:
        source = find()
        if source is None:
            image_set, message = None, missing()
        else:
            image_set, message = read_set(source), None
    except HPAError as exc:
        image_set, message = None, f"images missing or unreadable for {image_id}: {exc}"
    except Exception as exc:  # a closed session, an unexpected reader failure
        image_set = None
        message = f"cannot read the images of {image_id}: {type(exc).__name__}: {exc}"
    return LoadedSet(image_id, image_set, message, (time.perf_counter() - t0) * 1000)


class PrefetchCache:
    """Futures of ``load(image_id)``, keyed by image id, run in a pool of ``workers``
    threads; the most recently requested last.  ``load`` may also be given per call."""

    def __init__(self, load: Loader | None = None, workers: int = 2,
                 thread_name_prefix: str = "hpa-read"):
        self._load = load
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=thread_name_prefix)
        self._futures: OrderedDict[str, Future] = OrderedDict()

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._futures

    def __getitem__(self, image_id: str) -> Future:
        return self._futures[image_id]

    def __len__(self) -> int:
        return len(self._futures)

    def get(self, image_id: str) -> Future | None:
        return self._futures.get(image_id)

    def request_id(self, image_id: str, load: Loader | None = None) -> Future:
        """The future of ``image_id``'s set: the one already started, or a new read."""
        fut = self._futures.get(image_id)
        if fut is None or fut.cancelled():
            loader = load or self._load
            if loader is None:
                raise TypeError("PrefetchCache needs a loader")
            fut = self._pool.submit(loader, image_id)
            self._futures[image_id] = fut
        self._futures.move_to_end(image_id)
        return fut

    def prefetch_ids(self, queue: Sequence[str], position: int, ahead: int, size: int,
                     load: Loader | None = None) -> None:
        """Start reading the ``ahead`` sets after ``position`` in ``queue`` and the one
        before it, then forget (cancelling) the least recently requested others beyond
        ``size`` futures."""
        if not 0 <= position < len(queue):
            return
        wanted = [position + d for d in range(1, ahead + 1)] + [position - 1]
        keep = {queue[position]} | {queue[p] for p in wanted if 0 <= p < len(queue)}
        for p in wanted:
            if 0 <= p < len(queue):
                self.request_id(queue[p], load)
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
