"""The ``napari-hpa`` command line: a thin front over the core.

Each subcommand parses its arguments, calls the core, and turns
:class:`~napari_hpa.errors.HPAError` into a one-line message and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import HPAError


def _progress_bar(total: int, unit: str):
    """A tqdm bar on stderr (rate and ETA); call the returned function with (done, total)."""
    from tqdm import tqdm

    bar = tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True)

    def update(done: int, _total: int) -> None:
        bar.update(done - bar.n)
        if done >= total:
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


def cmd_view(args: argparse.Namespace) -> int:
    from .demo import run_viewer

    paths = getattr(args, "paths", [])
    if args.command == "view":
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise FileNotFoundError(f"no such file or folder: {', '.join(missing)}")
    report = run_viewer(
        paths,
        screenshot=args.screenshot,
        size=tuple(args.window_size),
        title=f"napari-hpa {args.command}",
    )
    if args.json:
        print(json.dumps(report, indent=2))
    elif args.screenshot:
        print(f"saved a screenshot of the viewer to {args.screenshot}")
    return 0


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
        "demo",
        help="open napari with the synthetic sample field of view",
        description="Open napari with the bundled synthetic sample as four channel layers.",
    )
    _viewer_options(p)
    p = sub.add_parser(
        "view",
        help="open image sets (channel files, TIFFs, folders) in napari",
        description="Open each PATH's field of view in napari as four channel layers "
        "(a folder opens its first set).",
    )
    p.add_argument("paths", type=Path, nargs="+", metavar="PATH")
    _viewer_options(p)
    return parser


def _viewer_options(p: argparse.ArgumentParser) -> None:
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
    except (HPAError, ValueError, FileExistsError, OSError) as exc:
        print(f"napari-hpa {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"napari-hpa {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
