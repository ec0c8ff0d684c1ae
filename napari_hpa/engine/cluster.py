"""The prediction stream on a Dask cluster (``predict --dask``).

Each worker process loads the ensemble once (kept in :data:`_WORKER_ENSEMBLES`,
keyed by manifest and provider request) and runs :func:`.stream.iter_predictions`
over its chunk; the client writes the results through the same :class:`.sink.Run`
as a local run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import HPAError
from ..imageset import SetSource
from .ensemble import Ensemble
from .providers import ProviderRequest
from .sink import ErrorCallback, PredictOutputs, PredictSummary, ProgressCallback, Run
from .stream import DEFAULT_BATCH_SIZE, failure_row, iter_predictions


_WORKER_ENSEMBLES: dict[tuple, Ensemble] = {}


def _worker_ensemble(models: str, request: ProviderRequest) -> Ensemble:
    """The ensemble of this worker process, loaded once and kept."""
    key = (models, request)
    if key not in _WORKER_ENSEMBLES:
        _WORKER_ENSEMBLES[key] = Ensemble.load(models, request)
    return _WORKER_ENSEMBLES[key]


def _dask_chunk(models, request, sources, tta, batch_size, need_att, need_emb):
    """Run on a Dask worker: predict a chunk of sets; return results and errors."""
    ensemble = _worker_ensemble(models, request)
    preds, errors = [], []
    for item in iter_predictions(ensemble, sources, tta=tta, batch_size=batch_size, workers=1,
                                 need_attention=need_att, need_embeddings=need_emb):
        errors.extend(failure_row(source, exc) for source, exc in item.failed)
        if item.prediction is not None:
            pred = item.prediction
            pred.member_probs = {}  # not written; keep the transfer small
            pred.domain_inputs = pred.domain_features = None
            preds.append(pred)
    return preds, errors, len(sources)


def dask_client(address: str):
    """A ``distributed.Client`` for ``ADDRESS`` or ``local:N`` (a local cluster of N processes)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise HPAError(
            "--dask needs dask.distributed: pip install 'napari-hpa[dask]'"
        ) from None
    if address.startswith("local:"):
        try:
            n = int(address.split(":", 1)[1])
        except ValueError:
            n = 0
        if n < 1:
            raise HPAError(f"--dask {address!r}: expected local:N with N >= 1 workers")
        cluster = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None
        )
        return Client(cluster)
    return Client(address)


def predict_sources_dask(
    client,
    models: str | Path,
    sources: Sequence[SetSource],
    outputs: PredictOutputs,
    *,
    request: ProviderRequest = ProviderRequest(),
    tta: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    resume: bool = False,
    problems: Sequence[tuple[str, str, str]] = (),
    on_error: ErrorCallback | None = None,
    progress: ProgressCallback | None = None,
) -> PredictSummary:
    """Predict every source on a Dask cluster; each worker loads the ensemble once.

    The files must be reachable from the workers under the same paths.  At most
    two chunks per worker are in flight, so memory stays bounded.
    """
    from distributed import as_completed

    run = Run.begin(sources, outputs, resume, problems, on_error)
    todo = run.todo
    chunk = max(batch_size, 1) * 2
    chunks = [todo[i : i + chunk] for i in range(0, len(todo), chunk)]
    n_workers = max(len(client.scheduler_info().get("workers", {})), 1)
    models = str(Path(models).resolve())

    def submit(c):
        return client.submit(
            _dask_chunk, models, request, c, tta, batch_size,
            run.need_attention, run.need_embeddings, pure=False,
        )

    try:
        it = iter(chunks)
        first = [submit(c) for _, c in zip(range(2 * n_workers), it)]
        done = 0
        queue = as_completed(first)
        for fut in queue:
            preds, errs, count = fut.result()
            for pred in preds:
                run.write(pred)
            for err in errs:
                run.failed(*err)
            done += count
            if progress:
                progress(done, len(todo))
            nxt = next(it, None)
            if nxt is not None:
                queue.add(submit(nxt))
    except BaseException:
        run.sink.close()
        raise
    return run.finish()
