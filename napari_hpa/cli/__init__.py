"""The ``napari-hpa`` command line: a thin front over the core.

One module per group of commands (:mod:`.synth`, :mod:`.predict`, :mod:`.view`,
:mod:`.labels`, :mod:`.train`, :mod:`.ensemble`, :mod:`.evaluate`, :mod:`.models`), each
adding its parsers with ``add_parsers`` and importing the heavy layers (the engine,
napari, torch) only inside its command functions, so that ``napari-hpa --help`` stays
fast; what they share is in :mod:`.options`.  Each command parses its arguments, calls
the core, and :func:`main` turns :class:`~napari_hpa.errors.HPAError` (bad input) into a
one-line message and exit status 2; any other exception is a bug and keeps its traceback.

The conventions (:data:`CONVENTIONS`, shown by ``napari-hpa --help``): what a command
reads is given positionally, what it writes is ``--out``.  Earlier spellings are kept
as hidden aliases for one release.
"""

from __future__ import annotations

import sys

from .. import __version__
from ..errors import HPAError
from . import embedmap, ensemble, evaluate, labels, models, predict, synth, train, view
from .options import Parser

CONVENTIONS = (
    "Conventions: what a command reads (image sets, folders, a session, a run, model files) is "
    "given positionally; what it writes is --out (further outputs have their own options: --probs, "
    "--audit, ...). Options name the other inputs: --models (default: the bundled ensemble), "
    "--labels (default: DIR/labels.csv), --calib. --threshold gives threshold values (one for every "
    "class, or one per class); --thresholds says how per-class thresholds are fitted. Spellings of "
    "the previous release ('synth DIR', 'evaluate --data DIR', 'train --data DIR', 'ensemble build "
    "MEMBER... --val DIR', 'models domain --images DIR', 'labels import --labels CSV --session S', "
    "'export --thresholds T') still work but are no longer shown."
)


def build_parser() -> Parser:
    parser = Parser(
        prog="napari-hpa",
        description="Human Protein Atlas four-channel microscopy: synthetic data, viewer.",
        epilog=CONVENTIONS,
    )
    parser.add_argument("--version", action="version", version=f"napari-hpa {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (synth, predict, view, labels, train, ensemble, evaluate, models, embedmap):
        group.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stderr.close()
        return 0
    except HPAError as exc:  # bad input; anything else is a bug and keeps its traceback
        print(f"napari-hpa {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"napari-hpa {args.command}: interrupted", file=sys.stderr)
        return 130
