"""Small labels and probabilities shared by the label-review tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_hpa.classes import NUM_CLASSES

#: id -> target of the small labels CSV, in file order.
SMALL = {
    "img-a": "0 25",
    "img-b": "3",
    "img-c": "",
    "img-d": "7 1 2 0",
    "img-e": "14",
    "img-f": "27 5",
}


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def small_probs(ids=tuple(SMALL)) -> np.ndarray:
    """Probabilities agreeing with SMALL except img-b (labelled 3, model says 4)."""
    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.1, size=(len(ids), NUM_CLASSES))
    for n, i in enumerate(ids):
        for k in SMALL[i].split():
            p[n, int(k)] = 0.9
    b = list(ids).index("img-b")
    p[b, 3], p[b, 4] = 0.05, 0.95
    return p


