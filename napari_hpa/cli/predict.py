"""``napari-hpa predict`` and ``napari-hpa index``: run an ensemble over image sets, for a
submission (and probabilities, attention maps, embeddings, domain verdicts) or for the
similar-images index."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..errors import HPAError
from .options import (
    batch_size_option,
    progress_bar,
    provider_options,
    provider_request,
    quiet_option,
    tta_option,
)


def load_ensemble(args: argparse.Namespace):
    """The ``--models`` ensemble (default: the bundled one) on the requested provider, with
    the provider's notes on stderr; returns ``(manifest path, ensemble)``."""
    from ..bundled import resolve_models
    from ..engine import Ensemble

    models = resolve_models(args.models)
    ensemble = Ensemble.load(models, provider_request(args))
    for note in ensemble.provider_notes:
        print(f"napari-hpa: {note}", file=sys.stderr)
    return models, ensemble


def cmd_predict(args: argparse.Namespace) -> int:
    from ..engine.batch import (
        PredictOutputs,
        collect_sources,
        dask_client,
        predict_sources,
        predict_sources_dask,
    )
    from ..fileio import check_outputs

    outputs = PredictOutputs(
        submission=args.out,
        probs=args.probs,
        attention_dir=args.attention,
        embeddings=args.embeddings,
        errors=args.errors,
        domain=args.domain,
    )
    check_outputs(
        [("--out", args.out), ("--probs", args.probs), ("--embeddings", args.embeddings),
         ("--errors", args.errors), ("--domain", args.domain)],
        [("--attention", args.attention)],
        [("an input", p) for p in args.inputs],
    )
    if args.max_pixels is not None:
        from ..imageset import MAX_PIXELS_ENV

        if args.max_pixels < 1:
            raise HPAError(f"--max-pixels must be positive, got {args.max_pixels}")
        os.environ[MAX_PIXELS_ENV] = str(args.max_pixels)  # read by the decoders (and local Dask workers)
    sources, problems = collect_sources(args.inputs)
    if not sources and problems:
        for _, _, message in problems:
            print(f"napari-hpa predict: error: {message}", file=sys.stderr)
        return 2

    def on_error(set_id: str, path: str, message: str) -> None:
        print(f"napari-hpa predict: skipped: {message}", file=sys.stderr)

    models, ensemble = load_ensemble(args)
    print(
        f"ensemble {ensemble.name!r} ({len(ensemble.members)} members, TTA "
        f"{args.tta or ensemble.spec.tta}) on {', '.join(ensemble.providers_in_use)}; {len(sources)} image sets",
        file=sys.stderr,
    )
    progress = None if args.quiet else progress_bar(0, "img")
    common = {
        "tta": args.tta,
        "batch_size": args.batch_size,
        "resume": args.resume,
        "problems": problems,
        "on_error": on_error,
        "progress": progress,
    }
    if args.dask:
        with dask_client(args.dask) as client:
            summary = predict_sources_dask(
                client, models, sources, outputs,
                request=provider_request(args), **common,
            )
    else:
        summary = predict_sources(ensemble, sources, outputs, workers=args.workers, **common)
    print(summary, file=sys.stderr)
    for image_id, reason in summary.out_of_domain[:10]:
        print(f"napari-hpa predict: out of domain: {image_id}: {reason}", file=sys.stderr)
    if len(summary.out_of_domain) > 10:
        print(f"napari-hpa predict: ... and {len(summary.out_of_domain) - 10} more"
              + (f" (all in {args.domain})" if args.domain else " (--domain CSV lists them all)"),
              file=sys.stderr)
    written = [p for p in (args.out, args.probs, args.domain) if p]
    print("wrote " + ", ".join(str(p) for p in written))
    return 1 if summary.failed else 0


def cmd_index(args: argparse.Namespace) -> int:
    from ..similar import build_index

    _, ensemble = load_ensemble(args)
    index = build_index(
        ensemble,
        args.folder,
        args.labels,
        batch_size=args.batch_size,
        on_error=lambda i, p, m: print(f"napari-hpa index: skipped: {m}", file=sys.stderr),
        progress=None if args.quiet else progress_bar(0, "img"),
    )
    index.save(args.out)
    print(f"indexed {len(index)} reference images ({index.ensemble}) into {args.out}")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="predict the 28 classes for image sets, files or folders",
        description="Run the ensemble over image sets and write a Kaggle submission CSV "
        "(Id,Predicted; ids sorted). Unreadable sets are reported and skipped; the exit status "
        "is 1 if any failed.",
    )
    p.add_argument("inputs", type=Path, nargs="+", metavar="INPUT", help="files, sets or folders")
    p.add_argument("--out", type=Path, required=True, help="submission CSV (Id,Predicted)")
    p.add_argument("--probs", type=Path, help="probabilities CSV: Id + one column per class")
    p.add_argument("--attention", type=Path, metavar="DIR", help="attention maps, DIR/{id}.npz")
    p.add_argument("--embeddings", type=Path, metavar="FILE", help="embeddings (.npz: ids, embeddings)")
    p.add_argument("--errors", type=Path, metavar="FILE", help="CSV of the sets that failed")
    p.add_argument("--domain", type=Path, metavar="CSV",
                   help="domain verdicts: Id,domain_score,in_domain,reason (score above 1: out of "
                   "the ensemble's domain)")
    tta_option(p)
    p.add_argument("--max-pixels", type=float, metavar="N",
                   help="largest channel plane to decode, in pixels (default 64e6; a larger set is an "
                   "error row; on a remote Dask cluster set NAPARI_HPA_MAX_PIXELS on the workers)")
    batch_size_option(p, "predict")
    p.add_argument("--workers", type=int, default=2, help="decoding threads (default 2)")
    p.add_argument("--resume", action="store_true", help="skip ids already in the outputs")
    p.add_argument(
        "--dask", metavar="ADDRESS", help="run on a Dask cluster (scheduler address, or local:N)"
    )
    quiet_option(p)
    provider_options(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "index",
        help="embed a labelled reference folder for the similar-images search",
        description="Run the ensemble's embedding member over DIR and save an index "
        "(ids, embeddings, labels) that the classifier widget searches for similar images.",
    )
    p.add_argument("folder", type=Path, metavar="DIR", help="folder of image sets")
    p.add_argument("--labels", type=Path, required=True, help="labels CSV (Id,Target) of the folder")
    p.add_argument("--out", type=Path, required=True, help="index file to write (.npz)")
    batch_size_option(p, "index")
    quiet_option(p)
    provider_options(p)
    p.set_defaults(func=cmd_index)
