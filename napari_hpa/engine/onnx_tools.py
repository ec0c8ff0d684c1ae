"""ONNX helpers of the core (onnx and onnxruntime, no torch): metadata, a CPU session,
static int8 quantization with onnxruntime's own tools, and the label agreement of two models."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

MAX_IR_VERSION = 10


def set_metadata(path: Path, meta: dict[str, str]) -> None:
    import onnx

    m = onnx.load(str(path))
    keep = {p.key: p.value for p in m.metadata_props if p.key not in meta}
    del m.metadata_props[:]
    for k, v in {**keep, **meta}.items():
        m.metadata_props.add(key=k, value=str(v))
    m.ir_version = min(m.ir_version, MAX_IR_VERSION)
    onnx.save(m, str(path))


def cpu_session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


class _CalibReader:
    """onnxruntime CalibrationDataReader over float32 images, one at a time."""

    def __init__(self, images: np.ndarray):
        self.images = images
        self.i = 0

    def get_next(self):
        if self.i >= len(self.images):
            return None
        x = self.images[self.i : self.i + 1]
        self.i += 1
        return {"image": x}

    def rewind(self):  # pragma: no cover - newer onnxruntime versions may call it
        self.i = 0


def quantize_int8(
    fp32: Path, out: Path, calib: np.ndarray, meta: dict[str, str], *,
    qdq: bool = True, activations: str = "u8",
) -> None:
    """Static int8 quantization (onnxruntime), per-channel int8 weights, calibrated on ``calib``.

    ``qdq``: QDQ format (else QOperator).  ``activations``: ``"u8"`` (default) or ``"s8"``.
    onnxruntime's x86 kernels multiply uint8 activations by int8 weights natively; int8
    activations cost a conversion on every quantized operator, which made DenseNet121 and
    ResNet34 at 512 px 12-18 % slower on a 2-core AVX2 machine, with the same labels
    (``benchmarks/bench_int8.py``).
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    if activations not in ("u8", "s8"):
        raise ValueError(f"activations must be 'u8' or 's8', not {activations!r}")
    reader_cls = type("Reader", (_CalibReader, CalibrationDataReader), {})
    with tempfile.TemporaryDirectory() as tmp:
        src = fp32
        try:
            from onnxruntime.quantization.shape_inference import quant_pre_process

            pre = Path(tmp) / "pre.onnx"
            quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
            src = pre
        except Exception:  # noqa: BLE001 - preprocessing is an optimisation only
            src = fp32
        root = logging.getLogger()
        level = root.level
        # the quantizer warns on the root logger for every standalone BatchNorm weight (kept in
        # float, as intended): hundreds of lines for DenseNet121
        root.setLevel(max(level, logging.ERROR))
        try:
            quantize_static(
                str(src), str(out), reader_cls(calib),
                quant_format=QuantFormat.QDQ if qdq else QuantFormat.QOperator, per_channel=True,
                activation_type={"s8": QuantType.QInt8, "u8": QuantType.QUInt8}[activations],
                weight_type=QuantType.QInt8,
            )
        finally:
            root.setLevel(level)
    set_metadata(out, meta)




def label_agreement(reference, other, x: np.ndarray, thresholds=None, min_one_label: bool = True,
                    batch: int = 4) -> tuple[float, float, float]:
    """How far ``other``'s labels stray from ``reference``'s on ``x`` (two onnxruntime sessions).

    Returns the agreement per image and class, the share of images with the same label
    set, and the largest logit difference.
    """
    from ..classes import DEFAULT_THRESHOLD
    from ..thresholds import apply_thresholds, sigmoid

    def logits(sess):
        return np.concatenate([sess.run(["logits"], {"image": x[i:i + batch]})[0]
                               for i in range(0, len(x), batch)])

    a, b = logits(reference), logits(other)
    thr = np.asarray(thresholds if thresholds is not None else [DEFAULT_THRESHOLD] * a.shape[1], np.float32)
    la = apply_thresholds(sigmoid(a), thr, min_one_label)
    lb = apply_thresholds(sigmoid(b), thr, min_one_label)
    return float((la == lb).mean()), float((la == lb).all(1).mean()), float(np.abs(a - b).max())
