"""Textures and small kernels, the raw material of every channel.

The texture bank (:func:`_textures`: microtubule mesh, intermediate filaments,
ER reticulum, chromatin mottle, low-frequency modulation, speckles, the
stress-fibre barcode, sensor noise) is drawn once from a fixed seed at
``_TEX`` x ``_TEX`` and cropped at random offsets (:func:`_crop`); the blurs and
curve rasteriser build it.  :func:`_kernel` makes small kernel banks (gauss, ring,
disc, comet, star) that :func:`_splat` adds at point positions.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

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
    # generator v3 only (drawn after everything above, so v2's textures are unchanged):
    # granular ER, grainy chromatin
    g3 = np.clip(_gauss_blur(rng.standard_normal((_TEX, _TEX)).astype(np.float32), 0.8), 0, None)
    t0["er3"] = np.clip(_norm(0.35 * ridges + 0.9 * g3 / g3.std(), 99.5), 0, 1.4)
    fine = _gauss_blur(rng.standard_normal((_TEX, _TEX)).astype(np.float32), 0.7)
    t0["mot3"] = np.clip(0.85 + 0.2 * t0["mottle"] + 0.24 * fine / fine.std(), 0.2, 1.7).astype(np.float32)
    # fine multiplicative grain of the protein channel (speckled staining, shot noise)
    gr = _gauss_blur(rng.standard_normal((_TEX, _TEX)).astype(np.float32), 0.6)
    t0["grain3"] = np.clip(1.0 + 0.5 * gr / gr.std(), 0.1, 2.5).astype(np.float32)
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




def _pad_to(bank, ks):
    k = bank.shape[-1]
    if k >= ks:
        c = (k - ks) // 2
        return bank[:, c : c + ks, c : c + ks]
    pad = (ks - k) // 2
    return np.pad(bank, ((0, 0), (pad, ks - k - pad), (pad, ks - k - pad)))
