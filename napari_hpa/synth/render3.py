"""What generator v3 draws differently from v2 (opt-in: ``version=3``).

v3 was tuned against real Kaggle 2018 HPA channels with
``benchmarks/bench_realism.py``: the layout (``layout._place_cells`` with
``v3``) gives fewer, bigger, more irregular cells with lobed nuclei; here are
the reference-channel envelopes (microtubules even over the cell instead of a
bright rim, ER densest around the nucleus, grainier nuclei with darker
nucleoli), the radiating microtubule texture and the per-field channel gains
(brighter on average, with a wide field-to-field spread).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .layout import DAUGHTER
from .textures import _crop

#: Per-channel (RGBY) base scale (grey levels) and log-normal field-to-field spread.
_SCALE = np.float32([200, 300, 175, 175])
_SPREAD = np.float32([0.5, 0.75, 0.5, 0.45])


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


def scales(rng, gain) -> np.ndarray:
    """Per-field grey-level scale of each channel (green times the antibody's ``gain``)."""
    lv = np.exp(np.clip(rng.normal(0, 1, 4).astype(np.float32), -2.2, 1.6) * _SPREAD - 0.5 * _SPREAD**2)
    out = _SCALE * lv
    out[1] *= gain
    return out.astype(np.float32)


def radial_mt(rng, lay, size: int, tex) -> np.ndarray:
    """Full-resolution microtubule texture: fine filaments radiating from each
    cell's nucleus (the 1-D bundle "barcode" along the angle, bent by smooth
    noise) over a faint mesh, about 1 + 0.25 on average."""
    c = lay.cells
    n = len(c)
    cos_u, sin_u = _up(lay.cos, size), _up(lay.sin, size)
    th = np.arctan2(sin_u, cos_u)
    lab = _up_nearest(lay.lab, size)
    f = size / lay.r
    # about one filament per 4-5 px at mid-cytoplasm
    k = (c.a + 0.5 * c.width) * f * rng.uniform(0.9, 1.4, n).astype(np.float32)
    bars = tex["bars"]
    nb = bars.size
    off = rng.uniform(10, nb - 10 - 2 * np.pi * float(k.max(initial=1.0)) - 40, n).astype(np.float32)
    k_px = np.append(k, 0).astype(np.float32)[lab]
    o_px = np.append(off, 0).astype(np.float32)[lab]
    bend = _crop(tex["low"], size, size, rng) * np.float32(2.5)
    u = (th + np.float32(np.pi)) * k_px + o_px + bend
    fil = np.interp(u.ravel(), np.arange(nb, dtype=np.float32), bars).astype(np.float32).reshape(size, size)
    mesh = _crop(tex["mt"], size, size, rng)
    return np.float32(0.05) + np.float32(0.7) * fil + np.float32(0.55) * mesh
