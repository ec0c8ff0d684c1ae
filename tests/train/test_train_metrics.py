"""Core metrics and thresholds (numpy only, no torch)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_f1_thresholds_on_a_plateau_take_the_one_nearest_half_the_best_f1():
    """Validation fields that separate a class with a gap leave every threshold in the gap
    equally good; the fit takes the one nearest F1/2 (0.5 for a perfect class), the optimum for
    calibrated probabilities, not the middle of the gap."""
    rng = np.random.default_rng(0)
    y = np.zeros((200, 1), bool)
    y[:50] = True
    probs = np.where(y, rng.uniform(0.30, 0.95, y.shape), rng.uniform(0.0, 0.06, y.shape))
    thr = metrics.fit_thresholds_f1(probs, y)
    assert metrics.score_thresholds(probs, y, thr, min_one_label=False) == pytest.approx(1.0)
    # the gap runs from above the highest negative to the lowest positive; 0.5 lies above it
    assert thr[0] == pytest.approx(np.floor(probs[y].min() * 100) / 100)


def test_f1_thresholds_never_fall_below_the_floor():
    """A class whose validation negatives all lie near 0 would be labelled at p 0.02; the
    floor keeps it at MIN_THRESHOLD or above, at the cost of its faintest positives."""
    y = np.zeros((100, 1), bool)
    y[:20] = True
    probs = np.full((100, 1), 0.01)
    probs[:20, 0] = np.linspace(0.02, 0.9, 20)  # the faintest at 0.02 and 0.066
    assert metrics.THRESHOLD_GRID.min() == metrics.MIN_THRESHOLD
    thr = metrics.fit_thresholds_f1(probs, y)
    assert thr[0] >= metrics.MIN_THRESHOLD
    assert metrics.score_thresholds(probs, y, thr, min_one_label=False) == pytest.approx(2 * 19 / (2 * 19 + 1))


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 60))
def test_f1_thresholds_are_optimal_on_the_grid(seed, n_pos):
    """Whatever the probabilities, the fitted threshold's F1 is the best any candidate reaches,
    and it lies on the candidate grid."""
    rng = np.random.default_rng(seed)
    y = np.zeros((80, 1), bool)
    y[: min(n_pos, 80)] = True
    probs = np.clip(rng.beta(2, 5, y.shape) + y * rng.uniform(0, 0.5), 0, 1)
    thr = metrics.fit_thresholds_f1(probs, y)[0]
    assert np.isclose(metrics.THRESHOLD_GRID, thr).any()
    f1 = [metrics.f1_per_class(y, probs >= g)[0] for g in metrics.THRESHOLD_GRID]
    assert metrics.f1_per_class(y, probs >= thr)[0] == pytest.approx(max(f1))


def _two_experts(seed, n=600, c=28):
    """Member 0 sees the first half of the classes well and guesses the rest; member 1 the
    other way round: averaged with equal weights, each class's signal is halved by noise."""
    rng = np.random.default_rng(seed)
    y = rng.random((n, c)) < 0.2
    good = np.zeros((2, c), bool)
    good[0, : c // 2] = good[1, c // 2 :] = True
    z = np.where(good[:, None, :], np.where(y, 2.0, -2.0) + rng.normal(0, 1.0, (2, n, c)), rng.normal(0, 3.0, (2, n, c)))
    return 1 / (1 + np.exp(-z)), y


def test_stacking_learns_which_member_sees_which_class():
    from napari_hpa.engine.ensemble import Stacking

    probs, y = _two_experts(0)
    bias, weights = metrics.fit_stacking(probs, y, [1.0, 1.0])
    assert bias.shape == (28,) and weights.shape == (2, 28)
    # each class leans on its expert
    assert np.all(weights[0, :14] > 3 * np.abs(weights[1, :14]))
    assert np.all(weights[1, 14:] > 3 * np.abs(weights[0, 14:]))
    stacked = Stacking(bias, weights)
    thr_mean = metrics.fit_thresholds_f1(probs.mean(0), y)
    thr_stack = metrics.fit_thresholds_f1(stacked.apply(probs), y)
    # on a fresh sample of the same process, stacking beats the plain average
    probs2, y2 = _two_experts(1)
    f1_mean = metrics.score_thresholds(probs2.mean(0), y2, thr_mean)
    f1_stack = metrics.score_thresholds(stacked.apply(probs2), y2, thr_stack)
    assert f1_stack > f1_mean + 0.05, (f1_stack, f1_mean)


def test_stacking_folds_the_scaling_into_the_weights():
    """sigmoid(bias + sum w * logit(p)) is the regression's own probability."""
    from sklearn.linear_model import LogisticRegression

    from napari_hpa.engine.ensemble import Stacking, logit

    probs, y = _two_experts(2, n=300, c=3)
    bias, weights = metrics.fit_stacking(probs, y, [1.0, 1.0], C=0.5)
    x = logit(probs[:, :, 1]).T
    mu, sd = x.mean(0), x.std(0)
    direct = LogisticRegression(C=0.5, max_iter=1000).fit((x - mu) / sd, y[:, 1]).predict_proba((x - mu) / sd)[:, 1]
    np.testing.assert_allclose(Stacking(bias, weights).apply(probs)[:, 1], direct, atol=1e-6)


def test_stacking_keeps_the_member_weights_for_a_class_without_positives():
    probs, y = _two_experts(3, n=200, c=4)
    y[:, 2] = False
    y[0, 3] = True
    y[1:, 3] = False  # a single positive is too few to fit
    bias, weights = metrics.fit_stacking(probs, y, [3.0, 1.0])
    for c in (2, 3):
        assert bias[c] == 0 and weights[:, c] == pytest.approx([0.75, 0.25])


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
