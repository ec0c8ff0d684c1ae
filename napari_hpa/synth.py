"""Synthetic HPA-like fields of view with ground-truth masks.

No HPA training data can be downloaded where this project is developed, so the
models are trained, evaluated and their attention maps scored on procedurally
generated fields of view.  A field is a ``(4, H, W)`` uint8 image in RGBY order
(red = microtubules, green = protein of interest, blue = nucleus, yellow = ER)
plus a ``(28, H, W)`` boolean mask, one plane per class, non-empty exactly for
the classes in the field's label set.

How a field is made (all sizes below are in pixels of a 512 x 512 Kaggle-scale
field, where a nucleus is about 35-60 px long):

* Layout: 17-30 cells are placed by best-candidate dart throwing (an even,
  subconfluent spread).  Each cell is an oval nucleus (35-60 px long) plus a
  cytoplasm whose width varies with the angle: a strong 2nd harmonic along the
  nucleus' long axis elongates the cell (aspect about 1.5-3, a quarter
  spindle-shaped), the 1st offsets the nucleus, the 3rd/4th give polygonal
  corners; smooth noise on the normalised coordinate makes the outline
  irregular.  Cells compete for pixels by that coordinate, so neighbours touch
  along irregular borders.  Geometry is computed at half resolution and
  upsampled; cell edges fade over a few pixels only.
* Colour balance (matched to a real HPA field at 512, displayed additively
  with yellow as red + green): yellow ER is the strongest cytoplasmic signal,
  densest around the nucleus; red microtubules are long, gently curving
  filaments, brighter in bundles at the cell cortex; both have per-cell and
  patchy within-cell brightness.  Diffuse green fills (nucleoplasm, cytosol)
  are dimmer than point-like or thin patterns (``_BOOST``), so nuclei read
  blue with a green tint.
* Channels: smooth envelopes (per-cell brightness, density near the nucleus)
  are drawn at half resolution and upsampled bilinearly (the "slight blur");
  fine textures (microtubule mesh, ER reticulum, chromatin mottle) are
  precomputed once at full resolution and cropped at random offsets.
* Green: the union of the patterns of the field's classes (see ``_RENDER``),
  each scaled by its display gain ``_BOOST``; each class's pattern is
  normalised to peak ~1 and its mask is the pattern above ``_MASK_FRAC`` of
  that peak, inside cells.  Notable patterns: actin (12) = straight stress
  fibres along the cell's long axis (a 1-D bundle profile, a second family at
  a small angle); intermediate filaments (11) = wavy fibres in the cytoplasm
  only, densest around the nucleus; plasma membrane (21) = a ~1 px rim;
  junctions (22) = beaded lines only where two cells touch; centrosome (19) =
  one or two tight dots beside the nucleus; MTOC (18) = a dot with a radiating
  aster.
* Cell-cycle classes: class 16 places a pair of small daughter cells with
  condensed nuclei joined by a bridge; class 17 places a rounded mitotic cell
  with a metaphase plate (blue) and a bipolar spindle.  Such cells also appear
  (without their green pattern) in other fields, so that their presence alone
  does not give the label away.

Label sets (:func:`draw_labels`): 1-4 classes, the count drawn with the Kaggle
2018 proportions; the first class is drawn from the requested frequencies,
further ones either from a small hand-written companion table derived from
Kaggle 2018 co-occurrences (nucleoplasm with cytosol, nucleoli with
nucleoplasm, endosomes with lysosomes, ...) or from the frequencies again.  The
first-class probabilities are solved so that the marginal frequency of each
class matches the target (uniform, or Kaggle).  Combinations that would be
ambiguous in the rendering are never drawn: MTOC with centrosome (both a dot by
the nucleus) and plasma membrane with cell junctions (junctions are a subset of
the membrane rim).

Determinism: image ``i`` of a dataset with seed ``s`` uses the seed sequence
``SeedSequence(s, spawn_key=(0, i))`` for its layout, antibody group ``g`` uses
``(1, g)`` for labels and pattern parameters, and noisy-label selection uses
``(2,)``.  Image ``i`` therefore does not depend on ``n``, on the order of
generation, or on how many workers generate.

Masks on disk: ``masks/{id}.npz`` stores only the planes of the classes present,
bit-packed along the last axis (``packed``: ``(k, H, ceil(W/8))`` uint8, from
``np.packbits(m, axis=-1)``), with ``classes`` (``(k,)`` int) and ``shape``
(``(28, H, W)``).  :func:`load_masks` always returns the full ``(28, H, W)``
bool array (it also accepts files holding a full array under ``masks``).
"""

from __future__ import annotations

import json
import math
import struct
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from .classes import CHANNELS, KAGGLE_COUNTS, KAGGLE_TOTAL_IMAGES, NUM_CLASSES
from .errors import SynthError
from .labels import write_labels

__all__ = [
    "GENERATOR_VERSION",
    "SyntheticField",
    "DatasetSummary",
    "draw_labels",
    "draw_label_sets",
    "draw_antibody_params",
    "generate_field",
    "generate_dataset",
    "load_masks",
    "save_masks",
    "sample_field",
    "SAMPLE_SEED",
    "SAMPLE_LABELS",
    "INCOMPATIBLE",
]

GENERATOR_VERSION = "2"

FREQS = ("uniform", "kaggle")

#: Proportion of Kaggle 2018 images with 1, 2, 3 and 4+ labels.
_COUNT_PROBS = np.array([15126, 12485, 3160, 301], dtype=float)
_COUNT_PROBS /= _COUNT_PROBS.sum()
_EXTRA_LABELS = float(np.dot(_COUNT_PROBS, np.arange(4)))

#: Companion table: class -> ((companion, P(companion | class)), ...), rounded
#: from the Kaggle 2018 co-occurrence counts (the strongest pairs only).
_COMPANIONS: dict[int, tuple[tuple[int, float], ...]] = {
    0: ((25, 0.28), (2, 0.13), (21, 0.10), (7, 0.08)),
    1: ((0, 0.48), (25, 0.21), (2, 0.12)),
    2: ((0, 0.48), (25, 0.22)),
    3: ((0, 0.37), (25, 0.17), (2, 0.10)),
    4: ((25, 0.18), (0, 0.05)),
    5: ((0, 0.32), (25, 0.22)),
    6: ((25, 0.15), (0, 0.09)),
    7: ((0, 0.39), (25, 0.15)),
    8: ((2, 0.21), (0, 0.09)),
    9: ((10, 0.62), (6, 0.24)),
    10: ((9, 0.90), (6, 0.39)),
    11: ((0, 0.24), (25, 0.13)),
    12: ((0, 0.29), (25, 0.23), (21, 0.19)),
    13: ((0, 0.33), (25, 0.23), (21, 0.21)),
    14: ((0, 0.20), (25, 0.15), (16, 0.10)),
    15: ((0, 0.57), (2, 0.48), (16, 0.43), (5, 0.38)),
    16: ((0, 0.54), (25, 0.28), (14, 0.19), (17, 0.15)),
    17: ((16, 0.37), (25, 0.36), (0, 0.36), (18, 0.23), (14, 0.22)),
    18: ((0, 0.31), (25, 0.29)),
    19: ((0, 0.41), (25, 0.19)),
    20: ((0, 0.34), (23, 0.10)),
    21: ((0, 0.36), (25, 0.24)),
    22: ((0, 0.41), (25, 0.14)),
    23: ((0, 0.27), (25, 0.05)),
    24: ((0, 0.24), (25, 0.16), (5, 0.09)),
    25: ((0, 0.44), (21, 0.11), (2, 0.10)),
    26: ((0, 0.35), (25, 0.16)),
    27: ((0, 0.64), (5, 0.36), (23, 0.18)),
}
#: Probability that a further label comes from the companion table.
_COMPANION_RATE = {"uniform": 0.15, "kaggle": 0.6}
#: Pairs never drawn together (their renderings would be ambiguous).
INCOMPATIBLE: tuple[frozenset[int], ...] = (frozenset({18, 19}), frozenset({21, 22}))

_MASK_FRAC = 0.2

# ----------------------------------------------------------------------------
# label drawing


def _compatible(c: int, chosen) -> bool:
    return all(not (c in pair and (pair - {c}) & set(chosen)) for pair in INCOMPATIBLE)


@lru_cache(maxsize=None)
def _first_label_probs(freq: str) -> np.ndarray:
    """First-label probabilities whose resulting marginals approximate the target."""
    if freq == "uniform":
        target = np.full(NUM_CLASSES, 1.0 / NUM_CLASSES)
    else:
        target = np.asarray(KAGGLE_COUNTS, float) / KAGGLE_TOTAL_IMAGES
        target /= target.sum()
    target = target * (1.0 + _EXTRA_LABELS)  # expected presence per image
    comp = np.zeros((NUM_CLASSES, NUM_CLASSES))
    for a, pairs in _COMPANIONS.items():
        for b, w in pairs:
            comp[a, b] = w
    comp /= comp.sum(1, keepdims=True)
    rho = _COMPANION_RATE[freq]
    p = target / target.sum()
    for _ in range(200):
        via_comp = _EXTRA_LABELS * rho * (comp.T @ p)
        p_new = (target - via_comp) / (1.0 + _EXTRA_LABELS * (1.0 - rho))
        p_new = np.clip(p_new, 1e-5, None)
        p_new /= p_new.sum()
        if np.abs(p_new - p).max() < 1e-12:
            break
        p = 0.5 * p + 0.5 * p_new
    return p


def _check_freq(freq: str) -> None:
    if freq not in FREQS:
        raise SynthError(f"unknown freq {freq!r}: expected one of {', '.join(FREQS)}")


def draw_labels(rng: np.random.Generator, freq: str = "uniform") -> tuple[int, ...]:
    """Draw one label set (1-4 classes, sorted) with ``freq`` frequencies."""
    _check_freq(freq)
    p = _first_label_probs(freq)
    k = int(rng.choice(4, p=_COUNT_PROBS)) + 1
    first = int(rng.choice(NUM_CLASSES, p=p))
    chosen = [first]
    rho = _COMPANION_RATE[freq]
    for _ in range(40):
        if len(chosen) >= k:
            break
        pairs = _COMPANIONS[first]
        if rng.random() < rho:
            w = np.array([x[1] for x in pairs])
            c = pairs[int(rng.choice(len(pairs), p=w / w.sum()))][0]
        else:
            c = int(rng.choice(NUM_CLASSES, p=p))
        if c not in chosen and _compatible(c, chosen):
            chosen.append(c)
    return tuple(sorted(chosen))


def draw_label_sets(n: int, seed: int, freq: str = "uniform") -> list[tuple[int, ...]]:
    """``n`` label sets drawn exactly as :func:`generate_dataset` draws them
    (with ``fields_per_antibody=1``), without rendering anything."""
    return [draw_labels(_rng(seed, 1, i), freq) for i in range(n)]


def _rng(seed, *key) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


# ----------------------------------------------------------------------------
# antibody parameters


def draw_antibody_params(rng: np.random.Generator, labels: Sequence[int]) -> dict:
    """Pattern parameters shared by all fields of one antibody."""
    labels = tuple(sorted(int(c) for c in labels))
    per_class = {}
    amps = rng.uniform(0.45, 1.0, len(labels))
    amps /= amps.max()
    for c, amp in zip(labels, amps):
        per_class[int(c)] = {
            "amp": float(amp),
            "size": float(rng.uniform(0.8, 1.25)),
            "count": float(rng.uniform(0.6, 1.5)),
            "tex": float(rng.uniform(0.0, 1.0)),
        }
    return {
        "labels": labels,
        "gain": float(rng.uniform(0.55, 1.0)),
        "cell_sd": float(rng.uniform(0.1, 0.45)),
        "background": float(rng.uniform(0.004, 0.02)),
        "haze": float(rng.uniform(0.0, 0.06)),
        "classes": per_class,
    }


# ----------------------------------------------------------------------------
# precomputed full-resolution textures (fixed seeds: deterministic)

_TEX = 1024


def _blur(x: np.ndarray, passes: int = 1, w: float = 0.25) -> np.ndarray:
    """Cheap separable [w, 1-2w, w] blur (edge-replicating), ``passes`` times."""
    x = np.asarray(x, np.float32)
    for _ in range(passes):
        y = x * (1 - 2 * w)
        y[1:] += w * x[:-1]
        y[:-1] += w * x[1:]
        y[0] += w * x[0]
        y[-1] += w * x[-1]
        z = y * (1 - 2 * w)
        z[:, 1:] += w * y[:, :-1]
        z[:, :-1] += w * y[:, 1:]
        z[:, 0] += w * y[:, 0]
        z[:, -1] += w * y[:, -1]
        x = z
    return x


def _gauss_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(np.asarray(x, np.float32), sigma, mode="wrap")


def _curves(rng, n, length, step, turn, wave=0.0, size=_TEX):
    """Rasterise ``n`` smooth random curves into a ``size`` x ``size`` canvas."""
    canvas = np.zeros(size * size, np.float32)
    lengths = rng.integers(length[0], length[1], n)
    total = int(lengths.sum())
    owner = np.repeat(np.arange(n), lengths)
    start = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    pos = np.arange(total) - np.repeat(start, lengths)
    ang0 = rng.uniform(0, 2 * np.pi, n)
    dtheta = rng.normal(0, turn, total).astype(np.float64)
    # smooth the turning so curves bend gently
    dtheta = np.convolve(dtheta, np.ones(5) / 5, mode="same")
    dtheta[start] = 0
    theta = np.cumsum(dtheta)
    theta -= np.repeat(theta[start], lengths)
    theta += ang0[owner]
    if wave:
        phase = rng.uniform(0, 2 * np.pi, n)[owner]
        theta += wave * np.sin(pos * 0.25 + phase)
    dx = np.cos(theta) * step
    dy = np.sin(theta) * step
    x = np.cumsum(dx)
    y = np.cumsum(dy)
    x -= np.repeat(x[start], lengths)
    y -= np.repeat(y[start], lengths)
    x += rng.uniform(0, size, n)[owner]
    y += rng.uniform(0, size, n)[owner]
    bright = rng.uniform(0.4, 1.0, n)[owner]
    xi = np.mod(np.round(x).astype(np.int64), size)
    yi = np.mod(np.round(y).astype(np.int64), size)
    np.add.at(canvas, yi * size + xi, bright)
    return canvas.reshape(size, size)


def _norm(x: np.ndarray, q: float = 99.5) -> np.ndarray:
    x = x - x.min()
    return (x / max(float(np.percentile(x[::4, ::4], q)), 1e-6)).astype(np.float32)


@lru_cache(maxsize=1)
def _textures() -> dict[str, np.ndarray]:
    rng = np.random.Generator(np.random.PCG64(20180101))
    t0 = {}
    # microtubule mesh: many thin gently curving filaments
    mt = _curves(rng, 14000, (30, 100), 0.7, 0.09)
    t0["mt"] = np.clip(_norm(_gauss_blur(mt, 0.5), 99.3), 0, 1.15)
    # intermediate filaments: long, wavy, thicker fibres (cartesian, for class 11)
    iff = _curves(rng, 900, (120, 320), 0.8, 0.05, wave=0.35)
    t0["if"] = np.clip(_norm(_gauss_blur(iff, 1.0), 99.3), 0, 1.3)
    # ER reticulum: zero crossings of band-pass noise plus fine granules
    w = rng.standard_normal((_TEX, _TEX)).astype(np.float32)
    band = _gauss_blur(w, 1.6) - _gauss_blur(w, 3.2)
    band /= band.std()
    ridges = np.exp(-((band / 0.35) ** 2))
    gran = np.clip(_gauss_blur(rng.standard_normal((_TEX, _TEX)).astype(np.float32), 0.7), 0, None)
    gran = gran / gran.std()
    t0["er"] = np.clip(_norm(0.7 * ridges + 0.35 * gran, 99.5), 0, 1.2)
    # chromatin mottle (nucleus), speckle blobs and smooth modulation
    mot = _gauss_blur(rng.standard_normal((_TEX, _TEX)).astype(np.float32), 2.5)
    mot += 0.5 * _gauss_blur(rng.standard_normal((_TEX, _TEX)).astype(np.float32), 1.0)
    t0["mottle"] = (mot / mot.std()).astype(np.float32)
    # low-frequency modulation, used for segments along fibres etc. (half res)
    low = _gauss_blur(rng.standard_normal((_TEX // 2, _TEX // 2)).astype(np.float32), 4.0)
    t0["low"] = (low / low.std()).astype(np.float32)
    sp = _gauss_blur(rng.standard_normal((_TEX // 2, _TEX // 2)).astype(np.float32), 1.1)
    t0["speck"] = (sp / sp.std()).astype(np.float32)
    # stress-fibre "barcode" (1-D, work res): thin bundles at irregular spacing
    # (bundles >= 0.75 px wide at work res: thinner ones alias into moire)
    nb = 900
    pos = np.cumsum(2.6 + rng.exponential(2.6, nb)) + 2
    xb = np.arange(int(pos[-1]) + 8, dtype=np.float64)
    bars = np.zeros_like(xb)
    for q, wq, bq in zip(pos, rng.uniform(0.75, 1.0, nb), rng.uniform(0.3, 1.0, nb)):
        lo, hi = int(q - 4), int(q + 5)
        bars[lo:hi] += bq * np.exp(-0.5 * ((xb[lo:hi] - q) / wq) ** 2)
    t0["bars"] = np.clip(bars, 0, 1).astype(np.float32)
    # sensor noise (full res, grey levels)
    t0["noise"] = (0.6 + 0.9 * rng.standard_normal((_TEX, _TEX))).astype(np.float32)
    # textures with the diffuse part folded in (one multiply per channel)
    t0["mt1"] = 0.8 * t0["mt"] + np.float32(0.25)
    t0["er1"] = 0.75 * t0["er"] + np.float32(0.3)
    t0["mot1"] = np.clip(0.85 + 0.22 * t0["mottle"], 0.3, 1.5).astype(np.float32)
    return t0


def _crop(tex: np.ndarray, h: int, w: int, rng) -> np.ndarray:
    th, tw = tex.shape
    if h <= th and w <= tw:
        oy = int(rng.integers(0, th - h + 1))
        ox = int(rng.integers(0, tw - w + 1))
        out = tex[oy : oy + h, ox : ox + w]
    else:
        oy, ox = rng.integers(0, th), rng.integers(0, tw)
        out = tex[np.ix_((oy + np.arange(h)) % th, (ox + np.arange(w)) % tw)]
    k = int(rng.integers(0, 4))
    if k & 1:
        out = out[::-1]
    if k & 2:
        out = out[:, ::-1]
    return out


# ----------------------------------------------------------------------------
# small kernels and splatting


@lru_cache(maxsize=256)
def _kernel(kind: str, a: float, b: float = 0.0, n_orient: int = 1) -> np.ndarray:
    """Kernel bank ``(n_orient, k, k)``: ``gauss`` (sigma_long a, sigma_short b),
    ``ring`` (radius a, width b), ``disc`` (radius a, edge b), ``comet``
    (head sigma a, tail length b), ``star`` (glow length a)."""
    if kind == "gauss":
        half = int(math.ceil(3 * max(a, b)))
    elif kind == "comet":
        half = int(math.ceil(max(3 * a, a + 2.5 * b)))
    elif kind == "star":
        half = int(math.ceil(3.5 * a))
    else:
        half = int(math.ceil(a + 3 * b + 1))
    half = max(half, 1)
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float64)
    out = []
    for k in range(n_orient):
        ang = np.pi * k / n_orient if kind != "comet" else 2 * np.pi * k / n_orient
        u = xx * np.cos(ang) + yy * np.sin(ang)
        v = -xx * np.sin(ang) + yy * np.cos(ang)
        r = np.hypot(xx, yy)
        if kind == "gauss":
            kk = np.exp(-0.5 * ((u / a) ** 2 + (v / b) ** 2))
        elif kind == "ring":
            kk = np.exp(-0.5 * ((r - a) / b) ** 2)
        elif kind == "disc":
            kk = 1.0 / (1.0 + np.exp((r - a) / max(b, 1e-3)))
        elif kind == "comet":
            head = np.exp(-0.5 * (u**2 + v**2) / a**2)
            tail = np.where(u < 0, np.exp(u / b), 0.0) * np.exp(-0.5 * v**2 / a**2)
            kk = np.maximum(head, 0.6 * tail)
        elif kind == "star":
            th = np.arctan2(yy, xx)
            rays = 0.35 + 0.65 * np.maximum(np.cos(7 * th), 0) ** 6
            kk = 0.55 * np.exp(-r / a) * rays + np.exp(-0.5 * r**2 / (0.3 * a) ** 2)
        else:  # pragma: no cover
            raise ValueError(kind)
        out.append(kk / kk.max())
    return np.asarray(out, np.float32)


def _splat(shape, ys, xs, bank, kidx=None, weights=None) -> np.ndarray:
    """Add kernels ``bank[kidx]`` centred at (ys, xs) into a zero canvas."""
    h, w = shape
    out_flat = np.zeros(h * w, np.float64)
    ys = np.round(np.asarray(ys)).astype(np.int64)
    xs = np.round(np.asarray(xs)).astype(np.int64)
    if ys.size == 0:
        return out_flat.reshape(h, w).astype(np.float32)
    nk, ks, _ = bank.shape
    half = ks // 2
    if kidx is None:
        kidx = np.zeros(ys.size, np.int64)
    if weights is None:
        weights = np.ones(ys.size)
    oy, ox = np.mgrid[-half : half + 1, -half : half + 1]
    py = ys[:, None, None] + oy[None]
    px = xs[:, None, None] + ox[None]
    vals = bank[np.asarray(kidx) % nk] * np.asarray(weights, np.float32)[:, None, None]
    ok = (py >= 0) & (py < h) & (px >= 0) & (px < w) & (vals > 1e-3)
    out_flat += np.bincount((py * w + px)[ok], weights=vals[ok], minlength=h * w)
    return out_flat.reshape(h, w).astype(np.float32)


# ----------------------------------------------------------------------------
# layout


NORMAL, DAUGHTER, MITOTIC = 0, 1, 2


@dataclass
class _Cells:
    """Per-cell geometry (work-resolution pixels)."""

    cx: np.ndarray
    cy: np.ndarray
    a: np.ndarray  # nucleus semi-axes
    b: np.ndarray
    phi: np.ndarray
    nh: np.ndarray  # (n, 2, 2): nucleus harmonics (amp, phase) for k=2,3
    width: np.ndarray  # mean cytoplasm width
    ch: np.ndarray  # (n, 4, 2): cytoplasm harmonics (amp, phase) for k=1..4
    kind: np.ndarray
    side: np.ndarray  # angle of the "Golgi side" (most cytoplasm)
    axis: np.ndarray  # spindle / division axis

    def __len__(self):
        return len(self.cx)

    @staticmethod
    def harmonics(c1, s1):
        """(cos k*theta, sin k*theta) for k = 1..4 from cos/sin theta (no trig)."""
        c2 = c1 * c1 - s1 * s1
        s2 = 2 * c1 * s1
        c3 = c2 * c1 - s2 * s1
        s3 = s2 * c1 + c2 * s1
        c4 = c2 * c2 - s2 * s2
        s4 = 2 * c2 * s2
        return ((c1, s1), (c2, s2), (c3, s3), (c4, s4))

    def rnuc(self, i, th=None, h=None):
        """Nucleus radius of cell(s) ``i`` at angle ``th`` (or harmonics ``h``)."""
        if h is None:
            h = self.harmonics(np.cos(th), np.sin(th))
        (c1, s1), (c2, s2), (c3, s3), _ = h
        cp, sp = np.cos(self.phi[i]), np.sin(self.phi[i])
        c = c1 * cp + s1 * sp
        s = s1 * cp - c1 * sp
        a, b = self.a[i], self.b[i]
        r = (a * b) / np.sqrt((b * c) ** 2 + (a * s) ** 2)
        nh = self.nh[i]
        f = 1 + nh[..., 0, 0] * (c2 * np.cos(nh[..., 0, 1]) - s2 * np.sin(nh[..., 0, 1]))
        f = f + nh[..., 1, 0] * (c3 * np.cos(nh[..., 1, 1]) - s3 * np.sin(nh[..., 1, 1]))
        return r * f

    def rnuc_fast(self, i: int, h):
        """:meth:`rnuc` for one cell over a pixel grid (fewer operations)."""
        (c1, s1), (c2, s2), (c3, s3), _ = h
        a, b, phi = float(self.a[i]), float(self.b[i]), float(self.phi[i])
        # b^2 cos^2(t-phi) + a^2 sin^2(t-phi) = A0 + A1 cos(2(t-phi))
        a0, a1 = (a * a + b * b) / 2, (b * b - a * a) / 2
        p, q = a1 * math.cos(2 * phi), a1 * math.sin(2 * phi)
        nh = self.nh[i].astype(np.float64)
        k2c, k2s = nh[0, 0] * math.cos(nh[0, 1]), nh[0, 0] * math.sin(nh[0, 1])
        k3c, k3s = nh[1, 0] * math.cos(nh[1, 1]), nh[1, 0] * math.sin(nh[1, 1])
        f = (np.float32(a * b) / np.sqrt(np.float32(a0) + np.float32(p) * c2 + np.float32(q) * s2))
        return f * (np.float32(1) + np.float32(k2c) * c2 - np.float32(k2s) * s2 + np.float32(k3c) * c3
                    - np.float32(k3s) * s3)

    def wcyt_fast(self, i: int, h):
        """:meth:`wcyt` for one cell over a pixel grid."""
        ch = self.ch[i].astype(np.float64)
        f = None
        for k in range(4):
            ck, sk = h[k]
            term = np.float32(ch[k, 0] * math.cos(ch[k, 1])) * ck + np.float32(ch[k, 0] * math.sin(ch[k, 1])) * sk
            f = term if f is None else f + term
        f += np.float32(1)
        np.maximum(f, np.float32(0.15), out=f)
        return f * np.float32(self.width[i])

    def wcyt(self, i, th=None, h=None):
        """Cytoplasm width of cell(s) ``i`` at angle ``th`` (or harmonics ``h``)."""
        if h is None:
            h = self.harmonics(np.cos(th), np.sin(th))
        ch = self.ch[i]
        f = 1.0
        for k in range(4):
            ck, sk = h[k]
            f = f + ch[..., k, 0] * (ck * np.cos(ch[..., k, 1]) + sk * np.sin(ch[..., k, 1]))
        return self.width[i] * np.maximum(f, np.float32(0.15))


@dataclass
class _Layout:
    r: int  # work resolution
    px: float  # work pixels per Kaggle-512 pixel
    cells: _Cells
    lab: np.ndarray  # int16, -1 outside
    sd: np.ndarray  # px from the nucleus edge along the ray (negative inside)
    rc: np.ndarray  # 0 at the nucleus edge, 1 at the cell edge
    cos: np.ndarray  # cos / sin of the angle around the own nucleus centre
    sin: np.ndarray
    rn: np.ndarray  # rho / nucleus radius
    inside: np.ndarray
    nuc: np.ndarray  # interphase nucleus pixels
    cyt: np.ndarray
    nucleoli: list = field(default_factory=list)  # (y, x, radius, cell)
    pair: tuple | None = None  # (i, j) daughter cells
    mitotic: list = field(default_factory=list)


def _place_cells(rng, r, px, want_pair, want_mitotic):
    n_target = int(rng.integers(17, 30) * (r / (512 * px)) ** 2 + 0.5)
    n_target = max(n_target, 1)
    dense = rng.uniform(0.9, 1.2)
    cols = {k: [] for k in ("cx", "cy", "a", "b", "phi", "width", "kind", "axis")}

    def add(cx, cy, a, b, phi, width, kind, axis=0.0):
        for k, v in zip(cols, (cx, cy, a, b, phi, width, kind, axis)):
            cols[k].append(v)

    def free(cx, cy, rad):
        for x, y, a, w in zip(cols["cx"], cols["cy"], cols["a"], cols["width"]):
            if (x - cx) ** 2 + (y - cy) ** 2 < (rad + a + 0.2 * w) ** 2:
                return False
        return True

    margin = 0.15 * r
    if want_pair:
        for _ in range(50):
            cx, cy = rng.uniform(margin, r - margin, 2)
            ax = rng.uniform(0, np.pi)
            a = rng.uniform(9, 12) * px
            w = rng.uniform(11, 15) * px
            d = (a + w) * rng.uniform(1.05, 1.25)
            if free(cx, cy, d + a):
                for sgn in (-1, 1):
                    add(cx + sgn * d * np.cos(ax), cy + sgn * d * np.sin(ax), a, a * rng.uniform(0.85, 1.0),
                        rng.uniform(0, np.pi), w, DAUGHTER, ax)
                break
    if want_mitotic:
        for _ in range(50):
            cx, cy = rng.uniform(margin, r - margin, 2)
            if free(cx, cy, 45 * px):
                add(cx, cy, 5 * px, 5 * px, 0.0, rng.uniform(26, 32) * px, MITOTIC, rng.uniform(0, np.pi))
                break
    # best-candidate sampling (most room among a few darts): an even spread of
    # cells like a subconfluent culture, without big empty holes
    tries = 0
    while len(cols["cx"]) < n_target and tries < 80:
        tries += 1
        cand = rng.uniform(-0.03 * r, 1.03 * r, (8, 2))
        a = rng.uniform(18, 29) * px
        if cols["cx"]:
            ext = np.asarray(cols["a"]) + 0.2 * np.asarray(cols["width"])
            gap = (np.hypot(np.asarray(cols["cx"])[None] - cand[:, :1], np.asarray(cols["cy"])[None] - cand[:, 1:])
                   - ext[None]).min(1)
            k = int(gap.argmax())
            if gap[k] < a + 6 * px:
                continue
        else:
            k = 0
        cx, cy = float(cand[k, 0]), float(cand[k, 1])
        add(cx, cy, a, a * rng.uniform(0.55, 0.85), rng.uniform(0, np.pi),
            rng.uniform(18, 30) * px * dense, NORMAL)
    n = len(cols["cx"])
    arr = {k: np.asarray(v, np.float64) for k, v in cols.items()}
    kind = arr["kind"].astype(np.int64)
    nh = np.stack([rng.uniform(0, 0.06, (n, 2)), rng.uniform(0, 2 * np.pi, (n, 2))], -1)
    # cytoplasm harmonics: k=1 offsets the nucleus, k=2 (along the nucleus'
    # long axis) elongates the cell (aspect 1.5-3, some spindle-shaped), k=3/4
    # give polygonal corners
    amps = rng.uniform(0, 1, (n, 4)) * np.array([0.45, 0.0, 0.2, 0.14])
    amps[:, 0] += 0.1
    amps[:, 1] = np.where(rng.random(n) < 0.25, rng.uniform(0.85, 1.0, n), rng.uniform(0.5, 0.85, n))
    amps[kind != NORMAL] *= 0.2
    phases = rng.uniform(0, 2 * np.pi, (n, 4))
    phases[:, 1] = 2 * arr["phi"] + rng.normal(0, 0.2, n)
    ch = np.stack([amps, phases], -1)
    # the side with most cytoplasm hosts the Golgi / MTOC
    side = ch[:, 0, 1] + rng.normal(0, 0.3, n)
    f32 = lambda x: np.asarray(x, np.float32)  # noqa: E731
    return _Cells(f32(arr["cx"]), f32(arr["cy"]), f32(arr["a"]), f32(arr["b"]), f32(arr["phi"]), f32(nh),
                  f32(arr["width"]), f32(ch), kind, f32(side), f32(arr["axis"]))


def _layout(rng, size, labels) -> _Layout:
    r = max(size // 2, 32)
    fov = min(max(size / 512.0, 0.5), 1.0)
    px = (r / size) * fov
    labels = set(labels)
    want_pair = 16 in labels or rng.random() < 0.25
    want_mit = 17 in labels or rng.random() < 0.2
    cells = _place_cells(rng, r, px, want_pair, want_mit)
    n = len(cells)
    best = np.full((r, r), np.inf, np.float32)
    lab = np.full((r, r), -1, np.int16)
    sd = np.full((r, r), 1e3, np.float32)
    c1_g = np.ones((r, r), np.float32)
    s1_g = np.zeros((r, r), np.float32)
    rn_g = np.full((r, r), 10.0, np.float32)
    for i in range(n):
        ext = cells.a[i] * 1.15 + cells.width[i] * (1 + np.abs(cells.ch[i, :, 0]).sum())
        y0, y1 = max(int(cells.cy[i] - ext), 0), min(int(cells.cy[i] + ext) + 2, r)
        x0, x1 = max(int(cells.cx[i] - ext), 0), min(int(cells.cx[i] + ext) + 2, r)
        if y1 <= y0 or x1 <= x0:
            continue
        dy = (np.arange(y0, y1, dtype=np.float32) - np.float32(cells.cy[i]))[:, None]
        dx = (np.arange(x0, x1, dtype=np.float32) - np.float32(cells.cx[i]))[None, :]
        rho = np.sqrt(dx * dx + dy * dy) + np.float32(1e-3)
        inv = np.float32(1) / rho
        c1 = dx * inv
        s1 = dy * inv
        h = cells.harmonics(c1, s1)
        rnu = cells.rnuc_fast(i, h)
        s = rho - rnu
        rcv = s / cells.wcyt_fast(i, h)
        sl = (slice(y0, y1), slice(x0, x1))
        win = rcv < best[sl]
        np.copyto(best[sl], rcv, where=win)
        np.copyto(lab[sl], np.int16(i), where=win)
        np.copyto(sd[sl], s, where=win)
        np.copyto(c1_g[sl], c1, where=win)
        np.copyto(s1_g[sl], s1, where=win)
        np.copyto(rn_g[sl], rho / rnu, where=win)
    # irregular outlines: perturb the normalised coordinate with smooth noise
    # (mostly near the cell edge, so the nucleus-side geometry is kept)
    wob = _crop(_textures()["low"], r, r, rng)
    best = best * (np.float32(1) + np.float32(0.13) * np.clip(wob, -2.5, 2.5) * np.clip(best, 0, 1))
    inside = best < 1.0
    lab[~inside] = -1
    kind_px = np.append(cells.kind, -1)[lab]
    nuc = inside & (sd < 0) & (kind_px != MITOTIC)
    cyt = inside & ~nuc
    rc = np.clip(np.where(inside, best, 1.0), 0, 1).astype(np.float32)
    lay = _Layout(r, px, cells, lab, sd, rc, c1_g, s1_g, rn_g, inside, nuc, cyt)
    idx = np.flatnonzero(cells.kind == DAUGHTER)
    if len(idx) == 2:
        lay.pair = (int(idx[0]), int(idx[1]))
        _add_bridge_territory(lay)
    lay.mitotic = [int(i) for i in np.flatnonzero(cells.kind == MITOTIC)]
    # nucleoli: 1-4 per interphase nucleus (work-res positions)
    k = np.where(cells.kind == NORMAL, rng.integers(1, 5, n), rng.integers(0, 2, n))
    k[cells.kind == MITOTIC] = 0
    ci = np.repeat(np.arange(n), k)
    t = rng.uniform(0, 2 * np.pi, ci.size)
    rho = np.sqrt(rng.uniform(0, 1, ci.size)) * 0.55 * cells.rnuc(ci, t)
    rad = rng.uniform(2.0, 3.6, ci.size) * px * 2
    lay.nucleoli = list(zip(cells.cy[ci] + rho * np.sin(t), cells.cx[ci] + rho * np.cos(t), rad, ci.tolist()))
    return lay


def _pair_frame(lay, pad=0.0):
    """Local frame of the daughter pair: (slices, u along the axis, v across, half-gap)."""
    i, j = lay.pair
    c = lay.cells
    mx, my = (c.cx[i] + c.cx[j]) / 2, (c.cy[i] + c.cy[j]) / 2
    half = math.hypot(c.cx[j] - c.cx[i], c.cy[j] - c.cy[i]) / 2
    ang = math.atan2(c.cy[j] - c.cy[i], c.cx[j] - c.cx[i])
    ext = half + 4
    r = lay.r
    y0, y1 = max(int(my - ext), 0), min(int(my + ext) + 2, r)
    x0, x1 = max(int(mx - ext), 0), min(int(mx + ext) + 2, r)
    dy = (np.arange(y0, y1, dtype=np.float32) - my)[:, None]
    dx = (np.arange(x0, x1, dtype=np.float32) - mx)[None, :]
    u = dx * math.cos(ang) + dy * math.sin(ang)
    v = -dx * math.sin(ang) + dy * math.cos(ang)
    gap = half - float(c.a[i])  # from the centre to the nucleus edge
    return (slice(y0, y1), slice(x0, x1)), u, v, gap


def _bridge_pattern(lay):
    sl, u, v, gap = _pair_frame(lay)
    wid = 0.85 * max(lay.px * 2, 0.5)
    along = np.clip((gap - np.abs(u)) / 1.5, 0, 1)
    line = np.exp(-0.5 * (v / wid) ** 2) * along
    mid = np.exp(-0.5 * (u**2 + v**2) / (1.3 * wid + 0.5) ** 2)
    out = np.zeros((lay.r, lay.r), np.float32)
    out[sl] = 0.55 * line + mid
    return out, sl, u


def _add_bridge_territory(lay):
    pat, sl, u = _bridge_pattern(lay)
    sub = pat[sl] > 0.2
    free = sub & (lay.lab[sl] < 0)
    if free.any():
        i, j = lay.pair
        lab = lay.lab[sl]
        lab[free] = np.where(u[free] < 0, i, j).astype(np.int16)
        lay.inside[sl][free] = True
        lay.cyt[sl][free] = True
        lay.rc[sl][free] = 0.95
        lay.sd[sl][free] = 20.0


# ----------------------------------------------------------------------------
# point sampling


def _points_cyto(rng, lay, counts, rc_lo, rc_hi, power=1.0):
    """Random points in the cytoplasm of each cell (``counts`` per cell)."""
    c = lay.cells
    counts = np.asarray(counts, np.int64)
    ci = np.repeat(np.arange(len(c)), counts)
    if ci.size == 0:
        return np.zeros(0), np.zeros(0), ci, np.zeros(0)
    th = rng.uniform(0, 2 * np.pi, ci.size)
    t = rc_lo + (rc_hi - rc_lo) * rng.uniform(0, 1, ci.size) ** power
    rho = c.rnuc(ci, th) + t * c.wcyt(ci, th)
    ys = c.cy[ci] + rho * np.sin(th)
    xs = c.cx[ci] + rho * np.cos(th)
    return _keep_own(lay, ys, xs, ci, th, want_cyt=True)


def _points_nuc(rng, lay, counts, fmax=0.8):
    c = lay.cells
    counts = np.where(lay.cells.kind == MITOTIC, 0, np.asarray(counts, np.int64))
    ci = np.repeat(np.arange(len(c)), counts)
    th = rng.uniform(0, 2 * np.pi, ci.size)
    rho = np.sqrt(rng.uniform(0, 1, ci.size)) * fmax * c.rnuc(ci, th)
    ys = c.cy[ci] + rho * np.sin(th)
    xs = c.cx[ci] + rho * np.cos(th)
    return _keep_own(lay, ys, xs, ci, th, want_cyt=False)


def _points_side(rng, lay, dist, jitter=0.25, cells=None):
    """One point per cell beside the nucleus, on the cell's Golgi side."""
    c = lay.cells
    ci = np.flatnonzero(c.kind != MITOTIC) if cells is None else np.asarray(cells)
    th = c.side[ci] + rng.normal(0, jitter, ci.size)
    rho = c.rnuc(ci, th) + np.asarray(dist)
    ys = c.cy[ci] + rho * np.sin(th)
    xs = c.cx[ci] + rho * np.cos(th)
    return _keep_own(lay, ys, xs, ci, th, want_cyt=True)


def _keep_own(lay, ys, xs, ci, th, want_cyt):
    r = lay.r
    yi = np.round(ys).astype(np.int64)
    xi = np.round(xs).astype(np.int64)
    ok = (yi >= 0) & (yi < r) & (xi >= 0) & (xi < r)
    yi, xi = np.where(ok, yi, 0), np.where(ok, xi, 0)
    own = lay.lab[yi, xi] == ci
    region = lay.cyt[yi, xi] if want_cyt else lay.nuc[yi, xi]
    keep = ok & own & region
    return ys[keep], xs[keep], ci[keep], th[keep]


def _per_cell(rng, lay, mean, scale=1.0, kinds=(NORMAL, DAUGHTER)):
    n = len(lay.cells)
    counts = rng.poisson(mean * scale, n)
    counts[~np.isin(lay.cells.kind, kinds)] = 0
    return counts


def _orient_index(th, n):
    return np.round(np.mod(th, np.pi) / np.pi * n).astype(np.int64) % n


# ----------------------------------------------------------------------------
# green patterns, one per class (work resolution, peak ~1)


def _ang_diff(a, b):
    return np.angle(np.exp(1j * (a - b)))


def _p_nucleoplasm(ctx, p):
    lay = ctx.lay
    mot = ctx.low_speck * (0.15 + 0.2 * p["tex"])
    return np.where(lay.nuc, np.clip(0.85 + mot, 0.3, 1.2) * (1 - 0.9 * ctx.nucleoli), 0).astype(np.float32) * ctx.nuc_soft


def _p_nuclear_membrane(ctx, p):
    lay = ctx.lay
    w = 0.85 * lay.px * 2 * p["size"] + 0.15
    ring = np.exp(-0.5 * (lay.sd / w) ** 2)
    ok = (lay.rn < 2.0) & ctx.interphase
    return np.where(ok, ring * (0.8 + 0.25 * ctx.low_speck), 0).astype(np.float32)


def _p_nucleoli(ctx, p):
    return np.clip(ctx.nucleoli * (0.9 + 0.1 * p["tex"]), 0, 1.2)


def _p_fibrillar(ctx, p):
    lay = ctx.lay
    rng = ctx.rng
    ys, xs = [], []
    for (y, x, rad, _ci) in lay.nucleoli:
        k = int(rng.integers(1, 4))
        ang = rng.uniform(0, 2 * np.pi, k)
        d = rng.uniform(0, 0.5, k) * rad
        ys.extend(y + d * np.sin(ang))
        xs.extend(x + d * np.cos(ang))
    bank = _kernel("gauss", 0.45 * lay.px * 2 * p["size"] + 0.15, 0.45 * lay.px * 2 * p["size"] + 0.15)
    return _splat((lay.r, lay.r), ys, xs, bank)


def _p_speckles(ctx, p):
    lay = ctx.lay
    thr = 0.45 + 0.4 * p["tex"]
    sp = np.clip(ctx.speck - thr, 0, None)
    sp = sp / max(float(sp.max()), 1e-6)
    return np.where(lay.nuc, np.sqrt(sp), 0).astype(np.float32) * (1 - ctx.nucleoli)


def _p_nuclear_bodies(ctx, p):
    lay = ctx.lay
    ys, xs, ci, _ = _points_nuc(ctx.rng, lay, _per_cell(ctx.rng, lay, 3.0, p["count"]) + 1, 0.75)
    s = 0.8 * lay.px * 2 * p["size"]
    return _splat((lay.r, lay.r), ys, xs, _kernel("gauss", s, s))


def _p_er(ctx, p):
    return ctx.er_env


def _p_golgi(ctx, p):
    lay = ctx.lay
    c = lay.cells
    side = np.append(c.side, 0)[lay.lab]
    cosd = lay.cos * np.cos(side) + lay.sin * np.sin(side)
    span = 0.25 + 0.2 * p["size"]
    d0 = (5 + 3 * p["size"]) * lay.px * 2
    dw = 2.2 * lay.px * 2 * p["size"]
    env = np.exp((cosd - 1) / span**2) * np.exp(-0.5 * ((lay.sd - d0) / dw) ** 2)
    tex = np.clip(ctx.low_speck * 0.6 + 0.8 + 0.6 * ctx.speck_pos, 0, None)
    ok = lay.cyt & (np.append(c.kind, -1)[lay.lab] != MITOTIC)
    out = np.where(ok, env * tex, 0)
    return _normmax(out)


def _normmax(x, q=None):
    m = float(x.max()) if q is None else float(np.percentile(x[x > 0], q)) if (x > 0).any() else 0.0
    return (x / m).astype(np.float32) if m > 0 else x.astype(np.float32)


def _dots(ctx, p, mean, sig, rc_lo, rc_hi, power=1.0, aniso=1.0, n_orient=1):
    lay = ctx.lay
    ys, xs, ci, th = _points_cyto(ctx.rng, lay, _per_cell(ctx.rng, lay, mean, p["count"] * lay.px * 2), rc_lo,
                                  rc_hi, power)
    s = sig * lay.px * 2 * p["size"]
    bank = _kernel("gauss", s * aniso, s, n_orient)
    kidx = ctx.rng.integers(0, n_orient, ys.size)
    w = ctx.rng.uniform(0.6, 1.0, ys.size)
    return _splat((lay.r, lay.r), ys, xs, bank, kidx, w)


def _p_peroxisomes(ctx, p):
    return _dots(ctx, p, 45, 0.55, 0.03, 0.95)


def _p_endosomes(ctx, p):
    return _dots(ctx, p, 20, 1.05, 0.05, 0.9, aniso=1.5, n_orient=6)


def _p_lysosomes(ctx, p):
    lay = ctx.lay
    ys, xs, ci, th = _points_cyto(ctx.rng, lay, _per_cell(ctx.rng, lay, 14, p["count"] * lay.px * 2), 0.02, 0.75,
                                  power=2.0)
    rad = 1.3 * lay.px * 2 * p["size"]
    bank = np.concatenate([_kernel("ring", rad, 0.45 + 0.1 * rad),
                           _pad_to(_kernel("disc", rad * 0.9, 0.4), _kernel("ring", rad, 0.45 + 0.1 * rad).shape[-1])])
    kidx = (ctx.rng.random(ys.size) < 0.35).astype(np.int64)
    return _splat((lay.r, lay.r), ys, xs, bank, kidx, ctx.rng.uniform(0.7, 1.0, ys.size))


def _pad_to(bank, ks):
    k = bank.shape[-1]
    if k >= ks:
        c = (k - ks) // 2
        return bank[:, c : c + ks, c : c + ks]
    pad = (ks - k) // 2
    return np.pad(bank, ((0, 0), (pad, ks - k - pad), (pad, ks - k - pad)))


def _p_intermediate(ctx, p):
    lay = ctx.lay
    env = np.where(lay.cyt, 0.6 + 0.6 * np.exp(-2.0 * lay.rc), 0) * (lay.rc < 0.97)
    return (env * ctx.if_tex).astype(np.float32)


def _p_actin(ctx, p):
    """Stress fibres: long straight bundles along the cell's long axis (a few
    crossing at a small angle), segmented, dimmer over the nucleus."""
    lay = ctx.lay
    c = lay.cells
    rng = ctx.rng
    n = len(c)
    bars = _textures()["bars"]
    nb = bars.size
    yy, xx = ctx.grid
    dx = xx - np.append(c.cx, 0)[lay.lab]
    dy = yy - np.append(c.cy, 0)[lay.lab]
    k = 1.0 / max(lay.px * 2 * (0.8 + 0.3 * p["size"]), 1.0)
    out = np.zeros((lay.r, lay.r), np.float32)
    for fam, w in ((0.0, 1.0), (rng.choice([-1, 1]) * rng.uniform(0.1, 0.2), 0.25)):
        ang = np.append(c.phi + fam + rng.normal(0, 0.08, n), 0)[lay.lab]
        off = np.append(rng.uniform(10, nb - 400, n), 0)[lay.lab]
        u = (-dx * np.sin(ang) + dy * np.cos(ang)) * k + off
        out += w * np.interp(u, np.arange(nb, dtype=np.float32), bars).astype(np.float32)
    seg = np.clip(0.5 + 0.6 * ctx.low, 0.1, 1)
    ok = lay.inside & (np.append(c.kind, -1)[lay.lab] == NORMAL) & (lay.rc < 0.97)
    return np.where(ok, np.clip(out, 0, 1.2) * seg * np.where(lay.nuc, 0.55, 1.0), 0).astype(np.float32)


def _p_focal(ctx, p):
    lay = ctx.lay
    ys, xs, ci, th = _points_cyto(ctx.rng, lay, _per_cell(ctx.rng, lay, 16, p["count"], kinds=(NORMAL,)), 0.8, 0.95)
    s = 0.55 * lay.px * 2 * p["size"] + 0.2
    bank = _kernel("gauss", s * 3.2, s, 12)
    return _splat((lay.r, lay.r), ys, xs, bank, _orient_index(th, 12), ctx.rng.uniform(0.6, 1.0, ys.size))


def _p_microtubules(ctx, p):
    return ctx.mt_env


def _p_mt_ends(ctx, p):
    lay = ctx.lay
    ys, xs, ci, th = _points_cyto(ctx.rng, lay, _per_cell(ctx.rng, lay, 30, p["count"] * lay.px * 2), 0.35, 0.95,
                                  power=0.6)
    s = 0.45 * lay.px * 2 + 0.2
    bank = _kernel("comet", s, 2.2 * lay.px * 2 * p["size"], 16)
    kidx = np.round(np.mod(th, 2 * np.pi) / (2 * np.pi) * 16).astype(np.int64) % 16
    return _splat((lay.r, lay.r), ys, xs, bank, kidx, ctx.rng.uniform(0.5, 1.0, ys.size))


def _p_bridge(ctx, p):
    lay = ctx.lay
    if lay.pair is None:
        return np.zeros((lay.r, lay.r), np.float32)
    return _bridge_pattern(lay)[0]


def _spindle(lay, i, px):
    c = lay.cells
    ang = c.axis[i]
    L = 17 * px * 2
    ext = int(L + 3)
    r = lay.r
    cy, cx = c.cy[i], c.cx[i]
    y0, y1 = max(int(cy - ext), 0), min(int(cy + ext) + 2, r)
    x0, x1 = max(int(cx - ext), 0), min(int(cx + ext) + 2, r)
    dy = (np.arange(y0, y1, dtype=np.float32) - cy)[:, None]
    dx = (np.arange(x0, x1, dtype=np.float32) - cx)[None, :]
    u = dx * math.cos(ang) + dy * math.sin(ang)
    v = -dx * math.sin(ang) + dy * math.cos(ang)
    return (slice(y0, y1), slice(x0, x1)), u, v, L


def _p_spindle(ctx, p):
    lay = ctx.lay
    out = np.zeros((lay.r, lay.r), np.float32)
    for i in lay.mitotic:
        sl, u, v, L = _spindle(lay, i, lay.px)
        t = np.clip(np.abs(u) / L, 0, 1)
        hw = 9 * lay.px * 2 * (1 - t**1.6) + 0.6
        q = v / hw
        fib = (0.55 + 0.45 * np.cos(np.pi * 3.5 * q) ** 2) * np.clip(1 - q**2, 0, 1)
        poles = np.exp(-0.5 * ((np.abs(u) - L) ** 2 + v**2) / (1.2 * lay.px * 2) ** 2)
        out[sl] = np.maximum(out[sl], (fib * (np.abs(u) < L) * 0.85 + poles).astype(np.float32))
    return out


def _p_mtoc(ctx, p):
    lay = ctx.lay
    ys, xs, ci, _ = _points_side(ctx.rng, lay, 4 * lay.px * 2)
    bank = _kernel("star", 4.2 * lay.px * 2 * p["size"] + 0.5)
    return _splat((lay.r, lay.r), ys, xs, bank)


def _p_centrosome(ctx, p):
    lay = ctx.lay
    rng = ctx.rng
    ys, xs, ci, th = _points_side(rng, lay, 3 * lay.px * 2)
    two = rng.random(ys.size) < 0.6
    d = 2.4 * lay.px * 2
    ang = rng.uniform(0, 2 * np.pi, ys.size)
    ys = np.concatenate([ys, (ys + d * np.sin(ang))[two]])
    xs = np.concatenate([xs, (xs + d * np.cos(ang))[two]])
    s = 0.6 * lay.px * 2 + 0.15
    return _splat((lay.r, lay.r), ys, xs, _kernel("gauss", s, s))


def _p_lipid(ctx, p):
    lay = ctx.lay
    ys, xs, ci, _ = _points_cyto(ctx.rng, lay, _per_cell(ctx.rng, lay, 6, p["count"]), 0.1, 0.85)
    rad = 2.2 * lay.px * 2 * p["size"]
    bank = np.concatenate([_pad_to(_kernel("ring", rad * f, 0.5), _kernel("ring", rad * 1.3, 0.5).shape[-1])
                           for f in (0.8, 1.0, 1.3)])
    return _splat((lay.r, lay.r), ys, xs, bank, ctx.rng.integers(0, 3, ys.size), ctx.rng.uniform(0.7, 1, ys.size))


def _edges(lab, junction_only):
    e = np.zeros(lab.shape, bool)
    for a, b in (((slice(1, None),), (slice(None, -1),)), ((slice(None), slice(1, None)), (slice(None), slice(None, -1)))):
        la, lb = lab[a], lab[b]
        diff = la != lb
        if junction_only:
            diff &= (la >= 0) & (lb >= 0)
        e[a] |= diff
        e[b] |= diff
    return e & (lab >= 0)


def _p_membrane(ctx, p):
    """A thin rim: the outer ~1 px of each cell (towards the background) and
    the borders between touching cells, with uneven brightness."""
    lay = ctx.lay
    # distance (work px) to the cell edge along the ray: (1 - rc) * cytoplasm width
    wc = lay.sd / np.maximum(lay.rc, 0.05)
    dist = (1.0 - lay.rc) * np.maximum(wc, 1.0)
    rim = np.exp(-0.5 * (dist / 0.7) ** 2) * lay.cyt
    e = np.maximum(rim, np.clip(1.5 * _blur(_edges(lay.lab, True).astype(np.float32), 1, 0.15), 0, 1))
    return (e * np.clip(0.7 + 0.35 * ctx.low_speck * 2, 0.25, 1.1)).astype(np.float32)


def _p_junctions(ctx, p):
    """Only where two cells touch: their shared border, beaded."""
    lay = ctx.lay
    e = _edges(lay.lab, True).astype(np.float32)
    bead = np.clip(0.55 + 0.3 * ctx.speck, 0.15, 1.1)
    return (e * bead).astype(np.float32)


def _p_mito(ctx, p):
    return _dots(ctx, p, 80, 0.45, 0.0, 0.95, power=1.6, aniso=3.0, n_orient=8)


def _p_aggresome(ctx, p):
    lay = ctx.lay
    rng = ctx.rng
    rad = 3.4 * lay.px * 2 * p["size"]
    ys, xs, ci, th = _points_side(rng, lay, rad + 1.0, jitter=0.5)
    bank = _kernel("disc", rad, 0.6)
    out = _splat((lay.r, lay.r), ys, xs, bank)
    off = rng.normal(0, rad * 0.45, (2, ys.size))
    out += 0.8 * _splat((lay.r, lay.r), ys + off[0], xs + off[1], _kernel("disc", rad * 0.7, 0.6))
    return np.clip(out, 0, 1.2)


def _p_cytosol(ctx, p):
    lay = ctx.lay
    return np.where(lay.cyt, (0.55 + 0.12 * ctx.low_speck) * (1 - 0.25 * lay.rc), 0).astype(np.float32) * ctx.cell_soft


def _p_cyto_bodies(ctx, p):
    lay = ctx.lay
    ys, xs, ci, _ = _points_cyto(ctx.rng, lay, _per_cell(ctx.rng, lay, 2.0, p["count"]), 0.15, 0.8)
    return _splat((lay.r, lay.r), ys, xs, _kernel("disc", 1.5 * lay.px * 2 * p["size"], 0.45))


def _p_rods_rings(ctx, p):
    lay = ctx.lay
    rng = ctx.rng
    ys, xs, ci, _ = _points_cyto(rng, lay, _per_cell(rng, lay, 2.0, p["count"]), 0.1, 0.85)
    s = 0.45 * lay.px * 2 + 0.2
    rod = _kernel("gauss", s * 6, s, 8)
    ring = _kernel("ring", 2.0 * lay.px * 2 * p["size"], 0.45)
    ks = max(rod.shape[-1], ring.shape[-1])
    bank = np.concatenate([_pad_to(rod, ks), _pad_to(ring, ks)])
    kidx = np.where(rng.random(ys.size) < 0.5, rng.integers(0, 8, ys.size), 8)
    return _splat((lay.r, lay.r), ys, xs, bank, kidx)


_RENDER = {
    0: _p_nucleoplasm, 1: _p_nuclear_membrane, 2: _p_nucleoli, 3: _p_fibrillar, 4: _p_speckles,
    5: _p_nuclear_bodies, 6: _p_er, 7: _p_golgi, 8: _p_peroxisomes, 9: _p_endosomes, 10: _p_lysosomes,
    11: _p_intermediate, 12: _p_actin, 13: _p_focal, 14: _p_microtubules, 15: _p_mt_ends, 16: _p_bridge,
    17: _p_spindle, 18: _p_mtoc, 19: _p_centrosome, 20: _p_lipid, 21: _p_membrane, 22: _p_junctions,
    23: _p_mito, 24: _p_aggresome, 25: _p_cytosol, 26: _p_cyto_bodies, 27: _p_rods_rings,
}
#: Display gain per class (diffuse fills dimmer, small structures brighter);
#: masks are thresholded on the unscaled pattern, so this changes looks only.
_BOOST = {0: 0.7, 1: 1.5, 2: 1.2, 7: 1.5, 16: 1.8, 17: 1.6, 18: 1.7, 19: 2.2, 21: 1.2, 22: 1.3, 25: 0.6}

#: Classes whose pattern is a full-resolution texture (mask from the full-res pattern).
_FULLRES = {6, 11, 14}


# ----------------------------------------------------------------------------
# the field


@dataclass
class SyntheticField:
    id: str
    image: np.ndarray  # (4, H, W) uint8, RGBY
    masks: np.ndarray  # (28, H, W) bool
    labels: tuple[int, ...]
    antibody: str


class _Ctx:
    pass


def _up(x: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upsampling of a work-resolution float map to ``size`` x ``size``."""
    return np.array(Image.fromarray(np.ascontiguousarray(x, np.float32), mode="F").resize((size, size), Image.BILINEAR))


def _up_mask(m: np.ndarray, size: int) -> np.ndarray:
    im = Image.fromarray(m.astype(np.uint8) * 255, mode="L").resize((size, size), Image.NEAREST)
    return np.asarray(im) > 127


def _seedseq(seed) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        return np.random.SeedSequence(int(seed))
    raise SynthError(f"seed must be a non-negative integer or a numpy SeedSequence, not {seed!r}")


def generate_field(
    seed: int | np.random.SeedSequence,
    size: int = 512,
    labels: Sequence[int] | None = None,
    *,
    antibody_params: dict | None = None,
    freq: str = "uniform",
    id: str | None = None,
    antibody: str = "ab0000",
) -> SyntheticField:
    """Render one field of view; ``labels`` are drawn (with ``freq``) when None.

    ``antibody_params`` come from :func:`draw_antibody_params` (drawn from the
    field's own seed when None); fields that share them look like the same
    antibody.
    """
    _check_freq(freq)
    size = _check_size(size)
    ss = _seedseq(seed)
    base = np.random.Generator(np.random.PCG64(ss))
    if labels is None:
        labels = draw_labels(base, freq)
    labels = tuple(sorted({int(c) for c in labels}))
    for c in labels:
        if not 0 <= c < NUM_CLASSES:
            raise SynthError(f"class index {c} is outside 0-{NUM_CLASSES - 1}")
    if antibody_params is None:
        antibody_params = draw_antibody_params(base, labels)
    if id is None:
        id = f"synth_{ss.entropy}_" + "_".join(str(k) for k in ss.spawn_key) if ss.spawn_key else f"synth_{ss.entropy}"
    # a layout that leaves some class without pixels (e.g. no touching cells for
    # junctions) is redrawn from a child seed: still deterministic
    children = [np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + (k,)) for k in range(8)]
    for attempt, child in enumerate(children):
        out = _render(np.random.Generator(np.random.PCG64(child)), size, labels, antibody_params)
        if out is not None or attempt == len(children) - 1:
            break
    if out is None:  # pragma: no cover - practically unreachable
        raise RuntimeError(f"could not render a field with every class of {labels} visible")
    image, masks = out
    return SyntheticField(id=id, image=image, masks=masks, labels=labels, antibody=antibody)


def _check_size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise SynthError(f"size must be an integer, not {size!r}")
    if size < 64:
        raise SynthError(f"size must be at least 64 pixels, not {size}")
    if size > 8192:
        raise SynthError(f"size must be at most 8192 pixels, not {size}")
    return int(size)


def _render(rng, size, labels, ab):
    tex = _textures()
    lay = _layout(rng, size, labels)
    r, S, px = lay.r, size, lay.px
    n = len(lay.cells)
    kind_px = np.append(lay.cells.kind, -1)[lay.lab]
    ctx = _Ctx()
    ctx.rng, ctx.lay = rng, lay
    ctx.grid = np.mgrid[0:r, 0:r].astype(np.float32)
    ctx.interphase = kind_px != MITOTIC
    ctx.low = _crop(tex["low"], r, r, rng)
    ctx.low_speck = np.clip(_crop(tex["low"], r, r, rng), -2.5, 2.5) * 0.5
    ctx.speck = _crop(tex["speck"], r, r, rng)
    ctx.speck_pos = np.clip(ctx.speck, 0, 2.5)
    # soft edges (work res)
    ctx.cell_soft = np.clip((1.0 - lay.rc) * 14.0, 0, 1).astype(np.float32) * lay.inside
    ctx.nuc_soft = np.clip(-lay.sd / (0.9 * px * 2) + 0.5, 0, 1).astype(np.float32) * (lay.rn < 2) * ctx.interphase
    # nucleoli (always: blue holes, class 0 exclusion, classes 2/3)
    ys = [q[0] for q in lay.nucleoli]
    xs = [q[1] for q in lay.nucleoli]
    rads = np.array([q[2] for q in lay.nucleoli])
    radset = (2.0 * px * 2, 2.7 * px * 2, 3.4 * px * 2)
    ks = _kernel("disc", radset[-1], 0.5).shape[-1]
    bank = np.concatenate([_pad_to(_kernel("disc", rr, 0.5), ks) for rr in radset])
    kidx = np.abs(rads[:, None] - np.asarray(radset)[None]).argmin(1) if len(rads) else None
    nucl = _splat((r, r), ys, xs, bank, kidx)
    nucl2 = _splat((r, r), np.array(ys) + rng.normal(0, 1.2 * px * 2, len(ys)),
                   np.array(xs) + rng.normal(0, 1.2 * px * 2, len(xs)), bank, kidx) if len(ys) else nucl
    ctx.nucleoli = np.clip(np.maximum(nucl, 0.8 * nucl2), 0, 1) * lay.nuc

    # per-cell brightness
    def gains(sd_, lo=0.25):
        g = np.exp(rng.normal(0, sd_, n))
        g = np.clip(g, lo, 2.5)
        return np.append(g, 1.0).astype(np.float32)[lay.lab]

    g_red = gains(0.4)
    g_yel = gains(0.3)
    g_blu = gains(0.22)
    g_grn = gains(ab["cell_sd"], 0.45)
    mit_boost = np.where(kind_px == MITOTIC, 1.5, np.where(kind_px == DAUGHTER, 1.25, 1.0)).astype(np.float32)

    # ---- envelopes (work res) ----
    rc = lay.rc
    cyt = lay.cyt.astype(np.float32)
    # crisp cell edges (a few pixels of fade), patchy low-frequency modulation
    edge_fade = np.clip((1.0 - rc) * 10.0, 0, 1) * (0.8 + 0.25 * ctx.low)
    patch = np.clip(0.75 + 0.35 * ctx.low_speck * 2, 0.35, 1.4)
    # microtubules: moderate over the cytoplasm, bundled brighter at the cortex
    mt_profile = (0.3 + 0.25 * rc + 0.65 * np.exp(-(((rc - 0.86) / 0.13) ** 2))) * edge_fade * cyt * patch
    mt_profile += 0.07 * lay.nuc
    # ER: dense around the nucleus, fading towards the periphery
    er_profile = (0.3 + 0.95 * np.exp(-2.4 * rc)) * edge_fade * cyt * (1.4 - 0.4 * patch)
    er_rim = np.exp(-0.5 * (lay.sd / (1.2 * px * 2)) ** 2) * (lay.rn < 2) * ctx.interphase
    er_profile += 0.2 * er_rim + 0.05 * lay.nuc
    red_env = mt_profile * g_red * mit_boost
    yel_env = er_profile * g_yel * mit_boost
    # nucleus (blue): flat-topped, mottled, darker nucleoli, condensed daughters
    nuc_env = ctx.nuc_soft * (1.0 - 0.12 * lay.rn**2) * (1 - 0.4 * ctx.nucleoli) * g_blu
    nuc_env *= np.where(kind_px == DAUGHTER, 1.45, 1.0).astype(np.float32)
    blue_add = np.zeros((r, r), np.float32)
    for i in lay.mitotic:
        sl, u, v, L = _spindle(lay, i, px)
        plate_w = 1.6 * px * 2
        jag = 1 + 0.35 * ctx.low[sl]
        plate = np.exp(-0.5 * (u / (plate_w * jag)) ** 2) * np.clip((9 * px * 2 - np.abs(v)) / 1.5, 0, 1)
        blue_add[sl] = np.maximum(blue_add[sl], 1.3 * plate * (0.8 + 0.4 * ctx.speck_pos[sl] / 2.5))
        sp = _p_spindle_single(lay, i)
        red_env[sl] += 0.9 * sp
    if lay.pair is not None:
        red_env += 1.2 * _bridge_pattern(lay)[0]

    # ---- green ----
    pats = {}
    for c in labels:
        p = ab["classes"].get(c) or {"amp": 1.0, "size": 1.0, "count": 1.0, "tex": 0.5}
        if c == 6:
            pats[c] = None  # full res: the yellow pattern
        elif c == 14:
            pats[c] = None  # full res: the red pattern
        elif c == 11:
            pats[c] = None
        else:
            pats[c] = _RENDER[c](ctx, p)
    green_lo = np.zeros((r, r), np.float32)
    green_lo += ab["background"] * 0.5 + ab["haze"] * cyt * edge_fade
    for c, pat in pats.items():
        if pat is not None:
            green_lo += ab["classes"].get(c, {"amp": 1.0})["amp"] * _BOOST.get(c, 1.0) * pat * g_grn
    # ---- full resolution: upsample the envelopes, multiply by fine textures ----
    levels = rng.uniform(0.75, 1.1, 4).astype(np.float32)
    scales = np.float32([210, 125 * ab["gain"], 115, 150]) * levels
    green_lo *= scales[1]
    mt = _crop(tex["mt1"], S, S, rng)
    er = _crop(tex["er1"], S, S, rng)
    mot = _crop(tex["mot1"], S, S, rng)
    channels = [_up(red_env * scales[0], S) * mt, _up(green_lo, S),
                _up((nuc_env + blue_add) * scales[2], S) * mot, _up(yel_env * scales[3], S) * er]
    full = {}
    for c in labels:
        if c not in _FULLRES:
            continue
        amp = ab["classes"].get(c, {"amp": 1.0})["amp"]
        if c == 6:
            env, t = yel_env, er
        elif c == 14:
            env, t = red_env, mt
        else:
            env, t = _p_intermediate_env(ctx), _crop(tex["if"], S, S, rng)
        env = env / max(1e-6, float(np.percentile(env[::2, ::2], 99.5)))
        full[c] = _up(env, S) * t
        channels[1] += _up(env * g_grn * (amp * scales[1] * 1.5), S) * t
    # masks
    masks = np.zeros((NUM_CLASSES, S, S), bool)
    up_mask = (lambda m: m.repeat(2, 0).repeat(2, 1)) if S == 2 * r else (lambda m: _up_mask(m, S))  # noqa: E731
    inside_u = up_mask(lay.inside) if full else None
    for c in labels:
        if c in full:
            f = full[c]
            m = f > _MASK_FRAC * max(float(np.percentile(f[::4, ::4], 99.8)), 1e-6)
            m &= inside_u
        else:
            pat = pats[c]
            peak = float(pat.max())
            m = up_mask((pat > _MASK_FRAC * peak) & lay.inside) if peak > 0 else np.zeros((S, S), bool)
        if not m.any():
            return None
        masks[c] = m
    # ---- noise, 8 bit ----
    img = np.empty((4, S, S), np.uint8)
    noise = _crop(tex["noise"], S, S, rng)
    for k, x in enumerate(channels):
        x += noise
        noise = noise.T if k % 2 == 0 else noise[::-1]
        np.clip(x, 0, 255, out=x)
        img[k] = x
    return img, masks


def _p_intermediate_env(ctx):
    lay = ctx.lay
    return (np.where(lay.cyt, 0.2 + 1.1 * np.exp(-3.0 * lay.rc), 0) * np.clip((1.0 - lay.rc) * 8.0, 0, 1)
            ).astype(np.float32)


def _p_spindle_single(lay, i):
    sl, u, v, L = _spindle(lay, i, lay.px)
    t = np.clip(np.abs(u) / L, 0, 1)
    hw = 9 * lay.px * 2 * (1 - t**1.6) + 0.6
    q = v / hw
    return (np.clip(1 - q**2, 0, 1) * (np.abs(u) < L)).astype(np.float32)


# ----------------------------------------------------------------------------
# masks on disk


MASKS = "masks"  # the subfolder of a data folder that holds the mask files


def mask_path(folder: str | Path, image_id: str) -> Path:
    """Where the mask file of image ``image_id`` of a data folder lies: ``folder/masks/{image_id}.npz``."""
    return Path(folder) / MASKS / f"{image_id}.npz"


def save_masks(path: str | Path, masks: np.ndarray) -> Path:
    """Store a ``(28, H, W)`` bool array (present planes only, bit-packed)."""
    masks = np.asarray(masks, bool)
    classes = np.flatnonzero(masks.reshape(masks.shape[0], -1).any(1))
    packed = np.packbits(masks[classes], axis=-1)
    path = Path(path)
    with open(path, "wb") as fh:  # bit-packed already: zip compression would only cost time
        np.savez(fh, packed=packed, classes=classes.astype(np.int16),
                            shape=np.asarray(masks.shape, np.int64))
    return path


def load_masks(path: str | Path) -> np.ndarray:
    """The full ``(28, H, W)`` bool mask array stored at ``path``."""
    with np.load(path) as z:
        if "masks" in z.files:
            return np.asarray(z["masks"], bool)
        shape = tuple(int(s) for s in z["shape"])
        out = np.zeros(shape, bool)
        classes = z["classes"].astype(np.int64)
        if classes.size:
            out[classes] = np.unpackbits(z["packed"], axis=-1, count=shape[-1]).astype(bool)
    return out


# ----------------------------------------------------------------------------
# PNG writing (8-bit grayscale, no row filter, zlib at ``level``; level 0 stores
# the pixels uncompressed: about 1 MB per 512 x 512 set, but ~50x faster to write
# than zlib level 1 here, and fastest to read back)

PNG_LEVEL = 0


def _write_png(path: Path, a: np.ndarray, level: int = PNG_LEVEL) -> None:
    a = np.ascontiguousarray(a, np.uint8)
    h, w = a.shape
    raw = np.empty((h, w + 1), np.uint8)
    raw[:, 0] = 0
    raw[:, 1:] = a
    data = zlib.compress(raw.tobytes(), level)

    def chunk(tag, body):
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    with open(path, "wb") as fh:
        fh.write(png)


def write_field(out_dir: str | Path, fld: SyntheticField, compress_level: int = PNG_LEVEL) -> None:
    """Write the four channel PNGs and the mask file of one field."""
    out_dir = Path(out_dir)
    for k, ch in enumerate(CHANNELS):
        _write_png(out_dir / f"{fld.id}_{ch}.png", fld.image[k], compress_level)
    path = mask_path(out_dir, fld.id)
    path.parent.mkdir(exist_ok=True)
    save_masks(path, fld.masks)


# ----------------------------------------------------------------------------
# datasets


@dataclass
class DatasetSummary:
    out_dir: Path
    n: int
    ids: list[str]
    labels: dict[str, tuple[int, ...]]
    antibodies: dict[str, str]
    noisy: dict[str, tuple[int, ...]]  # only the changed ids
    seconds: float
    params: dict


def _apply_noise(rng, target: tuple[int, ...]) -> tuple[tuple[int, ...], str]:
    kinds = ["added", "swapped"] if len(target) < 4 else ["swapped"]
    if len(target) > 1:
        kinds.insert(0, "dropped")
    kind = kinds[int(rng.integers(len(kinds)))]
    cur = list(target)
    others = [c for c in range(NUM_CLASSES) if c not in cur]
    if kind == "dropped":
        cur.pop(int(rng.integers(len(cur))))
    elif kind == "added":
        cur.append(others[int(rng.integers(len(others)))])
    else:
        cur[int(rng.integers(len(cur)))] = others[int(rng.integers(len(others)))]
    return tuple(sorted(cur)), kind


def generate_dataset(
    out_dir: str | Path,
    n: int,
    seed: int,
    *,
    size: int = 512,
    freq: str = "uniform",
    noise_rate: float = 0.0,
    fields_per_antibody: int = 1,
    progress: Callable[[int, int], None] | None = None,
    compress_level: int = PNG_LEVEL,
) -> DatasetSummary:
    """Generate ``n`` fields into ``out_dir`` (PNGs, ``labels.csv``, ``masks/``,
    ``synth.json``; with ``noise_rate > 0`` also ``labels_noisy.csv`` and
    ``noise.csv``).

    ``compress_level`` (0-9) is the PNG zlib level: 0 (default) stores the
    pixels uncompressed (about 1 MB per 512 x 512 set; needed for the speed
    target on one core), 1 gives files about 40 % smaller at roughly half the
    speed.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise SynthError(f"n must be a positive integer, not {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SynthError(f"seed must be a non-negative integer, not {seed!r}")
    size = _check_size(size)
    _check_freq(freq)
    try:
        noise_rate = float(noise_rate)
    except (TypeError, ValueError):
        raise SynthError(f"noise_rate must be a number in [0, 1], not {noise_rate!r}") from None
    if not 0.0 <= noise_rate <= 1.0:
        raise SynthError(f"noise_rate must be in [0, 1], not {noise_rate}")
    if isinstance(fields_per_antibody, bool) or not isinstance(fields_per_antibody, (int, np.integer)) \
            or fields_per_antibody < 1:
        raise SynthError(f"fields_per_antibody must be a positive integer, not {fields_per_antibody!r}")
    if isinstance(compress_level, bool) or compress_level not in range(10):
        raise SynthError(f"compress_level must be an integer 0-9, not {compress_level!r}")
    n, seed, k_ab = int(n), int(seed), int(fields_per_antibody)
    out_dir = Path(out_dir)
    if (out_dir / "labels.csv").exists():
        raise SynthError(f"{out_dir} already holds a dataset (labels.csv exists); "
                         "choose a new or empty folder, nothing was written")
    if out_dir.exists() and not out_dir.is_dir():
        raise SynthError(f"{out_dir} exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MASKS).mkdir(exist_ok=True)
    params = {"generator_version": GENERATOR_VERSION, "n": n, "seed": seed, "size": size, "freq": freq,
              "noise_rate": noise_rate, "fields_per_antibody": k_ab, "png_compress_level": int(compress_level),
              "mask_format": "npz: packed (k,H,ceil(W/8)) uint8 bit-packed present planes, classes (k,), shape"}
    t0 = time.perf_counter()
    ids, labels, abs_ = [], {}, {}
    group_cache: dict[int, tuple] = {}
    for i in range(n):
        g = i // k_ab
        if g not in group_cache:
            group_cache.clear()
            rg = _rng(seed, 1, g)
            lbl = draw_labels(rg, freq)
            group_cache[g] = (lbl, draw_antibody_params(rg, lbl), f"ab{seed}_{g:05d}")
        lbl, abp, ab_id = group_cache[g]
        fid = f"synth_{seed}_{i:06d}"
        fld = generate_field(np.random.SeedSequence(seed, spawn_key=(0, i)), size, lbl, antibody_params=abp,
                             id=fid, antibody=ab_id)
        write_field(out_dir, fld, compress_level)
        ids.append(fid)
        labels[fid] = fld.labels
        abs_[fid] = ab_id
        if progress is not None:
            progress(i + 1, n)
    noisy: dict[str, tuple[int, ...]] = {}
    if noise_rate > 0:
        n_noisy = int(round(noise_rate * n))
        rng = _rng(seed, 2)
        chosen = np.sort(rng.choice(n, size=n_noisy, replace=False)) if n_noisy else np.zeros(0, int)
        changes = {}
        for i in chosen:
            fid = ids[int(i)]
            noisy[fid], changes[fid] = _apply_noise(rng, labels[fid])
        write_labels(out_dir / "labels_noisy.csv", {f: noisy.get(f, labels[f]) for f in ids},
                     extra={"Antibody": abs_})
        rows = ["Id,Target,Noisy,Change"]
        for fid in ids:
            if fid in noisy:
                rows.append(f"{fid},{' '.join(map(str, labels[fid]))},{' '.join(map(str, noisy[fid]))},"
                            f"{changes[fid]}")
        from .labels import atomic_write_text

        atomic_write_text(out_dir / "noise.csv", "\n".join(rows) + "\n")
    seconds = time.perf_counter() - t0
    (out_dir / "synth.json").write_text(json.dumps({**params, "seconds": round(seconds, 3)}, indent=2) + "\n")
    # labels.csv last: its presence marks a complete dataset
    write_labels(out_dir / "labels.csv", labels, extra={"Antibody": abs_})
    return DatasetSummary(out_dir, n, ids, labels, abs_, noisy, seconds, params)


# ----------------------------------------------------------------------------
# sample

SAMPLE_SEED = 3
SAMPLE_LABELS: tuple[int, ...] = (0, 7)


def sample_field(size: int = 512) -> SyntheticField:
    """The fixed field napari's "Open Sample" shows (nucleoplasm + Golgi apparatus;
    chosen by eye among candidates for looking most like a real HPA field)."""
    return generate_field(SAMPLE_SEED, size, SAMPLE_LABELS, id="synth_sample", antibody="ab_sample")
