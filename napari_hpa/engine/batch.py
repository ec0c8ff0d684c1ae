"""``predict`` on this machine: the prediction stream (:mod:`.stream`) written through
the sink (:mod:`.sink`).  The names of the stream, the sink and the Dask run
(:mod:`.cluster`) are importable from here too, as before."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..imageset import SetSource
from .cluster import dask_client, predict_sources_dask  # noqa: F401
from .ensemble import Ensemble
from .sink import (  # noqa: F401
    ErrorCallback,
    PredictOutputs,
    PredictSummary,
    ProgressCallback,
    ResultSink,
    Run,
    read_submission,
)
from .stream import (  # noqa: F401
    DEFAULT_BATCH_SIZE,
    DEFAULT_WORKERS,
    check_batching,
    collect_sources,
    failure_row,
    iter_predictions,
)


class PredictCancelled(Exception):
    """``should_stop`` asked a run to stop: the batches done so far are in the ``.partial``
    files beside the outputs (a run with ``resume`` finishes them); the outputs themselves
    are untouched."""

    def __init__(self, done: int, total: int):
        super().__init__(f"prediction stopped after {done} of {total} image sets; "
                         "run it again with resume to finish")
        self.done = done
        self.total = total


def predict_sources(
    ensemble: Ensemble,
    sources: Sequence[SetSource],
    outputs: PredictOutputs,
    *,
    tta: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int = DEFAULT_WORKERS,
    resume: bool = False,
    problems: Sequence[tuple[str, str, str]] = (),
    on_error: ErrorCallback | None = None,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> PredictSummary:
    """Predict every source into ``outputs`` on this machine.

    ``should_stop`` is asked before the first batch and after each one; when it answers
    true the run raises :class:`PredictCancelled`, leaving the partial files for ``resume``."""
    check_batching(batch_size, workers)
    run = Run.begin(sources, outputs, resume, problems, on_error)
    stream = iter_predictions(
        ensemble, run.todo, tta=tta, batch_size=batch_size, workers=workers,
        need_attention=run.need_attention, need_embeddings=run.need_embeddings,
    )
    done = 0
    try:
        if should_stop is not None and should_stop():
            raise PredictCancelled(0, len(run.todo))
        for item in stream:
            run.summary.wait_seconds += item.wait_seconds
            for source, exc in item.failed:
                run.failed(*failure_row(source, exc))
            if item.prediction is not None:
                run.write(item.prediction)
            done = item.done
            if progress:
                progress(item.done, item.total)
            if should_stop is not None and should_stop() and item.done < item.total:
                raise PredictCancelled(done, len(run.todo))
    except BaseException:
        stream.close()  # the decoding threads stop before the caller goes on
        run.sink.close()  # partial files stay for --resume; the final outputs are untouched
        raise
    return run.finish()
