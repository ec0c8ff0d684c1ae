"""The ``napari-hpa`` command line: a thin front over the core.

Each subcommand parses its arguments, calls the core, and turns
:class:`~napari_hpa.errors.HPAError` into a one-line message and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import __version__
from .errors import HPAError
from .labels import check_outputs
from .review.cli import add_labels_parser
from .ensemble_cli import add_ensemble_parsers
from .models_cli import add_models_parsers
from .train.cli import add_train_parsers


def _progress_bar(total: int, unit: str):
    """A tqdm bar on stderr (rate and ETA); call the returned function with (done, total)."""
    from tqdm import tqdm

    bar = tqdm(total=total or None, unit=unit, file=sys.stderr, dynamic_ncols=True)

    def update(done: int, total_now: int) -> None:
        if bar.total != total_now:
            bar.total = total_now
            bar.refresh()
        bar.update(done - bar.n)
        if done >= total_now:
            bar.close()

    return update


def cmd_synth(args: argparse.Namespace) -> int:
    from .synth import generate_dataset

    summary = generate_dataset(
        args.out,
        args.n,
        args.seed,
        size=args.size,
        freq=args.freq,
        noise_rate=args.noise_rate,
        fields_per_antibody=args.fields_per_antibody,
        progress=None if args.quiet else _progress_bar(args.n, "set"),
    )
    print(f"wrote {args.n} synthetic image sets to {args.out}")
    if not args.quiet:
        print(summary)
    return 0


def _check_display() -> None:
    """On Linux without a display, Qt aborts the process: say what to do instead."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise HPAError(
            "no display to open napari on (DISPLAY and WAYLAND_DISPLAY are not set). On a server, "
            "run it inside a virtual display: xvfb-run -a napari-hpa ... --screenshot out.png "
            "(Debian/Ubuntu: apt-get install xvfb)"
        )


def cmd_view(args: argparse.Namespace) -> int:
    from .demo import run_viewer

    _check_display()
    paths = getattr(args, "paths", [])
    if args.command == "view":
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise FileNotFoundError(f"no such file or folder: {', '.join(missing)}")
    report = run_viewer(
        paths,
        classify=args.command == "demo" or args.classify,
        models=args.models,
        screenshot=args.screenshot,
        size=tuple(args.window_size),
        title=f"napari-hpa {args.command}",
    )
    if args.json:
        print(json.dumps(report, indent=2))
    elif args.screenshot:
        print(f"saved a screenshot of the viewer to {args.screenshot}")
    return 0


def _load_ensemble(args: argparse.Namespace):
    from .engine import Ensemble
    from .bundled import resolve_models

    models = resolve_models(args.models)
    ensemble = Ensemble.load(models, provider_request(args))
    for note in ensemble.provider_notes:
        print(f"napari-hpa: {note}", file=sys.stderr)
    return models, ensemble


def cmd_predict(args: argparse.Namespace) -> int:
    from .engine.batch import (
        PredictOutputs,
        collect_sources,
        dask_client,
        predict_sources,
        predict_sources_dask,
    )

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
        from .imageset import MAX_PIXELS_ENV

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

    models, ensemble = _load_ensemble(args)
    print(
        f"ensemble {ensemble.name!r} ({len(ensemble.members)} members, TTA "
        f"{args.tta or ensemble.spec.tta}) on {', '.join(ensemble.providers_in_use)}; {len(sources)} image sets",
        file=sys.stderr,
    )
    progress = None if args.quiet else _progress_bar(0, "img")
    common = dict(
        tta=args.tta,
        batch_size=args.batch_size,
        resume=args.resume,
        problems=problems,
        on_error=on_error,
        progress=progress,
    )
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
    from .similar import build_index

    _, ensemble = _load_ensemble(args)
    index = build_index(
        ensemble,
        args.folder,
        args.labels,
        batch_size=args.batch_size,
        on_error=lambda i, p, m: print(f"napari-hpa index: skipped: {m}", file=sys.stderr),
        progress=None if args.quiet else _progress_bar(0, "img"),
    )
    index.save(args.out)
    print(f"indexed {len(index)} reference images ({index.ensemble}) into {args.out}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .info import collect_info, format_info

    info = collect_info(args.models, args.device_id)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def provider_request(args: argparse.Namespace):
    from .engine import ProviderRequest

    return ProviderRequest(args.provider, args.device_id, args.threads)


def provider_options(p: argparse.ArgumentParser, models: bool = True) -> None:
    """``--provider``, ``--device-id`` and ``--threads`` (and ``--models`` unless ``models=False``)."""
    from .engine.providers import PROVIDER_CHOICES

    if models:
        p.add_argument(
            "--models",
            type=Path,
            help="ensemble.json, a folder holding one, or a single .onnx model "
            "(default: the bundled default ensemble)",
        )
    p.add_argument(
        "--provider",
        choices=PROVIDER_CHOICES,
        default="auto",
        help="onnxruntime execution provider; auto tries CUDA and falls back to the CPU",
    )
    p.add_argument("--device-id", type=int, default=0, help="GPU number (default 0)")
    p.add_argument(
        "--threads", type=int, default=0, metavar="N",
        help="onnxruntime threads per model on the CPU (default 0: all cores)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-hpa",
        description="Human Protein Atlas four-channel microscopy: synthetic data, viewer.",
    )
    parser.add_argument("--version", action="version", version=f"napari-hpa {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "synth",
        help="write synthetic HPA-like image sets, labels and ground-truth masks",
        description="Write {id}_{red,green,blue,yellow}.png, labels.csv (Id,Target,Antibody), "
        "masks/{id}.npz and synth.json to OUT; with --noise-rate also labels_noisy.csv "
        "and noise.csv.",
    )
    p.add_argument("out", type=Path, help="output folder (created; must not hold a labels.csv)")
    p.add_argument("--n", type=int, required=True, help="number of image sets")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--size", type=int, default=512, help="image side in pixels (default 512)")
    p.add_argument(
        "--freq",
        choices=["uniform", "kaggle"],
        default="uniform",
        help="class frequencies: balanced, or as in the Kaggle 2018 train set",
    )
    p.add_argument(
        "--noise-rate",
        type=float,
        default=0.0,
        help="fraction of images given a wrong label set in labels_noisy.csv",
    )
    p.add_argument(
        "--fields-per-antibody",
        type=int,
        default=1,
        help="images per antibody: same classes and pattern parameters, different cells",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_synth)

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
    p.add_argument("--tta", choices=["none", "flip", "d4"], help="override the manifest's TTA")
    p.add_argument("--max-pixels", type=float, metavar="N",
                   help="largest channel plane to decode, in pixels (default 64e6; a larger set is an "
                   "error row; on a remote Dask cluster set NAPARI_HPA_MAX_PIXELS on the workers)")
    p.add_argument("--batch-size", type=int, default=8, help="sets per batch (default 8)")
    p.add_argument("--workers", type=int, default=2, help="decoding threads (default 2)")
    p.add_argument("--resume", action="store_true", help="skip ids already in the outputs")
    p.add_argument(
        "--dask", metavar="ADDRESS", help="run on a Dask cluster (scheduler address, or local:N)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    provider_options(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "index",
        help="embed a labelled reference folder for the similar-images search",
        description="Run the ensemble's embedding member over FOLDER and save an index "
        "(ids, embeddings, labels) that the classifier widget searches for similar images.",
    )
    p.add_argument("folder", type=Path, help="folder of image sets")
    p.add_argument("--labels", type=Path, required=True, help="labels CSV (Id,Target) of the folder")
    p.add_argument("--out", type=Path, required=True, help="index file to write (.npz)")
    p.add_argument("--batch-size", type=int, default=8, help="sets per batch (default 8)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    provider_options(p)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser(
        "info",
        help="versions, execution providers that work, and the default ensemble",
    )
    p.add_argument("--models", type=Path, help="ensemble to describe (default: the bundled one)")
    p.add_argument("--device-id", type=int, default=0, help="GPU number to test (default 0)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "demo",
        help="open napari with the synthetic sample, classified by the default ensemble",
        description="Open napari with the bundled synthetic sample as four channel layers, "
        "dock the HPA classifier, classify the field of view and show the attention map of "
        "the top class.",
    )
    _viewer_options(p)
    p = sub.add_parser(
        "view",
        help="open image sets (channel files, TIFFs, folders) in napari",
        description="Open each PATH's field of view in napari as four channel layers "
        "(a folder opens its first set).",
    )
    p.add_argument("paths", type=Path, nargs="+", metavar="PATH")
    p.add_argument("--classify", action="store_true", help="dock the classifier and run it")
    _viewer_options(p)
    add_labels_parser(sub)
    add_train_parsers(sub)
    add_ensemble_parsers(sub)
    add_models_parsers(sub)
    return parser


def _viewer_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--models", type=Path, help="ensemble.json or .onnx to classify with (default: bundled)"
    )
    p.add_argument(
        "--screenshot", type=Path, help="save a PNG of the whole window, then exit"
    )
    p.add_argument(
        "--json", action="store_true", help="print the layers (name, shape, scale, translate)"
    )
    p.add_argument(
        "--window-size",
        type=int,
        nargs=2,
        default=(1400, 900),
        metavar=("W", "H"),
        help="window size in pixels (default 1400 900)",
    )
    p.set_defaults(func=cmd_view)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stderr.close()
        return 0
    except (HPAError, ValueError, FileExistsError, OSError) as exc:
        print(f"napari-hpa {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"napari-hpa {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
