"""Training step time in float32 against bfloat16 autocast (``train --precision``).

Times full training steps (forward, the architecture's loss, backward, AdamW step) of one
architecture on a random batch, the two precisions alternating so that both meet the same
load, and prints the median step time of each and their ratio, with the CPU's name and its
bfloat16 instructions (AMX, AVX512-BF16).  Prints figures only.

    python benchmarks/bench_train_step.py [--arch timm:resnet10t] [--crop 128] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]  # this checkout

from bench_densenet_import import cpu_name  # noqa: E402

BF16_FLAGS = ("amx_bf16", "avx512_bf16", "avx512f", "avx512_vnni")


def main(argv=None) -> None:
    import numpy as np
    import torch

    from napari_hpa.train.loop import _forward
    from napari_hpa.train.losses import make_criterion, pos_weights
    from napari_hpa.train.models import build_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="timm:resnet10t")
    ap.add_argument("--backbone", help="for dual-resnet34 / gapnet / arcface-resnet")
    ap.add_argument("--crop", type=int, default=128, help="training window in pixels (default 128)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per round (default 10)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    kw = {"backbone": args.backbone} if args.backbone else {}
    if args.arch == "arcface-resnet":
        kw["num_ids"] = args.batch_size
    model = build_model(args.arch, **kw).to(memory_format=torch.channels_last)
    n = args.batch_size
    batch = {"image": torch.rand(n, 4, args.crop, args.crop), "target": (torch.rand(n, 28) < 0.1).float(),
             "antibody": torch.arange(n)}
    criterion = make_criterion(args.arch, "combo", pos_weights(batch["target"]), model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(precision: str) -> None:
        loss, _ = criterion(_forward(model, batch["image"], precision), batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    times = {"fp32": [], "bf16": []}
    for precision in times:
        step(precision)  # warm-up: kernels chosen, memory allocated
    for _ in range(args.rounds):
        for precision in times:
            for _ in range(args.steps):
                t = time.perf_counter()
                step(precision)
                times[precision].append(time.perf_counter() - t)
    med = {p: float(np.median(t)) for p, t in times.items()}
    print(f"CPU: {cpu_name(BF16_FLAGS)}; torch {torch.__version__}, {args.threads} threads")
    print(f"{args.arch}, batch {n}, {args.crop}-px windows, median of {args.rounds * args.steps} steps each")
    for p, t in med.items():
        print(f"  {p}: {t * 1000:.0f} ms per step ({n / t:.0f} images/s)")
    print(f"  bf16 / fp32 step time: {med['bf16'] / med['fp32']:.2f}")


if __name__ == "__main__":
    main()
