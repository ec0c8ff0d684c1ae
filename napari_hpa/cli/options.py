"""What the commands of ``napari-hpa`` share: the parser class, the option builders used
by several commands (``--models`` and the execution provider, ``--tta``, ``--batch-size``,
``--quiet``), the helpers that apply the conventions (an input given positionally, an
output given by ``--out``, each with its earlier spelling kept as a hidden alias), and the
progress bar.  Light to import: only the engine's small constant modules are read here.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from pathlib import Path

from ..engine.providers import PROVIDER_CHOICES, ProviderRequest
from ..engine.tta import TTA_MODES
from ..errors import FileError, HPAError

#: ``--tta`` choices, from the engine's transforms.
TTA_CHOICES = tuple(TTA_MODES)

#: Default image sets per batch, by command.  They differ and stay as they are, since
#: results may depend on them: 8 for inference over folders, 16 for scoring and training.
BATCH_SIZE = {
    "predict": 8,
    "index": 8,
    "models domain": 8,
    "models refit-head": 16,
    "evaluate": 16,
    "ensemble build": 16,
    "train": 16,
}


class Parser(argparse.ArgumentParser):
    """The parser of ``napari-hpa`` and of each of its commands (subparsers inherit the class).

    An argument that :func:`renamed` keeps optional to argparse only so that its earlier
    spelling can stand in for it (``shown_required``) is shown as required in the usage."""

    @contextmanager
    def _shown_as_required(self):
        marked = [(a, a.required, a.nargs) for a in self._actions if getattr(a, "shown_required", False)]
        for action, _, _ in marked:
            action.required = True
            if not action.option_strings:
                action.nargs = None  # a positional: DIR, not [DIR]
        try:
            yield
        finally:
            for action, required, nargs in marked:
                action.required, action.nargs = required, nargs

    def format_usage(self) -> str:
        with self._shown_as_required():
            return super().format_usage()

    def format_help(self) -> str:
        with self._shown_as_required():
            return super().format_help()


def renamed(p: argparse.ArgumentParser, name: str, old: str, *, required: bool = False, **kw):
    """Add ``name`` (an option, or a positional when it has no leading ``-``), also accepted
    under its earlier spelling ``old`` (option or positional, same destination), which is
    hidden from ``--help`` and kept for one release.  The two exclude each other; with
    ``required`` one of them must be given.  Returns the new argument's action."""
    group = p.add_mutually_exclusive_group(required=required)
    if name.startswith("-"):
        action = group.add_argument(name, **kw)
    else:  # a positional: optional to argparse, so that the old spelling can replace it
        action = group.add_argument(name, **_absent_positional(kw))
    action.shown_required = required
    alias = {k: kw[k] for k in ("type", "nargs", "choices") if k in kw}
    if old.startswith("-"):
        group.add_argument(old, dest=action.dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **alias)
    else:  # a former positional; its name is the destination
        group.add_argument(old, **_absent_positional({**alias, "help": argparse.SUPPRESS}))
    return action


def _absent_positional(kw: dict) -> dict:
    """Arguments for a positional that may be absent and then sets nothing (so that the
    other spelling's value stands); argparse passes the default through ``type``, which
    must let it through unchanged."""
    convert = kw.get("type")

    def convert_given(text):
        return text if text is argparse.SUPPRESS or convert is None else convert(text)

    convert_given.__name__ = getattr(convert, "__name__", "value")
    return {**kw, "nargs": "?", "default": argparse.SUPPRESS, "type": convert_given}


def quiet_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def batch_size_option(p: argparse.ArgumentParser, command: str, help: str = "sets per batch") -> None:
    """``--batch-size``, with the default of ``command`` in :data:`BATCH_SIZE`."""
    default = BATCH_SIZE[command]
    p.add_argument("--batch-size", type=int, default=default, help=f"{help} (default {default})")


def tta_option(p: argparse.ArgumentParser, default: str | None = None) -> None:
    """``--tta``: without ``default``, an override of the manifest's TTA."""
    help = "override the manifest's TTA" if default is None else f"default {default}"
    p.add_argument("--tta", choices=TTA_CHOICES, default=default, help=help)


def models_option(
    p: argparse.ArgumentParser,
    help: str = "ensemble.json, a folder holding one, or a single .onnx model "
    "(default: the bundled default ensemble)",
) -> None:
    p.add_argument("--models", type=Path, help=help)


def provider_options(p: argparse.ArgumentParser, models: bool = True) -> None:
    """``--provider``, ``--device-id`` and ``--threads`` (and ``--models`` unless ``models=False``)."""
    if models:
        models_option(p)
    p.add_argument(
        "--provider",
        choices=PROVIDER_CHOICES,
        default="auto",
        help="onnxruntime execution provider; auto tries CUDA and falls back to the CPU",
    )
    p.add_argument("--device-id", type=int, default=0, help="GPU number (default 0)")
    p.add_argument(
        "--threads", type=int, default=0, metavar="N",
        help="onnxruntime threads per model on the CPU (default 0: all cores)",
    )


def provider_request(args: argparse.Namespace) -> ProviderRequest:
    """The :class:`~napari_hpa.engine.providers.ProviderRequest` of :func:`provider_options`."""
    return ProviderRequest(args.provider, args.device_id, args.threads)


def progress_bar(total: int, unit: str):
    """A tqdm bar on stderr (rate and ETA); call the returned function with (done, total)."""
    from tqdm import tqdm

    bar = tqdm(total=total or None, unit=unit, file=sys.stderr, dynamic_ncols=True)

    def update(done: int, total_now: int) -> None:
        if bar.total != total_now:
            bar.total = total_now
            bar.refresh()
        bar.update(done - bar.n)
        if done >= total_now:
            bar.close()

    return update


@contextmanager
def core_errors(value_error=HPAError):
    """Re-raise the ``ValueError`` / ``OSError`` of a core part that does not raise
    :class:`~napari_hpa.errors.HPAError` for bad input yet (the synthetic generator, the
    review store) as ``value_error`` / :class:`~napari_hpa.errors.FileError`, with the same
    message, so that :func:`napari_hpa.cli.main` reports them as bad input."""
    try:
        yield
    except HPAError:
        raise
    except ValueError as exc:
        raise value_error(str(exc)) from exc
    except OSError as exc:
        raise FileError(str(exc)) from exc
