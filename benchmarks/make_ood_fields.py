"""Write a folder of fields unlike a synthetic training domain, for
``napari-hpa ensemble build/calibrate --ood-fields`` and for checking domain verdicts.

Two kinds, both written as ``{id}_{red,green,blue,yellow}.png`` (8-bit):

* ``real-*``: four real single channels, one of each colour, from four different Kaggle 2018
  fields (``shared/data/real/kaggle_singles``; Human Protein Atlas, www.proteinatlas.org,
  CC BY-SA 3.0): real stains and cells, though not one field;
* ``perm-*``: synthetic fields with their channels in another order (a rotation, or red and
  yellow swapped).

These fields carry no labels: what an ensemble learns from them is only how far to pull its
answers on fields out of its domain towards the class frequencies (the manifest's
``calibration``), and the model card says so when the default uses them.

    python benchmarks/make_ood_fields.py --singles ../shared/data/real/kaggle_singles \\
        --synth data/val --out data/ood --n-real 48 --n-perm 48
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

COLOURS = ("red", "green", "blue", "yellow")
PERMUTATIONS = ((1, 2, 3, 0), (2, 3, 0, 1), (3, 0, 1, 2), (3, 1, 2, 0))  # as source channel per output


def real_composites(singles: Path, out: Path, n: int, rng: np.random.Generator) -> int:
    import imageio.v3 as iio

    with open(singles / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    by_colour = {c: [r["Id"] for r in rows if r["Channel"] == c] for c in COLOURS}
    if any(not ids for ids in by_colour.values()):
        raise SystemExit(f"{singles}: needs single channels of every colour")
    for k in range(n):
        for colour in COLOURS:
            image_id = by_colour[colour][rng.integers(len(by_colour[colour]))]
            data = iio.imread(singles / f"{image_id}_{colour}.png")
            iio.imwrite(out / f"real-{k:03d}_{colour}.png", np.asarray(data, dtype=np.uint8))
    return n


def permuted(synth: Path, out: Path, n: int) -> int:
    import imageio.v3 as iio

    from napari_hpa.imageset import find_sets, read_set

    sources = find_sets(synth)[:n]
    for k, source in enumerate(sources):
        data = read_set(source).data
        perm = PERMUTATIONS[k % len(PERMUTATIONS)]
        for colour, src in zip(COLOURS, perm):
            iio.imwrite(out / f"perm-{k:03d}_{colour}.png", data[src])
    return len(sources)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--singles", type=Path, help="folder of real single channels with labels.csv")
    ap.add_argument("--synth", type=Path, help="folder of synthetic image sets to permute")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n-real", type=int, default=48)
    ap.add_argument("--n-perm", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.out.exists():
        raise SystemExit(f"{args.out} exists: name a new folder")
    args.out.mkdir(parents=True)
    rng = np.random.default_rng(args.seed)
    made = []
    if args.singles:
        made.append(f"{real_composites(args.singles, args.out, args.n_real, rng)} real composites")
    if args.synth:
        made.append(f"{permuted(args.synth, args.out, args.n_perm)} channel-permuted synthetic fields")
    print(f"wrote {' and '.join(made) or 'nothing'} to {args.out}")


if __name__ == "__main__":
    main()
