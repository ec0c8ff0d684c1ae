"""``napari-hpa labels ...``: label-review sessions from the command line.

A thin front over :class:`~napari_hpa.review.store.ReviewSession`.  The store's own
``ValueError`` and ``OSError`` come out as :class:`~napari_hpa.errors.SessionError` /
:class:`~napari_hpa.errors.FileError` with the same message, which
:func:`napari_hpa.cli.main` turns into one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import time
from pathlib import Path

from ..classes import CLASS_NAMES
from ..errors import HPAError, SessionError
from ..fileio import atomic_write_text, check_outputs
from ..labels import format_target
from .options import core_errors, renamed


def _session(path: Path):
    from ..review.store import ReviewSession

    return ReviewSession.open(path)


def _names(target) -> str:
    return ", ".join(f"{k} {CLASS_NAMES[k]}" for k in target) or "(none)"


@core_errors(SessionError)
def cmd_import(args: argparse.Namespace) -> int:
    from ..review.store import ReviewSession

    check_outputs([("--out", args.out)],
                  inputs=[("the labels CSV", args.labels), *(("a --probs CSV", p) for p in args.probs or ())])
    t0 = time.perf_counter()
    s = ReviewSession.create(
        args.out,
        args.images,
        args.labels,
        args.probs,
        thresholds=args.threshold,
        overwrite=args.overwrite,
    )
    with s:
        info = s.summary()
    print(
        f"imported {info['images']} images into {args.out} in "
        f"{time.perf_counter() - t0:.2f} s ({info['images_found_at_import']} with image files"
        f"{', with probabilities' if info['probabilities'] else ''})"
    )
    return 0


@core_errors(SessionError)
def cmd_export(args: argparse.Namespace) -> int:
    check_outputs([("--out", args.out), ("--audit", args.audit), ("--review", args.review)],
                  inputs=[("the session", args.session)], make_folders=False)
    with _session(args.session) as s:
        res = s.export(args.out, changed_only=args.changed_only, audit=args.audit,
                       review=args.review)
    print(
        f"wrote {res['written']} rows to {args.out} ({res['changed']} changed)"
        + (f"; {res['audit_edits']} edits to {args.audit}" if args.audit else "")
        + (f"; {res['review_rows']} review rows to {args.review}" if args.review else "")
    )
    return 0


@core_errors(SessionError)
def cmd_set(args: argparse.Namespace) -> int:
    with _session(args.session) as s:
        edit = s.set_labels(args.id, args.target, note=args.note, reviewer=args.reviewer)
        if edit is None:
            print(f"{args.id}: labels already {format_target(s.labels(args.id)) or '(none)'}")
        else:
            before, after = edit.before or "(none)", edit.after or "(none)"
            print(f"{args.id}: {before} -> {after} (edit {edit.seq})")
    return 0


@core_errors(SessionError)
def _cmd_invert(args: argparse.Namespace, which: str) -> int:
    with _session(args.session) as s:
        edit = getattr(s, which)(reviewer=args.reviewer)
    if edit is None:
        print(f"nothing to {which}")
    else:
        print(
            f"{which} edit {edit.undoes}: {edit.id} {edit.field} "
            f"{edit.before or '(none)'} -> {edit.after or '(none)'}"
        )
    return 0


def cmd_undo(args: argparse.Namespace) -> int:
    return _cmd_invert(args, "undo")


def cmd_redo(args: argparse.Namespace) -> int:
    return _cmd_invert(args, "redo")


@core_errors(SessionError)
def cmd_suspicious(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise HPAError(f"--top must be at least 1, got {args.top}")
    check_outputs([("--out", args.out)], inputs=[("the session", args.session)], make_folders=False)
    from ..review.queue import QueueFilter

    try:
        filters = QueueFilter(predicted=args.predicted or (), changed=args.changed,
                              noted=args.noted, unsure=args.unsure, unreviewed=args.unreviewed)
    except ValueError as exc:
        raise HPAError(f"--predicted: {exc}") from None
    with _session(args.session) as s:
        ids = s.queue(args.order, filters=filters)
        top = ids[: args.top]
        # the suspicious queue has just stored the scores; other orders refresh them
        scores = s.scores() if args.order == "suspicious" else s.compute_issues()
        rows = []
        for rank, image_id in enumerate(top, start=1):
            rec = s.record(image_id)
            hl = s.highlights(image_id)
            score = scores[rec.index]
            rows.append(
                [
                    rank,
                    image_id,
                    f"{score:.6g}",
                    format_target(rec.labels),
                    format_target(s.predicted(image_id) or ()),
                    format_target(hl.labelled_improbable),
                    format_target(hl.probable_unlabelled),
                ]
            )
    header = ["Rank", "Id", "Score", "Target", "Predicted", "LabelledImprobable",
              "ProbableUnlabelled"]
    if args.out:
        buf = io.StringIO(newline="")
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
        atomic_write_text(args.out, buf.getvalue())
        kept = f", {filters.words}" if filters else ""
        print(f"wrote the {len(rows)} most suspicious images ({args.order}{kept}) to {args.out}")
    else:
        print("\t".join(header))
        for r in rows:
            print("\t".join(str(v) for v in r))
    return 0


@core_errors(SessionError)
def cmd_show(args: argparse.Namespace) -> int:
    with _session(args.session) as s:
        if args.id is None:
            info = s.summary()
            if args.json:
                print(json.dumps(info, indent=2))
            else:
                for k, v in info.items():
                    print(f"{k}: {v}")
            return 0
        rec = s.record(args.id)
        hist = s.history(args.id)
        info = {
            "id": rec.id,
            "index": rec.index,
            "labels": list(rec.labels),
            "original": list(rec.original),
            "changed": rec.changed,
            "reviewed": rec.reviewed,
            "note": rec.note,
            "predicted": None if rec.probs is None else list(s.predicted(args.id)),
            "probabilities": None if rec.probs is None else [round(float(p), 4) for p in rec.probs],
            "image_present": s.has_image(args.id),
            "history": [e.__dict__ for e in hist],
        }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{rec.id} (row {rec.index + 1})")
    print(f"  labels:    {_names(rec.labels)}")
    print(f"  original:  {_names(rec.original)}{'  [changed]' if rec.changed else ''}")
    if info["predicted"] is not None:
        print(f"  predicted: {_names(info['predicted'])}")
    print(f"  reviewed:  {'yes' if rec.reviewed else 'no'}")
    if rec.note:
        print(f"  note:      {rec.note}")
    print(f"  image:     {'present' if info['image_present'] else 'missing'}")
    for e in hist:
        extra = f" ({e.note})" if e.note else ""
        print(
            f"  #{e.seq} {e.time} {e.reviewer} {e.kind} {e.field}: "
            f"{e.before or '(none)'} -> {e.after or '(none)'}{extra}"
        )
    return 0


def add_parsers(subparsers) -> None:
    """Add ``labels`` and its subcommands to the ``napari-hpa`` parser."""
    from ..review.ordering import NEEDS_PROBABILITIES, ORDERS

    p = subparsers.add_parser(
        "labels",
        help="label review sessions: import, edit, rank suspicious labels, export",
        description="A review session is one SQLite file (.hpa) holding the labels, every "
        "edit and the review state. Import a labels CSV into one, edit, export the result.",
    )
    sub = p.add_subparsers(dest="labels_command", required=True, metavar="ACTION")

    q = sub.add_parser(
        "import",
        help="make a session from a labels CSV (and probabilities)",
        description="Make a new review session from a Kaggle labels CSV (Id,Target), the "
        "folder of image sets (images need not exist) and optionally model probabilities "
        "(Id + one column per class, named by class name or index 0-27), written to --out.",
    )
    renamed(q, "labels", "--labels", required=True, type=Path, metavar="CSV", help="labels CSV (Id,Target)")
    q.add_argument("--images", type=Path, metavar="DIR", help="folder of image sets")
    q.add_argument(
        "--probs", type=Path, nargs="+", metavar="CSV",
        help="probabilities CSV (Id + 28 class columns); several files that together cover "
        "every id once, e.g. the val_probs.csv of each fold of 'napari-hpa train --folds K'",
    )
    renamed(q, "--out", "--session", required=True, type=Path, metavar="SESSION",
            help="session file to create (.hpa)")
    q.add_argument(
        "--threshold", type=float, nargs="+", metavar="T",
        help="class threshold for the predicted set: one value, or 28 (default 0.5)",
    )
    q.add_argument("--overwrite", action="store_true", help="replace an existing session file")
    q.set_defaults(func=cmd_import)

    q = sub.add_parser(
        "export",
        help="write the corrected labels (Kaggle format) and an audit",
        description="Write the session's current labels as Id,Target (all ids in the input "
        "order, indices ascending), and optionally the audit and the review marks; all files "
        "or none.",
    )
    q.add_argument("session", type=Path)
    q.add_argument("--out", type=Path, required=True, help="labels CSV to write")
    q.add_argument("--changed-only", action="store_true", help="only ids whose labels changed")
    q.add_argument(
        "--audit",
        type=Path,
        help="also write every edit: labels, review and unsure marks, notes, undo, redo "
        "(Id,Before,After,Time,Reviewer,Note,Kind,Field)",
    )
    q.add_argument(
        "--review",
        type=Path,
        help="also write one row per image, input order: Id,Reviewed,Unsure,Note,Reviewer,Time "
        "(reviewer and time of its latest edit, empty if none)",
    )
    q.set_defaults(func=cmd_export)

    q = sub.add_parser("set", help="set one image's labels", description="Set ID's labels.")
    q.add_argument("session", type=Path)
    q.add_argument("id")
    q.add_argument("target", help='space-separated class indices, e.g. "0 25" ("" for none)')
    q.add_argument("--note", help="a note for the audit")
    q.add_argument("--reviewer", help="reviewer name (default: the OS user)")
    q.set_defaults(func=cmd_set)

    for name, func, what in (
        ("undo", cmd_undo, "undo the latest edit (appends its inverse)"),
        ("redo", cmd_redo, "redo the latest undo"),
    ):
        q = sub.add_parser(name, help=what, description=what[0].upper() + what[1:] + ".")
        q.add_argument("session", type=Path)
        q.add_argument("--reviewer", help="reviewer name (default: the OS user)")
        q.set_defaults(func=func)

    q = sub.add_parser(
        "suspicious",
        help="list the images whose labels are most likely wrong",
        description="Rank the images by the probability that their labels are right (or "
        "another order needing probabilities) and list the first K, with that probability "
        "as Score.",
    )
    q.add_argument("session", type=Path)
    q.add_argument("--top", type=int, default=20, metavar="K", help="how many (default 20)")
    q.add_argument("--out", type=Path, help="write a CSV instead of printing")
    q.add_argument(
        "--order",
        choices=sorted(NEEDS_PROBABILITIES),
        default="suspicious",
        help="; ".join(f"{k}: {ORDERS[k]}" for k in sorted(NEEDS_PROBABILITIES)),
    )
    f = q.add_argument_group("filters (all together, with any order)")
    f.add_argument("--unreviewed", action="store_true", help="only images not yet marked reviewed")
    f.add_argument("--changed", action="store_true", help="only images whose labels were changed")
    f.add_argument("--noted", action="store_true", help="only images with a note")
    f.add_argument("--unsure", action="store_true", help="only images marked unsure")
    f.add_argument("--predicted", type=int, nargs="+", metavar="K",
                   help="only images the model predicts any of these classes for")
    q.set_defaults(func=cmd_suspicious)

    q = sub.add_parser(
        "show",
        help="a session's summary, or one image's labels and history",
        description="Without ID: counts of images, changes, reviews, edits. With ID: its "
        "labels, original labels, prediction and edit history.",
    )
    q.add_argument("session", type=Path)
    q.add_argument("id", nargs="?")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=cmd_show)
