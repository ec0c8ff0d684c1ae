"""The attention maps on the canvas: the maps as one layer (28 classes on the ``class``
slider), the iso-contours of the class on show as a Shapes layer, and the canvas text that
names the class.  Drawn so that the stains stay visible (see :mod:`napari_hpa.attention`)."""

from __future__ import annotations

from qtpy.QtCore import QTimer

from ..attention import CONTOUR_COLOR, LEVEL_STYLE, LEVELS, contours
from ..classes import CLASS_NAMES, NUM_CLASSES
from ..classify import Classification
from ..layers import (
    ID_KEY,
    attention_layer_name,
    attention_metadata,
    contours_layer_name,
    contours_metadata,
    is_attention_layer,
)


class AttentionView:
    """Shows a :class:`Classification`'s attention in ``viewer`` and follows the class slider."""

    def __init__(self, viewer):
        self.viewer = viewer
        self._result: Classification | None = None

    def show(self, result: Classification) -> None:
        """The maps as one layer (28 classes on the ``class`` slider, exactly over the field;
        transparent where low, cyan where high, so the stains stay visible) and the
        iso-contours of the class on show as a second layer."""
        self._result = result
        name = attention_layer_name(result.image_id)
        scale = (1.0, *result.attention_scale)
        translate = (0.0, *result.attention_translate)
        meta = attention_metadata(result.image_id)
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            layer.data = result.attention
            layer.scale, layer.translate = scale, translate
        else:
            self.viewer.add_image(
                result.attention,
                name=name,
                scale=scale,
                translate=translate,
                colormap=_attention_colormap(),
                blending="translucent",
                opacity=0.35,
                contrast_limits=(0.0, 1.0),
                interpolation2d="cubic",
                metadata=meta,
            )
        labels = list(self.viewer.dims.axis_labels)
        labels[-3] = "class"
        self.viewer.dims.axis_labels = labels
        overlay = self.viewer.canvas.overlays["text"]
        overlay.visible = True
        overlay.font_size = 11
        self.show_class(result.top_class)

    def show_class(self, c: int) -> None:
        """Move the class slider to class ``c`` (the overlay then names it, and the contours
        follow)."""
        if self.viewer.dims.ndim >= 3:
            self.viewer.dims.set_current_step(self.viewer.dims.ndim - 3, c)
        self.on_step()

    def on_step(self, *_):
        if self._result is None or self._result.attention is None or self.viewer.dims.ndim < 3:
            return
        c = int(self.viewer.dims.current_step[self.viewer.dims.ndim - 3])
        if 0 <= c < NUM_CLASSES:
            self.viewer.canvas.overlays["text"].text = (
                f"attention: {c} {CLASS_NAMES[c]} (p = {self._result.probs[c]:.2f})\n"
                f"lines at {' / '.join(f'{v:g}' for v in LEVELS)}"
            )
            # after the event that moved the slider (it may come while a layer is inserted)
            QTimer.singleShot(0, self._show_contours)

    def _show_contours(self) -> None:
        result = self._result
        if result is None or result.attention is None or self.viewer.dims.ndim < 3 \
                or attention_layer_name(result.image_id) not in self.viewer.layers:
            return  # nothing shown, or its maps were removed (another set is on screen)
        c = int(self.viewer.dims.current_step[self.viewer.dims.ndim - 3])
        if not 0 <= c < NUM_CLASSES:
            return
        field_shape = self._field_shape(result.image_id)
        if field_shape is None:
            return
        lines = contours(result.attention[c], field_shape)
        name = contours_layer_name(result.image_id)
        widen = max(field_shape) / 512  # widths are in field pixels: keep them visible on large fields
        data = [line.path for line in lines]
        widths = [LEVEL_STYLE[line.level][0] * widen for line in lines]
        colors = [(*CONTOUR_COLOR, LEVEL_STYLE[line.level][1]) for line in lines]
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            layer.data = []
        else:
            layer = self.viewer.add_shapes(name=name, ndim=2, metadata=contours_metadata(result.image_id, c))
            self.viewer.layers.selection.active = self.viewer.layers[attention_layer_name(result.image_id)]
        if data:
            layer.add_paths(data, edge_width=widths, edge_color=colors)
        layer.metadata = contours_metadata(result.image_id, c)

    def _field_shape(self, image_id: str) -> tuple[int, int] | None:
        for layer in self.viewer.layers:
            if layer.metadata.get(ID_KEY) == image_id and not is_attention_layer(layer.name, layer.metadata) \
                    and getattr(layer.data, "ndim", 0) == 2:
                return tuple(layer.data.shape)
        return None


def _attention_colormap():
    """Transparent at 0, cyan at 1: the maps tint the field without washing out the stains."""
    from napari.utils.colormaps import Colormap

    return Colormap([[0.0, 0.9, 1.0, 0.0], [0.0, 0.9, 1.0, 1.0]], name="hpa attention")
