"""The four layers of the image set that the review widget shows in a napari viewer: updated
in place when the shapes and dtypes match (the layers, their selection and the view stay),
else removed and added afresh.  Only public napari API.
"""

from __future__ import annotations

from .._reader import image_set_layers
from ..imageset import ImageSet


class SetLayers:
    """The layers of the image set on screen in ``viewer`` (none at first)."""

    def __init__(self, viewer):
        self.viewer = viewer
        self._layers: list = []

    @property
    def layers(self) -> list:
        """The layers still in the viewer (empty when none is shown)."""
        return [l for l in self._layers if l in self.viewer.layers]

    def show(self, image_set: ImageSet, meta: dict) -> None:
        """Replace the previous set's four layers (in place when shape and dtype match)."""
        tuples = image_set_layers(image_set, meta)
        layers = self.layers
        if len(layers) == len(tuples) and all(
            l.data.shape == d.shape and l.data.dtype == d.dtype
            for l, (d, _, _) in zip(layers, tuples)
        ):
            for layer, (data, kwargs, _) in zip(layers, tuples):
                layer.data = data
                layer.metadata = kwargs["metadata"]
                layer.name = kwargs["name"]
            return
        self.remove()
        self._layers = [self.viewer.add_image(data, **kwargs) for data, kwargs, _ in tuples]

    def remove(self) -> None:
        for layer in self._layers:
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self._layers = []
