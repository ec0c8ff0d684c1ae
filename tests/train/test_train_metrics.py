"""Core metrics and thresholds (numpy only, no torch)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_hpa import metrics


def test_f1_known_values():
    t = np.array([[1, 0], [1, 0], [0, 1], [0, 0]], bool)
    p = np.array([[1, 0], [0, 0], [0, 1], [1, 0]], bool)
    f1 = metrics.f1_per_class(t, p)
    # class 0: tp 1, fp 1, fn 1 -> 0.5; class 1: tp 1 -> 1
    assert f1 == pytest.approx([0.5, 1.0])
    assert metrics.macro_f1(t, p) == pytest.approx(0.75)


def test_f1_class_absent_everywhere_is_left_out():
    t = np.array([[1, 0], [0, 0]], bool)
    p = np.array([[1, 0], [0, 0]], bool)
    f1 = metrics.f1_per_class(t, p)
    assert f1[0] == 1 and math.isnan(f1[1])
    assert metrics.macro_f1(t, p) == 1.0


def _constructed(seed=0, n=400, c=28):
    """Classes whose probabilities are well separated, but around a class-specific level
    far from 0.5: fixed 0.5 thresholds do badly, fitted ones well."""
    rng = np.random.default_rng(seed)
    y = rng.random((n, c)) < 0.15
    level = np.linspace(0.1, 0.9, c)
    probs = np.clip(level + np.where(y, 0.05, -0.05) + rng.normal(0, 0.01, (n, c)), 0, 1)
    return probs, y


def test_fitted_thresholds_raise_f1():
    probs, y = _constructed()
    base = metrics.score_thresholds(probs, y, np.full(28, 0.5))
    thr_f1 = metrics.fit_thresholds_f1(probs, y)
    thr_ratio = metrics.fit_thresholds_ratio(probs, y.mean(0))
    f1_f1 = metrics.score_thresholds(probs, y, thr_f1)
    f1_ratio = metrics.score_thresholds(probs, y, thr_ratio)
    assert base < 0.5
    assert f1_f1 > 0.95 and f1_f1 > base + 0.4
    assert f1_ratio > 0.95
    # the fitted thresholds sit between the two groups of each class
    assert np.all(np.abs(thr_f1 - np.linspace(0.1, 0.9, 28)) < 0.05)
    # ... and they carry over to a fresh sample of the same process
    probs2, y2 = _constructed(seed=1)
    assert metrics.score_thresholds(probs2, y2, thr_f1) > 0.95


def test_ratio_thresholds_match_rates():
    rng = np.random.default_rng(0)
    probs = rng.random((1000, 28))
    ratios = np.linspace(0.02, 0.5, 28)
    thr = metrics.fit_thresholds_ratio(probs, ratios)
    rates = (probs >= thr).mean(0)
    assert rates == pytest.approx(ratios, abs=0.002)
    with pytest.raises(ValueError):
        metrics.fit_thresholds_ratio(probs, ratios[:5])


def test_top_class_forced_when_scoring():
    probs = np.full((2, 28), 0.1)
    probs[0, 3] = 0.4
    probs[1, 7] = 0.3
    labels = metrics.apply_thresholds(probs, np.full(28, 0.5), True)
    assert labels.sum() == 2 and labels[0, 3] and labels[1, 7]
    assert metrics.apply_thresholds(probs, np.full(28, 0.5), False).sum() == 0


def test_mask_cells_and_dilation():
    mask = np.zeros((32, 32), bool)
    mask[0:2, 0:2] = True  # inside cell (0, 0) of an 8x8 grid
    cells = metrics.mask_cells(mask, (8, 8), dilate=0)
    assert cells.sum() == 1 and cells[0, 0]
    dil = metrics.mask_cells(mask, (8, 8))
    assert dil.sum() == 4 and dil[1, 1] and not dil[2, 2]


def test_pointing_game():
    masks = np.zeros((28, 64, 64), bool)
    masks[2, 40:48, 40:48] = True  # cells (5, 5) of an 8x8 grid
    masks[5, 0:8, 0:8] = True
    att = np.zeros((28, 8, 8))
    att[2, 6, 6] = 1  # one cell off: inside the dilated mask
    att[5, 4, 4] = 1  # far: a miss
    assert metrics.pointing_hits(att, masks, (2, 5)) == (1, 2)
    assert metrics.pointing_game([att], [masks], [(2, 5)]) == 0.5
    # classes without mask pixels are not counted
    assert metrics.pointing_hits(att, masks, (2, 9)) == (1, 1)


def test_retrieval_top1():
    e = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [0.7, 0.7]])
    share, n = metrics.retrieval_top1(e, ["a", "a", "b", "b", "c"])
    assert n == 4 and share == 1.0
    share, n = metrics.retrieval_top1(e, ["a", "b", "a", "b", "c"])
    assert share == 0.0
