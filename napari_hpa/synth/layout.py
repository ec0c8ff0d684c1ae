"""Where the cells are: the field's layout at work (half) resolution.

:func:`_layout` places the cells (:func:`_place_cells`: a daughter pair and a
mitotic cell when wanted, then best-candidate darts), lets them compete for
pixels by the normalised radial coordinate, and returns a :class:`_Layout` of
per-pixel maps (owner cell, distance from the nucleus edge, nucleus and
cytoplasm) with the nucleoli.  The daughter pair's frame and bridge, the
mitotic spindle's frame, and the sampling of random points in a cell's
nucleus, cytoplasm or beside the nucleus live here too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .textures import _crop, _textures

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


def _place_cells(rng, r, px, want_pair, want_mitotic, v3=False):
    # v3: fewer, bigger and more spread cells (nuclei ~1,500-2,300 px at 512,
    # a field-wide size factor), packed closer, reaching over the border
    if v3:  # confluence varies per field: from a few scattered cells to a packed field
        conf = rng.uniform(0, 1)
        fs = rng.uniform(0.7, 1.15)
        n_want = (5 + 25 * conf) * rng.uniform(0.85, 1.2) / fs**2
        dense = rng.uniform(0.85, 1.05) + 0.45 * conf
    else:
        n_want = rng.integers(17, 30)
        dense = rng.uniform(0.9, 1.2)
        fs = 1.0
    n_target = max(int(n_want * (r / (512 * px)) ** 2 + 0.5), 1)
    a_lo, a_hi, ab_lo, ab_hi = (23, 33, 0.55, 0.85) if v3 else (18, 29, 0.55, 0.85)
    w_lo, w_hi = (26, 44) if v3 else (18, 30)
    reach = 0.0 if v3 else 0.03
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
        cand = rng.uniform(-reach * r, (1 + reach) * r, (8, 2))
        a = rng.uniform(a_lo, a_hi) * px * fs
        if cols["cx"]:
            ext = np.asarray(cols["a"]) + 0.2 * np.asarray(cols["width"])
            gap = (np.hypot(np.asarray(cols["cx"])[None] - cand[:, :1], np.asarray(cols["cy"])[None] - cand[:, 1:])
                   - ext[None]).min(1)
            k = int(gap.argmax())
            if gap[k] < (0.75 * a + 2 * px if v3 else a + 6 * px):
                continue
        else:
            k = 0
        cx, cy = float(cand[k, 0]), float(cand[k, 1])
        add(cx, cy, a, a * rng.uniform(ab_lo, ab_hi), rng.uniform(0, np.pi),
            rng.uniform(w_lo, w_hi) * px * dense, NORMAL)
    n = len(cols["cx"])
    arr = {k: np.asarray(v, np.float64) for k, v in cols.items()}
    kind = arr["kind"].astype(np.int64)
    # v3: lobed / kidney-shaped nuclei (stronger 2nd and 3rd harmonics)
    if v3:  # about a third clearly lobed or kidney-shaped
        nh_amp = rng.uniform(0, 1, (n, 2)) * np.array([0.1, 0.13])
        lobed = rng.random(n) < 0.35
        nh_amp[lobed] = rng.uniform(0.08, 0.2, (int(lobed.sum()), 2))
    else:
        nh_amp = rng.uniform(0, 0.06, (n, 2))
    nh = np.stack([nh_amp, rng.uniform(0, 2 * np.pi, (n, 2))], -1)
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


def _layout(rng, size, labels, version=2) -> _Layout:
    r = max(size // 2, 32)
    fov = min(max(size / 512.0, 0.5), 1.0)
    px = (r / size) * fov
    labels = set(labels)
    want_pair = 16 in labels or rng.random() < 0.25
    want_mit = 17 in labels or rng.random() < 0.2
    v3 = version >= 3
    cells = _place_cells(rng, r, px, want_pair, want_mit, v3)
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
    if v3:  # ruffled edges and thin protrusions: fine noise near the cell edge
        fine = _crop(_textures()["speck"], r, r, rng)
        best = best * (np.float32(1) + np.float32(0.12) * np.clip(fine, -2.5, 2.5) * np.clip(best, 0, 1) ** 3)
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
    k = np.where(cells.kind == NORMAL, rng.integers(2, 6, n) if v3 else rng.integers(1, 5, n), rng.integers(0, 2, n))
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


def _spindle(lay, i, px):
    """Local frame of mitotic cell ``i``'s spindle: (slices, u along the axis, v across, half-length)."""
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

