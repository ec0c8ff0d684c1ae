"""Where int8 time goes: onnxruntime fp32 vs several int8 quantizations of one model.

For one architecture (random weights; default DenseNet121 at 512x512, the 1st-place single
model) this exports fp32 ONNX, quantizes it several ways with onnxruntime's static
quantization, and for each prints ms/image and, with ``--profile``, the share of time by
operator type from onnxruntime's own profiler.  It answers "why does plain int8 not speed
DenseNet up, and what does": see benchmarks/RESULTS.md for the figures.

    python benchmarks/bench_int8.py [--arch densenet121] [--size 512] [--n 8] [--threads 2] [--profile]

Variants (all per-channel weights, calibrated on synthetic fields):
  qdq-s8s8       QDQ, int8 activations and weights
  qdq-u8s8       QDQ, uint8 activations (the x86 kernels' native u8 x s8 form; what
                 ``napari-hpa export --int8`` writes)
  qop-u8s8       QOperator (QLinearConv ...), uint8 activations
  qdq-u8s8-bnq   as qdq-u8s8, with each BatchNormalization that no Conv absorbs rewritten as a
                 1x1 depthwise Conv first, so it is quantized too and the activations between
                 convolutions stay int8
Prints figures only.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

VARIANTS = ("qdq-s8s8", "qdq-u8s8", "qop-u8s8", "qdq-u8s8-bnq")


def _images(n: int, size: int) -> np.ndarray:
    from napari_hpa.imageset import to_model_input
    from napari_hpa.synth import generate_field

    return np.stack([to_model_input(generate_field(2000 + i, size=512).image, size) for i in range(n)])


def standalone_bn_to_conv(model) -> int:
    """Rewrite each 4-d ``BatchNormalization`` as a 1x1 depthwise ``Conv`` (in place).

    DenseNet's BN -> ReLU -> Conv order leaves BatchNorms that no convolution can absorb
    (they follow a concatenation, not a convolution).  onnxruntime's quantizer leaves
    them in float, so every dense layer goes int8 -> float -> int8 around them; as a
    depthwise convolution they are quantized like the rest.  Returns the number rewritten.
    """
    import onnx
    from onnx import helper, numpy_helper

    inferred = onnx.shape_inference.infer_shapes(model)
    rank = {
        vi.name: len(vi.type.tensor_type.shape.dim)
        for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    }
    inits = {t.name: t for t in model.graph.initializer}
    nodes, n = [], 0
    for node in model.graph.node:
        if node.op_type != "BatchNormalization" or rank.get(node.input[0]) != 4 or len(node.output) != 1:
            nodes.append(node)
            continue
        scale, bias, mean, var = (numpy_helper.to_array(inits[i]).astype(np.float64) for i in node.input[1:5])
        eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        w = scale / np.sqrt(var + eps)
        b = bias - mean * w
        wn, bn = f"{node.name or node.output[0]}_dw_w", f"{node.name or node.output[0]}_dw_b"
        model.graph.initializer.extend([
            numpy_helper.from_array(w.astype(np.float32).reshape(-1, 1, 1, 1), wn),
            numpy_helper.from_array(b.astype(np.float32), bn),
        ])
        nodes.append(helper.make_node("Conv", [node.input[0], wn, bn], list(node.output),
                                      name=f"{node.name}_dw", group=len(w), kernel_shape=[1, 1]))
        n += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {i for node in model.graph.node for i in node.input}
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    return n


def quantize(fp32: Path, out: Path, variant: str, calib: np.ndarray) -> None:
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from napari_hpa.train.export import quantize_int8

    if variant.endswith("-bnq"):
        pre = out.with_name(out.stem + "-pre.onnx")
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)  # folds Conv -> BN first
        model = onnx.load(str(pre))
        print(f"  {variant}: {standalone_bn_to_conv(model)} standalone BatchNorms rewritten as depthwise Conv")
        onnx.save(model, str(pre))
        fp32 = pre
    qdq = not variant.startswith("qop")
    act = "s8" if "s8s8" in variant else "u8"
    quantize_int8(fp32, out, calib, {}, qdq=qdq, activations=act)


def time_session(path: Path, x: np.ndarray, threads: int, profile: bool):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.enable_profiling = profile
    so.profile_file_prefix = str(path.with_suffix(""))  # beside the model, in the temporary folder
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    sess.run(["logits"], {"image": x[:1]})
    t0 = time.perf_counter()
    outs = [sess.run(["logits"], {"image": x[i : i + 1]})[0] for i in range(len(x))]
    ms = (time.perf_counter() - t0) * 1000 / len(x)
    by_op: dict[str, float] = defaultdict(float)
    if profile:
        events = json.loads(Path(sess.end_profiling()).read_text())
        for e in events:
            if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
                by_op[e["args"]["op_name"]] += e["dur"]
    return np.concatenate(outs), ms, by_op


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="densenet121")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--n", type=int, default=8, help="images timed per variant")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calib", type=int, default=16, help="calibration images")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--profile", action="store_true", help="time by operator type (onnxruntime profiler)")
    args = ap.parse_args(argv)

    import torch

    from napari_hpa.engine.contract import contract_metadata
    from napari_hpa.train.export import export_model
    from napari_hpa.train.models import build_model

    torch.manual_seed(0)
    model = build_model(args.arch).eval()
    x = _images(args.n, args.size)
    calib = _images(args.calib, args.size)
    print(f"{args.arch} @ {args.size}, random weights, batch 1, {args.n} images, {args.threads} threads")
    with tempfile.TemporaryDirectory(prefix="hpa-int8-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        export_model(model, args.size, fp32, contract_metadata(input_size=args.size, arch=args.arch,
                                                               trained_on="random weights"))
        paths = {"fp32": fp32}
        for v in args.variants:
            paths[v] = Path(tmp) / f"{v}.onnx"
            quantize(fp32, paths[v], v, calib)
        base = None
        for name, path in paths.items():
            logits, ms, by_op = time_session(path, x, args.threads, args.profile)
            if base is None:
                base, base_ms = logits, ms
            agree = float(((logits > 0) == (base > 0)).mean())
            print(f"{name:14s} {ms:8.1f} ms/image  x{base_ms / ms:.2f} vs fp32  "
                  f"labels (logit > 0) as fp32 {100 * agree:.1f}%  size {path.stat().st_size / 1e6:.1f} MB")
            if by_op:
                total = sum(by_op.values())
                top = sorted(by_op.items(), key=lambda kv: -kv[1])[:7]
                print("    " + ", ".join(f"{op} {100 * d / total:.0f}%" for op, d in top))


if __name__ == "__main__":
    main()
