"""``napari-hpa models import``, ``models domain`` and ``models refit-head`` (core: torch only inside
the import of a PyTorch checkpoint)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import HPAError
from .options import (
    batch_size_option,
    models_option,
    progress_bar,
    provider_options,
    provider_request,
    quiet_option,
    renamed,
    tta_option,
)


def _numbers(text: str, what: str, kind=float) -> list:
    try:
        return [kind(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise HPAError(f"{what} {text!r}: expected numbers separated by commas") from None


def cmd_import(args: argparse.Namespace) -> int:
    from ..importer import ImportOptions, import_model

    normalize = None
    if args.normalize:
        mean, _, std = args.normalize.partition("/")
        normalize = (_numbers(mean, "--normalize mean"), _numbers(std, "--normalize std"))
    opts = ImportOptions(
        input_size=args.input_size,
        outputs=[k.strip() for k in args.outputs.split(",")] if args.outputs else None,
        normalize=normalize,
        class_order=_numbers(args.class_order, "--class-order", int) if args.class_order else None,
        large=args.large, name=args.name, trained_on=args.trained_on, calib=args.calib,
        n_calib=args.n_calib, int8=args.int8, thresholds=args.thresholds, threshold=args.threshold,
        class_ratios=args.class_ratios, labels=args.labels, min_one_label=args.min_one_label,
    )
    report = import_model(
        args.source, args.out, opts, request=provider_request(args),
        log=lambda m: print(m, file=sys.stderr),
        progress=None if args.quiet or args.calib is None else progress_bar(0, "img"),
    )
    print(report)
    print(f"classify with: napari-hpa predict FOLDER --models {args.out} --out submission.csv --domain domain.csv")
    return 0


def cmd_domain(args: argparse.Namespace) -> int:
    from ..bundled import resolve_models
    from ..engine import Ensemble
    from ..evaluate import collect, fit_domain, write_with_domain

    manifest = resolve_models(args.models)
    if manifest.suffix.lower() == ".onnx":
        raise HPAError(f"{manifest}: a domain record belongs to an ensemble.json; make one with "
                       "'napari-hpa ensemble build' or 'napari-hpa models import'")
    ensemble = Ensemble.load(manifest, provider_request(args))
    # the record reads the untransformed view only: no test-time augmentation needed
    col = collect(ensemble, args.images, tta="none", batch_size=args.batch_size, limit=args.limit,
                  progress=None if args.quiet else progress_bar(0, "img"), labelled=False)
    description = args.description or f"{len(col.ids)} fields of {Path(args.images).resolve()}"
    domain = fit_domain(ensemble, col, description)
    write_with_domain(ensemble.spec, manifest, domain)
    thr = {k: round(p.threshold, 3) for k, p in domain.parts.items()}
    print(f"wrote {ensemble.spec.domain} and the 'domain' of {manifest}: {description}; "
          f"features from the {domain.features_from}; raw score thresholds {thr}")
    return 0


def cmd_refit_head(args: argparse.Namespace) -> int:
    from ..headfit import refit_head

    weights = args.data_weight or [1.0] * len(args.data)
    if len(weights) != len(args.data):
        raise HPAError(f"{len(args.data)} --data folder(s) but {len(weights)} --data-weight(s): give one "
                       "weight per folder, in the same order, or none")
    classes = _numbers(args.classes, "--classes", int) if args.classes else None
    print(refit_head(args.model, args.out, list(zip(args.data, weights)), strength=args.C, tta=args.tta,
                     batch_size=args.batch_size, classes=classes,
                     progress=None if args.quiet else progress_bar(0, "img")))
    print(f"use it: add it to an ensemble ('napari-hpa ensemble build'), or classify with --models {args.out}")
    return 0


def add_parsers(sub) -> None:
    from ..engine.foreign import OUTPUT_KINDS
    from ..headfit import DEFAULT_STRENGTH
    from ..importer import THRESHOLD_METHODS

    p = sub.add_parser(
        "models",
        help="import foreign models; record an ensemble's domain",
        description="Models made elsewhere, and the domain record of an ensemble.",
    )
    msub = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    m = msub.add_parser(
        "import",
        help="make a foreign .onnx, or the hpa_densenet .pth, into an ensemble folder",
        description="Turn SOURCE (an ONNX classifier with a 4-channel RGBY input, or the "
        "CellProfiling/hpa_densenet PyTorch checkpoint) into a new folder OUT holding ensemble.json, "
        "the contract-1 ONNX member, domain.npz (with --calib) and MODEL_CARD.md. The published "
        "1st-place DenseNet121 in either form is recognised without options.",
    )
    m.add_argument("source", type=Path, metavar="SOURCE", help=".onnx, or .pth / .pt checkpoint")
    m.add_argument("--out", type=Path, required=True, metavar="DIR", help="new folder to create")
    m.add_argument("--calib", type=Path, metavar="DIR",
                   help="fields like those the model was made for: int8 calibration, thresholds, "
                   "and (40 or more) the domain record")
    m.add_argument("--n-calib", type=int, default=200, metavar="N",
                   help="use at most N calibration fields (default 200)")
    m.add_argument("--int8", action="store_true", help="quantize to int8 (needs --calib)")
    m.add_argument("--thresholds", choices=THRESHOLD_METHODS, default="fixed",
                   help="fixed: --threshold for every class (default); ratio: match --class-ratios on "
                   "the --calib fields; f1: fit on the --calib fields and their --labels")
    m.add_argument("--threshold", type=float, default=0.5, help="the fixed threshold (default 0.5)")
    m.add_argument("--class-ratios", type=Path, metavar="CSV",
                   help="labels CSV whose class shares the ratio thresholds match (e.g. Kaggle's train.csv)")
    m.add_argument("--labels", type=Path, metavar="CSV", help="labels of the --calib fields (for f1)")
    m.add_argument("--min-one-label", action="store_true",
                   help="always predict the top class (default: a field may get no label)")
    m.add_argument("--input-size", type=int, metavar="S",
                   help="side the model reads fields at (default: the graph's, or 1024 for the DenseNet121)")
    m.add_argument("--outputs", metavar="KIND,...",
                   help=f"what each ONNX output is, in order: {', '.join(OUTPUT_KINDS)} "
                   "(default: detected from shapes and values)")
    m.add_argument("--normalize", metavar="M,M,M,M/S,S,S,S",
                   help="RGBY mean/std to apply in front of an ONNX graph that expects normalised input")
    m.add_argument("--class-order", metavar="K,...",
                   help="the HPA class index of each of the model's 28 outputs, when not 0..27")
    m.add_argument("--large", action="store_true", help="hpa_densenet's 'large' variant (max-pool after conv1)")
    m.add_argument("--name", help="member and ensemble name (default: from the file name)")
    m.add_argument("--trained-on", metavar="TEXT", help="what the model was trained on, in words")
    quiet_option(m)
    provider_options(m, models=False)
    m.set_defaults(func=cmd_import)

    d = msub.add_parser(
        "domain",
        help="(re)compute an ensemble's domain record from fields of its domain",
        description="Run the ensemble over DIR (fields like those its members were trained on, "
        "held out from training; at least 40) and write domain.npz beside its ensemble.json, "
        "which then names it. Every prediction then says whether a field is in this domain.",
    )
    renamed(d, "images", "--images", required=True, type=Path, metavar="DIR", help="fields of the domain")
    models_option(d, "ensemble.json or its folder (default: the bundled one)")
    d.add_argument("--limit", type=int, metavar="N", help="only the first N sets")
    d.add_argument("--description", metavar="TEXT", help="what the fields are, in words")
    batch_size_option(d, "models domain")
    quiet_option(d)
    provider_options(d, models=False)
    d.set_defaults(func=cmd_domain)

    r = msub.add_parser(
        "refit-head",
        help="refit a model's last layer on labelled fields of your own (CPU, minutes, no torch)",
        description="Write OUT: MODEL (a contract-1 .onnx whose logits are a linear layer of a feature "
        "vector) with that layer refitted on the labelled fields of DIR, one logistic regression per "
        "class over the features MODEL computes, in every view of --tta. Classes without both positive "
        "and negative fields in the data keep their present weights; attention maps and embeddings "
        "are unchanged. Fit thresholds for the new model with 'napari-hpa ensemble build'.",
    )
    r.add_argument("model", type=Path, metavar="MODEL", help="the .onnx model (any contract-1 member)")
    r.add_argument("--data", type=Path, action="append", required=True, metavar="DIR",
                   help="a folder of labelled fields (with labels.csv); repeat for more folders")
    r.add_argument("--data-weight", type=float, action="append", metavar="W",
                   help="weight of each field of the matching --data folder (default 1 each)")
    r.add_argument("--out", type=Path, required=True, metavar="OUT", help="the new .onnx file to write")
    r.add_argument("--C", type=float, default=DEFAULT_STRENGTH, metavar="C",
                   help=f"inverse L2 strength of each class's logistic regression (default {DEFAULT_STRENGTH})")
    r.add_argument("--classes", metavar="K,...",
                   help="refit only these class indices (0-27, as in labels.csv); the others keep their "
                   "present weights. Leave out classes your fields show too rarely to learn from "
                   "(default: every class)")
    tta_option(r, "d4")
    batch_size_option(r, "models refit-head")
    quiet_option(r)
    r.set_defaults(func=cmd_refit_head)
