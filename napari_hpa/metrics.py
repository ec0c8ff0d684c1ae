"""Metrics, per-class thresholds and temperatures (core: numpy, scipy).

* :func:`f1_per_class` / :func:`macro_f1` -- F1 of each class over the images; a class
  with neither true nor predicted positives has F1 ``nan`` and is left out of the
  macro mean (on a small split that simply lacks the class, predicting nothing is
  not an error).
* :func:`fit_thresholds_f1` -- each class's threshold maximising that class's F1 on
  validation probabilities; among equally good candidates, the one nearest half that best
  F1, and never below :data:`MIN_THRESHOLD`.
* :func:`fit_thresholds_ratio` -- the Kaggle 2018 1st place: each class's threshold
  set so that its predicted-positive rate matches a target ratio (e.g. the training
  label frequencies).
* :func:`score_thresholds` -- macro F1 of thresholded probabilities with the
  top-class-forced rule (:func:`~napari_hpa.engine.ensemble.apply_thresholds`).
* :func:`fit_temperature` -- the temperature that calibrates probabilities on validation
  (least binary cross-entropy); :func:`fit_out_of_domain_temperature` -- the extra one that
  keeps out-of-domain fields below a ceiling of confidence.
* :func:`pointing_game` -- share of (image, present class) pairs whose attention-map
  maximum lies inside that class's ground-truth mask dilated by one map cell.
* :func:`retrieval_top1` -- share of images whose nearest neighbour (cosine) among the
  others comes from the same group (antibody).
"""

from __future__ import annotations

import numpy as np

from .classes import DEFAULT_THRESHOLD, NUM_CLASSES

# a class is never labelled at a probability under 5 %: validation fields that separate a class
# perfectly put its best F1 anywhere down to the lowest candidate, where fields unlike them cross it
MIN_THRESHOLD = 0.05
THRESHOLD_GRID = np.round(np.arange(MIN_THRESHOLD, 0.981, 0.01), 4)


def _as_bool(y) -> np.ndarray:
    y = np.asarray(y)
    return y > 0.5 if y.dtype != bool else y


def f1_per_class(y_true, y_pred) -> np.ndarray:
    """``[C]`` F1 per class of ``[N, C]`` 0/1 (or bool) truth and prediction; nan where undefined."""
    t, p = _as_bool(y_true), _as_bool(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"truth {t.shape} and prediction {p.shape} differ in shape")
    tp = (t & p).sum(0).astype(float)
    fp = (~t & p).sum(0).astype(float)
    fn = (t & ~p).sum(0).astype(float)
    denom = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / np.maximum(denom, 1e-12), np.nan)


def macro_f1(y_true, y_pred) -> float:
    f1 = f1_per_class(y_true, y_pred)
    return float(np.nanmean(f1)) if np.isfinite(f1).any() else float("nan")


def apply_thresholds(probs, thresholds, min_one_label: bool = True) -> np.ndarray:
    """``probs >= thresholds``; with ``min_one_label`` the top class of each row is forced on."""
    from .thresholds import apply_thresholds as _apply

    return _apply(np.asarray(probs, dtype=np.float32), np.asarray(thresholds, np.float32), min_one_label)


def score_thresholds(probs, y_true, thresholds, min_one_label: bool = True) -> float:
    return macro_f1(y_true, apply_thresholds(probs, thresholds, min_one_label))


def _best_threshold(p: np.ndarray, t: np.ndarray, grid: np.ndarray) -> float:
    """The candidate of ``grid`` with the best F1; among equally good ones (a plateau: the
    validation fields separate the class anywhere in a gap), the one nearest half the best F1,
    the optimal threshold of calibrated probabilities (Lipton, Elkan and Naryanaswamy 2014,
    "Optimal thresholding of classifiers to maximize F1 measure")."""
    pred = p[:, None] >= grid[None, :]
    tp = (pred & t[:, None]).sum(0)
    fp = (pred & ~t[:, None]).sum(0)
    fn = (~pred & t[:, None]).sum(0)
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    best = f1.max()
    tied = grid[f1 >= best - 1e-12]
    return float(tied[np.argmin(np.abs(tied - best / 2))])


def fit_thresholds_f1(probs, y_true, grid=THRESHOLD_GRID, default: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Per class, the threshold maximising that class's F1 (``default`` for classes without positives)."""
    probs = np.asarray(probs, dtype=np.float64)
    t = _as_bool(y_true)
    grid = np.asarray(grid, dtype=np.float64)
    out = np.full(probs.shape[1], default, dtype=np.float64)
    for c in range(probs.shape[1]):
        if t[:, c].any():
            out[c] = _best_threshold(probs[:, c], t[:, c], grid)
    return out


def fit_thresholds_ratio(probs, ratios, lo: float = 0.01, hi: float = 0.99) -> np.ndarray:
    """Per class, the threshold whose predicted-positive rate on ``probs`` matches ``ratios[c]``.

    ``ratios``: the target share of images positive for each class (e.g. training label
    frequencies).  Thresholds are clipped to ``[lo, hi]``.
    """
    probs = np.asarray(probs, dtype=np.float64)
    ratios = np.asarray(ratios, dtype=np.float64)
    if ratios.shape != (probs.shape[1],):
        raise ValueError(f"need {probs.shape[1]} class ratios, got shape {ratios.shape}")
    n = len(probs)
    out = np.empty(probs.shape[1])
    for c in range(probs.shape[1]):
        k = int(round(float(np.clip(ratios[c], 0, 1)) * n))
        if k <= 0:
            out[c] = hi
            continue
        s = np.sort(probs[:, c])[::-1]
        # between the k-th and (k+1)-th highest probability: exactly k images are positive
        out[c] = s[k - 1] if k >= n else 0.5 * (s[k - 1] + s[k])
    return np.clip(out, lo, hi)


def fit_stacking(member_probs, y_true, fallback_weights, C: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Per class, a logistic regression on the members' logits: ``(bias [C], weights [M, C])``.

    ``member_probs``: ``[M, N, C]``.  Features are standardised for the fit (L2 strength
    ``1 / C``, scikit-learn's ``LogisticRegression``) and the scaling folded back into the
    returned weights, so that ``sigmoid(bias + sum_m weights[m] * logit(p_m))`` is the
    fitted probability.  A class with fewer than two positive or negative images keeps
    ``fallback_weights`` (normalised to sum 1; bias 0).
    """
    from sklearn.linear_model import LogisticRegression

    from .engine.ensemble import logit

    x = logit(member_probs)  # [M, N, C]
    t = _as_bool(y_true)
    n_classes = x.shape[2]
    fb = np.asarray(fallback_weights, dtype=np.float64)
    weights = np.tile((fb / fb.sum())[:, None], (1, n_classes))
    bias = np.zeros(n_classes)
    for c in range(n_classes):
        pos = int(t[:, c].sum())
        if min(pos, len(t) - pos) < 2:
            continue
        f = x[:, :, c].T  # [N, M]
        mu, sd = f.mean(0), np.maximum(f.std(0), 1e-6)
        lr = LogisticRegression(C=C, max_iter=1000).fit((f - mu) / sd, t[:, c])
        a = lr.coef_[0] / sd
        weights[:, c] = a
        bias[c] = lr.intercept_[0] - float(a @ mu)
    return bias, weights


#: How :func:`fit_thresholds` fits per-class thresholds.
FIT_METHODS = ("f1", "ratio")


def fit_temperature(probs, y_true, lo: float = 0.05, hi: float = 20.0) -> float:
    """The temperature ``T`` that minimises the mean binary cross-entropy of
    ``sigmoid(logit(probs) / T)`` against ``y_true`` over every (image, class) pair."""
    from scipy.optimize import minimize_scalar

    from .thresholds import logit

    z = logit(probs).ravel()
    y = _as_bool(y_true).ravel()

    def loss(log_t: float) -> float:
        s = z / np.exp(log_t)
        return float(np.mean(np.logaddexp(0.0, s) - y * s))  # -log sigmoid(+-s)

    fit = minimize_scalar(loss, bounds=(np.log(lo), np.log(hi)), method="bounded",
                          options={"xatol": 1e-4})
    return float(np.exp(fit.x))


def fit_out_of_domain_temperature(probs, scores, prior=None, ceiling: float = 0.9,
                                  quantile: float = 0.99) -> float:
    """The least factor ``T >= 1`` that brings the highest probability of a share
    ``quantile`` of out-of-domain fields to at most ``ceiling``, their logits ``z`` being pulled
    towards ``b = logit(prior)`` as ``b + (z - b) / (T * max(1, domain score))`` (``probs``:
    those fields' probabilities; ``scores``: their domain scores; ``prior`` None: ``b = 0``)."""
    from .thresholds import logit

    probs = np.asarray(probs, dtype=np.float64)
    if not len(probs):
        return 1.0
    b = np.zeros(probs.shape[1]) if prior is None else logit(np.asarray(prior, dtype=np.float64))
    room = logit(np.float64(ceiling)) - b  # how far above its prior a class may stay
    need = np.where(room > 0, (logit(probs) - b) / np.where(room > 0, room, 1), np.inf).max(axis=1)
    scale = np.maximum(1.0, np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=1.0))
    return float(max(1.0, np.quantile(need / scale, quantile)))


def fit_thresholds(method: str, probs, y_true=None, ratios=None) -> np.ndarray:
    if method == "f1":
        if y_true is None:
            raise ValueError("thresholds 'f1' need validation labels")
        return fit_thresholds_f1(probs, y_true)
    if method == "ratio":
        if ratios is None:
            if y_true is None:
                raise ValueError("thresholds 'ratio' need class ratios or labels")
            ratios = _as_bool(y_true).mean(0)
        return fit_thresholds_ratio(probs, ratios)
    raise ValueError(f"unknown threshold method {method!r}; choose {' or '.join(FIT_METHODS)}")


# --------------------------------------------------------------------------- attention


def mask_cells(mask: np.ndarray, grid: tuple[int, int], dilate: int = 1) -> np.ndarray:
    """A ``(H, W)`` mask on an ``h x w`` grid (cell on when any pixel is), dilated by ``dilate`` cells.

    Cell ``(i, j)`` covers rows ``[i H/h, (i+1) H/h)`` and columns ``[j W/w, (j+1) W/w)``
    (the engine's convention).
    """
    H, W = mask.shape
    h, w = grid
    rows = np.minimum((np.arange(H) * h) // H, h - 1)
    cols = np.minimum((np.arange(W) * w) // W, w - 1)
    cells = np.zeros((h, w), bool)
    ys, xs = np.nonzero(mask)
    cells[rows[ys], cols[xs]] = True
    for _ in range(dilate):
        d = cells.copy()
        d[1:] |= cells[:-1]
        d[:-1] |= cells[1:]
        e = d.copy()
        e[:, 1:] |= d[:, :-1]
        e[:, :-1] |= d[:, 1:]
        cells = e
    return cells


def pointing_hits(attention: np.ndarray, masks: np.ndarray, labels) -> tuple[int, int]:
    """(hits, pairs) for one image: ``attention [28, h, w]``, ``masks [28, H, W]``, true labels."""
    hits = total = 0
    for c in labels:
        m = masks[c]
        if not m.any():
            continue
        cells = mask_cells(m, attention.shape[-2:])
        i, j = np.unravel_index(int(np.argmax(attention[c])), attention.shape[-2:])
        hits += bool(cells[i, j])
        total += 1
    return hits, total


def pointing_game(attention, masks, labels) -> float:
    """Share of (image, present class) pairs whose map maximum lies in the dilated mask."""
    hits = total = 0
    for a, m, lab in zip(attention, masks, labels):
        h, t = pointing_hits(a, m, lab)
        hits, total = hits + h, total + t
    return hits / total if total else float("nan")


# --------------------------------------------------------------------------- retrieval


def retrieval_top1(embeddings, groups) -> tuple[float, int]:
    """(share, n): for each item whose group has another member, is its cosine nearest
    neighbour among the other items in the same group?"""
    e = np.asarray(embeddings, dtype=np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    groups = np.asarray(groups)
    sim = e @ e.T
    np.fill_diagonal(sim, -np.inf)
    nn = sim.argmax(1)
    counts = {g: int((groups == g).sum()) for g in set(groups.tolist())}
    eligible = np.array([counts[g] > 1 for g in groups.tolist()])
    if not eligible.any():
        return float("nan"), 0
    correct = groups[nn] == groups
    return float(correct[eligible].mean()), int(eligible.sum())


__all__ = [
    "NUM_CLASSES",
    "apply_thresholds",
    "f1_per_class",
    "fit_out_of_domain_temperature",
    "fit_temperature",
    "fit_thresholds",
    "fit_thresholds_f1",
    "fit_thresholds_ratio",
    "macro_f1",
    "mask_cells",
    "pointing_game",
    "pointing_hits",
    "retrieval_top1",
    "score_thresholds",
]
