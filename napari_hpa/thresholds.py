"""Probabilities and labels: the one rule that turns probabilities into labels
(:func:`apply_thresholds`, with the default threshold :data:`DEFAULT_THRESHOLD`),
:func:`sigmoid` / :func:`logit` between logits and probabilities, and :func:`temper`, which
divides the logits by a temperature, and :func:`shrink`, which also pulls some fields' logits
towards a prior."""

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


def temper(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``sigmoid(logit(probs) / temperature)``, in ``probs``'s dtype (1 gives ``probs`` back)."""
    return shrink(probs, temperature, np.ones(len(probs)))


def shrink(probs: np.ndarray, temperature: float, factors: np.ndarray, prior=None) -> np.ndarray:
    """``logit(probs) / temperature``, then each row ``i`` pulled towards ``logit(prior)`` by
    ``factors[i]``: ``b + (z - b) / factors[i]`` (``prior`` None: ``b = 0``, i.e. p 0.5)."""
    factors = np.asarray(factors, dtype=np.float64)
    if temperature == 1 and np.all(factors == 1):
        return probs
    b = 0.0 if prior is None else logit(np.asarray(prior, dtype=np.float64))
    z = logit(probs) / temperature
    return sigmoid(b + (z - b) / factors[:, None]).astype(probs.dtype)
