"""Test-time augmentation: the dihedral group D4 on square ``[..., S, S]`` arrays.

A transform is ``(transpose, k)``: optionally swap the last two axes, then
rotate by ``k`` quarter turns.  ``none`` is the identity, ``flip`` the identity
and the left-right mirror, ``d4`` all eight.  :func:`invert` undoes a
transform, which is how attention maps seen through a transformed input are
brought back onto the original image before they are combined.
"""

from __future__ import annotations

import numpy as np

Transform = tuple[bool, int]
IDENTITY: Transform = (False, 0)

TTA_MODES: dict[str, tuple[Transform, ...]] = {
    "none": (IDENTITY,),
    # transpose, then three quarter turns counter-clockwise, is the left-right mirror
    "flip": (IDENTITY, (True, 3)),
    "d4": tuple((t, k) for t in (False, True) for k in range(4)),
}
COMBINE_MODES = ("mean", "max")


def apply(x: np.ndarray, transform: Transform) -> np.ndarray:
    transpose, k = transform
    if transpose:
        x = np.swapaxes(x, -1, -2)
    return np.rot90(x, k, axes=(-2, -1)) if k else x


def invert(y: np.ndarray, transform: Transform) -> np.ndarray:
    transpose, k = transform
    if k:
        y = np.rot90(y, -k, axes=(-2, -1))
    return np.swapaxes(y, -1, -2) if transpose else y


def combine(stack: np.ndarray, how: str) -> np.ndarray:
    """Combine along axis 0 by ``mean`` or ``max``."""
    if how == "mean":
        return stack.mean(axis=0)
    if how == "max":
        return stack.max(axis=0)
    raise ValueError(f"unknown combine mode {how!r}; choose one of {', '.join(COMBINE_MODES)}")
