"""``napari-hpa ensemble build`` and ``napari-hpa evaluate`` (core: no torch)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _bar(unit: str):
    from .cli import _progress_bar

    return _progress_bar(0, unit)


def cmd_ensemble_build(args: argparse.Namespace) -> int:
    from .cli import provider_request
    from .evaluate import build_ensemble

    path, report = build_ensemble(
        args.members, args.val, args.out, thresholds=args.thresholds, tta=args.tta, combine=args.combine,
        weights=args.weights, embedding_member=args.embedding_member, ratios_from=args.ratios_from,
        name=args.name, labels=args.labels, batch_size=args.batch_size, stack=args.stack,
        stack_c=args.stack_c, request=provider_request(args),
        progress=None if args.quiet else _bar("img"),
    )
    print(f"wrote {path} ({len(args.members)} members, thresholds fitted by {args.thresholds!r} "
          f"on {report.n_images} validation images; run on {', '.join(report.providers)})")
    for name, f in report.member_macro_f1.items():
        print(f"member {name}: macro F1 {f:.4f} (own {args.thresholds} thresholds)")
    print(f"ensemble{' (stacked)' if args.stack else ''}: macro F1 {report.macro_f1:.4f}")
    if report.pointing_game is not None:
        print(f"attention pointing game {report.pointing_game:.4f}")
    if report.retrieval_top1 is not None:
        print(f"embedding top-1 same-antibody retrieval {report.retrieval_top1:.4f}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .bundled import resolve_models
    from .cli import provider_request
    from .evaluate import evaluate

    report = evaluate(
        resolve_models(args.models), args.data, args.labels, tta=args.tta, batch_size=args.batch_size,
        limit=args.limit, request=provider_request(args), progress=None if args.quiet or args.json else _bar("img"),
    )
    print(json.dumps(report.to_json(), indent=2) if args.json else report.format())
    return 0


def add_ensemble_parsers(sub) -> None:
    from .cli import provider_options

    p = sub.add_parser(
        "ensemble",
        help="build an ensemble manifest from exported members",
        description="Ensemble manifests (ensemble.json).",
    )
    esub = p.add_subparsers(dest="ensemble_command", required=True, metavar="ACTION")
    b = esub.add_parser(
        "build",
        help="run members on a validation folder, fit per-class thresholds, write the manifest",
        description="Run MEMBER.onnx files on the labelled validation folder, fit per-class thresholds "
        "on the ensemble's probabilities (f1: maximise each class's F1; ratio: each class's "
        "predicted-positive rate matches its label frequency) and write the manifest.",
    )
    b.add_argument("members", nargs="+", type=Path, metavar="MEMBER.onnx")
    b.add_argument("--val", type=Path, required=True, metavar="DIR", help="labelled validation folder")
    b.add_argument("--labels", type=Path, metavar="CSV", help="labels CSV (default DIR/labels.csv)")
    b.add_argument("--out", type=Path, required=True, help="the ensemble.json to write")
    b.add_argument("--thresholds", choices=["f1", "ratio"], default="f1", help="default f1")
    b.add_argument("--ratios-from", type=Path, metavar="CSV",
                   help="for --thresholds ratio: labels CSV whose class frequencies are the targets "
                   "(default: the validation labels)")
    b.add_argument("--tta", choices=["none", "flip", "d4"], default="none", help="default none")
    b.add_argument("--combine", choices=["mean", "max"], default="mean", help="TTA combination (default mean)")
    b.add_argument("--weights", type=float, nargs="+",
                   help="one weight per member (default 1; 0 keeps a member for its embeddings or attention maps only)")
    b.add_argument("--stack", action="store_true",
                   help="combine the members per class by a logistic regression on their logits, "
                   "fitted on the validation folder (the thresholds are then fitted on its output)")
    b.add_argument("--stack-c", type=float, default=1.0, metavar="C",
                   help="inverse L2 strength of --stack (default 1)")
    b.add_argument("--embedding-member", metavar="NAME", help="member giving embeddings (its file stem)")
    b.add_argument("--name", help="ensemble name (default: the output folder's name)")
    b.add_argument("--batch-size", type=int, default=16)
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    provider_options(b, models=False)
    b.set_defaults(func=cmd_ensemble_build)

    p = sub.add_parser(
        "evaluate",
        help="score an ensemble or model on a labelled folder (F1, pointing game, retrieval)",
        description="Macro and per-class F1 with the ensemble's thresholds, per-member macro F1, the "
        "attention pointing game (when the models give attention and DIR/masks exists) and top-1 "
        "same-antibody retrieval (when a member gives embeddings and the labels have an Antibody column).",
    )
    p.add_argument("--data", type=Path, required=True, metavar="DIR", help="labelled folder")
    p.add_argument("--labels", type=Path, metavar="CSV", help="labels CSV (default DIR/labels.csv)")
    p.add_argument("--tta", choices=["none", "flip", "d4"], help="override the manifest's TTA")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--limit", type=int, metavar="N", help="only the first N labelled images")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    provider_options(p)
    p.set_defaults(func=cmd_evaluate)
