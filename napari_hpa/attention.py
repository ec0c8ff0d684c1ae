"""Attention maps drawn so that the stains stay visible: iso-contours of one class's map.

An ensemble's attention map is a coarse ``h x w`` grid over an ``H x W`` field (cell
``(i, j)`` covers rows ``[i H/h, (i+1) H/h)``; see
:func:`napari_hpa.engine.ensemble.attention_layer_geometry`).  :func:`smooth_map` upsamples it
with cubic interpolation on the grid's own geometry (cell centres stay where they are), and
:func:`contours` traces its iso-lines in the field's pixel coordinates, ready for a napari
Shapes layer of paths.  A step between two cells crosses the middle level exactly on their
shared edge, so the lines sit where the grid says.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: the iso-levels drawn, and how they look (width in screen pixels, opacity)
LEVELS = (0.25, 0.5, 0.75)
LEVEL_STYLE = {0.25: (1.0, 0.45), 0.5: (2.0, 0.75), 0.75: (3.0, 1.0)}
CONTOUR_COLOR = (0.0, 0.9, 1.0)  # cyan: none of the four stains' hues
UPSAMPLE = 8  # working grid per attention cell: smooth enough, cheap at any field size


@dataclass(frozen=True)
class Contour:
    level: float
    path: np.ndarray  # [K, 2] (row, col) in the field's pixel coordinates


def smooth_map(grid: np.ndarray, factor: int = UPSAMPLE) -> np.ndarray:
    """``grid`` (``h x w``) upsampled ``factor`` times with cubic interpolation, clipped to
    [0, 1]; working pixel ``(r, c)`` has its centre at grid coordinate ``(r + 0.5) / factor - 0.5``."""
    from skimage.transform import resize

    grid = np.asarray(grid, dtype=np.float64)
    out = resize(grid, (grid.shape[0] * factor, grid.shape[1] * factor), order=3, mode="edge",
                 anti_aliasing=False, preserve_range=True)
    return np.clip(out, 0.0, 1.0)


def contours(grid: np.ndarray, field_shape: tuple[int, int], levels=LEVELS,
             factor: int = UPSAMPLE) -> list[Contour]:
    """The iso-lines of the map ``grid`` at ``levels``, in pixel coordinates of a field of
    ``field_shape`` (pixel ``(y, x)`` has its centre at ``(y, x)``, as in napari)."""
    from skimage.measure import find_contours

    smooth = smooth_map(grid, factor)
    h, w = smooth.shape
    scale = np.array([field_shape[0] / h, field_shape[1] / w])
    # pad so that lines close at the field's border instead of stopping there
    padded = np.pad(smooth, 1, mode="constant", constant_values=0.0)
    out = []
    for level in levels:
        for line in find_contours(padded, level):
            rc = np.clip(line - 1, -0.5, np.array([h, w]) - 0.5)  # back to the unpadded grid
            out.append(Contour(float(level), (rc + 0.5) * scale - 0.5))
    return out
