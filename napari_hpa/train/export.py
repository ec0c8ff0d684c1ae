"""ONNX export meeting the model contract, parity check against torch, int8 quantisation.

:func:`export_run` loads a run folder's ``last.pt``, exports the model with the legacy
TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``, opset 17) with
input ``image [N, 4, S, S]`` (dynamic batch; the normalisation is inside the model)
and outputs ``logits`` plus ``attention`` / ``embedding`` where the architecture has
them, writes the contract's metadata (:func:`~napari_hpa.engine.contract.contract_metadata`),
loads the file with onnxruntime, runs :func:`~napari_hpa.engine.contract.check_contract`
and compares the logits with torch on real images of the training data
(max abs difference must be < 1e-3 for fp32).  With ``int8`` the fp32 graph is
quantised with ``onnxruntime.quantization.quantize_static`` (QDQ, per-channel,
calibration images from ``calib``) and the label agreement with fp32 is reported.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..classes import NUM_CLASSES
from ..errors import TrainingError, file_errors
from ..imageset import find_sets, read_set, to_model_input
from ..engine.onnx_tools import cpu_session as _session
from ..engine.onnx_tools import label_agreement, quantize_int8, set_metadata
from .loop import load_checkpoint, model_from_checkpoint

OPSET = 17
PARITY_TOL = 1e-3


class _ExportWrapper(torch.nn.Module):
    def __init__(self, model, names):
        super().__init__()
        self.model, self.names = model, tuple(names)

    def forward(self, image):
        out = self.model(image)
        return tuple(out[n] for n in self.names)


@dataclass
class ExportReport:
    path: Path
    outputs: tuple[str, ...]
    parity_max_abs: float
    n_parity: int
    int8_label_agreement: float | None = None
    int8_set_agreement: float | None = None
    int8_max_abs: float | None = None

    def __str__(self) -> str:
        s = (f"wrote {self.path} (outputs {', '.join(self.outputs)}); parity vs torch on {self.n_parity} "
             f"images: max abs logit difference {self.parity_max_abs:.2e}")
        if self.int8_label_agreement is not None:
            s += (f"\nint8 vs fp32 on calibration images: label agreement {self.int8_label_agreement:.4f} "
                  f"(per image and class), same label set {self.int8_set_agreement:.4f}, "
                  f"max abs logit difference {self.int8_max_abs:.3f}")
        return s


def parse_thresholds(text: str | None) -> list[float] | None:
    """``None``, one number, 28 comma-separated numbers, or a JSON file holding a list of 28."""
    if text is None:
        return None
    p = Path(text)
    if p.is_file():
        try:
            with file_errors(p, writing=False):
                values = json.loads(p.read_text())
            if isinstance(values, dict):
                values = values.get("thresholds")
        except ValueError as exc:
            raise TrainingError(f"--threshold file {p} is not JSON ({exc})") from None
    else:
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            raise TrainingError(f"--threshold {text!r}: not a number list or a JSON file") from None
    if isinstance(values, list) and len(values) == 1:
        values = values * NUM_CLASSES
    if not isinstance(values, list) or len(values) != NUM_CLASSES or not all(
        isinstance(v, (int, float)) and 0 <= v <= 1 for v in values
    ):
        raise TrainingError(f"--threshold needs 1 or {NUM_CLASSES} numbers in [0, 1]")
    return [float(v) for v in values]


def load_images(folder: str | Path, size: int, n: int) -> np.ndarray:
    """Up to ``n`` image sets of ``folder`` (sorted by id) as float32 ``[n, 4, size, size]``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TrainingError(f"image folder {folder}: no such folder")
    sources = find_sets(folder)[:n]
    if not sources:
        raise TrainingError(f"image folder {folder} holds no image sets")
    return np.stack([to_model_input(read_set(s).data, size) for s in sources]).astype(np.float32)


def export_model(model, size: int, path: str | Path, meta: dict[str, str]) -> tuple[str, ...]:
    """Export ``model`` (an :class:`~napari_hpa.train.models.HPAModel`) to ``path`` with ``meta``."""
    import warnings

    model = model.eval()
    names = tuple(model.outputs)
    # the exporter restores the wrapper's mode afterwards: a fresh wrapper would be in
    # training mode and put the model back into it
    wrapper = _ExportWrapper(model, names).eval()
    dummy = torch.rand(2, 4, size, size)
    dynamic = {"image": {0: "N"}, **{n: {0: "N"} for n in names}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, (dummy,), str(path), input_names=["image"], output_names=list(names),
            dynamic_axes=dynamic, opset_version=OPSET, dynamo=False, do_constant_folding=True,
        )
    model.eval()
    set_metadata(Path(path), meta)
    return names


def export_run(
    run_dir: str | Path,
    out: str | Path,
    *,
    int8: bool = False,
    calib: str | Path | None = None,
    thresholds: list[float] | None = None,
    data: str | Path | None = None,
    n_parity: int = 8,
    n_calib: int = 32,
    log=print,
) -> ExportReport:
    from ..engine.contract import check_contract, contract_metadata

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TrainingError(f"run folder {run_dir}: no such folder")
    ckpt = load_checkpoint(run_dir / "last.pt")
    if int8 and calib is None:
        raise TrainingError("--int8 needs --calib DIR (a folder of calibration image sets)")
    size = int(ckpt["input_size"])
    data_dir = Path(data) if data else Path(ckpt["args"]["data"])
    parity_x = load_images(data_dir, size, n_parity)
    calib_x = load_images(calib, size, n_calib) if int8 else None
    out = Path(out)
    model = model_from_checkpoint(ckpt).eval()
    meta = contract_metadata(
        input_size=size, arch=ckpt["arch"], trained_on=ckpt["trained_on"], thresholds=thresholds,
        epochs=ckpt["epoch"], exported_by="napari-hpa export" + (" --int8" if int8 else ""),
        build_kwargs=json.dumps({k: v for k, v in ckpt["build_kwargs"].items() if k != "num_ids"}),
    )
    with file_errors(out, writing=True):
        out.parent.mkdir(parents=True, exist_ok=True)
        tmpdir = Path(tempfile.mkdtemp(prefix=".export-", dir=out.parent))
    try:
        fp32 = tmpdir / "fp32.onnx"
        names = export_model(model, size, fp32, meta)
        sess = _session(fp32)
        check_contract(sess, fp32)
        with torch.no_grad():
            ref = model(torch.from_numpy(parity_x))["logits"].numpy()
        got = sess.run(["logits"], {"image": parity_x})[0]
        diff = float(np.abs(ref - got).max())
        log(f"parity (fp32 ONNX vs torch, {len(parity_x)} images of {data_dir}): max abs logit difference {diff:.3e}")
        if not diff < PARITY_TOL:
            raise TrainingError(f"ONNX export differs from torch: max abs logit difference {diff:.3e} >= {PARITY_TOL}")
        report = ExportReport(out, names, diff, len(parity_x))
        if int8:
            q = tmpdir / "int8.onnx"
            quantize_int8(fp32, q, calib_x, meta)
            qs = _session(q)
            check_contract(qs, q)
            (report.int8_label_agreement, report.int8_set_agreement,
             report.int8_max_abs) = label_agreement(sess, qs, calib_x, thresholds)
        with file_errors(out, writing=True):
            os.replace(q if int8 else fp32, out)
    finally:
        for f in tmpdir.glob("*"):
            f.unlink()
        tmpdir.rmdir()
    return report
