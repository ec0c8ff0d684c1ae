"""The imported 1st-place DenseNet121 at 1024 px: torch eager (the hpa_densenet way) against
onnxruntime fp32 and int8, per image, in one run, with int8's label agreement.

No real weights exist here, so the model is the hpa_densenet module with random weights
(BatchNorm statistics away from their defaults), saved as a checkpoint and imported with
``napari-hpa models import`` like the published file; calibration and timing fields are
synthetic fields at 1024 px.  Speed does not depend on the weights; the label agreement of
random weights says little about the real model's.

    python benchmarks/bench_densenet_import.py [--images 8] [--calib 16] [--threads 0]
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np


def cpu_name(flags_of_interest=("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")) -> str:
    """The CPU's model name and which of ``flags_of_interest`` it has (from ``lscpu``)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown CPU"
    model = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in out.splitlines() if line.startswith("Flags")), [])
    has = [f for f in flags_of_interest if f in flags]
    return f"{model} ({', '.join(has) or 'none of ' + ', '.join(flags_of_interest)})"


def main() -> None:
    import torch

    from napari_hpa.engine import Ensemble, ProviderRequest
    from napari_hpa.engine.ensemble import apply_thresholds, sigmoid
    from napari_hpa.imageset import find_sets, read_set, to_model_input
    from napari_hpa.importer import ImportOptions, import_model
    from napari_hpa.synth import generate_dataset
    from napari_hpa.train.hpa_densenet import BestfittingDensenet

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=8, help="timed fields (default 8)")
    ap.add_argument("--calib", type=int, default=16, help="int8 calibration fields (default 16)")
    ap.add_argument("--threads", type=int, default=0, help="threads for torch and onnxruntime (0: all)")
    ap.add_argument("--size", type=int, default=1024, help="input size (default 1024, the published one)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_name()}; torch {torch.__version__} on {torch.get_num_threads()} threads")

    torch.manual_seed(0)
    model = BestfittingDensenet().eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
        model.logit.bias.uniform_(-2.0, 0.5)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate_dataset(tmp / "calib", args.calib, 1, size=args.size)
        generate_dataset(tmp / "timed", args.images, 2, size=args.size)
        ckpt = tmp / "bestfitting_default_model.pth"
        torch.save({"state_dict": model.state_dict()}, ckpt)
        quiet = dict(log=lambda m: None)
        import_model(ckpt, tmp / "fp32", ImportOptions(input_size=args.size), **quiet)
        report = import_model(ckpt, tmp / "int8", ImportOptions(input_size=args.size, calib=tmp / "calib",
                                                                int8=True), **quiet)
        print(report.int8)
        x = np.stack([to_model_input(read_set(s).data, args.size) for s in find_sets(tmp / "timed")])

        def timed(fn):
            fn(x[:1])  # warm-up
            out, t0 = [], time.perf_counter()
            for i in range(len(x)):
                out.append(fn(x[i : i + 1]))
            return (time.perf_counter() - t0) / len(x) * 1000, np.concatenate(out)

        with torch.no_grad():
            ms_torch, logits_torch = timed(lambda b: model(torch.from_numpy(b))["logits"].numpy())
        request = ProviderRequest("cpu", threads=args.threads)
        results = {"torch eager": (ms_torch, logits_torch)}
        for name in ("fp32", "int8"):
            member = Ensemble.load(tmp / name, request).members[0]
            results[f"onnxruntime {name}"] = timed(lambda b, m=member: m.run(b)["logits"])
    thr = np.full(28, 0.5, np.float32)
    ref = apply_thresholds(sigmoid(results["onnxruntime fp32"][1]), thr, False)
    print(f"DenseNet121 (hpa_densenet) at {args.size} px, batch 1, {len(x)} synthetic fields, per image:")
    for name, (ms, logits) in results.items():
        labels = apply_thresholds(sigmoid(logits), thr, False)
        print(f"  {name:18s} {ms:8.0f} ms  ({ms_torch / ms:4.2f}x torch eager; labels agree with fp32 "
              f"on {100 * (labels == ref).mean():.2f} % of field-class pairs)")


if __name__ == "__main__":
    main()
