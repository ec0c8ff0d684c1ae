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
    scores = ordering.label_confidence(y, p)
    assert scores.shape == (200,) and np.all((0 < scores) & (scores <= 1))
    assert sorted(np.argsort(scores)[: len(corrupted)].tolist()) == corrupted
    order = ordering.order_indices("cleanlab", y, p)
    assert sorted(order[: len(corrupted)].tolist()) == corrupted
    scores = ordering.label_quality_scores(y, p)
    assert scores.shape == (200,) and np.all((0 <= scores) & (scores <= 1))


def weak_class_case(n=300, seed=3):
    """Class 0 is one the model sees poorly: where it is labelled its probability is only
    0.05-0.3, elsewhere below 0.03.  The other classes it sees well: 0.85-0.99 where
    present, up to 0.35 where absent.  Image 7 was given class 1 wrongly (p 0.2), image 11
    lost its class 5 (p 0.97 but unlabelled)."""
    rng = np.random.default_rng(seed)
    sets = [{int(rng.integers(3, 28))} | ({0} if i % 3 == 0 else set()) | ({1} if i % 4 == 0 else set())
            for i in range(n)]
    sets[7], sets[11] = {1, 9}, {2}
    probs = rng.uniform(0.0, 0.35, size=(n, 28))
    probs[:, 0] = rng.uniform(0.0, 0.03, size=n)
    for i, s in enumerate(sets):
        for k in s:
            probs[i, k] = rng.uniform(0.05, 0.3) if k == 0 else rng.uniform(0.85, 0.99)
    probs[7, 1] = 0.2
    probs[11, 5] = 0.97
    return onehot(sets), probs


def test_suspicious_calibrates_each_class():
    """A weakly seen class's low probabilities are not taken as evidence of wrong labels;
    a well seen class's 0.2 is."""
    y, p = weak_class_case()
    order = ordering.order_indices("suspicious", y, p)
    assert sorted(order[:2].tolist()) == [7, 11]
    # cleanlab takes the labelled class 0's 0.05-0.3 for worse than the class 1's 0.2
    assert ordering.order_indices("cleanlab", y, p).tolist().index(7) > 20
    logits = ordering.calibrated_logits(y, p)
    weak = logits[y[:, 0], 0]
    assert np.median(1 / (1 + np.exp(-weak))) > np.median(p[y[:, 0], 0])  # raised
    assert np.isfinite(logits).all()


def test_corruption_odds_follow_the_noise_model():
    y = onehot([{0}, {0}, {0, 1}, set()])
    logits = np.full((4, 28), -4.0)
    logits[:3, 0] = 4.0
    logits[1, 5] = 4.0  # a class missing from its labels: likely dropped
    logits[2, 1] = -2.0  # labelled but doubted: likely added
    odds = ordering.corruption_odds(y, logits)
    o_lo, o_hi = np.exp(-4.0), np.exp(4.0)
    # image 0: added (1/o_hi) / 28 + dropped 27 o_lo / 2 + swapped (1/o_hi) 27 o_lo / 27, over 3
    expected0 = ((1 / o_hi) / 28 + 27 * o_lo / 2 + (1 / o_hi) * 27 * o_lo / 27) / 3
    np.testing.assert_allclose(odds[0], expected0)
    assert odds[1] > odds[2] > odds[0]  # a sure missing class beats a doubted one among 27
    assert np.isfinite(odds).all() and odds[3] > 0  # no labels: only "dropped" is possible


def test_label_confidence_on_degenerate_input():
    assert ordering.label_confidence(np.zeros((0, 28), bool), np.zeros((0, 28))).shape == (0,)
    y = onehot([{0}])
    p = np.zeros((1, 28))
    p[0, 0] = 1.0  # probabilities of exactly 0 and 1, one image, 27 classes never labelled
    c = ordering.label_confidence(y, p)
    assert np.isfinite(c).all() and 0 < c[0] <= 1


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
    for order in sorted(ordering.NEEDS_PROBABILITIES):
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
