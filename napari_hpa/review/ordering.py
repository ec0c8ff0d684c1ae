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
``suspicious``     ascending label-quality score of ``cleanlab.multilabel_classification``
                   (``get_label_quality_scores``, self-confidence per class aggregated by
                   an exponential moving average): most likely mislabelled first
``disagreement``   descending L1 distance between the label set and the probabilities,
                   ``sum_k |y_k - p_k|``
``least_confident``ascending confidence, ``min_k`` of how far ``p_k`` is from its class
                   threshold, scaled to [0, 1] on each side of the threshold
``unreviewed``     only the images not yet marked reviewed, in the input order
=================  =====================================================================

``suspicious``, ``disagreement`` and ``least_confident`` need probabilities and
raise :class:`~napari_hpa.errors.SessionError` without them.

:func:`issue_mask` gives, per image and class, whether the class annotation
looks wrong (cleanlab's ``find_multilabel_issues_per_class``); split by the
label it gives the two highlights of the review widget: labelled but
improbable, and probable but unlabelled.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..classes import NUM_CLASSES
from ..errors import SessionError

#: Order key -> what the user sees.
ORDERS: dict[str, str] = {
    "listed": "as listed",
    "suspicious": "most suspicious first",
    "disagreement": "largest model-label disagreement",
    "least_confident": "least confident",
    "unreviewed": "not yet reviewed",
}
NEEDS_PROBABILITIES = frozenset({"suspicious", "disagreement", "least_confident"})
DEFAULT_THRESHOLD = 0.5


def as_thresholds(thresholds=None) -> np.ndarray:
    """28 per-class thresholds (a scalar is used for every class); each in (0, 1)."""
    if thresholds is None:
        thresholds = DEFAULT_THRESHOLD
    t = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (NUM_CLASSES,)).copy()
    if not np.all((t > 0) & (t < 1)):
        raise ValueError(f"thresholds must lie strictly between 0 and 1, got {t.tolist()}")
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

    ``scores`` may pass precomputed cleanlab scores for ``suspicious``.
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
        key = label_quality_scores(labels, probs) if scores is None else np.asarray(scores)
    elif order == "disagreement":
        key = -disagreement(labels, probs)
    else:  # least_confident
        key = confidence(probs, thresholds)
    return np.argsort(key, kind="stable")
