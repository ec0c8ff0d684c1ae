"""A labelled folder: image sets and the labels CSV that labels them, as training,
evaluation and ensemble building read it (ids in the CSV's order, multi-hot targets,
antibodies), and its per-class ground-truth masks when it has them
(``masks/{id}.npz``: the present planes only, bit-packed; :func:`load_masks` always
returns the full ``(28, H, W)`` bool array)."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .classes import NUM_CLASSES
from .errors import FileError, HPAError, TrainingError
from .imageset import SetSource, find_sets
from .labels import LabelTable, multi_hot, read_labels


@dataclass
class LabelledFolder:
    """A folder of image sets and the labels CSV that labels them."""

    folder: Path
    labels_path: Path
    ids: list[str]
    targets: np.ndarray  # [N, 28] float32 0/1
    antibodies: list[str]  # "" where the labels CSV has no Antibody column
    sources: dict[str, SetSource] = field(repr=False, default_factory=dict)
    table: LabelTable | None = field(repr=False, default=None)  # the CSV as read

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def antibody_ids(self) -> np.ndarray:
        """Integer antibody identity per image (0..n_ids-1, in order of first appearance)."""
        index: dict[str, int] = {}
        return np.array([index.setdefault(a or f"__{i}", len(index)) for i, a in enumerate(self.antibodies)])

    @property
    def class_frequencies(self) -> np.ndarray:
        return self.targets.mean(0) if len(self.ids) else np.zeros(NUM_CLASSES)


def describe_data(folder: str | Path, n: int | None = None) -> str:
    """A one-line description of a data folder (the generator's ``synth.json`` when present)."""
    folder = Path(folder)
    meta = folder / "synth.json"
    if meta.is_file():
        try:
            p = json.loads(meta.read_text())
            return (
                f"napari-hpa synthetic generator v{p.get('generator_version')}, seed {p.get('seed')}, "
                f"n {n if n is not None else p.get('n')}, size {p.get('size')}, freq {p.get('freq')}, "
                f"fields_per_antibody {p.get('fields_per_antibody')}"
            )
        except (OSError, ValueError):
            pass
    return f"folder {folder.name!r}, {n} image sets"


def load_labelled(folder: str | Path, labels: str | Path | None = None) -> LabelledFolder:
    """``folder`` and its labels CSV (default ``folder/labels.csv``), checked before any long
    work: the folder exists and holds image sets, the CSV parses and has rows, every
    labelled id has an image set.  Each problem is a :class:`TrainingError` naming it."""
    folder = Path(folder)
    if not folder.exists():
        raise TrainingError(f"data folder {folder}: no such folder")
    if not folder.is_dir():
        raise TrainingError(f"data folder {folder} is not a folder")
    labels_path = Path(labels) if labels is not None else folder / "labels.csv"
    if not labels_path.is_file():
        raise TrainingError(
            f"labels CSV {labels_path}: no such file (pass --labels, or put labels.csv in {folder})"
        )
    try:
        table = read_labels(labels_path)
    except HPAError as exc:
        raise TrainingError(f"labels CSV is malformed: {exc}") from None
    if not len(table):
        raise TrainingError(f"labels CSV {labels_path} has no rows")
    sources = {s.id: s for s in find_sets(folder)}
    if not sources:
        raise TrainingError(f"data folder {folder} holds no image sets ({{id}}_{{red,green,blue,yellow}}.png ...)")
    missing = [i for i in table.ids if i not in sources]
    if missing:
        raise TrainingError(
            f"labels CSV {labels_path} names {len(missing)} id(s) without an image set in {folder}: "
            + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        )
    ids = table.ids
    targets = multi_hot(table.targets[i] for i in ids).astype(np.float32)
    ab = table.extra.get("Antibody", {})
    return LabelledFolder(folder, labels_path, ids, targets, [ab.get(i, "") for i in ids], sources, table)


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
    """The full ``(28, H, W)`` bool mask array stored at ``path``; a missing or damaged file
    is a :class:`~napari_hpa.errors.FileError` naming it."""
    try:
        with np.load(path) as z:
            if "masks" in z.files:
                return np.asarray(z["masks"], bool)
            shape = tuple(int(s) for s in z["shape"])
            out = np.zeros(shape, bool)
            classes = z["classes"].astype(np.int64)
            if classes.size:
                out[classes] = np.unpackbits(z["packed"], axis=-1, count=shape[-1]).astype(bool)
    except (OSError, ValueError, KeyError, IndexError, zipfile.BadZipFile) as exc:
        raise FileError(f"is not a mask file ({type(exc).__name__}: {exc})", path) from None
    return out
