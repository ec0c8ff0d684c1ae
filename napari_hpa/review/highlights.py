"""Where one image's labels and the model disagree: :class:`Highlights` and the pure
functions that give them and the model's predicted set from the labels, the
probabilities, the class thresholds and the stored cleanlab issue mask (no store, no Qt).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..classes import NUM_CLASSES
from ..labels import Target
from . import ordering


@dataclass(frozen=True)
class Highlights:
    """Classes of one image where label and model disagree (for the review view).

    ``labelled_improbable``: labelled, but the model's probability is under the
    class threshold or cleanlab flags the annotation.  ``probable_unlabelled``:
    not labelled, but the probability reaches the threshold or cleanlab flags it.
    ``cleanlab``: classes cleanlab flagged (only if the issue mask was computed
    and the class label has not been edited since).
    """

    labelled_improbable: tuple[int, ...] = ()
    probable_unlabelled: tuple[int, ...] = ()
    cleanlab: tuple[int, ...] = ()

    def flag(self, cls: int) -> str | None:
        if cls in self.labelled_improbable:
            return "labelled_improbable"
        if cls in self.probable_unlabelled:
            return "probable_unlabelled"
        return None


def highlights_of(
    labels: Target,
    probs: np.ndarray,
    thresholds: np.ndarray,
    issues: int | None = None,
    basis: Target = (),
) -> Highlights:
    """The highlights of one image from its current ``labels``, its 28 ``probs`` and the
    per-class ``thresholds``; ``issues`` is cleanlab's per-class issue mask as bits (or
    ``None`` when not computed) and ``basis`` the labels it was computed on: a class
    whose label changed since no longer counts."""
    y = np.zeros(NUM_CLASSES, dtype=bool)
    y[list(labels)] = True
    flagged = np.zeros(NUM_CLASSES, dtype=bool)
    if issues is not None:
        b = np.zeros(NUM_CLASSES, dtype=bool)
        b[list(basis)] = True
        bits = np.array([(issues >> k) & 1 for k in range(NUM_CLASSES)], dtype=bool)
        flagged = bits & (b == y)  # a class edited since no longer counts
    improbable = y & ((probs < thresholds) | flagged)
    unlabelled = ~y & ((probs >= thresholds) | flagged)
    as_tuple = lambda m: tuple(int(k) for k in np.flatnonzero(m))  # noqa: E731
    return Highlights(as_tuple(improbable), as_tuple(unlabelled), as_tuple(flagged))


def predicted_set(probs: np.ndarray | None, thresholds: np.ndarray) -> Target | None:
    """Classes with ``p >= threshold``, the top class always included; ``None`` without
    probabilities."""
    if probs is None:
        return None
    pred = ordering.predicted_sets(probs, thresholds)[0]
    return tuple(int(k) for k in np.flatnonzero(pred))
