"""``napari-hpa evaluate``: score an ensemble or a model on a labelled folder."""

from __future__ import annotations

import argparse
import json
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
    from ..evaluate import evaluate

    report = evaluate(
        resolve_models(args.models), args.data, args.labels, tta=args.tta, batch_size=args.batch_size,
        limit=args.limit, request=provider_request(args),
        progress=None if args.quiet or args.json else progress_bar(0, "img"),
    )
    print(json.dumps(report.to_json(), indent=2) if args.json else report.format())
    return 0


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
    quiet_option(p)
    provider_options(p)
    p.set_defaults(func=cmd_evaluate)
