"""Queue orders on constructed cases where the right answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from napari_hpa.errors import SessionError
from napari_hpa.review import ordering


def onehot(sets, k=28):
    y = np.zeros((len(sets), k), dtype=bool)
    for n, s in enumerate(sets):
        y[n, list(s)] = True
    return y


@pytest.fixture(scope="module")
def noisy_case():
    """200 images, probabilities that agree with the true labels; 4 labels corrupted."""
    rng = np.random.default_rng(7)
    n = 200
    true = [set(rng.choice(28, size=rng.integers(1, 3), replace=False).tolist()) for _ in range(n)]
    probs = rng.uniform(0.0, 0.08, size=(n, 28))
    for i, s in enumerate(true):
        probs[i, list(s)] = rng.uniform(0.85, 0.99, size=len(s))
    given = [set(s) for s in true]
    corrupted = [5, 17, 33, 48]
    swaps = {}
    for i in corrupted:
        old = min(given[i])
        new = int(rng.choice([k for k in range(28) if k not in given[i]]))
        given[i] = (given[i] - {old}) | {new}
        swaps[i] = (old, new)
    return onehot(given), probs, corrupted, swaps


def test_listed_and_unreviewed():
    y = onehot([{0}, {1}, {2}, {3}])
    assert ordering.order_indices("listed", y).tolist() == [0, 1, 2, 3]
    reviewed = np.array([True, False, True, False])
    assert ordering.order_indices("unreviewed", y, reviewed=reviewed).tolist() == [1, 3]


def test_suspicious_puts_the_corrupted_first(noisy_case):
    y, p, corrupted, _ = noisy_case
    order = ordering.order_indices("suspicious", y, p)
    assert sorted(order[: len(corrupted)].tolist()) == corrupted
    scores = ordering.label_quality_scores(y, p)
    assert scores.shape == (200,) and np.all((0 <= scores) & (scores <= 1))


def test_issue_mask_flags_only_swapped_classes(noisy_case):
    y, p, corrupted, swaps = noisy_case
    mask = ordering.issue_mask(y, p)
    assert mask.shape == y.shape and mask.any()
    swapped = {(i, k) for i, pair in swaps.items() for k in pair}
    # confident learning is conservative: what it flags is right, it need not flag all
    assert {tuple(ix) for ix in np.argwhere(mask).tolist()} <= swapped
    # the review highlights add plain threshold disagreement, which finds every swap
    shown = mask | (y != ordering.predicted_sets(p))
    assert {tuple(ix) for ix in np.argwhere(shown).tolist()} == swapped


def test_issue_mask_falls_back_on_tiny_input():
    y = onehot([{0}])
    p = np.full((1, 28), 0.01)
    p[0, 1] = 0.9
    m = ordering.issue_mask(y, p)
    assert m[0, 0] and m[0, 1] and m.sum() == 2


def test_disagreement_order():
    y = onehot([{0}, {0}, {0}])
    p = np.zeros((3, 28))
    p[0, 0] = 1.0  # distance 0
    p[1, 0] = 0.0  # distance 1
    p[2, 0], p[2, 1] = 0.2, 0.9  # distance 0.8 + 0.9 = 1.7
    np.testing.assert_allclose(ordering.disagreement(y, p), [0, 1, 1.7])
    assert ordering.order_indices("disagreement", y, p).tolist() == [2, 1, 0]


def test_least_confident_order():
    p = np.zeros((3, 28))
    p[:, 0] = [1.0, 0.55, 0.45]  # distances from 0.5: 1, 0.1, 0.1
    p[2, 1] = 0.48  # distance 0.04: least confident
    y = onehot([{0}, {0}, {0}])
    np.testing.assert_allclose(ordering.confidence(p), [1.0, 0.1, 0.04])
    assert ordering.order_indices("least_confident", y, p).tolist() == [2, 1, 0]
    t = np.full(28, 0.5)
    t[1] = 0.9  # class 1 far below its threshold now: 0.48 is (0.9-0.48)/0.9 away
    np.testing.assert_allclose(ordering.confidence(p, t)[2], 0.1)


def test_ties_keep_the_listed_order():
    y = onehot([{0}] * 4)
    p = np.zeros((4, 28))
    p[:, 0] = 0.7
    for order in ("suspicious", "disagreement", "least_confident"):
        assert ordering.order_indices(order, y, p).tolist() == [0, 1, 2, 3]


def test_predicted_sets_force_the_top_class():
    p = np.full((2, 28), 0.1)
    p[0, 3] = 0.4
    p[1, [2, 5]] = 0.8
    pred = ordering.predicted_sets(p)
    assert np.flatnonzero(pred[0]).tolist() == [3]
    assert np.flatnonzero(pred[1]).tolist() == [2, 5]


def test_orders_without_probabilities_or_unknown():
    y = onehot([{0}])
    for order in ordering.NEEDS_PROBABILITIES:
        with pytest.raises(SessionError, match="needs model probabilities"):
            ordering.order_indices(order, y, None)
    with pytest.raises(ValueError, match="unknown queue order"):
        ordering.order_indices("random", y)
