"""The green patterns, one painter per class, and their registry.

Each painter ``_p_*(ctx, p)`` draws the work-resolution pattern of one class
(peak about 1) from the field's context (layout, random generator, cropped
textures) and the class's antibody parameters ``p``; ``_RENDER`` maps class
index to painter, ``_BOOST`` holds the display gains and ``_FULLRES`` the classes
whose pattern is a full-resolution texture (drawn by the renderer itself).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layout import (
    MITOTIC,
    NORMAL,
    _bridge_pattern,
    _Layout,
    _per_cell,
    _points_cyto,
    _points_nuc,
    _points_side,
    _spindle,
)
from .textures import _blur, _kernel, _pad_to, _splat, _textures


@dataclass
class _Ctx:
    """What the painters read about one field: its layout, its random generator
    and per-pixel maps at work resolution (``lay.r`` x ``lay.r``)."""

    rng: np.random.Generator
    lay: _Layout
    grid: np.ndarray  # (2, r, r) float32: the y and x coordinate of each pixel
    interphase: np.ndarray  # bool: not a pixel of a mitotic cell
    low: np.ndarray  # low-frequency modulation (a random crop of the texture bank's "low")
    low_speck: np.ndarray  # another crop of "low", clipped to [-2.5, 2.5] and halved
    speck: np.ndarray  # speckle noise (a crop of "speck")
    speck_pos: np.ndarray  # ``speck`` clipped to [0, 2.5]
    cell_soft: np.ndarray  # 1 inside cells, fading to 0 over the outer 1/14 of ``lay.rc``
    nuc_soft: np.ndarray  # 1 inside interphase nuclei, fading at the nucleus edge
    nucleoli: np.ndarray  # nucleoli (0-1) inside nuclei


# ----------------------------------------------------------------------------
# green patterns, one per class (work resolution, peak ~1)


def _orient_index(th, n):
    return np.round(np.mod(th, np.pi) / np.pi * n).astype(np.int64) % n


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
