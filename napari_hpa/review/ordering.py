"""Queue orders for label review, on plain arrays (no store, no Qt).

Inputs: ``labels`` an ``(N, 28)`` boolean array of the current label sets,
``probs`` an ``(N, 28)`` float array of model probabilities (ideally
out-of-fold) or ``None``, ``reviewed`` an ``(N,)`` boolean array, and per-class
``thresholds`` (28 floats, default 0.5).  Every order returns row indices;
ties keep the listed order (stable sorts).

=================  =====================================================================
order              meaning
=================  =====================================================================
``listed``         the input order
``suspicious``     ascending :func:`label_confidence`, the probability that the label set
                   is right under a noise model (see there): most likely mislabelled first
``cleanlab``       ascending label-quality score of ``cleanlab.multilabel_classification``
                   (``get_label_quality_scores``, self-confidence per class aggregated by
                   an exponential moving average)
``disagreement``   descending L1 distance between the label set and the probabilities,
                   ``sum_k |y_k - p_k|``
``least_confident``ascending confidence, ``min_k`` of how far ``p_k`` is from its class
                   threshold, scaled to [0, 1] on each side of the threshold
``unreviewed``     only the images not yet marked reviewed, in the input order
=================  =====================================================================

Every order but ``listed`` and ``unreviewed`` needs probabilities and raises
:class:`~napari_hpa.errors.SessionError` without them.

:func:`issue_mask` gives, per image and class, whether the class annotation
looks wrong (cleanlab's ``find_multilabel_issues_per_class``); split by the
label it gives the two highlights of the review widget: labelled but
improbable, and probable but unlabelled.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..classes import DEFAULT_THRESHOLD, NUM_CLASSES
from ..errors import InvalidValueError, SessionError

#: Order key -> what the user sees.
ORDERS: dict[str, str] = {
    "listed": "as listed",
    "suspicious": "most suspicious first",
    "cleanlab": "cleanlab label quality, lowest first",
    "disagreement": "largest model-label disagreement",
    "least_confident": "least confident",
    "unreviewed": "not yet reviewed",
    "selection": "a selection (fields chosen on the map)",
}
#: the order that keeps a chosen list of ids (:meth:`.queue.Queue.persist` with ``selection``)
SELECTION = "selection"
NEEDS_PROBABILITIES = frozenset({"suspicious", "cleanlab", "disagreement", "least_confident"})
#: Share of images assumed to carry one corrupted label when :func:`label_confidence`
#: turns the corruption odds into a probability (it changes the values, not the order).
PRIOR_CORRUPTED = 0.05
#: Weight of the pull of each class's calibration towards the pooled one (a Gaussian
#: prior of unit variance on the difference): it decides only for classes with few images.
_CALIBRATION_PRIOR = 0.5
_CLIP = 1e-6


def as_thresholds(thresholds=None) -> np.ndarray:
    """28 per-class thresholds (a scalar is used for every class); each in (0, 1), else
    :class:`~napari_hpa.errors.InvalidValueError` (a ``ValueError``)."""
    if thresholds is None:
        thresholds = DEFAULT_THRESHOLD
    try:
        t = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (NUM_CLASSES,)).copy()
    except ValueError:
        raise InvalidValueError(f"thresholds: expected one value or {NUM_CLASSES}, got {thresholds!r}") from None
    if not np.all((t > 0) & (t < 1)):
        raise InvalidValueError(f"thresholds must lie strictly between 0 and 1, got {t.tolist()}")
    return t


def predicted_sets(probs: np.ndarray, thresholds=None) -> np.ndarray:
    """``(N, 28)`` bool: ``p >= threshold`` per class, with each row's top class forced on."""
    probs = np.atleast_2d(np.asarray(probs, dtype=np.float64))
    pred = probs >= as_thresholds(thresholds)
    if len(probs):
        pred[np.arange(len(probs)), probs.argmax(axis=1)] = True
    return pred


def _label_lists(labels: np.ndarray) -> list[list[int]]:
    return [np.flatnonzero(row).tolist() for row in labels]


def label_quality_scores(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """cleanlab's multi-label quality score per image, in [0, 1]; low = likely mislabelled."""
    from cleanlab.multilabel_classification import get_label_quality_scores

    labels = np.asarray(labels, dtype=bool)
    probs = np.asarray(probs, dtype=np.float64)
    if len(labels) == 0:
        return np.zeros(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(get_label_quality_scores(_label_lists(labels), probs), dtype=np.float64)


def _platt(logits: np.ndarray, y: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Per-column Platt scaling ``sigmoid(a * logit + b)`` fitted by maximum likelihood,
    with a Gaussian prior pulling ``(a, b)`` towards ``prior`` (``(2, C)``); returns
    ``(2, C)``."""
    from scipy.optimize import minimize
    from scipy.special import expit

    cols = logits.shape[1]

    def nll(x):
        a, b = x[:cols], x[cols:]
        z = logits * a + b
        resid = expit(z) - y
        da, db = a - prior[0], b - prior[1]
        value = np.sum(np.logaddexp(0, z) - y * z) + _CALIBRATION_PRIOR * np.sum(da**2 + db**2)
        grad = np.concatenate([
            np.sum(resid * logits, axis=0) + 2 * _CALIBRATION_PRIOR * da,
            np.sum(resid, axis=0) + 2 * _CALIBRATION_PRIOR * db,
        ])
        return value, grad

    x = minimize(nll, np.concatenate([prior[0], prior[1]]), jac=True, method="L-BFGS-B").x
    return np.stack([x[:cols], x[cols:]])


def calibrated_logits(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """``(N, 28)`` logits of the probabilities, Platt-scaled per class to the given labels.

    Models trained with focal or Lovasz losses give probabilities that are not calibrated,
    and differently for each class: a class the model sees poorly has low probabilities
    even where it is labelled.  One ``(a, b)`` is fitted on all classes pooled, then one
    per class with a prior pulling it towards the pooled fit, so classes with few images
    keep the pooled calibration.
    """
    ab = calibration(labels, probs)
    return _logit(probs) * ab[0] + ab[1]


def _logit(probs) -> np.ndarray:
    from scipy.special import logit

    return logit(np.clip(np.asarray(probs, dtype=np.float64), _CLIP, 1 - _CLIP))


def calibration(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """``(2, 28)``: the per-class Platt scaling ``(a, b)`` of :func:`calibrated_logits`."""
    logits = _logit(probs)
    y = np.asarray(labels, dtype=np.float64)
    pooled = _platt(logits.reshape(-1, 1), y.reshape(-1, 1), np.array([[1.0], [0.0]]))
    return _platt(logits, y, np.repeat(pooled, logits.shape[1], axis=1))


def calibrated_probs(probs: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """``probs`` Platt-scaled by the ``(2, 28)`` :func:`calibration` ``ab``."""
    from scipy.special import expit

    return expit(_logit(probs) * ab[0] + ab[1])


def corruption_odds(labels: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """Per image, how much likelier it is that one label was corrupted than that the
    label set is right, given calibrated per-class ``logits`` (independent classes).

    The noise model: one label added (a class drawn uniformly among the absent ones),
    dropped (one of the present ones) or swapped (one present class for one absent),
    each kind equally likely.  With ``o_k`` the odds of class ``k`` and ``n`` labels,
    the ratio sums the ways the true set could have been changed into the given one::

        added:   sum_{k labelled} (1 / o_k) / (C - n + 1)
        dropped: sum_{k unlabelled} o_k / (n + 1)
        swapped: sum_{j labelled, k unlabelled} (1 / o_j) o_k / (n (C - n))

    each divided by 3.  A labelled class the model doubts weighs less than an
    unlabelled class it is sure of, because an added label could have been any of
    the ``C - n`` absent classes while a dropped one was one of few.
    """
    y = np.asarray(labels, dtype=bool)
    odds = np.exp(np.clip(logits, -30.0, 30.0))
    n = y.sum(axis=1)
    c = y.shape[1]
    doubted = np.where(y, 1 / odds, 0).sum(axis=1)
    missed = np.where(y, 0, odds).sum(axis=1)
    added = doubted / np.maximum(c - n + 1, 1)
    dropped = missed / (n + 1)
    swapped = doubted * missed / np.maximum(n * (c - n), 1)
    return (added + dropped + swapped) / 3


def label_confidence(labels: np.ndarray, probs: np.ndarray, ab: np.ndarray | None = None
                     ) -> np.ndarray:
    """Per image, the probability that its label set is right, in (0, 1]; low = likely
    mislabelled.

    :func:`corruption_odds` on :func:`calibrated_logits`, with a prior of
    :data:`PRIOR_CORRUPTED` corrupted images: ``1 / (1 + r / (1 - r) * odds)``;
    ``ab`` is the :func:`calibration` when already fitted.
    """
    labels = np.asarray(labels, dtype=bool)
    if len(labels) == 0:
        return np.zeros(0)
    if ab is None:
        ab = calibration(labels, probs)
    odds = corruption_odds(labels, _logit(probs) * ab[0] + ab[1])
    prior = PRIOR_CORRUPTED / (1 - PRIOR_CORRUPTED)
    return 1 / (1 + prior * odds)


def issue_mask(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """``(N, 28)`` bool: class ``k`` of image ``i`` looks wrongly annotated (cleanlab).

    Uses ``cleanlab.multilabel_classification.filter.find_multilabel_issues_per_class``
    (confident learning, one-vs-rest per class).  Where cleanlab cannot decide
    (too few images), it falls back to plain disagreement at 0.5:
    labelled with ``p < 0.5`` or unlabelled with ``p > 0.5``.
    """
    labels = np.asarray(labels, dtype=bool)
    probs = np.asarray(probs, dtype=np.float64)
    fallback = (labels & (probs < 0.5)) | (~labels & (probs > 0.5))
    if len(labels) < 2:
        return fallback
    from cleanlab.multilabel_classification.filter import find_multilabel_issues_per_class

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mask = find_multilabel_issues_per_class(_label_lists(labels), probs, n_jobs=1)
        mask = np.asarray(mask, dtype=bool).reshape(labels.shape)
    except Exception:  # cleanlab refuses degenerate inputs (e.g. one image per class)
        return fallback
    return mask


def disagreement(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """``sum_k |y_k - p_k|`` per image."""
    return np.abs(np.asarray(labels, dtype=np.float64) - np.asarray(probs, dtype=np.float64)).sum(
        axis=1
    )


def confidence(probs: np.ndarray, thresholds=None) -> np.ndarray:
    """Per image, the smallest per-class distance from the threshold, scaled to [0, 1].

    Above the threshold ``t`` the distance is ``(p - t) / (1 - t)``, below it
    ``(t - p) / t``; 0 means some class sits exactly on its threshold.
    """
    probs = np.asarray(probs, dtype=np.float64)
    t = as_thresholds(thresholds)
    dist = np.where(probs >= t, (probs - t) / (1 - t), (t - probs) / t)
    return dist.min(axis=1) if len(probs) else np.zeros(0)


def order_indices(
    order: str,
    labels: np.ndarray,
    probs: np.ndarray | None = None,
    reviewed: np.ndarray | None = None,
    thresholds=None,
    *,
    scores: np.ndarray | None = None,
) -> np.ndarray:
    """Row indices of the queue ``order`` (see the module docstring).

    ``scores`` may pass precomputed :func:`label_confidence` values for ``suspicious``.
    """
    if order not in ORDERS:
        raise ValueError(f"unknown queue order {order!r}; choose one of {', '.join(ORDERS)}")
    labels = np.asarray(labels, dtype=bool)
    n = len(labels)
    if order in NEEDS_PROBABILITIES and probs is None:
        raise SessionError(
            f"the queue order {order!r} ({ORDERS[order]}) needs model probabilities, and this "
            "session has none (import it with --probs)"
        )
    if order == "listed":
        return np.arange(n)
    if order == "unreviewed":
        if reviewed is None:
            return np.arange(n)
        return np.flatnonzero(~np.asarray(reviewed, dtype=bool))
    if order == "suspicious":
        key = label_confidence(labels, probs) if scores is None else np.asarray(scores)
    elif order == "cleanlab":
        key = label_quality_scores(labels, probs)
    elif order == "disagreement":
        key = -disagreement(labels, probs)
    else:  # least_confident
        key = confidence(probs, thresholds)
    return np.argsort(key, kind="stable")
