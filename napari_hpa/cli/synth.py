"""``napari-hpa synth``: write synthetic HPA-like image sets, labels and ground-truth masks."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import core_errors, progress_bar, quiet_option, renamed


def cmd_synth(args: argparse.Namespace) -> int:
    from ..synth import generate_dataset

    with core_errors():
        summary = generate_dataset(
            args.out,
            args.n,
            args.seed,
            size=args.size,
            freq=args.freq,
            noise_rate=args.noise_rate,
            fields_per_antibody=args.fields_per_antibody,
            version=args.generator,
            progress=None if args.quiet else progress_bar(args.n, "set"),
        )
    print(f"wrote {args.n} synthetic image sets to {args.out}")
    if not args.quiet:
        print(summary)
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "synth",
        help="write synthetic HPA-like image sets, labels and ground-truth masks",
        description="Write {id}_{red,green,blue,yellow}.png, labels.csv (Id,Target,Antibody), "
        "masks/{id}.npz and synth.json to the --out folder; with --noise-rate also labels_noisy.csv "
        "and noise.csv.",
    )
    renamed(p, "--out", "out", required=True, type=Path, metavar="DIR",
            help="output folder (created; must not hold a labels.csv)")
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
    p.add_argument(
        "--generator",
        choices=["2", "3"],
        default="2",
        help="generator version (default 2; 3 is closer to real HPA fields: bigger, irregular cells, "
        "lobed grainy nuclei, radiating microtubules, wider field-to-field brightness)",
    )
    quiet_option(p)
    p.set_defaults(func=cmd_synth)
