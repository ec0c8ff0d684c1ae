"""Attention iso-contours lie where the grid says, in the field's pixel coordinates."""

from __future__ import annotations

import numpy as np
import pytest

from napari_hpa.attention import contours, smooth_map


def test_a_step_between_cells_crosses_the_middle_level_on_their_shared_edge():
    grid = np.zeros((4, 4))
    grid[:, 2:] = 1.0  # columns 2-3 of a 4-cell grid over a 64-px field: pixels 32-63
    lines = contours(grid, (64, 64), levels=(0.5,))
    assert lines
    inner = np.concatenate([c.path for c in lines])
    inner = inner[(inner[:, 0] > 2) & (inner[:, 0] < 61)]  # leave out the closure along the border
    inner = inner[inner[:, 1] < 60]
    np.testing.assert_allclose(inner[:, 1], 31.5, atol=1e-6)  # pixel 32's left edge


def test_a_hot_cell_is_ringed_where_it_lies_on_a_non_square_field():
    grid = np.zeros((8, 6))
    grid[2, 4] = 1.0  # rows 2/8 and column 4/6 of a 160 x 90 field
    lines = contours(grid, (160, 90), levels=(0.5,))
    assert len(lines) == 1
    path = lines[0].path
    assert np.allclose(path[0], path[-1])  # closed
    centre = path.mean(0)
    assert centre == pytest.approx([2.5 * 20 - 0.5, 4.5 * 15 - 0.5], abs=1.0)
    assert path[:, 0].min() > 40 - 0.5 - 20 and path[:, 0].max() < 60 - 0.5 + 20
    bigger = contours(grid, (160, 90), levels=(0.25,))[0].path
    assert np.ptp(bigger[:, 0]) > np.ptp(path[:, 0])  # lower levels ring wider


def test_no_line_where_the_map_never_reaches_the_level_and_values_stay_in_range():
    grid = np.full((4, 4), 0.1)
    assert contours(grid, (64, 64)) == []
    rng = np.random.default_rng(0)
    smooth = smooth_map(rng.uniform(size=(5, 7)))
    assert smooth.shape == (40, 56) and smooth.min() >= 0 and smooth.max() <= 1
