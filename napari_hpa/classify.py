"""Classifying the field of view on screen: what the classifier widget shows, without Qt.

:func:`channel_groups` finds the four channel layers of each id among the
viewer's layers (by the reader's metadata, or by the ``"{id} {stain}"``
names); :func:`classify` runs the ensemble on one field of view and returns a
:class:`Classification` with everything the widget displays: probabilities
(ensemble and per member), thresholds, predicted labels, the attention maps
and the geometry that lays them over the image.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .classes import CHANNELS, CLASS_NAMES
from .errors import HPAError
from .layers import layer_channel
from .engine.domain import Verdict
from .engine.ensemble import Ensemble, attention_layer_geometry

class LayerSelectionError(HPAError):
    """The layers picked for classification are not one four-channel field of view."""


@dataclass
class Classification:
    image_id: str
    probs: np.ndarray  # [28]
    member_probs: dict[str, np.ndarray]  # name -> [28]
    thresholds: np.ndarray  # [28]
    labels: tuple[int, ...]
    attention: np.ndarray | None  # [28, h, w]
    attention_scale: tuple[float, float] | None
    attention_translate: tuple[float, float] | None
    ensemble: str
    embedding: np.ndarray | None = None  # [D], when the ensemble has an embedding member
    providers: list[str] = field(default_factory=list)
    tta: str = "none"
    verdict: Verdict = field(default_factory=lambda: Verdict(float("nan"), None))
    trained_on: str = ""

    @property
    def label_names(self) -> list[str]:
        return [CLASS_NAMES[i] for i in self.labels]

    @property
    def top_class(self) -> int:
        return int(np.argmax(self.probs))

    def ranked(self) -> list[int]:
        """Class indices by decreasing probability."""
        return [int(i) for i in np.argsort(-self.probs, kind="stable")]

    def as_metadata(self) -> dict:
        """Plain-Python numbers for layer metadata (saving and scripting reach them there)."""
        return {
            "ensemble": self.ensemble,
            "tta": self.tta,
            "providers": list(self.providers),
            "classes": list(CLASS_NAMES),
            "probabilities": [round(float(p), 6) for p in self.probs],
            "member_probabilities": {
                k: [round(float(p), 6) for p in v] for k, v in self.member_probs.items()
            },
            "thresholds": [round(float(t), 6) for t in self.thresholds],
            "labels": list(self.labels),
            "label_names": self.label_names,
            "domain": {
                "in_domain": self.verdict.in_domain,
                "score": None if np.isnan(self.verdict.score) else round(float(self.verdict.score), 4),
                "reason": self.verdict.reason,
            },
        }


def channel_groups(layers: Iterable[tuple[str, dict, object]]) -> dict[str, dict[str, object]]:
    """Complete four-channel groups among ``(name, metadata, layer)`` triples: id -> channel -> layer."""
    groups: dict[str, dict[str, object]] = {}
    for name, metadata, layer in layers:
        found = layer_channel(name, metadata)
        if found is not None:
            groups.setdefault(found[0], {}).setdefault(found[1], layer)
    return {i: g for i, g in groups.items() if set(g) == set(CHANNELS)}


def stack_channels(planes: Sequence[np.ndarray], names: Sequence[str]) -> np.ndarray:
    """Four 2-D planes (RGBY order) as a ``(4, H, W)`` array; a clear error otherwise."""
    if len(planes) != 4:
        raise LayerSelectionError(f"a field of view needs 4 channel layers, got {len(planes)}")
    arrays = [np.asarray(p) for p in planes]
    for a, n, ch in zip(arrays, names, CHANNELS):
        if a.ndim != 2:
            raise LayerSelectionError(
                f"layer {n!r} ({ch}) has shape {a.shape}; each channel must be a 2-D image"
            )
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        desc = ", ".join(f"{n!r} {a.shape}" for a, n in zip(arrays, names))
        raise LayerSelectionError(f"the four channel layers differ in shape: {desc}")
    dtypes = {a.dtype for a in arrays}
    if len(dtypes) != 1:
        desc = ", ".join(f"{n!r} {a.dtype}" for a, n in zip(arrays, names))
        raise LayerSelectionError(f"the four channel layers differ in dtype: {desc}")
    return np.stack(arrays)


def classify(ensemble: Ensemble, image_id: str, data: np.ndarray, tta: str | None = None) -> Classification:
    """Run ``ensemble`` on one ``(4, H, W)`` field of view."""
    tta = tta or ensemble.spec.tta
    pred = ensemble.predict([data], tta=tta, ids=[image_id])  # refuses NaN / out-of-range values
    if pred.failures:
        raise HPAError(f"{image_id}: {pred.failures[0]}")
    attention = scale = translate = None
    if pred.attention is not None:
        attention = pred.attention[0]
        scale, translate = attention_layer_geometry(data.shape[1:], attention.shape[1:])
    return Classification(
        image_id=image_id,
        probs=pred.probs[0],
        member_probs={k: v[0] for k, v in pred.member_probs.items()},
        thresholds=pred.thresholds,
        labels=pred.label_indices(0),
        attention=attention,
        attention_scale=scale,
        attention_translate=translate,
        ensemble=ensemble.name,
        embedding=None if pred.embeddings is None else pred.embeddings[0],
        providers=ensemble.providers_in_use,
        tta=tta,
        verdict=pred.verdicts[0],
        trained_on=ensemble.trained_on,
    )


def verdict_text(result: Classification) -> str:
    """The domain verdict in words, with what to do when the field is out of the domain."""
    v = result.verdict
    score = "" if v.score != v.score else f" (domain score {v.score:.2f}; in-domain fields score 1 or less)"
    if v.in_domain is True:
        return f"In the ensemble's domain{score}."
    if v.in_domain is None:
        return ("Domain unknown: this ensemble records no domain, so nothing says whether it has seen "
                "fields like this one.")
    return (
        f"OUT OF DOMAIN{score}: {v.reason}. These labels are guesses. The ensemble was trained on "
        f"{result.trained_on.split('.')[0]}. Classify with a model made for fields like this one "
        "(Choose… imports an .onnx or .pth; see the README, 'Real models')."
    )
