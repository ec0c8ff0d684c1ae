"""Rendering one field: :func:`generate_field` and the fixed :func:`sample_field`.

:func:`_render` draws the layout, the per-cell brightness and the channel
envelopes at work resolution, adds the green patterns of the field's classes,
upsamples to full resolution with the fine textures, thresholds the masks and
adds sensor noise; :func:`generate_field` checks the arguments, draws labels and
antibody parameters when not given, and redraws a layout that leaves some class
without pixels from a child seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..classes import NUM_CLASSES
from ..errors import SynthError
from .labelsets import _check_freq, draw_antibody_params, draw_labels
from .layout import DAUGHTER, MITOTIC, _bridge_pattern, _layout, _spindle
from .patterns import (
    _BOOST,
    _FULLRES,
    _RENDER,
    _Ctx,
    _p_intermediate_env,
    _p_spindle_single,
)
from . import render3
from .textures import _crop, _kernel, _pad_to, _splat, _textures

#: A class's mask: its pattern above this fraction of the pattern's peak, inside cells.
_MASK_FRAC = 0.2


@dataclass
class SyntheticField:
    id: str
    image: np.ndarray  # (4, H, W) uint8, RGBY
    masks: np.ndarray  # (28, H, W) bool
    labels: tuple[int, ...]
    antibody: str


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
    version: int | str = 2,
) -> SyntheticField:
    """Render one field of view; ``labels`` are drawn (with ``freq``) when None.

    ``antibody_params`` come from :func:`draw_antibody_params` (drawn from the
    field's own seed when None); fields that share them look like the same
    antibody.  ``version`` picks the generator: 2 (default) or 3 (closer to real
    HPA fields, see :mod:`.render3`).
    """
    _check_freq(freq)
    version = _check_version(version)
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
        out = _render(np.random.Generator(np.random.PCG64(child)), size, labels, antibody_params, version)
        if out is not None or attempt == len(children) - 1:
            break
    if out is None:  # happens on small fields: too few cells for junctions, say
        raise SynthError(f"could not render a {size}-px field with every class of {labels} visible "
                         f"in {len(children)} layouts (field {id!r}); a larger --size helps")
    image, masks = out
    return SyntheticField(id=id, image=image, masks=masks, labels=labels, antibody=antibody)


#: The generator versions :func:`generate_field` can render.
VERSIONS = (2, 3)


def _check_version(version) -> int:
    try:
        v = int(str(version).lstrip("v"))
    except ValueError:
        v = None
    if isinstance(version, bool) or v not in VERSIONS:
        raise SynthError(f"generator version must be one of {', '.join(map(str, VERSIONS))}, not {version!r}")
    return v


def _check_size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise SynthError(f"size must be an integer, not {size!r}")
    if size < 64:
        raise SynthError(f"size must be at least 64 pixels, not {size}")
    if size > 8192:
        raise SynthError(f"size must be at most 8192 pixels, not {size}")
    return int(size)


def _nucleoli(rng, lay):
    """The nucleoli map (0-1, inside nuclei): always drawn, as holes in the blue
    channel, the exclusion of class 0 and the pattern of classes 2 and 3."""
    r, px = lay.r, lay.px
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
    return np.clip(np.maximum(nucl, 0.8 * nucl2), 0, 1) * lay.nuc


def _envelopes_v2(ctx, g_red, g_yel, g_blu, mit_boost, kind_px, edge_fade):
    """(red, yellow, blue) envelopes of generator v2 at work resolution."""
    lay = ctx.lay
    rc, px = lay.rc, lay.px
    cyt = lay.cyt.astype(np.float32)
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
    return red_env, yel_env, nuc_env


def _render(rng, size, labels, ab, version=2):
    v3 = version >= 3
    tex = _textures()
    lay = _layout(rng, size, labels, version)
    r, S, px = lay.r, size, lay.px
    n = len(lay.cells)
    kind_px = np.append(lay.cells.kind, -1)[lay.lab]
    interphase = kind_px != MITOTIC
    low = _crop(tex["low"], r, r, rng)
    low_speck = np.clip(_crop(tex["low"], r, r, rng), -2.5, 2.5) * 0.5
    speck = _crop(tex["speck"], r, r, rng)
    ctx = _Ctx(
        rng=rng,
        lay=lay,
        grid=np.mgrid[0:r, 0:r].astype(np.float32),
        interphase=interphase,
        low=low,
        low_speck=low_speck,
        speck=speck,
        speck_pos=np.clip(speck, 0, 2.5),
        # soft edges (work res)
        cell_soft=np.clip((1.0 - lay.rc) * 14.0, 0, 1).astype(np.float32) * lay.inside,
        nuc_soft=np.clip(-lay.sd / (0.9 * px * 2) + 0.5, 0, 1).astype(np.float32) * (lay.rn < 2) * interphase,
        nucleoli=_nucleoli(rng, lay),
    )

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
    if v3:
        red_env, yel_env, nuc_env = render3.envelopes(ctx, g_red, g_yel, g_blu, mit_boost, kind_px)
    else:
        red_env, yel_env, nuc_env = _envelopes_v2(ctx, g_red, g_yel, g_blu, mit_boost, kind_px, edge_fade)
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
    green_lo += (ab["background"] * 0.5 + ab["haze"] * cyt * edge_fade) * (0.4 if v3 else 1.0)
    for c, pat in pats.items():
        if pat is not None:
            green_lo += ab["classes"].get(c, {"amp": 1.0})["amp"] * _BOOST.get(c, 1.0) * pat * g_grn
    # ---- full resolution: upsample the envelopes, multiply by fine textures ----
    if v3:
        scales = render3.scales(rng, ab["gain"])
        green_lo *= scales[1]
        mt = render3.microtubules(rng, lay, S, tex)
        er = np.float32(0.22) + np.float32(0.2) * _crop(tex["er3"], S, S, rng) + np.float32(0.6) * _crop(
            tex["er"], S, S, rng)
        mot = render3.chromatin(rng, tex, S)
    else:
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
    if v3:
        channels[1] += _up(render3.diffuse(rng, lay, edge_fade) * g_grn * scales[1], S) * _crop(tex["er3"], S, S, rng)
        channels[1] *= _crop(tex["grain3"], S, S, rng)
        render3.expose(rng, channels[2])
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
        if v3 and k in (1, 2):  # darker green and blue background: most real pixels there read 0
            x -= np.float32(1.0)
        noise = noise.T if k % 2 == 0 else noise[::-1]
        np.clip(x, 0, 255, out=x)
        img[k] = x
    return img, masks


SAMPLE_SEED = 7
SAMPLE_LABELS: tuple[int, ...] = (0, 7)
SAMPLE_VERSION = 3  # the generator the default ensemble was trained on


def sample_field(size: int = 512) -> SyntheticField:
    """The fixed field napari's "Open Sample" and ``napari-hpa demo`` show (nucleoplasm +
    Golgi apparatus, generator v3; chosen by eye among seeds 1-12 for showing both patterns
    most plainly, before any model saw them)."""
    return generate_field(SAMPLE_SEED, size, SAMPLE_LABELS, id="synth_sample", antibody="ab_sample",
                          version=SAMPLE_VERSION)
