"""What generator v3 draws differently from v2 (opt-in: ``version=3``).

v3 was tuned against real Kaggle 2018 HPA channels with
``benchmarks/bench_realism.py``: the layout (``layout._place_cells`` with
``v3``) gives fewer, bigger, more irregular cells with lobed nuclei; here are
the reference-channel envelopes (microtubules even over the cell instead of a
bright rim, ER densest around the nucleus, grainier nuclei with darker
nucleoli), the microtubules (long wavy filaments traced inside each cell) and
the per-field channel gains (brighter on average, with a wide field-to-field
spread).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .layout import DAUGHTER, MITOTIC
from .textures import _blur, _crop

#: Per-channel (RGBY) base scale (grey levels) and log-normal field-to-field spread.
_SCALE = np.float32([150, 220, 150, 175])
_SPREAD = np.float32([0.5, 0.75, 0.6, 0.45])
#: Upper clip of the per-channel standard-normal draw (blue: saturation stays rare).
_HI = np.float32([1.4, 1.6, 0.8, 1.6])


def _up_nearest(m: np.ndarray, size: int) -> np.ndarray:
    r = m.shape[0]
    if size == 2 * r:
        return m.repeat(2, 0).repeat(2, 1)
    return np.asarray(Image.fromarray(m).resize((size, size), Image.NEAREST))


def _up(x: np.ndarray, size: int) -> np.ndarray:
    return np.array(Image.fromarray(np.ascontiguousarray(x, np.float32), mode="F").resize((size, size),
                                                                                           Image.BILINEAR))


def envelopes(ctx, g_red, g_yel, g_blu, mit_boost, kind_px):
    """(red, yellow, blue) envelopes at work resolution."""
    lay = ctx.lay
    rc, px = lay.rc, lay.px
    cyt = lay.cyt.astype(np.float32)
    edge_fade = np.clip((1.0 - rc) * 10.0, 0, 1) * (0.8 + 0.25 * ctx.low)
    patch = np.clip(0.75 + 0.35 * ctx.low_speck * 2, 0.35, 1.4)
    # microtubules: even over the whole cell (no bright rim)
    mt = (0.75 + 0.15 * np.exp(-1.5 * rc)) * edge_fade * cyt * patch + 0.06 * lay.nuc
    # ER: granular, densest around the nucleus
    er = (0.15 + 1.35 * np.exp(-3.2 * rc)) * edge_fade * cyt * (1.4 - 0.4 * patch)
    rim = np.exp(-0.5 * (lay.sd / (1.4 * px * 2)) ** 2) * (lay.rn < 2) * ctx.interphase
    er += 0.3 * rim + 0.04 * lay.nuc
    nuc = ctx.nuc_soft * (1.0 - 0.1 * lay.rn**2) * (1 - 0.55 * ctx.nucleoli) * g_blu
    nuc *= np.where(kind_px == DAUGHTER, 1.45, 1.0).astype(np.float32)
    return mt * g_red * mit_boost, er * g_yel * mit_boost, nuc


def diffuse(rng, lay, edge_fade) -> np.ndarray:
    """Weak diffuse protein signal over the cells (unbound antibody, out-of-focus
    light; drawn fine-grained at full resolution): lowers the peak-to-mean contrast of punctate patterns to real levels.
    It does not enter any class mask."""
    d = np.float32(rng.uniform(0.01, 0.07) / 0.17)  # / the mean of the granule texture it is drawn with
    return d * (lay.cyt * edge_fade + np.float32(0.6) * lay.nuc)


def scales(rng, gain) -> np.ndarray:
    """Per-field grey-level scale of each channel (green times the antibody's ``gain``)."""
    lv = np.exp(np.clip(rng.normal(0, 1, 4).astype(np.float32), -2.2, _HI) * _SPREAD - 0.5 * _SPREAD**2)
    out = _SCALE * lv
    out[1] *= gain
    return out.astype(np.float32)


def expose(rng, x: np.ndarray) -> None:
    """Like a microscopist setting the gain: scale the channel down (in place) where
    its brightest nuclei would saturate, except in about one field in seven."""
    q = float(np.percentile(x[::2, ::2], 99.9))
    if q > 290.0 and rng.random() > 0.15:
        x *= np.float32(290.0 / q)


def chromatin(rng, tex, size: int) -> np.ndarray:
    """Full-resolution chromatin texture of the nuclei, its graininess varying per field."""
    k = np.float32(rng.uniform(0.75, 1.5))
    return np.float32(0.85) * (1 - k) + k * _crop(tex["mot3"], size, size, rng)


def microtubules(rng, lay, size: int, tex) -> np.ndarray:
    """Full-resolution microtubule texture: long, thin, wavy filaments traced
    inside each cell (about 1 on average over the cytoplasm).

    Each filament starts near the nucleus (densest there) and grows both ways
    from its seed, heading between radial and tangential; it bends by a smooth
    random turning rate, slides along the cell outline and around the nucleus
    instead of crossing them, and ends where it leaves its cell.  The walk runs
    for all filaments at once at work resolution; the points are splatted
    bilinearly at full resolution and blurred slightly.
    """
    c, r = lay.cells, lay.r
    f = size / r
    step = np.float32(1.4 * lay.px)  # work px per step (1.4 px of a 512-px Kaggle field)
    # per field: how tangential, how wavy, how dense
    # one "order" per field: from wavy, criss-crossing meshes to long filaments
    # aligned with the cell's long axis
    order = rng.uniform(0, 1)
    spread = 1.4 - 0.9 * order
    curl = np.float32(0.085 - 0.077 * order)
    align = 0.75 * order**2
    dens = rng.uniform(0.6, 1.4)
    area = np.bincount(lay.lab[lay.inside].ravel(), minlength=len(c))[: len(c)] / (lay.px**2)
    m = rng.poisson(dens * area / 170.0)
    m[c.kind == MITOTIC] = 0
    ci = np.repeat(np.arange(len(c)), m)
    k = ci.size
    if k == 0:
        return np.full((size, size), 0.06, np.float32)
    th = rng.uniform(0, 2 * np.pi, k)
    rho = c.rnuc(ci, th) * 1.05 + rng.uniform(0, 1, k) * 0.95 * c.wcyt(ci, th)
    y0 = c.cy[ci] + rho * np.sin(th)
    x0 = c.cx[ci] + rho * np.cos(th)
    ang = th + np.where(rng.random(k) < 0.5, -1, 1) * np.abs(rng.normal(0, spread, k))
    # some fields: filaments aligned with the cell's long axis (elongated cells)
    ang = np.where(rng.random(k) < align, c.phi[ci] + rng.normal(0, 0.3, k), ang)
    # both halves of each filament: the seed's direction and its reverse
    own = np.concatenate([ci, ci]).astype(np.int16)
    y = np.concatenate([y0, y0]).astype(np.float32)
    x = np.concatenate([x0, x0]).astype(np.float32)
    dy = np.concatenate([np.sin(ang), -np.sin(ang)]).astype(np.float32)
    dx = np.concatenate([np.cos(ang), -np.cos(ang)]).astype(np.float32)
    nsteps = int(rng.integers(60, 100))
    lim = rng.integers(nsteps // 3, nsteps + 1, 2 * k)
    turn = np.zeros(2 * k, np.float32)
    ids = np.arange(2 * k)
    ys, xs, ws = [], [], []
    bright = rng.lognormal(0, 0.35, k).astype(np.float32)
    bright = np.concatenate([bright, bright])
    kicks = rng.normal(0, 1, (nsteps, 2 * k)).astype(np.float32) * curl
    lab_f, cos_f, sin_f = lay.lab.ravel(), lay.cos.ravel(), lay.sin.ravel()
    rc_f, rn_f = lay.rc.ravel(), lay.rn.ravel()
    for s in range(nsteps):
        iy = np.minimum(np.maximum(y.astype(np.int32), 0), r - 1)
        ix = np.minimum(np.maximum(x.astype(np.int32), 0), r - 1)
        q = iy * r + ix
        inb = (y >= 0) & (y < r) & (x >= 0) & (x < r)
        # filaments of cells that cross the border may leave the field and come back
        alive = ((lab_f[q] == own) | ~inb) & (s < lim)
        if not alive.all():  # drop the ended filaments
            if not alive.any():
                break
            y, x, dx, dy, turn, own, lim, bright, ids, q, inb = (
                v[alive] for v in (y, x, dx, dy, turn, own, lim, bright, ids, q, inb))
        cu, su, rc, rn = cos_f[q], sin_f[q], rc_f[q], rn_f[q]
        out = dx * cu + dy * su
        # slide along the cell outline (outward part removed near the edge)
        # and around the nucleus (inward part removed near it)
        push = np.where(out > 0, (rc - np.float32(0.7)) * np.float32(3.3), (np.float32(1.25) - rn) * np.float32(4))
        np.minimum(np.maximum(push, 0, out=push), 1, out=push)
        push *= out
        dx -= push * cu
        dy -= push * su
        turn = np.float32(0.9) * turn + kicks[s, ids]
        dx, dy = dx - dy * turn, dy + dx * turn  # a small turn (renormalised below)
        nrm = np.float32(1) / np.sqrt(dx * dx + dy * dy + np.float32(1e-6))
        dx *= nrm
        dy *= nrm
        ys.append(y[inb])
        xs.append(x[inb])
        ws.append(bright[inb] * np.where(rn[inb] < 1, np.float32(0.15), np.float32(1)))
        y = y + step * dy
        x = x + step * dx
    fy = (np.concatenate(ys) + np.float32(0.5)) * np.float32(f) - np.float32(0.5)
    fx = (np.concatenate(xs) + np.float32(0.5)) * np.float32(f) - np.float32(0.5)
    w = np.concatenate(ws)
    y0i, x0i = np.floor(fy).astype(np.int64), np.floor(fx).astype(np.int64)
    wy, wx = fy - y0i, fx - x0i
    # bilinear splat: the four neighbours in one bincount (a margin takes the overflow)
    s1 = size + 3
    q0 = (y0i + 1) * s1 + (x0i + 1)
    q = np.concatenate([q0, q0 + 1, q0 + s1, q0 + s1 + 1])
    wts = np.concatenate([(1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx), wy * wx]) * np.tile(w, 4)
    acc = np.bincount(q, weights=wts, minlength=s1 * s1)[: s1 * s1].reshape(s1, s1)[1 : size + 1, 1 : size + 1]
    fil = _blur(acc, 1, min(0.5 * (0.45 * f * lay.px) ** 2, 0.3))  # sigma about 0.45 px
    # about one filament every 5 px: normalise by the line density that gives
    fil *= np.float32(1.6 / (step * f))
    fil /= np.float32(1) + np.float32(0.6) * fil  # overlaps saturate (no glaring bundles)
    mesh = _crop(tex["mt"], size, size, rng)
    return np.float32(0.22) + np.float32(0.12) * mesh + np.float32(1.3) * fil
