"""Probabilities and labels: the one rule that turns probabilities into labels
(:func:`apply_thresholds`, with the default threshold :data:`DEFAULT_THRESHOLD`),
:func:`sigmoid` / :func:`logit` between logits and probabilities, and :func:`temper`, which
divides the logits by a temperature (per field or one for all)."""

from __future__ import annotations

import numpy as np

from .classes import DEFAULT_THRESHOLD  # noqa: F401 (the default lives with the classes)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def logit(p: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """The inverse of :func:`sigmoid`, in float64, with ``p`` clipped to ``[eps, 1 - eps]``."""
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps)
    return np.log(p) - np.log1p(-p)


def apply_thresholds(probs: np.ndarray, thresholds, min_one_label: bool) -> np.ndarray:
    """Labels ``probs >= thresholds``; with ``min_one_label`` the top class is always on."""
    labels = probs >= np.asarray(thresholds, dtype=probs.dtype)
    if min_one_label and len(probs):
        labels[np.arange(len(probs)), probs.argmax(axis=1)] = True
    return labels


def temper(probs: np.ndarray, temperature) -> np.ndarray:
    """``sigmoid(logit(probs) / temperature)`` (``temperature``: one number, or one per row),
    in ``probs``'s dtype; a temperature of 1 gives ``probs`` back."""
    t = np.asarray(temperature, dtype=np.float64)
    if t.ndim == 1:
        t = t[:, None]
    if np.all(t == 1):
        return probs
    return sigmoid(logit(probs) / t).astype(probs.dtype)
