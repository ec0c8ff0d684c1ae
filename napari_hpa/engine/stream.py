"""One stream of predictions over image sets, the path every batch job takes.

:func:`iter_predictions` decodes and prepares sets in a pool of threads while
onnxruntime works on the current batch (at most a bounded window of sets in
memory, however many there are) and yields one :class:`StreamBatch` per batch:
the ensemble's :class:`~napari_hpa.engine.ensemble.Prediction` for the sets
that could be read, and the sets that could not, each with its exception.
``predict`` (:mod:`.batch`, writing through :mod:`.sink`), a Dask worker
(:mod:`.cluster`), ``evaluate`` / ``ensemble build`` / ``models domain``
(:func:`napari_hpa.evaluate.collect`) and ``index``
(:func:`napari_hpa.similar.build_index`) all consume it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import HPAError
from ..imageset import SetSource, find_sets, read_set, source_for_file
from .ensemble import Ensemble, Prediction

DEFAULT_BATCH_SIZE = 8
DEFAULT_WORKERS = 2


@dataclass
class StreamBatch:
    """One batch of the stream."""

    sources: list[SetSource]  # the sets of ``prediction``, in its order
    prediction: Prediction | None  # None when no set of the batch could be read
    failed: list[tuple[SetSource, BaseException]] = field(default_factory=list)  # unreadable sets
    done: int = 0  # sets handled so far, this batch's included
    total: int = 0
    wait_seconds: float = 0.0  # time this batch waited for decoded sets


def iter_predictions(
    ensemble: Ensemble,
    sources: Sequence[SetSource],
    *,
    tta: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int = DEFAULT_WORKERS,
    need_attention: bool = False,
    need_embeddings: bool = False,
) -> Iterator[StreamBatch]:
    """Predict ``sources`` batch by batch; a set that cannot be read or prepared is a
    ``failed`` entry of its batch, never the end of the stream.  A batch holds
    ``batch_size`` readable sets (fewer at the end)."""
    check_batching(batch_size, workers)  # now, not at the first batch
    return _stream(ensemble, sources, tta, batch_size, workers, need_attention, need_embeddings)


def _stream(ensemble, sources, tta, batch_size, workers, need_attention, need_embeddings):
    def decode(source: SetSource):
        return ensemble.prepare(read_set(source).data, source.id)

    window = max(2 * batch_size, batch_size + 2 * workers)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hpa-decode") as pool:
        pending: deque[tuple[SetSource, Future]] = deque()
        it = iter(sources)

        def refill():
            while len(pending) < window:
                source = next(it, None)
                if source is None:
                    return
                pending.append((source, pool.submit(decode, source)))

        refill()
        done = 0
        try:
            while pending:
                item = StreamBatch([], None, total=len(sources))
                batch = []
                while pending and len(batch) < batch_size:
                    source, fut = pending.popleft()
                    t0 = time.perf_counter()
                    try:
                        prepared = fut.result()
                    except Exception as exc:  # noqa: BLE001 - one set's failure is its own row
                        item.failed.append((source, exc))
                        prepared = None
                    finally:
                        item.wait_seconds += time.perf_counter() - t0
                    refill()
                    if prepared is not None:
                        item.sources.append(source)
                        batch.append(prepared)
                    done += 1
                if batch:
                    item.prediction = ensemble.predict_prepared(
                        batch, tta=tta, ids=[s.id for s in item.sources],
                        need_attention=need_attention, need_embeddings=need_embeddings,
                    )
                item.done = done
                yield item
        finally:
            for _, fut in pending:
                fut.cancel()


def check_batching(batch_size: int, workers: int = 1) -> None:
    if batch_size < 1 or workers < 1:
        raise HPAError("--batch-size and --workers must be at least 1")


def failure_row(source: SetSource, exc: BaseException) -> tuple[str, str, str]:
    """``(id, path, message)`` of a set that failed; anything but the project's own errors
    names its type and the set."""
    message = str(exc) if isinstance(exc, HPAError) else (
        f"image set {source.id!r}: {type(exc).__name__}: {exc}" if str(exc) else
        f"image set {source.id!r}: {type(exc).__name__}")
    return source.id, str(source.paths[0]) if source.paths else "", message


def collect_sources(inputs: Iterable[str | Path]) -> tuple[list[SetSource], list[tuple[str, str, str]]]:
    """The image sets named by files, sets and folders, sorted by id, and the problems found.

    A folder contributes every set in it; a file the set it belongs to.  Two
    different sources with one id are a problem (reported for that id), not a
    silent choice.
    """
    by_id: dict[str, SetSource] = {}
    problems: list[tuple[str, str, str]] = []
    for item in inputs:
        path = Path(item)
        try:
            if path.is_dir():
                found = find_sets(path)
            elif path.exists():
                found = [source_for_file(path)]
            else:
                raise HPAError(f"{path}: no such file or folder")
        except HPAError as exc:
            problems.append(("", str(path), str(exc)))
            continue
        for source in found:
            seen = by_id.get(source.id)
            if seen is None:
                by_id[source.id] = source
            elif set(seen.paths) != set(source.paths):
                problems.append(
                    (
                        source.id,
                        str(source.paths[0]) if source.paths else str(path),
                        f"image set {source.id!r} is found twice: in "
                        f"{seen.paths[0].parent if seen.paths else '?'} and "
                        f"{source.paths[0].parent if source.paths else path}",
                    )
                )
    return [by_id[i] for i in sorted(by_id)], problems
