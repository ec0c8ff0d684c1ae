"""Coverage of the real per-field intensity spread by domain-randomised synthetic fields.

Real side: the Kaggle 2018 single channels of ``real/kaggle_singles/`` plus the one complete
real field (Human Protein Atlas, www.proteinatlas.org), read as in ``bench_realism.py``.
Synthetic side: ``--n`` fields of a synthetic folder (``--synth DIR``, e.g. one written by
``napari-hpa synth``; default: ``--n`` fresh fields of the package's generator in a temporary
folder).  Each synthetic field is measured as it is and after ``--draws`` draws of
``napari_hpa.train.randomise`` at each ``--domain-rand`` level (all four channels randomised
together, as in training, then measured channel by channel).

For each channel and statistic (per-field mean, median, 99th percentile, fraction above 0.1)
it prints the real median [p10-p90], the synthetic one per level, and W1/sd (Wasserstein-1 in
units of the real fields' standard deviation, at least 0.01) between real and synthetic; then the mean W1/sd
per level.  ``--fit`` also prints, per channel, the gain centre that would bring the median
per-field mean of the ``default`` level onto the real median (how ``gain_centre`` was chosen).

    python benchmarks/bench_domain_rand.py --synth /tmp/dr/train --n 100 --draws 2 [--fit]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]  # this checkout
import bench_realism as br  # noqa: E402
import realism_stats as rs  # noqa: E402

from napari_hpa.train.randomise import PROFILES, randomise  # noqa: E402

STATS = ("mean", "p50", "p99", "frac>0.1")
MIN_SD = 0.01


def stats(x: np.ndarray) -> dict:
    p50, p99 = np.percentile(x, [50, 99])
    return {"mean": float(x.mean()), "p50": float(p50), "p99": float(p99), "frac>0.1": float((x > 0.1).mean())}


def synth_fields(folder: Path, n: int) -> list[np.ndarray]:
    ids = sorted(p.name[: -len("_red.png")] for p in folder.glob("*_red.png"))[:n]
    return [np.stack([br._read(folder / f"{i}_{c}.png") for c in br.COLOURS]) for i in ids]


def w1(real, synth) -> float:
    """Wasserstein-1 in units of the real values' standard deviation, at least ``MIN_SD`` (the real
    blue median is 0 in almost every field: its spread is no unit)."""
    return rs.distance(real, synth, max(float(np.std(real)), MIN_SD))[0]


def measure(fields, level: str, draws: int, seed: int = 0) -> dict:
    """{colour: {stat: [values]}} over the fields (``draws`` randomised copies each unless ``none``)."""
    out = {c: {k: [] for k in STATS} for c in br.COLOURS}
    for j, x in enumerate(fields):
        for d in range(1 if level == "none" else draws):
            y = randomise(x, np.random.default_rng((seed, j, d)), level)
            for ci, c in enumerate(br.COLOURS):
                for k, v in stats(y[ci]).items():
                    out[c][k].append(v)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synth", type=Path, help="a synthetic folder (default: generate --n fields)")
    ap.add_argument("--n", type=int, default=100, help="synthetic fields (default 100)")
    ap.add_argument("--draws", type=int, default=2, help="randomised draws per field (default 2)")
    ap.add_argument("--data", type=Path, default=br.DATA, help="the shared data folder (holds real/)")
    ap.add_argument("--fit", action="store_true", help="also print the fitted gain centres")
    args = ap.parse_args(argv)
    if not (args.data / "real" / "kaggle_singles" / "labels.csv").exists():
        ap.error(f"no real/kaggle_singles/labels.csv under {args.data} (set --data)")

    real = {c: {k: [] for k in STATS} for c in br.COLOURS}
    for col, x, _ in br.load_real(args.data):
        for k, v in stats(x).items():
            real[col][k].append(v)
    if args.synth:
        fields = synth_fields(args.synth, args.n)
    else:
        from napari_hpa import synth

        with tempfile.TemporaryDirectory() as tmp:
            synth.generate_dataset(Path(tmp) / "ds", args.n, 0, size=512)
            fields = synth_fields(Path(tmp) / "ds", args.n)
    levels = list(PROFILES)
    res = {lv: measure(fields, lv, args.draws) for lv in levels}
    print(f"real: {sum(len(real[c]['mean']) for c in br.COLOURS)} channels (Human Protein Atlas, "
          f"www.proteinatlas.org); synthetic: {len(fields)} fields x {args.draws} draws per level")
    print()
    head = f"{'channel':7} {'stat':9} {'real':22}" + "".join(f" {lv + ' [W1/sd]':>30}" for lv in levels)
    print(head)
    tot = {lv: [] for lv in levels}
    for c in br.COLOURS:
        for k in STATS:
            row = f"{c:7} {k:9} {br._summ(real[c][k]):22}"
            for lv in levels:
                w = w1(real[c][k], res[lv][c][k])
                tot[lv].append(w)
                row += f" {br._summ(res[lv][c][k]):>22} [{w:5.2f}]"
            print(row)
    print()
    print("mean W1/sd over channels x statistics: " + ", ".join(f"{lv} {np.nanmean(tot[lv]):.2f}" for lv in levels))
    if args.fit:
        print()
        prof = PROFILES["default"]
        for ci, c in enumerate(br.COLOURS):
            r, s = np.median(real[c]["mean"]), np.median(res["default"][c]["mean"])
            print(f"{c:7} real median mean {r:.4f}, default {s:.4f}: gain centre {prof.gain_centre[ci]:.2f} "
                  f"-> {prof.gain_centre[ci] * r / s:.2f}")


if __name__ == "__main__":
    main()
