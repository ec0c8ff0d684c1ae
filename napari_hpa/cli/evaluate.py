"""``napari-hpa evaluate``: score an ensemble or a model on a labelled folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .options import (
    batch_size_option,
    progress_bar,
    provider_options,
    provider_request,
    quiet_option,
    renamed,
    tta_option,
)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..bundled import resolve_models
    from ..evaluate import evaluate, run_evaluation

    models = resolve_models(args.models)
    if args.report is not None:
        check_report_folder(args)
    kw = dict(tta=args.tta, batch_size=args.batch_size, limit=args.limit, request=provider_request(args),
              progress=None if args.quiet or args.json else progress_bar(0, "img"))
    if args.report is None:
        report, ev = evaluate(models, args.data, args.labels, **kw), None
    else:
        ev = run_evaluation(models, args.data, args.labels, **kw)
        report = ev.report
    print(json.dumps(report.to_json(), indent=2) if args.json else report.format())
    if ev is not None:
        from ..report import write_report

        paths = write_report(ev, args.report)
        print("wrote the report: " + ", ".join(str(p) for p in paths),
              file=sys.stderr if args.json else sys.stdout)
    return 0


def check_report_folder(args: argparse.Namespace) -> None:
    """Before any work: the report's files may be written, replace no input, and replace an
    earlier report only with ``--overwrite``."""
    from ..errors import HPAError
    from ..fileio import check_outputs
    from ..report import report_paths

    paths = report_paths(args.report)
    if Path(args.report).resolve() == Path(args.data).resolve():
        raise HPAError(f"--report {args.report} is the data folder: give the report a folder of its own")
    check_outputs([(f"--report ({p.name})", p) for p in paths], folders=[("--report", args.report)],
                  inputs=[("the labels CSV", args.labels)] if args.labels else [])
    earlier = [p.name for p in paths if p.exists()]
    if earlier and not args.overwrite:
        raise HPAError(f"--report {args.report} already holds a report ({', '.join(earlier)}); "
                       "choose another folder or add --overwrite, nothing was run")


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score an ensemble or model on a labelled folder (F1, pointing game, retrieval)",
        description="Macro and per-class F1 with the ensemble's thresholds, per-member macro F1, the "
        "attention pointing game (when the models give attention and DIR/masks exists) and top-1 "
        "same-antibody retrieval (when a member gives embeddings and the labels have an Antibody column).",
    )
    renamed(p, "data", "--data", required=True, type=Path, metavar="DIR", help="labelled folder")
    p.add_argument("--labels", type=Path, metavar="CSV", help="labels CSV (default DIR/labels.csv)")
    tta_option(p)
    batch_size_option(p, "evaluate")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N labelled images")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--report", type=Path, metavar="OUTDIR",
                   help="also write OUTDIR/report.html (self-contained: per-class F1 of the ensemble and "
                   "its members, precision-recall curves, reliability diagram, confusion of co-occurring "
                   "classes, pointing game) and OUTDIR/report.png (an overview sheet)")
    p.add_argument("--overwrite", action="store_true", help="with --report: replace a report already there")
    quiet_option(p)
    provider_options(p)
    p.set_defaults(func=cmd_evaluate)
