"""The four layers of the image set on screen in a napari viewer (the label review and the
folder dock both swap sets through :class:`SetLayers`): updated in place when the dtype
matches, so the user's contrast limits, gamma, opacity and visibility stay; else removed and
added afresh.  Only public napari API.
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

    def adopt(self, layers: list) -> None:
        """Take over four channel layers already in the viewer (red, green, blue, yellow:
        the reader's order), e.g. the ones a folder opened with."""
        self._layers = list(layers)

    def show(self, image_set: ImageSet, meta: dict) -> None:
        """Replace the previous set's four layers: in place (data, name, metadata) when the
        dtypes match, whatever the shapes; else afresh."""
        tuples = image_set_layers(image_set, meta)
        layers = self.layers
        if len(layers) == len(tuples) and all(
            l.data.ndim == d.ndim and l.data.dtype == d.dtype
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
