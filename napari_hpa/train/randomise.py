"""Domain randomisation of training inputs (numpy): intensity and optics, never geometry.

Real HPA fields differ from synthetic ones, and from one another, in brightness, contrast,
background, focus and noise far more than the generator varies them.  :func:`randomise` draws,
from an item's random generator (so a run stays deterministic per seed, epoch and item), for a
``float32 [4, S, S]`` input in ``[0, 1]``:

1. a gamma per channel (log-uniform), ``x ** gamma``;
2. a gain per channel: one field-wide brightness factor times a per-channel factor, each
   log-uniform, around a per-channel centre (the synthetic channels are dimmer than real ones);
3. sometimes a background offset per channel (uniform, added to every pixel);
4. sometimes a Gaussian blur (one sigma for the four channels);
5. sometimes additive Gaussian noise and Poisson-like (signal-dependent) noise;

then clips to ``[0, 1]``.  Masks and targets are untouched: every step keeps where things are
(a blur only softens them).  The ranges of :data:`PROFILES` were fitted to the per-field
statistics of real Kaggle 2018 channels against generator v2 fields; ``benchmarks/bench_domain_rand.py``
measures the coverage (real vs synthetic, with and without randomisation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import TrainingError


@dataclass(frozen=True)
class Profile:
    """Ranges of one ``--domain-rand`` level.  Gains and gammas are log-uniform: ``(lo, hi)`` factors."""

    gain_centre: tuple[float, float, float, float]  # per channel (R, G, B, Y): the median gain
    channel_gain: tuple[float, float]  # per-channel factor around the centre
    field_gain: tuple[float, float]  # one factor for the whole field
    gamma: tuple[float, float]
    offset_p: float  # probability of a background offset (per channel)
    offset: tuple[float, float]
    blur_p: float
    blur_sigma: tuple[float, float]  # in pixels of the training input
    noise_p: float
    gauss_sigma: tuple[float, float]
    poisson_peak: tuple[float, float]  # photons at intensity 1 (log-uniform); fewer: more noise
    scale_lo: float = 0.7  # scale jitter: crops of scale_lo-100 % of the side (random_scale_crop)
    scale_p: float = 0.5


#: ``--domain-rand`` levels; ``none`` leaves the input exactly as it was.
PROFILES: dict[str, Profile | None] = {
    "none": None,
    # gain centres: the real/synthetic ratio of the median per-field mean (bench_domain_rand.py --fit); widths,
    # gamma and offset probability: the best mean W1/sd of a small grid (gamma 1 / 0.85-1.18 / 0.75-1.33,
    # offset p 0 / 0.1 / 0.25, channel gain 0.67-1.5 / 0.6-1.67 / 0.5-2) on 40 generator v2 fields
    "default": Profile(
        gain_centre=(1.48, 1.46, 1.45, 1.31), channel_gain=(0.5, 2.0), field_gain=(0.6, 1.67), gamma=(0.75, 1.33),
        offset_p=0.1, offset=(0.0, 0.04), blur_p=0.4, blur_sigma=(0.4, 1.2),
        noise_p=0.5, gauss_sigma=(0.0, 0.02), poisson_peak=(100.0, 2000.0)),
    # for data whose intensities already spread like real fields (generator v3): gains centred on 1 and
    # narrower ranges, so that randomisation adds robustness without pushing the spread past the real one
    # (bench_domain_rand.py on 100 v3 fields: mean W1/sd none 0.29, mild 0.28, default 0.60)
    "mild": Profile(
        gain_centre=(1.0, 1.0, 1.1, 1.0), channel_gain=(0.75, 1.33), field_gain=(0.8, 1.25), gamma=(0.87, 1.15),
        offset_p=0.1, offset=(0.0, 0.02), blur_p=0.25, blur_sigma=(0.4, 1.0),
        noise_p=0.3, gauss_sigma=(0.0, 0.01), poisson_peak=(300.0, 3000.0), scale_lo=0.8, scale_p=0.3),
    # wider than the real spread, for robustness beyond it
    "strong": Profile(
        gain_centre=(1.48, 1.46, 1.45, 1.31), channel_gain=(0.4, 2.5), field_gain=(0.5, 2.0), gamma=(0.6, 1.6),
        offset_p=0.2, offset=(0.0, 0.06), blur_p=0.6, blur_sigma=(0.4, 2.0),
        noise_p=0.7, gauss_sigma=(0.0, 0.04), poisson_peak=(30.0, 1000.0), scale_lo=0.6, scale_p=0.7),
}


def profile(name: str) -> Profile | None:
    if name not in PROFILES:
        raise TrainingError(f"unknown --domain-rand {name!r}; choose one of {', '.join(PROFILES)}")
    return PROFILES[name]


def _loguniform(rng: np.random.Generator, lo_hi: tuple[float, float], size=None):
    lo, hi = lo_hi
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size))


# --------------------------------------------------------------------------- the steps (each usable alone)


def apply_gamma(x: np.ndarray, gammas) -> np.ndarray:
    """``x ** gamma`` per channel (``x`` in ``[0, 1]``)."""
    return np.power(np.clip(x, 0.0, 1.0), np.asarray(gammas, np.float32)[:, None, None])


def apply_gain(x: np.ndarray, gains) -> np.ndarray:
    """``x * gain`` per channel (not clipped)."""
    return x * np.asarray(gains, np.float32)[:, None, None]


def add_offset(x: np.ndarray, offsets) -> np.ndarray:
    return x + np.asarray(offsets, np.float32)[:, None, None]


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of every channel (the channel axis untouched)."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(x, (0.0, sigma, sigma), mode="reflect")


def add_noise(x: np.ndarray, rng: np.random.Generator, sigma: float, peak: float) -> np.ndarray:
    """Additive Gaussian noise of ``sigma`` plus Poisson-like noise (``sqrt(x / peak)`` standard deviation)."""
    sd = np.sqrt(np.clip(x, 0.0, None) / peak) + sigma
    return x + rng.standard_normal(x.shape, dtype=np.float32) * sd.astype(np.float32)


def randomise(x: np.ndarray, rng: np.random.Generator, prof: Profile | str | None) -> np.ndarray:
    """The randomised ``float32`` copy of ``x`` (``[C, S, S]`` in ``[0, 1]``); ``None`` / ``"none"``: ``x`` itself."""
    if isinstance(prof, str):
        prof = profile(prof)
    if prof is None:
        return x
    c = x.shape[0]
    centre = np.resize(np.asarray(prof.gain_centre, np.float64), c)
    gains = centre * _loguniform(rng, prof.channel_gain, c) * _loguniform(rng, prof.field_gain)
    gammas = _loguniform(rng, prof.gamma, c)
    offsets = np.where(rng.random(c) < prof.offset_p, rng.uniform(*prof.offset, c), 0.0)
    sigma = rng.uniform(*prof.blur_sigma) if rng.random() < prof.blur_p else 0.0
    noisy = rng.random() < prof.noise_p
    gauss, peak = rng.uniform(*prof.gauss_sigma), _loguniform(rng, prof.poisson_peak)
    y = apply_gain(apply_gamma(x.astype(np.float32, copy=False), gammas), gains)
    y = add_offset(y, offsets)
    if sigma > 0:
        y = blur(y, sigma)
    if noisy:
        y = add_noise(y, rng, gauss, peak)
    return np.clip(y, 0.0, 1.0).astype(np.float32, copy=False)
