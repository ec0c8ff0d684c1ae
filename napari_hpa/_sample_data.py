"""napari sample data: a synthetic HPA field of view, generated on the fly (fixed seed)."""

from __future__ import annotations

from ._reader import image_set_layers
from .classes import CLASS_NAMES
from .imageset import ImageSet


def make_sample_data():
    """Four image layers of the synthetic sample field, with its true labels in metadata."""
    from .synth import sample_field

    field = sample_field()
    meta = {
        "synthetic": True,
        "true_labels": list(field.labels),
        "true_label_names": [CLASS_NAMES[i] for i in field.labels],
    }
    return image_set_layers(ImageSet(field.id, field.image, {}), meta)
