"""Domain awareness: how far a field of view is from the fields an ensemble was made for.

A model is only as good as the fields it has seen.  An ensemble therefore
records what its domain looks like (``domain.npz`` beside ``ensemble.json``),
computed from held-out images of that domain when it is built or imported, and
the engine scores every field against it.

Three views of a field are scored, each by its own Gaussian model:

* ``intensity``: per channel mean, standard deviation, median, 99th percentile,
  the fraction of pixels above 0.1 and the mean step between neighbouring
  pixels relative to the spread (texture), plus the six correlations between
  channels, on the model input at the smallest member size (the model's own
  view of the field: brightness, coverage, which stain lies where);
* ``texture``: per channel, how the channel's variation is spread over the
  scales of structure: the (log) fraction of its spatial power spectrum in each of
  seven octave bands, 0.5-2 up to 64 and more cycles per field, on the same model
  input.  Brightness does not enter; the size, sharpness and spacing of cells,
  filaments and dots do (real reference channels differ from synthetic ones here
  even where their intensities match);
* ``features``: what the models make of the field, the embedding of the
  ensemble's embedding member (else every member's logits) on the untransformed
  view, reduced by PCA, with the distance from the PCA subspace as one more
  coordinate.

Each view's score is the root mean square of the whitened coordinates (the
intensity view's covariance has 0.005, about 1.3 grey levels, added to every
standard deviation, so that a feature nearly constant in the domain, such as a
background level, cannot make a tiny difference count for much; the texture
view's has 0.05, about 5 % of a band's power); its threshold
is 1.1 times the 99.5th percentile of the scores of held-out domain images
(two-fold cross-fitting: fitted on one half, scored on the other; the factor
allows for new fields lying a little further out than halves of one data set,
which share their antibodies).  The
``domain_score`` of a field is the largest of the scores, each divided by its
threshold: at most 1 is in the domain, above 1 out of it.  Records of version 1
(written before the texture view) have no texture part and are scored without it.

Fields whose channels are empty (constant) or largely saturated are out of
the domain whatever the scores say, and the reason is given.
"""

from __future__ import annotations

import functools
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..classes import CHANNELS
from ..errors import HPAError

DOMAIN_VERSION = 2
READS_VERSIONS = (1, 2)  # version 1: no texture part
QUANTILE = 0.995
# held-out halves of one data set share its antibodies and acquisition: new fields of the same
# domain lie a little further out, so the threshold sits this much above the held-out quantile
MARGIN = 1.1
MIN_IMAGES = 40
INTENSITY_MIN_SCALE = 0.005  # about 1.3 grey levels of 255: smaller differences never count much
TEXTURE_MIN_SCALE = 0.05  # log power fractions: about 5 % of a band's power
MAX_COMPONENTS = 32
SATURATED_FRACTION = 0.2
_STATS = ("mean", "std", "median", "p99", "coverage", "edges")
INTENSITY_NAMES = tuple(f"{ch} {s}" for ch in CHANNELS for s in _STATS) + tuple(
    f"{a}-{b} correlation" for i, a in enumerate(CHANNELS) for b in CHANNELS[i + 1 :]
)
# octave bands of spatial frequency, in cycles per field of the model input (the last one open)
TEXTURE_BANDS = ((0.5, 2), (2, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, np.inf))
TEXTURE_NAMES = tuple(
    f"{ch} power at {a:g}-{b:g} cycles per field" if np.isfinite(b) else f"{ch} power at {a:g}+ cycles per field"
    for ch in CHANNELS for a, b in TEXTURE_BANDS
)
#: The columns of :func:`input_features`: the intensity view's, then the texture view's.
INPUT_NAMES = INTENSITY_NAMES + TEXTURE_NAMES
_INPUT_PARTS = (("intensity", slice(0, len(INTENSITY_NAMES)), INTENSITY_MIN_SCALE),
                ("texture", slice(len(INTENSITY_NAMES), len(INPUT_NAMES)), TEXTURE_MIN_SCALE))


class DomainError(HPAError):
    """A domain record that cannot be made or used; the message says why and where."""


# --------------------------------------------------------------------------- features


def intensity_features(x: np.ndarray) -> np.ndarray:
    """``(4, S, S)`` model input in [0, 1] -> the ``intensity`` feature vector."""
    x = np.asarray(x, dtype=np.float32)
    flat = x.reshape(4, -1)
    q = np.percentile(flat, [50, 99], axis=1)
    std = flat.std(1)
    # texture: mean step between neighbouring pixels, relative to the channel's spread
    steps = np.abs(np.diff(x, axis=1)).mean((1, 2)) + np.abs(np.diff(x, axis=2)).mean((1, 2))
    stats = np.stack(
        [flat.mean(1), std, q[0], q[1], (flat > 0.1).mean(1), steps / (std + 0.01)], axis=1
    ).reshape(-1)
    centred = flat - flat.mean(1, keepdims=True)
    norm = np.sqrt((centred**2).sum(1))
    cov = centred @ centred.T
    corr = [
        cov[i, j] / (norm[i] * norm[j]) if norm[i] > 0 and norm[j] > 0 else 0.0
        for i in range(4)
        for j in range(i + 1, 4)
    ]
    return np.concatenate([stats, np.asarray(corr, np.float32)]).astype(np.float64)


@functools.lru_cache(maxsize=4)
def _band_masks(h: int, w: int) -> np.ndarray:
    """``[bands, h, w // 2 + 1]`` 0/1 masks of ``TEXTURE_BANDS`` on an ``h x w`` plane's rfft2 grid
    (one per input size: computed once, not per field)."""
    radius = np.hypot(*np.meshgrid(np.fft.fftfreq(h) * h, np.fft.rfftfreq(w) * w, indexing="ij"))
    masks = np.stack([(radius >= a) & (radius < b) for a, b in TEXTURE_BANDS]).astype(np.float64)
    masks.flags.writeable = False  # shared by every call
    return masks


def texture_features(x: np.ndarray) -> np.ndarray:
    """``(4, S, S)`` model input -> the ``texture`` feature vector: per channel, the natural log
    of the fraction of the channel's spatial power (mean removed) in each of ``TEXTURE_BANDS``."""
    x = np.asarray(x, dtype=np.float64)
    power = np.abs(np.fft.rfft2(x - x.mean((1, 2), keepdims=True))) ** 2
    power[:, :, 1:] *= 2  # rfft2 holds the positive half of the columns' frequencies once
    bands = np.einsum("cij,bij->cb", power, _band_masks(*x.shape[1:]))
    total = bands.sum(1, keepdims=True)
    fractions = np.divide(bands, total, out=np.full_like(bands, 1 / len(TEXTURE_BANDS)), where=total > 0)
    return np.log(fractions + 1e-6).reshape(-1)


def input_features(x: np.ndarray) -> np.ndarray:
    """``(4, S, S)`` model input in [0, 1] -> the columns ``INPUT_NAMES``: what the domain
    record's intensity and texture views see of the field."""
    return np.concatenate([intensity_features(x), texture_features(x)])


def input_problems(x: np.ndarray) -> list[str]:
    """Channels of a ``(4, S, S)`` model input that no model can read: empty or saturated."""
    problems = []
    for ch, plane in zip(CHANNELS, np.asarray(x)):
        if float(plane.max()) == float(plane.min()):
            problems.append(f"the {ch} channel is empty (every pixel {float(plane.max()):.3g})")
            continue
        saturated = float((plane >= 0.999).mean())
        if saturated > SATURATED_FRACTION:
            problems.append(f"the {ch} channel is saturated ({100 * saturated:.0f}% of pixels at maximum)")
    return problems


# --------------------------------------------------------------------------- Gaussian parts


@dataclass
class Part:
    """One view's Gaussian model: ``score(x) = rms(whitened coordinates)``."""

    name: str
    mean: np.ndarray  # [d]
    scale: np.ndarray  # [d] per-feature standard deviation (standardisation)
    components: np.ndarray  # [k, d] PCA directions of the standardised features
    variances: np.ndarray  # [k]
    residual: float  # mean squared distance from the PCA subspace (0: none kept)
    threshold: float = 1.0

    @classmethod
    def fit(cls, name: str, x: np.ndarray, max_components: int = MAX_COMPONENTS,
            min_scale: float = 0.0) -> Part:
        """Fit on the rows of ``x``.

        ``min_scale`` > 0: the full covariance plus ``min_scale**2`` on its diagonal, so that
        no difference smaller than about ``min_scale`` counts as many deviations, even along
        a feature nearly constant in the domain (a background level).  Else PCA of the
        standardised features, ``max_components`` kept, and the distance from their
        subspace as one more coordinate (for long feature vectors such as embeddings).
        """
        x = np.asarray(x, dtype=np.float64)
        mean = x.mean(0)
        if min_scale > 0:
            scale = np.sqrt(x.var(0) + min_scale**2)
            z = (x - mean) / scale
            cov = z.T @ z / max(len(x) - 1, 1) + np.diag(min_scale**2 / scale**2)
            variances, vecs = np.linalg.eigh(cov)
            return cls(name, mean, scale, vecs.T, np.maximum(variances, 1e-12), 0.0)
        scale = x.std(0)
        scale = np.where(scale > 1e-6 * max(float(scale.max()), 1e-12), scale, np.inf)
        z = (x - mean) / scale
        k = int(min(max_components, x.shape[1], max(1, x.shape[0] // 4)))
        _, s, vt = np.linalg.svd(z, full_matrices=False)
        components = vt[:k]
        variances = np.maximum(s[:k] ** 2 / max(len(x) - 1, 1), 1e-9)
        rest = z - (z @ components.T) @ components
        residual = float((rest**2).sum(1).mean()) if k < x.shape[1] else 0.0
        return cls(name, mean, scale, components, variances, residual if residual > 1e-12 else 0.0)

    def raw_scores(self, x: np.ndarray) -> np.ndarray:
        z = (np.atleast_2d(np.asarray(x, dtype=np.float64)) - self.mean) / self.scale
        proj = z @ self.components.T
        terms = (proj**2 / self.variances).sum(1)
        dims = len(self.variances)
        if self.residual > 0:
            rest = z - proj @ self.components
            terms = terms + (rest**2).sum(1) / self.residual
            dims += 1
        return np.sqrt(terms / dims)

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Scores divided by the threshold: at most 1 is in the domain."""
        return self.raw_scores(x) / self.threshold

    def arrays(self) -> dict[str, np.ndarray]:
        p = self.name + "."
        return {
            p + "mean": self.mean, p + "scale": self.scale, p + "components": self.components,
            p + "variances": self.variances,
            p + "scalars": np.array([self.residual, self.threshold]),
        }

    @classmethod
    def from_arrays(cls, name: str, z) -> Part:
        p = name + "."
        residual, threshold = (float(v) for v in z[p + "scalars"])
        return cls(name, z[p + "mean"], z[p + "scale"], z[p + "components"], z[p + "variances"],
                   residual, threshold)


def _cross_fit_threshold(name: str, x: np.ndarray, seed: int, quantile: float, min_scale: float) -> float:
    """The ``quantile`` of held-out raw scores: two folds, each scored by a part fitted on the other."""
    order = np.random.default_rng(seed).permutation(len(x))
    halves = order[: len(x) // 2], order[len(x) // 2 :]
    held_out = []
    for a, b in (halves, halves[::-1]):
        held_out.append(Part.fit(name, x[a], min_scale=min_scale).raw_scores(x[b]))
    return float(np.quantile(np.concatenate(held_out), quantile))


# --------------------------------------------------------------------------- the record


@dataclass
class Verdict:
    """The domain verdict of one field."""

    score: float  # max over views of score / threshold; NaN when the ensemble records no domain
    in_domain: bool | None  # None: unknown (no domain record and nothing wrong with the input)
    reason: str = ""  # why a field is out of the domain, in words

    @property
    def word(self) -> str:
        return {True: "in domain", False: "out of domain", None: "domain unknown"}[self.in_domain]


@dataclass
class DomainModel:
    """What an ensemble's domain looks like, and how to score a field against it."""

    description: str  # in words: the images it was computed from
    features_from: str  # e.g. "embedding of arcface (512-d)" or "logits of a, b"
    feature_dim: int
    input_size: int  # the model input size the intensity features are computed at
    n_images: int
    parts: dict[str, Part] = field(default_factory=dict)
    quantile: float = QUANTILE

    @classmethod
    def fit(
        cls,
        inputs: np.ndarray,
        features: np.ndarray,
        *,
        description: str,
        features_from: str,
        input_size: int,
        quantile: float = QUANTILE,
        seed: int = 0,
    ) -> DomainModel:
        """``inputs``: rows of :func:`input_features`; ``features``: the models' rows."""
        inputs = np.asarray(inputs, dtype=np.float64)
        features = np.asarray(features, dtype=np.float64)
        n = len(inputs)
        if n < MIN_IMAGES:
            raise DomainError(
                f"a domain record needs at least {MIN_IMAGES} images of the domain, got {n}"
            )
        if len(features) != n or inputs.shape[1:] != (len(INPUT_NAMES),):
            raise DomainError(f"expected {n} rows of {len(INPUT_NAMES)} input features and as "
                              f"many feature rows, got {inputs.shape} and {features.shape}")
        views = [(name, inputs[:, cols], floor) for name, cols, floor in _INPUT_PARTS]
        views.append(("features", features, 0.0))
        parts = {}
        for name, x, floor in views:
            if not np.isfinite(x).all():
                raise DomainError(f"the {name} of the domain images hold NaN or infinite values")
            part = Part.fit(name, x, min_scale=floor)
            part.threshold = MARGIN * _cross_fit_threshold(name, x, seed, quantile, floor)
            parts[name] = part
        return cls(description, features_from, features.shape[1], int(input_size), n, parts, quantile)

    # ------------------------------------------------------------------ scoring

    def verdicts(
        self, inputs: np.ndarray, features: np.ndarray, problems: list[list[str]] | None = None
    ) -> list[Verdict]:
        """One verdict per row of ``inputs`` (:func:`input_features`) and ``features``."""
        inputs = np.atleast_2d(inputs)
        views = [(name, inputs[:, cols]) for name, cols, _ in _INPUT_PARTS if name in self.parts]
        scores = {name: self.parts[name].scores(x) for name, x in [*views, ("features", features)]}
        out = []
        for i in range(len(inputs)):
            score = float(max(s[i] for s in scores.values()))
            reasons = list(problems[i]) if problems else []
            if not np.isfinite(score):
                reasons.append("the field's features are not finite numbers")
            for name, x in views:
                if scores[name][i] > 1:
                    reasons.append(self._input_reason(name, x[i]))
            if scores["features"][i] > 1:
                reasons.append("the model's features are unlike those of its domain fields")
            inside = bool(score <= 1) and not reasons
            out.append(Verdict(score, inside, "; ".join(reasons)))
        return out

    def _input_reason(self, view: str, x: np.ndarray) -> str:
        """In words: the feature of ``view`` furthest from the domain, with the domain's range."""
        part = self.parts[view]
        z = (x - part.mean) / part.scale
        worst = int(np.nanargmax(np.abs(np.where(np.isfinite(z), z, 0))))
        lo = part.mean[worst] - 2 * part.scale[worst]
        hi = part.mean[worst] + 2 * part.scale[worst]
        if view == "texture":  # log fractions, shown as percentages of the channel's power
            name = TEXTURE_NAMES[worst]
            pct = [100 * float(np.exp(v)) for v in (x[worst], lo, min(hi, 0.0))]
            return (f"its texture is unlike the domain fields' ({name} {pct[0]:.2g}% of the channel's "
                    f"power; in the domain {pct[1]:.2g}% to {pct[2]:.2g}%)")
        name = INTENSITY_NAMES[worst]
        if "correlation" not in name:
            lo = max(lo, 0.0)
        return (
            f"its intensities are unlike the domain fields' ({name} {x[worst]:.3g}; "
            f"in the domain {lo:.3g} to {hi:.3g})"
        )

    # ------------------------------------------------------------------ files

    def meta(self) -> dict:
        return {
            "hpa_domain": DOMAIN_VERSION,
            "description": self.description,
            "features_from": self.features_from,
            "feature_dim": self.feature_dim,
            "input_size": self.input_size,
            "n_images": self.n_images,
            "quantile": self.quantile,
            "intensity_features": list(INTENSITY_NAMES),
            "texture_features": list(TEXTURE_NAMES),
        }

    def save(self, path: str | Path) -> Path:
        from ..fileio import atomic_write_bytes

        arrays = {"meta": np.array(json.dumps(self.meta()))}
        for part in self.parts.values():
            arrays.update(part.arrays())
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return atomic_write_bytes(Path(path), buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> DomainModel:
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                version = meta.get("hpa_domain")
                if version not in READS_VERSIONS:
                    raise DomainError(
                        f"{path}: domain record version {version!r}; this napari-hpa "
                        f"reads versions {', '.join(map(str, READS_VERSIONS))}"
                    )
                names = ("intensity", "features") if version == 1 else ("intensity", "texture", "features")
                parts = {name: Part.from_arrays(name, z) for name in names}
        except DomainError:
            raise
        except FileNotFoundError:
            raise DomainError(f"{path}: no such domain record") from None
        except Exception as exc:  # noqa: BLE001 - numpy and zipfile raise many types for damaged files
            raise DomainError(f"{path}: not a napari-hpa domain record ({type(exc).__name__}: {exc})") from None
        for name, cols, _ in _INPUT_PARTS:
            expected = (cols.stop - cols.start,)
            if name in parts and parts[name].mean.shape != expected:
                raise DomainError(f"{path}: {name} part has {parts[name].mean.shape} features, "
                                  f"expected {expected[0]}")
        model = cls(
            description=str(meta.get("description", "")),
            features_from=str(meta.get("features_from", "")),
            feature_dim=int(meta.get("feature_dim", 0)),
            input_size=int(meta.get("input_size", 0)),
            n_images=int(meta.get("n_images", 0)),
            parts=parts,
            quantile=float(meta.get("quantile", QUANTILE)),
        )
        if parts["features"].mean.shape != (model.feature_dim,):
            raise DomainError(f"{path}: features part does not have feature_dim {model.feature_dim}")
        return model


def verdicts_without_record(problems: list[list[str]]) -> list[Verdict]:
    """Verdicts when the ensemble records no domain: only broken inputs are called out."""
    return [
        Verdict(float("nan"), False if p else None, "; ".join(p)) for p in problems
    ]
