"""Realism of the synthetic generator: real HPA channels against synthetic fields, statistic by statistic.

Real side: the Kaggle 2018 single channels of ``real/kaggle_singles/`` (512 x 512,
about 50 per colour, with their fields' labels) plus the one complete real field
``real/000a6c98-...`` (2048 px, area-downsampled to 512) from the shared data
folder (Human Protein Atlas, www.proteinatlas.org).  Synthetic side: ``--n``
fields written by ``napari_hpa.synth.generate_dataset`` into a temporary folder
at 512 px (``--version`` picks the generator) and read back from their PNGs.

For every statistic (see ``realism_stats.CHANNEL_STATS``) one value per field
is computed; the table shows the median [10th-90th percentile] of the real and
the synthetic fields and two distances between the two sets of values:
``W1/sd`` (Wasserstein-1 in units of the real fields' standard deviation) and
``KS`` (the two-sample Kolmogorov-Smirnov statistic, 0-1).  The per-class table
compares the green channels of the real fields carrying a class with the
synthetic fields carrying it (mean W1/sd over ``GREEN_DESCRIPTORS``, each in
units of the spread over all real green channels).  Prints figures only.

    python benchmarks/bench_realism.py --n 150 --seed 0 [--version 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]  # this checkout
import realism_stats as rs  # noqa: E402

from napari_hpa import synth  # noqa: E402
from napari_hpa.classes import CLASS_NAMES  # noqa: E402

COLOURS = ("red", "green", "blue", "yellow")
DATA = Path(os.environ.get("HPA_REAL_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))


def _read(path: Path, size: int = 512) -> np.ndarray:
    im = Image.open(path)
    if im.mode not in ("L", "I;16", "I"):
        im = im.convert("L")
    a = np.asarray(im).astype(np.float32)
    a /= 65535.0 if a.max() > 255 else 255.0
    if a.shape != (size, size):
        a = np.asarray(Image.fromarray(a, mode="F").resize((size, size), Image.BOX))
    return a


def _targets(s: str) -> tuple[int, ...]:
    return tuple(sorted({int(t) for t in s.split()}))


def load_real(data: Path) -> list[tuple[str, np.ndarray, tuple[int, ...]]]:
    """(colour, channel, labels) of every real single channel and of the complete real field."""
    singles = data / "real" / "kaggle_singles"
    out = []
    with open(singles / "labels.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            p = singles / f"{row['Id']}_{row['Channel']}.png"
            out.append((row["Channel"], _read(p), _targets(row["Target"])))
    full = "000a6c98-bb9b-11e8-b2b9-ac1f6b6435d0"
    for c in COLOURS:
        p = data / "real" / f"{full}_{c}.png"
        if p.exists():
            out.append((c, _read(p), (0, 1, 2, 7)))
    return out


def load_synth(n: int, seed: int, version) -> tuple[list[tuple[str, np.ndarray, tuple[int, ...]]], float]:
    kw = {} if version is None else {"version": version}
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summ = synth.generate_dataset(Path(tmp) / "ds", n, seed, size=512, **kw)
        dt = time.perf_counter() - t0
        for fid in summ.ids:
            for c in COLOURS:
                out.append((c, _read(Path(tmp) / "ds" / f"{fid}_{c}.png"), tuple(summ.labels[fid])))
    return out, dt


def _fmt(v: float) -> str:
    if not np.isfinite(v):
        return "nan"
    a = abs(v)
    return f"{v:.0f}" if a >= 100 else f"{v:.2f}" if a >= 1 else f"{v:.3f}" if a >= 0.01 else f"{v:.4f}"


def _summ(vals) -> str:
    v = np.asarray([x for x in vals if np.isfinite(x)], float)
    if v.size == 0:
        return "-"
    return f"{_fmt(np.median(v))} [{_fmt(np.percentile(v, 10))}-{_fmt(np.percentile(v, 90))}]"


def compare(real, syn) -> dict:
    res = {"channels": [], "classes": []}
    for c in COLOURS:
        rstats = [rs.channel_stats(x, c) for col, x, _ in real if col == c]
        sstats = [rs.channel_stats(x, c) for col, x, _ in syn if col == c]
        for k in rs.CHANNEL_STATS[c]:
            rv, sv = [d[k] for d in rstats], [d[k] for d in sstats]
            w, ks = rs.distance(rv, sv)
            res["channels"].append({"channel": c, "stat": k, "n_real": len(rv), "n_synth": len(sv),
                                    "real": _summ(rv), "synth": _summ(sv), "w1_sd": w, "ks": ks,
                                    "real_values": rv, "synth_values": sv})
    rg = [(rs.green_descriptors(x), lab) for col, x, lab in real if col == "green"]
    sg = [(rs.green_descriptors(x), lab) for col, x, lab in syn if col == "green"]
    scale = {k: float(np.nanstd([d[k] for d, _ in rg])) for k in rs.GREEN_DESCRIPTORS}
    classes = sorted({c for _, lab in rg for c in lab})
    for cls in classes:
        rr = [d for d, lab in rg if cls in lab]
        ss = [d for d, lab in sg if cls in lab]
        if not ss:
            continue
        per = {k: rs.distance([d[k] for d in rr], [d[k] for d in ss], scale[k])[0] for k in rs.GREEN_DESCRIPTORS}
        res["classes"].append({"class": cls, "name": CLASS_NAMES[cls], "n_real": len(rr), "n_synth": len(ss),
                               "distance": float(np.nanmean(list(per.values()))), **per})
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=150, help="synthetic fields (default 150)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic set (default 0)")
    ap.add_argument("--version", default=None,
                    help="generator version to measure (default: the package default)")
    ap.add_argument("--data", type=Path, default=DATA, help="the shared data folder (holds real/)")
    ap.add_argument("--json", type=Path, default=None, metavar="PATH", help="also save all figures as JSON")
    args = ap.parse_args(argv)
    if not (args.data / "real" / "kaggle_singles" / "labels.csv").exists():
        ap.error(f"no real/kaggle_singles/labels.csv under {args.data} (set --data)")

    real = load_real(args.data)
    syn, dt = load_synth(args.n, args.seed, args.version)
    ver = args.version or synth.GENERATOR_VERSION
    print(f"real: {len(real)} channels (Human Protein Atlas, www.proteinatlas.org); synthetic: {args.n} fields, "
          f"generator v{ver}, seed {args.seed} ({args.n / dt:.1f} sets/s written)")
    res = compare(real, syn)
    print()
    print(f"{'channel':7} {'statistic':17} {'real median [p10-p90]':28} {'synthetic median [p10-p90]':28} "
          f"{'W1/sd':>6} {'KS':>5}")
    for r in res["channels"]:
        print(f"{r['channel']:7} {r['stat']:17} {r['real']:28} {r['synth']:28} {r['w1_sd']:6.2f} {r['ks']:5.2f}")
    print()
    print(f"{'class':36} {'real':>4} {'syn':>4} {'dist':>5}  " + " ".join(f"{k:>11}" for k in rs.GREEN_DESCRIPTORS))
    for r in res["classes"]:
        print(f"{r['class']:2d} {r['name'][:33]:33} {r['n_real']:4d} {r['n_synth']:4d} {r['distance']:5.2f}  "
              + " ".join(f"{r[k]:11.2f}" for k in rs.GREEN_DESCRIPTORS))
    w = float(np.nanmean([r["w1_sd"] for r in res["channels"]]))
    ks = float(np.nanmean([r["ks"] for r in res["channels"]]))
    gc = float(np.nanmean([r["distance"] for r in res["classes"]])) if res["classes"] else float("nan")
    print()
    print(f"summary v{ver}: mean W1/sd {w:.2f}, mean KS {ks:.2f} over {len(res['channels'])} statistics; "
          f"per-class green distance {gc:.2f} over {len(res['classes'])} classes")
    if args.json:
        res["summary"] = {"version": ver, "n": args.n, "seed": args.seed, "mean_w1_sd": w, "mean_ks": ks,
                          "green_class_distance": gc}
        args.json.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
