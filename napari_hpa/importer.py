"""``napari-hpa models import``: a foreign model made into a contract-1 ensemble folder.

Sources:

* an ONNX classifier with a 4-channel input: its graph is wrapped with onnx's own
  tools (:mod:`napari_hpa.engine.foreign`), never re-implemented;
* the PyTorch checkpoint of CellProfiling/hpa_densenet (the Kaggle 2018 1st-place
  DenseNet121): rebuilt in the training layer, loaded weights-only, exported and
  checked against torch (:mod:`napari_hpa.train.hpa_densenet`; needs the ``train``
  extra).

Then, in order: an optional int8 copy (onnxruntime's static quantization,
calibrated on ``calib``; its label agreement with fp32 is reported), the
thresholds (a fixed value, 0.5 by default; ``ratio``: each class's
predicted-positive rate on the calibration fields matches its share of a labels
CSV, the 1st place's rule; ``f1``: fitted on labelled calibration fields), the
domain record (from the calibration fields, at least 40), ``ensemble.json`` and
a generated ``MODEL_CARD.md``.  Everything is written into a fresh folder that
takes the place of ``out`` only when all of it is done: a failed import leaves
nothing behind, and an existing folder is never overwritten.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import __version__
from .classes import CLASS_NAMES, DEFAULT_THRESHOLD, NUM_CLASSES
from .engine.contract import MAX_INPUT_SIZE, MIN_INPUT_SIZE
from .engine.domain import MIN_IMAGES
from .engine.foreign import (
    HPA_DENSENET,
    ImportModelError,
    KnownModel,
    detect_outputs,
    inspect_onnx,
    sha256,
    wrap_onnx,
)
from .errors import file_errors

THRESHOLD_METHODS = ("fixed", "ratio", "f1")
TORCH_SUFFIXES = (".pth", ".pt", ".tar", ".ckpt")


@dataclass
class ImportOptions:
    input_size: int | None = None  # default: the graph's, or the known model's
    outputs: list[str] | None = None  # one kind per ONNX output (foreign.OUTPUT_KINDS)
    normalize: tuple[list[float], list[float]] | None = None  # RGBY mean and std to add in front
    class_order: list[int] | None = None  # model output k is HPA class class_order[k]
    large: bool = False  # hpa_densenet's 'large' variant
    name: str | None = None
    trained_on: str | None = None
    calib: Path | None = None  # folder of fields of the model's domain
    n_calib: int = 200  # at most this many calibration fields
    int8: bool = False
    thresholds: str = "fixed"
    threshold: float = DEFAULT_THRESHOLD
    class_ratios: Path | None = None  # labels CSV for --thresholds ratio
    labels: Path | None = None  # labels CSV of the calibration folder for --thresholds f1
    min_one_label: bool = False


@dataclass
class ImportReport:
    folder: Path
    source: Path
    source_sha256: str
    kind: str  # "onnx" or "pytorch checkpoint"
    known: str | None
    input_size: int
    outputs: dict[str, str]  # original output -> what it became
    threshold_rule: str
    parity: str = ""
    int8: str = ""
    domain: str = ""
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [
            f"imported {self.source} ({self.kind}"
            + (f", recognised as {self.known}" if self.known else "") + f") into {self.folder}",
            f"  input: image [N, 4, {self.input_size}, {self.input_size}] RGBY in [0, 1]",
            "  outputs: " + ", ".join(f"{k} -> {v}" for k, v in self.outputs.items()),
            f"  thresholds: {self.threshold_rule}",
        ]
        for line in (self.parity, self.int8, self.domain, *self.notes):
            if line:
                lines.append(f"  {line}")
        return "\n".join(lines)


def needs_import(path: str | Path) -> bool:
    """Whether ``path`` is a model file made elsewhere (not yet a napari-hpa member or ensemble)."""
    path = Path(path)
    if path.suffix.lower() in TORCH_SUFFIXES:
        return True
    if path.suffix.lower() != ".onnx" or not path.is_file():
        return False
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - an unreadable file is for the loader to report
        return False
    return not any(p.key == "hpa_contract" for p in model.metadata_props)


def _check_options(src: Path, out: Path, opts: ImportOptions) -> None:
    if not src.is_file():
        raise ImportModelError("no such file", src)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ImportModelError("already exists and is not an empty folder: choose a new --out", out)
    if opts.input_size is not None and not MIN_INPUT_SIZE <= opts.input_size <= MAX_INPUT_SIZE:
        raise ImportModelError(f"--input-size must be between {MIN_INPUT_SIZE} and {MAX_INPUT_SIZE}, "
                               f"got {opts.input_size}")
    if opts.thresholds not in THRESHOLD_METHODS:
        raise ImportModelError(f"--thresholds must be one of {', '.join(THRESHOLD_METHODS)}")
    if not 0 < opts.threshold < 1:
        raise ImportModelError(f"--threshold must be between 0 and 1, got {opts.threshold}")
    if opts.int8 and opts.calib is None:
        raise ImportModelError("--int8 needs --calib DIR (fields to calibrate the quantization on)")
    if opts.thresholds == "ratio" and (opts.class_ratios is None or opts.calib is None):
        raise ImportModelError("--thresholds ratio needs --class-ratios CSV (e.g. Kaggle's train.csv) "
                               "and --calib DIR (your fields, to fit the thresholds on)")
    if opts.thresholds == "f1" and (opts.labels is None or opts.calib is None):
        raise ImportModelError("--thresholds f1 needs --calib DIR and --labels CSV (the labels of its fields)")
    if opts.class_order is not None and sorted(opts.class_order) != list(range(NUM_CLASSES)):
        raise ImportModelError(f"--class-order must list each of the {NUM_CLASSES} class indices once")
    if opts.normalize is not None:
        mean, std = opts.normalize
        if len(mean) != 4 or len(std) != 4 or not all(s > 0 for s in std):
            raise ImportModelError("--normalize needs 4 means and 4 positive standard deviations (RGBY)")
    if opts.calib is not None and not Path(opts.calib).is_dir():
        raise ImportModelError("no such folder", opts.calib)


def _calibration_inputs(folder: Path | None, size: int, n: int) -> np.ndarray | None:
    from .imageset import find_sets, read_set, to_model_input

    if folder is None:
        return None
    sources = find_sets(folder)[:n]
    if not sources:
        raise ImportModelError("holds no image sets", folder)
    return np.stack([to_model_input(read_set(s).data, size) for s in sources]).astype(np.float32)


def _trial_inputs(size: int, seed: int = 0) -> np.ndarray:
    """Two fields of noise at ``size`` (for checks when no calibration fields are given)."""
    return np.random.default_rng(seed).random((2, 4, size, size), dtype=np.float32)


def import_model(
    src: str | Path, out: str | Path, opts: ImportOptions | None = None, *, request=None,
    log: Callable[[str], None] = print, progress=None,
) -> ImportReport:
    """Import ``src`` into the new folder ``out``; returns what was done."""
    opts = opts or ImportOptions()
    src, out = Path(src), Path(out)
    _check_options(src, out, opts)
    with file_errors(out, writing=True):
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.import-", dir=out.parent))
    try:
        report = _import_into(src, tmp, out, opts, request, log, progress)
        with file_errors(out, writing=True):
            if out.exists():
                out.rmdir()  # empty, checked above
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def _import_into(src, tmp, out, opts, request, log, progress) -> ImportReport:
    from .engine import Ensemble, EnsembleSpec, MemberSpec, ProviderRequest
    from .engine.contract import contract_metadata
    from .engine.ensemble import load_member
    from .engine.onnx_tools import cpu_session, label_agreement, quantize_int8

    name = opts.name or src.stem.split(".")[0][:60] or "imported"
    member = tmp / f"{name}.onnx"
    with file_errors(src, writing=False):
        digest = sha256(src)
    common_meta = dict(source_file=src.name, source_sha256=digest,
                       imported_by=f"napari-hpa {__version__} models import")
    if src.suffix.lower() == ".onnx":
        info = inspect_onnx(src)
        known = info.known
        size = opts.input_size or info.input_size or (known.input_size if known else None)
        if size is None:
            raise ImportModelError(
                "the graph does not fix the input size: give --input-size (the side, in pixels, "
                "the model was trained at)", src)
        if info.input_size and size != info.input_size:
            raise ImportModelError(f"--input-size {size} but the graph takes {info.input_size}", src)
        x_check = _calibration_inputs(opts.calib, size, min(opts.n_calib, 4))
        if x_check is None:
            x_check = _trial_inputs(size)
        sample = None
        if opts.outputs is None and known is None:
            sess = cpu_session(src)
            sample = dict(zip([o.name for o in sess.get_outputs()],
                              sess.run(None, {info.input_name: x_check[:1]})))
        kinds = opts.outputs or detect_outputs(info, sample)
        meta = contract_metadata(
            input_size=size, arch=f"imported {known.key if known else 'onnx'}",
            trained_on=opts.trained_on or (known.trained_on if known else "unknown (imported; not stated)"),
            outputs_from=json.dumps({o.name: k for o, k in zip(info.outputs, kinds)}), **common_meta,
        )
        wrap_onnx(info, member, kinds=kinds, input_size=size, metadata=meta,
                  normalize=opts.normalize, class_order=opts.class_order)
        parity = _wrap_parity(src, info.input_name, kinds, member, x_check, opts)
        outputs = {o.name: _became(k) for o, k in zip(info.outputs, kinds)}
        kind = "onnx"
    elif src.suffix.lower() in TORCH_SUFFIXES:
        try:
            from .train.hpa_densenet import export_checkpoint
        except ImportError as exc:
            raise ImportModelError(
                f"importing a PyTorch checkpoint needs the 'train' extra ({exc}): "
                "pip install 'napari-hpa[train]'") from None
        if opts.outputs or opts.normalize or opts.class_order:
            raise ImportModelError("--outputs, --normalize and --class-order apply to ONNX models only")
        known = HPA_DENSENET
        size = opts.input_size or known.input_size
        meta = contract_metadata(
            input_size=size, arch="imported hpa-densenet121" + (" large" if opts.large else ""),
            trained_on=opts.trained_on or known.trained_on, **common_meta,
        )
        x_check = _calibration_inputs(opts.calib, size, min(opts.n_calib, 2))
        if x_check is None:
            x_check = _trial_inputs(size)
        diff = export_checkpoint(src, member, input_size=size, metadata=meta, check_images=x_check[:2],
                                 large=opts.large, log=log)
        parity = (f"parity with torch on {min(len(x_check), 2)} fields: max abs logit difference {diff:.2e}")
        outputs = {"logits": "logits", "feature (1024-d)": "embedding (L2-normalised)"}
        kind = "pytorch checkpoint"
    else:
        raise ImportModelError(
            f"unknown model file type {src.suffix!r}: napari-hpa imports .onnx files and "
            f"hpa_densenet PyTorch checkpoints ({', '.join(TORCH_SUFFIXES)})", src)
    log(parity)

    report = ImportReport(
        folder=out, source=src, source_sha256=digest, kind=kind, known=known.title if known else None,
        input_size=size, outputs=outputs, threshold_rule="", parity=parity,
    )
    request = request or ProviderRequest()
    calib_x = None
    if opts.int8:
        calib_x = _calibration_inputs(opts.calib, size, min(opts.n_calib, 32))
        fp32 = tmp / f".{name}.fp32.onnx"
        os.replace(member, fp32)
        quantize_int8(fp32, member, calib_x, dict(meta, imported_by=meta["imported_by"] + " --int8"))
        agree, same_set, max_abs = label_agreement(
            cpu_session(fp32), cpu_session(member), calib_x, [opts.threshold] * NUM_CLASSES,
            opts.min_one_label)
        fp32.unlink()
        report.int8 = (f"int8 vs fp32 on {len(calib_x)} calibration fields: label agreement "
                       f"{agree:.4f} (per field and class), same label set {same_set:.4f}, "
                       f"max abs logit difference {max_abs:.3f}")
        log(report.int8)

    spec = EnsembleSpec(
        members=[MemberSpec(name, member, 1.0)], tta="none", combine="mean",
        thresholds=(opts.threshold,) * NUM_CLASSES, min_one_label=opts.min_one_label,
        name=name, trained_on=meta["trained_on"],
    )
    ensemble = Ensemble(spec, [load_member(spec.members[0], request)])
    col = None
    if opts.calib is not None:
        from .evaluate import collect

        labelled = opts.thresholds == "f1"
        col = collect(ensemble, opts.calib, opts.labels, batch_size=4, limit=opts.n_calib,
                      progress=progress, labelled=labelled)
    spec.thresholds, report.threshold_rule = _thresholds(opts, col, known)
    domain = None
    if col is not None and len(col.ids) >= MIN_IMAGES:
        from .evaluate import fit_domain

        domain = fit_domain(ensemble, col, f"{len(col.ids)} fields of {Path(opts.calib).resolve()} "
                            "(the calibration folder given at import)")
        report.domain = (f"domain record from {len(col.ids)} calibration fields "
                         f"({domain.features_from}; intensity at {domain.input_size} px)")
    else:
        report.domain = (f"no domain record: give --calib with at least {MIN_IMAGES} fields like those "
                         "the model was made for, and every field's verdict says 'domain unknown' "
                         "until then")
    from .evaluate import write_with_domain

    write_with_domain(spec, tmp / "ensemble.json", domain)
    spec.path = out / "ensemble.json"
    (tmp / "MODEL_CARD.md").write_text(_model_card(report, spec, meta, opts, known, domain))
    return report


def _became(kind: str) -> str:
    return {"probabilities": "logits (log(p / (1 - p)))", "logits": "logits",
            "features": "embedding (L2-normalised)", "ignore": "dropped"}[kind]


def _wrap_parity(src, input_name, kinds, member, x, opts: ImportOptions) -> str:
    """The wrapped model against the original: sigmoid(logits) vs probabilities, and so on."""
    from .engine.ensemble import sigmoid
    from .engine.onnx_tools import cpu_session

    x = x[:2]
    x_orig = x
    if opts.normalize is not None:
        mean, std = (np.asarray(v, np.float32).reshape(1, 4, 1, 1) for v in opts.normalize)
        x_orig = ((x - mean) / std).astype(np.float32)
    orig = cpu_session(src).run(None, {input_name: x_orig})
    new = cpu_session(member).run(["logits"], {"image": x})[0]
    k = next(i for i, kd in enumerate(kinds) if kd in ("probabilities", "logits"))
    ref = orig[k]
    if opts.class_order is not None:
        ref = ref[:, np.argsort(opts.class_order)]
    got = sigmoid(new) if kinds[k] == "probabilities" else new
    diff = float(np.abs(ref - got).max())
    if not diff < 1e-4:
        raise ImportModelError(f"the wrapped model differs from the original by {diff:.2e}", src)
    what = "probabilities" if kinds[k] == "probabilities" else "logits"
    return f"wrapped graph vs original on {len(x[:2])} fields: max abs {what} difference {diff:.2e}"


def _thresholds(opts: ImportOptions, col, known: KnownModel | None):
    from .evaluate import class_ratios
    from .metrics import fit_thresholds_f1, fit_thresholds_ratio

    if opts.thresholds == "fixed":
        note = f"{opts.threshold} for every class"
        if known is not None and opts.threshold == DEFAULT_THRESHOLD:
            note += f" ({known.threshold_note})"
        return (opts.threshold,) * NUM_CLASSES, note
    if opts.thresholds == "ratio":
        ratios = class_ratios(opts.class_ratios)
        thr = fit_thresholds_ratio(col.probs, ratios)
        return tuple(float(t) for t in thr), (
            f"per class, the predicted-positive rate on {len(col.ids)} fields of {opts.calib} matches "
            f"the class's share of {opts.class_ratios} (the 1st place's rule)")
    thr = fit_thresholds_f1(col.probs, col.y_true)
    return tuple(float(t) for t in thr), (
        f"per class, maximising F1 on {len(col.ids)} labelled fields of {opts.calib} ({opts.labels})")


def _model_card(report: ImportReport, spec, meta: dict, opts: ImportOptions, known, domain) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    thr = spec.thresholds
    lines = [
        f"# {spec.name}: imported model",
        "",
        f"Imported by `napari-hpa models import` (napari-hpa {__version__}) on {when}.",
        "",
        "## Source",
        "",
        f"- file: `{report.source.name}` ({report.kind})",
        f"- SHA-256: `{report.source_sha256}`",
        f"- recognised as: {known.title} ({known.citation})" if known else
        "- recognised as: no known model; the interface was read from the file and the options",
        "",
        "## Interface",
        "",
        f"- input: `image` float32 `[N, 4, {report.input_size}, {report.input_size}]`, RGBY in [0, 1] "
        "(8-bit / 255, 16-bit / 65535), every field resized to this size (anti-aliased bilinear)",
        "- normalisation: " + (
            f"added in front of the graph, mean {opts.normalize[0]}, std {opts.normalize[1]}"
            if opts.normalize else "inside the model's own graph (none added)"),
        "- outputs: " + "; ".join(f"`{k}` -> {v}" for k, v in report.outputs.items()),
        "- class order: " + ("reordered from the model's order "
                             f"{opts.class_order}" if opts.class_order else "the HPA order (0 Nucleoplasm ... 27 Rods & rings)"),
        f"- checks: {report.parity}",
    ]
    if report.int8:
        lines.append(f"- int8: {report.int8}")
    lines += [
        "",
        "## What it was trained on",
        "",
        meta["trained_on"],
        "",
        "## Thresholds",
        "",
        report.threshold_rule + ("; the top class is always predicted" if spec.min_one_label else
                                 "; a field may get no label"),
        "",
        "| class | threshold |",
        "| --- | --- |",
        *[f"| {i} {CLASS_NAMES[i]} | {t:.3f} |" for i, t in enumerate(thr)],
        "",
        "## Domain",
        "",
        (f"The domain record (`domain.npz`) was computed from {domain.description}: a field is called "
         "out of the domain when its intensities or the model's features are further from these "
         f"fields than {100 * domain.quantile:.0f} % of them are. It describes the calibration "
         "fields, which stand in for the model's training fields." if domain else report.domain),
        "",
    ]
    return "\n".join(lines)
