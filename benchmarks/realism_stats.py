"""Per-field statistics of HPA-like channels, for comparing real and synthetic fields.

Used by ``bench_realism.py`` (and by the generator tests, which load this file by
path).  Every statistic is computed from one 512 x 512 channel (8-bit, read as
0-1), so real single channels (one colour per field) and synthetic sets are
measured the same way.  The methods are deliberately simple and identical for
both sides: what matters is the distance between the two, not the absolute
figures.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy.stats import ks_2samp, wasserstein_distance

#: Which statistics come from which channel.
CHANNEL_STATS = {
    "red": ("mean", "p50", "p99", "frac>0.1", "coverage", "border_cov", "coherence"),
    "green": ("mean", "p50", "p99", "frac>0.1"),
    "blue": ("mean", "p50", "p99", "frac>0.1", "nuc_count", "nuc_area", "nuc_solidity", "nuc_eccentricity",
             "nuc_border_frac", "nuc_grain"),
    "yellow": ("mean", "p50", "p99", "frac>0.1", "coverage", "border_cov", "granularity"),
}

#: Descriptors of the green channel compared class by class.
GREEN_DESCRIPTORS = ("log_mean", "frac>0.1", "contrast", "granularity", "coherence")


def _g(x, s):
    return ndi.gaussian_filter(x, s, mode="reflect")


def intensity(x: np.ndarray) -> dict:
    return {"mean": float(x.mean()), "p50": float(np.percentile(x, 50)), "p99": float(np.percentile(x, 99)),
            "frac>0.1": float((x > 0.1).mean())}


def foreground(x: np.ndarray) -> np.ndarray:
    """Cell foreground of a cytoplasmic channel: Otsu on the smoothed square root."""
    from skimage.filters import threshold_otsu

    s = np.sqrt(np.clip(_g(x, 4.0), 0, None))
    if s.max() - s.min() < 1e-6:
        return np.zeros(x.shape, bool)
    return s > threshold_otsu(s)


def fine_coarse(x: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Granularity: energy of the fine band (DoG 0.8-2 px) over the coarse band (DoG 2-6 px)."""
    g1, g2, g6 = _g(x, 0.8), _g(x, 2.0), _g(x, 6.0)
    fine, coarse = g1 - g2, g2 - g6
    if mask is not None:
        if mask.sum() < 50:
            return float("nan")
        fine, coarse = fine[mask], coarse[mask]
    return float((fine**2).mean() / max(float((coarse**2).mean()), 1e-12))


def coherence(x: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Energy-weighted orientation coherence ((l1 - l2) / (l1 + l2))^2 of the structure tensor (sigma 2)."""
    from skimage.feature import structure_tensor

    arr, arc, acc = structure_tensor(x, sigma=2.0, order="rc")
    tr = arr + acc
    det_term = np.sqrt((arr - acc) ** 2 + 4 * arc**2)
    coh = (det_term / np.maximum(tr, 1e-12)) ** 2
    w = tr if mask is None else tr * mask
    return float((coh * w).sum() / max(float(w.sum()), 1e-12))


def nuclei(x: np.ndarray) -> dict:
    """Nuclei of a blue channel: Otsu on the smoothed channel, holes filled, objects >= 80 px."""
    from skimage.filters import threshold_otsu
    from skimage.measure import label, regionprops

    s = _g(x, 2.0)
    out = dict.fromkeys(("nuc_count", "nuc_area", "nuc_solidity", "nuc_eccentricity", "nuc_border_frac",
                         "nuc_grain"), float("nan"))
    if s.max() - s.min() < 1e-6:
        return out
    m = ndi.binary_fill_holes(s > threshold_otsu(s))
    lab = label(m)
    props = [p for p in regionprops(lab) if p.area >= 80]
    out["nuc_count"] = float(len(props))
    if not props:
        return out
    h, w = x.shape
    border = [p.bbox[0] == 0 or p.bbox[1] == 0 or p.bbox[2] == h or p.bbox[3] == w for p in props]
    out["nuc_border_frac"] = float(np.mean(border))
    inner = [p for p, b in zip(props, border) if not b] or props
    out["nuc_area"] = float(np.median([p.area for p in inner]))
    out["nuc_solidity"] = float(np.median([p.solidity for p in inner]))
    out["nuc_eccentricity"] = float(np.median([p.eccentricity for p in inner]))
    keep = np.isin(lab, [p.label for p in props])
    out["nuc_grain"] = fine_coarse(x, ndi.binary_erosion(keep, iterations=2))
    return out


def channel_stats(x: np.ndarray, colour: str) -> dict:
    """The statistics of ``CHANNEL_STATS[colour]`` for one 0-1 float channel."""
    out = intensity(x)
    if colour in ("red", "yellow"):
        fg = foreground(x)
        out["coverage"] = float(fg.mean())
        edge = np.concatenate([fg[0], fg[-1], fg[:, 0], fg[:, -1]])
        out["border_cov"] = float(edge.mean())
        if colour == "red":
            out["coherence"] = coherence(x, fg)
        else:
            out["granularity"] = fine_coarse(x, fg)
    elif colour == "blue":
        out.update(nuclei(x))
    return {k: out[k] for k in CHANNEL_STATS[colour]}


def green_descriptors(x: np.ndarray) -> dict:
    m = float(x.mean())
    return {"log_mean": float(np.log10(m + 1e-3)), "frac>0.1": float((x > 0.1).mean()),
            "contrast": float(np.percentile(x, 99.5) / (m + 1e-3)), "granularity": fine_coarse(x),
            "coherence": coherence(x)}


def distance(real, synth, scale: float | None = None) -> tuple[float, float]:
    """(Wasserstein-1 in units of ``scale`` (the real values' standard deviation by default), KS statistic)."""
    a = np.asarray([v for v in real if np.isfinite(v)], float)
    b = np.asarray([v for v in synth if np.isfinite(v)], float)
    if a.size == 0 or b.size == 0:
        return float("nan"), float("nan")
    sc = float(a.std()) if scale is None else scale
    sc = max(sc, 1e-6 * max(abs(float(np.median(a))), 1e-9))
    return float(wasserstein_distance(a, b) / sc), float(ks_2samp(a, b).statistic)
