"""The layer schema: how napari-hpa names its napari layers and what their metadata holds.

Core (no napari import): the reader, the classifier and the review widget all spell the
schema through this module.

* A field of view is four image layers ``"{id} {stain}"`` (``"x microtubules"``, ``"x
  protein"``, ``"x nucleus"``, ``"x ER"``) whose metadata hold ``hpa_id``, ``hpa_channel``
  (red / green / blue / yellow), ``path`` (this channel's file) and ``paths`` (all four).
* Once classified in the viewer, each channel layer's metadata hold ``hpa_classification``
  (the result as plain numbers: ensemble, labels, probabilities, domain).
* Its attention maps are one layer ``"{id} attention"`` whose metadata hold ``hpa_id``,
  ``hpa_attention`` (true) and ``classes``; the iso-contours of the class on show are a
  Shapes layer ``"{id} attention contours"`` (metadata ``hpa_id``, ``hpa_attention_contours``
  true, ``class``).
"""

from __future__ import annotations

from pathlib import Path

from .classes import CHANNEL_STAINS, CHANNELS, CLASS_NAMES

ID_KEY = "hpa_id"
CHANNEL_KEY = "hpa_channel"
ATTENTION_KEY = "hpa_attention"
ATTENTION_SUFFIX = " attention"
CONTOURS_KEY = "hpa_attention_contours"
CLASSIFICATION_KEY = "hpa_classification"  # a channel layer's classifier result (plain numbers)
CONTOURS_SUFFIX = " attention contours"
_STAIN_TO_CHANNEL = {stain: ch for ch, stain in CHANNEL_STAINS.items()}


def channel_layer_name(image_id: str, channel: str) -> str:
    return f"{image_id} {CHANNEL_STAINS[channel]}"


def attention_layer_name(image_id: str) -> str:
    return f"{image_id}{ATTENTION_SUFFIX}"


def contours_layer_name(image_id: str) -> str:
    return f"{image_id}{CONTOURS_SUFFIX}"


def contours_metadata(image_id: str, cls: int | None) -> dict:
    return {ID_KEY: image_id, CONTOURS_KEY: True, "class": cls}


def channel_metadata(image_id: str, channel: str, paths: dict[str, Path]) -> dict:
    return {
        ID_KEY: image_id,
        CHANNEL_KEY: channel,
        "path": str(paths[channel]) if channel in paths else None,
        "paths": {c: str(p) for c, p in paths.items()},
    }


def attention_metadata(image_id: str) -> dict:
    return {ID_KEY: image_id, "classes": list(CLASS_NAMES), ATTENTION_KEY: True}


def is_attention_layer(name: str, metadata: dict) -> bool:
    """The attention maps or their contours (layers that belong to a field's result)."""
    return (bool(metadata.get(ATTENTION_KEY)) or bool(metadata.get(CONTOURS_KEY))
            or name.endswith((ATTENTION_SUFFIX, CONTOURS_SUFFIX)))


def layer_channel(name: str, metadata: dict) -> tuple[str, str] | None:
    """``(id, channel)`` of a layer, from the reader's metadata or a ``"{id} {stain}"`` name."""
    if ID_KEY in metadata and metadata.get(CHANNEL_KEY) in CHANNELS:
        return str(metadata[ID_KEY]), metadata[CHANNEL_KEY]
    image_id, _, stain = name.rpartition(" ")
    if image_id and stain in _STAIN_TO_CHANNEL:
        return image_id, _STAIN_TO_CHANNEL[stain]
    return None
