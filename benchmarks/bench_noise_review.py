"""How many corrupted labels the review queues put first.

Takes a review session made from synthetic data generated with ``--noise-rate`` (so
``noise.csv`` names the corrupted ids) and, ideally, out-of-fold probabilities, e.g.::

    napari-hpa synth --out data --n 1500 --seed 11 --noise-rate 0.05 --fields-per-antibody 4
    # a model trained on other data, e.g. the default ensemble's first-member run (MODEL_CARD.md)
    napari-hpa train other --val-data val --arch timm:resnet10t --size 256 --crop 128 \\
        --epochs 12 --seed 1 --out runs/base
    for i in 0 1 2; do
        napari-hpa train data --labels data/labels_noisy.csv --folds 3 --fold $i \\
            --arch timm:resnet10t --size 256 --crop 128 --epochs 12 --lr 3e-4 --init runs/base \\
            --out runs/fold$i
    done
    napari-hpa labels import data/labels_noisy.csv --images data \\
        --probs runs/fold*/val_probs.csv --out noisy.hpa
    python benchmarks/bench_noise_review.py noisy.hpa data/noise.csv

With K the number of corrupted images, prints for each queue order the share of the
corrupted images among its first K entries (recall at K, the project's target is >= 70 %
for "most suspicious"), also at 2K, and by kind of corruption; random order is the mean
over many shuffles.  Prints figures only (no assertions).  The session is not changed
except for the scores that any "suspicious" queue stores.
"""

from __future__ import annotations

import argparse
import csv
from collections import Counter

import numpy as np

from napari_hpa.review.store import ReviewSession

ORDERS = ("suspicious", "cleanlab", "disagreement", "least_confident")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("session", help="review session (.hpa) with probabilities")
    ap.add_argument("noise", help="noise.csv written by napari-hpa synth --noise-rate")
    ap.add_argument("--shuffles", type=int, default=1000, help="random orders averaged (default 1000)")
    args = ap.parse_args(argv)

    with open(args.noise, newline="") as fh:
        kinds = {row["Id"]: row["Change"] for row in csv.DictReader(fh)}
    with ReviewSession.open(args.session) as s:
        queues = {order: s.queue(order) for order in ORDERS}
        ids = list(s.ids)
    corrupted = set(kinds)
    missing = corrupted - set(ids)
    if missing:
        raise SystemExit(f"{len(missing)} corrupted ids of {args.noise} are not in {args.session}")
    n, k = len(ids), len(corrupted)
    by_kind = Counter(kinds.values())
    print(f"{n} images, K = {k} corrupted ({', '.join(f'{c} {v}' for v, c in sorted(by_kind.items()))})")

    def recall(queue, top):
        return len(corrupted.intersection(queue[:top])) / k

    rng = np.random.default_rng(0)
    rand = [recall([ids[i] for i in rng.permutation(n)], k) for _ in range(args.shuffles)]
    rand2 = [recall([ids[i] for i in rng.permutation(n)], 2 * k) for _ in range(args.shuffles)]
    print(f"{'order':18s} {'recall@K':>9s} {'recall@2K':>10s}   recall@K by kind")
    for order, q in queues.items():
        per_kind = "  ".join(
            f"{v} {sum(1 for i in q[:k] if kinds.get(i) == v) / c:.2f}" for v, c in sorted(by_kind.items())
        )
        print(f"{order:18s} {recall(q, k):9.3f} {recall(q, 2 * k):10.3f}   {per_kind}")
    print(f"{'random (mean)':18s} {np.mean(rand):9.3f} {np.mean(rand2):10.3f}")


if __name__ == "__main__":
    main()
