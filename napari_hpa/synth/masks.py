"""Mask files of a data folder: ``masks/{id}.npz``, present planes only, bit-packed.

The format is described in the package docstring; :func:`load_masks` always
returns the full ``(28, H, W)`` bool array.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MASKS = "masks"  # the subfolder of a data folder that holds the mask files


def mask_path(folder: str | Path, image_id: str) -> Path:
    """Where the mask file of image ``image_id`` of a data folder lies: ``folder/masks/{image_id}.npz``."""
    return Path(folder) / MASKS / f"{image_id}.npz"


def save_masks(path: str | Path, masks: np.ndarray) -> Path:
    """Store a ``(28, H, W)`` bool array (present planes only, bit-packed)."""
    masks = np.asarray(masks, bool)
    classes = np.flatnonzero(masks.reshape(masks.shape[0], -1).any(1))
    packed = np.packbits(masks[classes], axis=-1)
    path = Path(path)
    with open(path, "wb") as fh:  # bit-packed already: zip compression would only cost time
        np.savez(fh, packed=packed, classes=classes.astype(np.int16),
                            shape=np.asarray(masks.shape, np.int64))
    return path


def load_masks(path: str | Path) -> np.ndarray:
    """The full ``(28, H, W)`` bool mask array stored at ``path``."""
    with np.load(path) as z:
        if "masks" in z.files:
            return np.asarray(z["masks"], bool)
        shape = tuple(int(s) for s in z["shape"])
        out = np.zeros(shape, bool)
        classes = z["classes"].astype(np.int64)
        if classes.size:
            out[classes] = np.unpackbits(z["packed"], axis=-1, count=shape[-1]).astype(bool)
    return out
