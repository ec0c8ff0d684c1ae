"""Throughput of the synthetic field generator (sets per second, one thread).

Run on one core, e.g.::

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/bench_synth.py --n 100 --size 512

Prints figures only (no assertions).  The project target is at least 20 sets
per second for generation + writing at 512 x 512 on one core.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # measure this checkout

from napari_hpa import synth  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="fields per measurement (default 100)")
    ap.add_argument("--size", type=int, default=512, help="field size in pixels (default 512)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--freq", default="uniform", choices=synth.FREQS)
    ap.add_argument("--version", default=synth.GENERATOR_VERSION, choices=synth.GENERATOR_VERSIONS,
                    help="generator version (default: the package default)")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    synth.generate_field(args.seed, args.size, version=args.version)  # builds the cached textures
    print(f"first field (incl. texture cache): {time.perf_counter() - t0:.2f} s")

    t0 = time.perf_counter()
    for i in range(args.n):
        synth.generate_field(np.random.SeedSequence(args.seed, spawn_key=(0, i)), args.size, freq=args.freq,
                             version=args.version)
    dt = time.perf_counter() - t0
    print(f"generation only:      {args.n / dt:6.1f} sets/s  ({1000 * dt / args.n:.1f} ms/set, "
          f"{args.size}x{args.size}, v{args.version})")

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        synth.generate_dataset(os.path.join(tmp, "ds"), args.n, args.seed, size=args.size, freq=args.freq,
                               version=args.version)
        dt = time.perf_counter() - t0
    print(f"generation + writing: {args.n / dt:6.1f} sets/s  ({1000 * dt / args.n:.1f} ms/set, "
          f"{args.size}x{args.size}, v{args.version})")


if __name__ == "__main__":
    main()
