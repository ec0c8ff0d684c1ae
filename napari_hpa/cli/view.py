"""``napari-hpa demo``, ``napari-hpa view`` and ``napari-hpa info``: open napari from the
command line (the sample or image sets, optionally classified), and describe the install."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..errors import FileError, HPAError
from .options import models_option

FIND_MAP = Path("<PATH/predictions/embeddings.npz>")  # --map without a value


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
    from ..demo import run_viewer

    _check_display()
    paths = getattr(args, "paths", [])
    if args.command == "view":
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise FileError(f"no such file or folder: {', '.join(missing)}")
    from ..folder import OUTPUT_NAMES, PREDICTIONS_FOLDER

    map_source = getattr(args, "map", None)
    if map_source == FIND_MAP:
        map_source = next((p / PREDICTIONS_FOLDER / OUTPUT_NAMES["embeddings"] for p in paths
                           if (p / PREDICTIONS_FOLDER / OUTPUT_NAMES["embeddings"]).is_file()), None)
        if map_source is None:
            raise FileError("--map: no PATH holds predictions/embeddings.npz; name the embeddings "
                            "or map CSV (--map FILE), or predict with --embeddings first")
    elif map_source is not None and not map_source.exists():
        raise FileError("--map: no such file", map_source)
    import contextlib

    # with --json, stdout holds the JSON alone: what napari prints (its notices) goes to stderr
    quiet = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
    with quiet:
        report = run_viewer(
            paths,
            classify=args.command == "demo" or args.classify,
            models=args.models,
            screenshot=args.screenshot,
            palette=args.palette,
            size=tuple(args.window_size),
            title=f"napari-hpa {args.command}",
            map_source=map_source,
            colour_by=getattr(args, "colour_by", None),
        )
    if args.json:
        print(json.dumps(report, indent=2))
    elif args.screenshot:
        print(f"saved a screenshot of the viewer to {args.screenshot}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from ..info import collect_info, format_info

    info = collect_info(args.models, args.device_id)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def _viewer_options(p: argparse.ArgumentParser) -> None:
    models_option(p, "ensemble.json or .onnx to classify with (default: bundled)")
    p.add_argument(
        "--screenshot", type=Path, help="save a PNG of the whole window, then exit"
    )
    p.add_argument(
        "--palette", action="store_true",
        help="save the screenshot as a 256-colour PNG (about a third of the size; for documentation)",
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


def add_parsers(sub) -> None:
    from ..fieldmap import COLOUR_BY

    p = sub.add_parser(
        "info",
        help="versions, execution providers that work, and the default ensemble",
    )
    models_option(p, "ensemble to describe (default: the bundled one)")
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
    p.add_argument("--map", nargs="?", const=FIND_MAP, type=Path, metavar="EMBEDDINGS",
                   help="dock the HPA map of a predict run's embeddings.npz or a map CSV "
                   "(default: PATH/predictions/embeddings.npz)")
    p.add_argument("--colour-by", choices=list(COLOUR_BY), help="the map's colouring")
    _viewer_options(p)
