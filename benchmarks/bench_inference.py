"""Inference speed: torch eager vs onnxruntime fp32 vs onnxruntime int8, and end-to-end predict.

For the same weights, in one run (random weights are fine for speed):
  * DenseNet121 @ 512 (the 1st-place single model) and the dual-loss ResNet34 @ 512;
  * the default ensemble (or --models): pure model time vs ``napari-hpa predict`` on a folder
    of synthetic sets (decoding included), the share of time spent waiting for data, and peak
    memory over a small and a ten times larger folder.
Each backend runs in its own process, so peak memory (max RSS) is its own.  Prints figures and
ratios; asserts nothing.  Needs the ``train`` extra (torch, timm) for the torch rows.

    python benchmarks/bench_inference.py [--size 512] [--n 16] [--threads 2] [--sets 200]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _images(n: int, size: int):
    import numpy as np

    from napari_hpa.synth import generate_field

    return np.stack([generate_field(1000 + i, size=size).image for i in range(n)])


def worker_model(arch: str, backend: str, size: int, n: int, threads: int, tmp: str) -> dict:
    """One (arch, backend) timing in this process."""
    import numpy as np

    from napari_hpa.imageset import to_model_input

    x = np.stack([to_model_input(im, size) for im in _images(n, 512)])
    onnx_path = Path(tmp) / f"{arch}-{size}.onnx"
    int8_path = Path(tmp) / f"{arch}-{size}-int8.onnx"
    if backend == "torch":
        import torch

        from napari_hpa.train.models import build_model

        torch.set_num_threads(threads)
        torch.manual_seed(0)
        model = build_model(arch).eval()
        run = lambda b: model(torch.from_numpy(b))["logits"].numpy()  # noqa: E731
        with torch.inference_mode():
            out, ms = _time(run, x)
    else:
        from napari_hpa.engine.providers import ProviderRequest, create_session

        session, _ = create_session(int8_path if backend == "int8" else onnx_path, ProviderRequest("cpu", threads=threads))
        run = lambda b: session.run(["logits"], {"image": b})[0]  # noqa: E731
        out, ms = _time(run, x)
    np.save(Path(tmp) / f"{arch}-{backend}-logits.npy", out)
    return {"ms_per_image": ms, "images_per_s": 1000 / ms, "peak_mb": _peak_mb()}


def _time(run, x, batch: int = 1):
    import numpy as np

    run(x[:1])  # warm-up
    outs, t0 = [], time.perf_counter()
    for i in range(0, len(x), batch):
        outs.append(run(x[i : i + batch]))
    ms = (time.perf_counter() - t0) * 1000 / len(x)
    return np.concatenate(outs), ms


def prepare_models(arch: str, size: int, tmp: str, n_calib: int) -> None:
    """Export random-weight ``arch`` to fp32 and int8 ONNX (onnxruntime static QDQ)."""
    import numpy as np
    import torch

    from napari_hpa.engine.contract import contract_metadata
    from napari_hpa.imageset import to_model_input
    from napari_hpa.train.export import export_model, quantize_int8
    from napari_hpa.train.models import build_model

    torch.manual_seed(0)
    model = build_model(arch).eval()
    meta = contract_metadata(input_size=size, arch=arch, trained_on="random weights (benchmark)")
    fp32 = Path(tmp) / f"{arch}-{size}.onnx"
    export_model(model, size, fp32, meta)
    calib = np.stack([to_model_input(im, size) for im in _images(n_calib, 512)])
    quantize_int8(fp32, Path(tmp) / f"{arch}-{size}-int8.onnx", calib, meta)


def worker_predict(models: str, folder: str, threads: int, out: str) -> dict:
    from napari_hpa.engine import Ensemble, ProviderRequest
    from napari_hpa.engine.batch import PredictOutputs, collect_sources, predict_sources

    ens = Ensemble.load(models, ProviderRequest("cpu", threads=threads))
    sources, _ = collect_sources([folder])
    summary = predict_sources(ens, sources, PredictOutputs(Path(out) / "sub.csv"), batch_size=8, workers=2)
    return {
        "sets": summary.predicted,
        "images_per_s": summary.images_per_second,
        "wait_fraction": summary.wait_fraction,
        "peak_mb": _peak_mb(),
    }


def worker_ensemble_model_time(models: str, n: int, threads: int) -> dict:
    from napari_hpa.engine import Ensemble, ProviderRequest

    ens = Ensemble.load(models, ProviderRequest("cpu", threads=threads))
    prepared = [ens.prepare(im) for im in _images(n, 512)]
    ens.predict_prepared(prepared[:1])
    t0 = time.perf_counter()
    for i in range(0, n, 8):
        ens.predict_prepared(prepared[i : i + 8])
    ms = (time.perf_counter() - t0) * 1000 / n
    return {"ms_per_image": ms, "images_per_s": 1000 / ms, "peak_mb": _peak_mb()}


def _sub(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", *args], capture_output=True, text=True, check=False
    )
    if out.returncode:
        raise RuntimeError(f"worker {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--n", type=int, default=16, help="images per model timing")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--archs", nargs="+", default=["densenet121", "dual-resnet34"])
    parser.add_argument("--models", help="ensemble for the end-to-end rows (default: bundled)")
    parser.add_argument("--sets", type=int, default=200, help="folder size for end-to-end predict")
    parser.add_argument("--memory-factor", type=int, default=10, help="larger folder = sets x this")
    parser.add_argument("--skip-models", action="store_true")
    parser.add_argument("--skip-predict", action="store_true")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        kind, *rest = args.worker
        if kind == "model":
            arch, backend, size, n, threads, tmp = rest
            res = worker_model(arch, backend, int(size), int(n), int(threads), tmp)
        elif kind == "prepare":
            arch, size, tmp = rest
            prepare_models(arch, int(size), tmp, n_calib=16)
            res = {}
        elif kind == "predict":
            res = worker_predict(rest[0], rest[1], int(rest[2]), rest[3])
        else:
            res = worker_ensemble_model_time(rest[0], int(rest[1]), int(rest[2]))
        print(json.dumps(res))
        return

    import numpy as np

    print(f"threads {args.threads}, {os.cpu_count()} cores; figures from one run")
    with tempfile.TemporaryDirectory(prefix="hpa-bench-") as tmp:
        if not args.skip_models:
            for arch in args.archs:
                _sub("prepare", arch, str(args.size), tmp)
                rows = {b: _sub("model", arch, b, str(args.size), str(args.n), str(args.threads), tmp)
                        for b in ("torch", "fp32", "int8")}
                lt, lf, lq = (np.load(Path(tmp) / f"{arch}-{b}-logits.npy") for b in ("torch", "fp32", "int8"))
                agree = float(((lf > 0) == (lq > 0)).mean())
                print(f"\n{arch} @ {args.size}, batch 1, {args.n} images")
                for b, r in rows.items():
                    print(f"  {b:6s} {r['ms_per_image']:8.1f} ms/image {r['images_per_s']:7.2f} images/s "
                          f"peak {r['peak_mb']:7.0f} MB  x{rows['torch']['ms_per_image'] / r['ms_per_image']:.2f} vs torch")
                print(f"  fp32 vs torch max |logit diff| {np.abs(lt - lf).max():.2e}; "
                      f"int8 labels identical to fp32 (logit > 0, random weights) {100 * agree:.1f}%")
        if not args.skip_predict:
            from napari_hpa.bundled import resolve_models
            from napari_hpa.synth import generate_dataset

            models = str(resolve_models(args.models))
            pure = _sub("ensemble", models, "32", str(args.threads))
            results = {}
            for n in (args.sets, args.sets * args.memory_factor):
                folder = Path(tmp) / f"sets{n}"
                generate_dataset(folder, n, seed=77)
                out = Path(tmp) / f"out{n}"
                out.mkdir()
                results[n] = _sub("predict", models, str(folder), str(args.threads), str(out))
            small, large = results[args.sets], results[args.sets * args.memory_factor]
            print(f"\nensemble {models}")
            print(f"  model only (prepared inputs)  {pure['images_per_s']:.2f} images/s")
            print(f"  predict, {args.sets} sets     {small['images_per_s']:.2f} images/s "
                  f"({100 * (1 - small['images_per_s'] / pure['images_per_s']):.1f}% below model only), "
                  f"waiting for data {100 * small['wait_fraction']:.1f}% of the time")
            print(f"  peak memory: {args.sets} sets {small['peak_mb']:.0f} MB, "
                  f"{args.sets * args.memory_factor} sets {large['peak_mb']:.0f} MB "
                  f"({100 * (large['peak_mb'] / small['peak_mb'] - 1):+.1f}%)")


if __name__ == "__main__":
    main()
