"""``napari-hpa ensemble build``: run exported members on a labelled validation folder, fit
the per-class thresholds (or a stacking combiner) and write the ensemble manifest."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..engine.tta import COMBINE_MODES
from ..errors import HPAError
from ..metrics import FIT_METHODS
from .options import (
    batch_size_option,
    progress_bar,
    provider_options,
    provider_request,
    quiet_option,
    tta_option,
)


def _folder_and_members(args: argparse.Namespace) -> tuple[Path, list[Path]]:
    """The validation folder and the members, from ``DIR MEMBER.onnx ...`` or from the
    earlier ``MEMBER.onnx ... --val DIR`` (where argparse takes the first member for DIR)."""
    if args.val is not None:
        return args.val, [*([args.data] if args.data is not None else []), *args.members]
    if args.data is None:
        raise HPAError("give the validation folder, then the members: "
                       "napari-hpa ensemble build DIR MEMBER.onnx [MEMBER.onnx ...] --out ensemble.json")
    return args.data, args.members


def cmd_ensemble_build(args: argparse.Namespace) -> int:
    from ..engine.member_cache import default_cache_dir
    from ..evaluate import build_ensemble

    folder, members = _folder_and_members(args)
    cache = None if args.no_cache else (args.cache or default_cache_dir())
    path, report = build_ensemble(
        members, folder, args.out, thresholds=args.thresholds, tta=args.tta, combine=args.combine,
        weights=args.weights, embedding_member=args.embedding_member, ratios_from=args.ratios_from,
        name=args.name, labels=args.labels, batch_size=args.batch_size, stack=args.stack,
        stack_c=args.stack_c, request=provider_request(args),
        progress=None if args.quiet else progress_bar(0, "img"), cache_dir=cache,
        calibrate=args.calibrate, ood_fields=args.ood_fields,
    )
    print(f"wrote {path} ({len(members)} members, thresholds fitted by {args.thresholds!r} "
          f"on {report.n_images} validation images; run on {', '.join(report.providers)})")
    for name, f in report.member_macro_f1.items():
        print(f"member {name}: macro F1 {f:.4f} (own {args.thresholds} thresholds)")
    print(f"ensemble{' (stacked)' if args.stack else ''}: macro F1 {report.macro_f1:.4f}")
    from ..engine.manifest import read_manifest

    _print_calibration(read_manifest(path).calibration)
    if report.pointing_game is not None:
        print(f"attention pointing game {report.pointing_game:.4f}")
    if report.retrieval_top1 is not None:
        print(f"embedding top-1 same-antibody retrieval {report.retrieval_top1:.4f}")
    return 0


def _print_calibration(calibration) -> None:
    if calibration is not None:
        print(f"calibration: {calibration.words}")


def cmd_ensemble_calibrate(args: argparse.Namespace) -> int:
    from ..engine.member_cache import default_cache_dir
    from ..evaluate import calibrate_ensemble
    from ..fileio import check_outputs

    check_outputs([("--out", args.out)], inputs=[("the ensemble", args.ensemble)])
    cache = None if args.no_cache else (args.cache or default_cache_dir())
    path, calibration = calibrate_ensemble(
        args.ensemble, args.data, args.out, labels=args.labels, ood_fields=args.ood_fields,
        batch_size=args.batch_size, request=provider_request(args),
        progress=None if args.quiet else progress_bar(0, "img"), cache_dir=cache,
    )
    print(f"wrote {path}")
    _print_calibration(calibration)
    return 0


def _cache_options(b) -> None:
    b.add_argument("--cache", type=Path, metavar="DIR",
                   help="where the members' outputs on DIR are kept, so that building again with other "
                   "weights, thresholds or stacking runs no model (default $XDG_CACHE_HOME/napari-hpa/members, "
                   "~/.cache/napari-hpa/members when unset)")
    b.add_argument("--no-cache", action="store_true", help="neither read nor keep the members' outputs")


OOD_HELP = ("a folder of fields unlike DIR's: those the domain record calls out of the domain set how "
            "far such fields are pulled towards the class frequencies, so that 99%% of them are "
            "answered with p 0.9 at most")


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "ensemble",
        help="build an ensemble manifest from exported members",
        description="Ensemble manifests (ensemble.json).",
    )
    esub = p.add_subparsers(dest="ensemble_command", required=True, metavar="ACTION")
    b = esub.add_parser(
        "build",
        help="run members on a validation folder, fit per-class thresholds, write the manifest",
        description="Run MEMBER.onnx files on the labelled validation folder DIR, fit per-class thresholds "
        "on the ensemble's probabilities (f1: maximise each class's F1; ratio: each class's "
        "predicted-positive rate matches its label frequency) and write the manifest.",
    )
    dir_action = b.add_argument("data", nargs="?", type=Path, metavar="DIR", help="labelled validation folder")
    dir_action.shown_required = True  # or the earlier --val DIR: see _folder_and_members
    b.add_argument("members", nargs="+", type=Path, metavar="MEMBER.onnx")
    b.add_argument("--val", type=Path, help=argparse.SUPPRESS)
    b.add_argument("--labels", type=Path, metavar="CSV", help="labels CSV (default DIR/labels.csv)")
    b.add_argument("--out", type=Path, required=True, help="the ensemble.json to write")
    b.add_argument("--thresholds", choices=FIT_METHODS, default="f1",
                   help="how the per-class thresholds are fitted (default f1)")
    b.add_argument("--ratios-from", type=Path, metavar="CSV",
                   help="for --thresholds ratio: labels CSV whose class frequencies are the targets "
                   "(default: the validation labels)")
    tta_option(b, default="none")
    b.add_argument("--combine", choices=COMBINE_MODES, default="mean", help="TTA combination (default mean)")
    b.add_argument("--weights", type=float, nargs="+",
                   help="one weight per member (default 1; 0 keeps a member for its embeddings or attention maps only)")
    b.add_argument("--stack", action="store_true",
                   help="combine the members per class by a logistic regression on their logits, "
                   "fitted on the validation folder (the thresholds are then fitted on its output)")
    b.add_argument("--stack-c", type=float, default=1.0, metavar="C",
                   help="inverse L2 strength of --stack (default 1)")
    b.add_argument("--calibrate", action="store_true",
                   help="fit a temperature for the ensemble's probabilities on DIR (least cross-entropy), "
                   "then the thresholds on the calibrated probabilities")
    b.add_argument("--ood-fields", type=Path, metavar="FIELDS", help=OOD_HELP)
    b.add_argument("--embedding-member", metavar="NAME", help="member giving embeddings (its file stem)")
    b.add_argument("--name", help="ensemble name (default: the output folder's name)")
    _cache_options(b)
    batch_size_option(b, "ensemble build")
    quiet_option(b)
    provider_options(b, models=False)
    b.set_defaults(func=cmd_ensemble_build)

    c = esub.add_parser(
        "calibrate",
        help="calibrate an ensemble's probabilities on labelled fields (and beyond its domain)",
        description="Fit the temperature of ENSEMBLE's probabilities on the labelled fields of DIR "
        "(least cross-entropy) and carry its thresholds over, so that labels within the domain do "
        "not change; with --ood-fields, also how far fields out of the domain are pulled towards the "
        "class frequencies. Writes the calibrated manifest to --out (members and domain record kept).",
    )
    c.add_argument("ensemble", type=Path, metavar="ENSEMBLE.json")
    c.add_argument("data", type=Path, metavar="DIR", help="labelled fields of the ensemble's domain")
    c.add_argument("--out", type=Path, required=True, help="the calibrated ensemble.json to write")
    c.add_argument("--labels", type=Path, metavar="CSV", help="labels CSV (default DIR/labels.csv)")
    c.add_argument("--ood-fields", type=Path, metavar="FIELDS", help=OOD_HELP)
    _cache_options(c)
    batch_size_option(c, "ensemble build")
    quiet_option(c)
    provider_options(c, models=False)
    c.set_defaults(func=cmd_ensemble_calibrate)
