"""Label sets and antibody parameters: how many and which classes a field shows.

:func:`draw_labels` draws 1-4 classes with the Kaggle 2018 count proportions, the
first from first-class probabilities solved so that each class's marginal
frequency matches the target (``FREQS``), further ones from the companion table
or the frequencies again, never an ``INCOMPATIBLE`` pair;
:func:`draw_antibody_params` draws the pattern parameters that all fields of one
antibody share.  ``_rng`` spawns the generators of the seed scheme described in
the package docstring.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from ..classes import KAGGLE_COUNTS, KAGGLE_TOTAL_IMAGES, NUM_CLASSES
from ..errors import SynthError

FREQS = ("uniform", "kaggle")

#: Proportion of Kaggle 2018 images with 1, 2, 3 and 4+ labels.
_COUNT_PROBS = np.array([15126, 12485, 3160, 301], dtype=float)
_COUNT_PROBS /= _COUNT_PROBS.sum()
_EXTRA_LABELS = float(np.dot(_COUNT_PROBS, np.arange(4)))

#: Companion table: class -> ((companion, P(companion | class)), ...), rounded
#: from the Kaggle 2018 co-occurrence counts (the strongest pairs only).
_COMPANIONS: dict[int, tuple[tuple[int, float], ...]] = {
    0: ((25, 0.28), (2, 0.13), (21, 0.10), (7, 0.08)),
    1: ((0, 0.48), (25, 0.21), (2, 0.12)),
    2: ((0, 0.48), (25, 0.22)),
    3: ((0, 0.37), (25, 0.17), (2, 0.10)),
    4: ((25, 0.18), (0, 0.05)),
    5: ((0, 0.32), (25, 0.22)),
    6: ((25, 0.15), (0, 0.09)),
    7: ((0, 0.39), (25, 0.15)),
    8: ((2, 0.21), (0, 0.09)),
    9: ((10, 0.62), (6, 0.24)),
    10: ((9, 0.90), (6, 0.39)),
    11: ((0, 0.24), (25, 0.13)),
    12: ((0, 0.29), (25, 0.23), (21, 0.19)),
    13: ((0, 0.33), (25, 0.23), (21, 0.21)),
    14: ((0, 0.20), (25, 0.15), (16, 0.10)),
    15: ((0, 0.57), (2, 0.48), (16, 0.43), (5, 0.38)),
    16: ((0, 0.54), (25, 0.28), (14, 0.19), (17, 0.15)),
    17: ((16, 0.37), (25, 0.36), (0, 0.36), (18, 0.23), (14, 0.22)),
    18: ((0, 0.31), (25, 0.29)),
    19: ((0, 0.41), (25, 0.19)),
    20: ((0, 0.34), (23, 0.10)),
    21: ((0, 0.36), (25, 0.24)),
    22: ((0, 0.41), (25, 0.14)),
    23: ((0, 0.27), (25, 0.05)),
    24: ((0, 0.24), (25, 0.16), (5, 0.09)),
    25: ((0, 0.44), (21, 0.11), (2, 0.10)),
    26: ((0, 0.35), (25, 0.16)),
    27: ((0, 0.64), (5, 0.36), (23, 0.18)),
}
#: Probability that a further label comes from the companion table.
_COMPANION_RATE = {"uniform": 0.15, "kaggle": 0.6}
#: Pairs never drawn together (their renderings would be ambiguous).
INCOMPATIBLE: tuple[frozenset[int], ...] = (frozenset({18, 19}), frozenset({21, 22}))

# ----------------------------------------------------------------------------
# label drawing


def _compatible(c: int, chosen) -> bool:
    return all(not (c in pair and (pair - {c}) & set(chosen)) for pair in INCOMPATIBLE)


@lru_cache(maxsize=None)
def _first_label_probs(freq: str) -> np.ndarray:
    """First-label probabilities whose resulting marginals approximate the target."""
    if freq == "uniform":
        target = np.full(NUM_CLASSES, 1.0 / NUM_CLASSES)
    else:
        target = np.asarray(KAGGLE_COUNTS, float) / KAGGLE_TOTAL_IMAGES
        target /= target.sum()
    target = target * (1.0 + _EXTRA_LABELS)  # expected presence per image
    comp = np.zeros((NUM_CLASSES, NUM_CLASSES))
    for a, pairs in _COMPANIONS.items():
        for b, w in pairs:
            comp[a, b] = w
    comp /= comp.sum(1, keepdims=True)
    rho = _COMPANION_RATE[freq]
    p = target / target.sum()
    for _ in range(200):
        via_comp = _EXTRA_LABELS * rho * (comp.T @ p)
        p_new = (target - via_comp) / (1.0 + _EXTRA_LABELS * (1.0 - rho))
        p_new = np.clip(p_new, 1e-5, None)
        p_new /= p_new.sum()
        if np.abs(p_new - p).max() < 1e-12:
            break
        p = 0.5 * p + 0.5 * p_new
    return p


def _check_freq(freq: str) -> None:
    if freq not in FREQS:
        raise SynthError(f"unknown freq {freq!r}: expected one of {', '.join(FREQS)}")


def draw_labels(rng: np.random.Generator, freq: str = "uniform") -> tuple[int, ...]:
    """Draw one label set (1-4 classes, sorted) with ``freq`` frequencies."""
    _check_freq(freq)
    p = _first_label_probs(freq)
    k = int(rng.choice(4, p=_COUNT_PROBS)) + 1
    first = int(rng.choice(NUM_CLASSES, p=p))
    chosen = [first]
    rho = _COMPANION_RATE[freq]
    for _ in range(40):
        if len(chosen) >= k:
            break
        pairs = _COMPANIONS[first]
        if rng.random() < rho:
            w = np.array([x[1] for x in pairs])
            c = pairs[int(rng.choice(len(pairs), p=w / w.sum()))][0]
        else:
            c = int(rng.choice(NUM_CLASSES, p=p))
        if c not in chosen and _compatible(c, chosen):
            chosen.append(c)
    return tuple(sorted(chosen))


def draw_label_sets(n: int, seed: int, freq: str = "uniform") -> list[tuple[int, ...]]:
    """``n`` label sets drawn exactly as :func:`generate_dataset` draws them
    (with ``fields_per_antibody=1``), without rendering anything."""
    return [draw_labels(_rng(seed, 1, i), freq) for i in range(n)]


def _rng(seed, *key) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


# ----------------------------------------------------------------------------
# antibody parameters


def draw_antibody_params(rng: np.random.Generator, labels: Sequence[int]) -> dict:
    """Pattern parameters shared by all fields of one antibody."""
    labels = tuple(sorted(int(c) for c in labels))
    per_class = {}
    amps = rng.uniform(0.45, 1.0, len(labels))
    amps /= amps.max()
    for c, amp in zip(labels, amps):
        per_class[int(c)] = {
            "amp": float(amp),
            "size": float(rng.uniform(0.8, 1.25)),
            "count": float(rng.uniform(0.6, 1.5)),
            "tex": float(rng.uniform(0.0, 1.0)),
        }
    return {
        "labels": labels,
        "gain": float(rng.uniform(0.55, 1.0)),
        "cell_sd": float(rng.uniform(0.1, 0.45)),
        "background": float(rng.uniform(0.004, 0.02)),
        "haze": float(rng.uniform(0.0, 0.06)),
        "classes": per_class,
    }
