"""Training data: a folder of image sets + a labels CSV, augmentation, stratified folds.

:func:`load_data` (:func:`napari_hpa.dataset.load_labelled`) checks everything that can be checked cheaply before any long
work (folder exists and holds image sets, the labels CSV parses, every labelled id
has an image set) and raises :class:`~napari_hpa.errors.TrainingError` naming the
problem.  :class:`HPADataset` reads a set with :func:`~napari_hpa.imageset.read_set`,
makes the contract's model input with :func:`~napari_hpa.imageset.to_model_input`
at the training size, and augments it with a random D4 transform (the
``engine.tta`` convention: optional transpose, then ``k`` quarter turns) and a
random scale crop (a square of 70-100 % of the side, resized back).  With ``crop``,
training sees random ``crop``-pixel windows of the ``size`` input at its own scale, so a
model learns the detail of a larger input for the cost of a smaller one; validation and
export use the whole input.  ``domain_rand`` (``--domain-rand``, :mod:`.randomise`) then randomises
the training input's intensities (gain, gamma, offset, blur, noise) from the same generator.
"""

from __future__ import annotations


import numpy as np

# a labelled folder is read by napari_hpa.dataset; these are the names training uses
from ..dataset import LabelledFolder as DataSpec  # noqa: F401
from ..dataset import describe_data  # noqa: F401
from ..dataset import load_labelled as load_data  # noqa: F401
from ..errors import TrainingError
from ..imageset import read_set, to_model_input
from .randomise import profile, randomise


def make_folds(targets: np.ndarray, k: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Multi-label stratified K folds (iterative stratification): ``[(train_idx, val_idx)] * k``."""
    if k < 2:
        raise TrainingError(f"--folds must be at least 2 (got {k})")
    if k > len(targets):
        raise TrainingError(f"--folds {k} is more than the {len(targets)} labelled images")
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    mskf = MultilabelStratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(np.asarray(a), np.asarray(b)) for a, b in mskf.split(np.zeros(len(targets)), targets)]


# --------------------------------------------------------------------------- augmentation (numpy)


def d4(x: np.ndarray, transpose: bool, k: int) -> np.ndarray:
    """The ``engine.tta`` transform ``(transpose, k)`` on ``[..., S, S]``."""
    from ..engine import tta

    return tta.apply(x, (bool(transpose), int(k)))


def random_window(s: int, rng: np.random.Generator, lo: float = 0.7, out: int | None = None) -> tuple[int, int, int]:
    """``(y0, x0, side)``: a random square of ``lo``-100 % of ``out`` (default: the side ``s``)."""
    side = min(s, int(round((out or s) * rng.uniform(lo, 1.0))))
    if side >= s:
        return 0, 0, s
    y0, x0 = rng.integers(0, s - side + 1, size=2)
    return int(y0), int(x0), side


def random_scale_crop(x: np.ndarray, rng: np.random.Generator, lo: float = 0.7, out: int | None = None,
                      window: list | None = None) -> np.ndarray:
    """A random square crop of ``lo``-100 % of ``out`` (default: the side), resized to ``out``.

    With ``lo=1`` and ``out`` below the side this is a plain random window at the input's scale.
    ``window``: a list that receives the ``(y0, x0, side)`` taken.
    """
    s = x.shape[-1]
    out = out or s
    y0, x0, side = random_window(s, rng, lo, out)
    if window is not None:
        window.append((y0, x0, side))
    if side >= s:
        return x
    crop = x[:, y0 : y0 + side, x0 : x0 + side]
    if side == out:
        return crop
    from skimage.transform import resize

    return resize(crop, (x.shape[0], out, out), order=1, anti_aliasing=False, preserve_range=True).astype(np.float32)


def augment(x: np.ndarray, rng: np.random.Generator, scale_p: float = 0.5, crop: int | None = None,
            window: list | None = None, scale_lo: float = 0.7) -> np.ndarray:
    """Random scale crop (probability ``scale_p``), then a random D4 transform.

    ``crop``: return a random ``crop`` x ``crop`` window instead of the whole side (with the
    scale jitter applied to the window).  ``window``: a list that receives the ``(y0, x0, side)``
    of the input that the result shows (the whole input when nothing was cropped).
    """
    if rng.random() < scale_p:
        x = random_scale_crop(x, rng, lo=scale_lo, out=crop, window=window)
    elif crop:
        x = random_scale_crop(x, rng, lo=1.0, out=crop, window=window)
    elif window is not None:
        window.append((0, 0, x.shape[-1]))
    return np.ascontiguousarray(d4(x, rng.random() < 0.5, int(rng.integers(4))))


MASK_GRID = 4  # input pixels per cell of the presence grids that window targets are read from


def check_masks(spec: DataSpec, indices) -> None:
    """Every image in ``indices`` has a mask file (``--crop-targets masks``), else a clear error."""
    from ..dataset import mask_path

    paths = (mask_path(spec.folder, spec.ids[i]) for i in indices)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise TrainingError(
            f"--crop-targets masks: {len(missing)} of {len(indices)} training images have no mask file in "
            f"{missing[0].parent} (first: {missing[0].name}); masks come with napari-hpa synth data"
        )


def presence_grids(masks: np.ndarray, classes, size: int) -> np.ndarray:
    """``(len(classes), g, g)`` bool, ``g = ceil(size / MASK_GRID)``: where each class's mask lies, on a grid
    of ``MASK_GRID``-pixel cells of the ``size`` input (a cell is set if any mask pixel falls in it)."""
    h, w = masks.shape[-2:]
    g = -(-size // MASK_GRID)
    out = np.zeros((len(classes), g, g), bool)
    for k, c in enumerate(classes):
        ys, xs = np.nonzero(masks[c])
        out[k, (ys * size // h) // MASK_GRID, (xs * size // w) // MASK_GRID] = True
    return out


def window_targets(target: np.ndarray, classes, grids: np.ndarray, window: tuple[int, int, int]) -> np.ndarray:
    """``target`` without the classes whose mask lies wholly outside ``window`` (``(y0, x0, side)`` in input
    pixels).  A labelled class with an empty mask (a label the masks do not know) keeps its label."""
    y0, x0, side = window
    a, b = y0 // MASK_GRID, -(-(y0 + side) // MASK_GRID)
    c0, c1 = x0 // MASK_GRID, -(-(x0 + side) // MASK_GRID)
    out = target.copy()
    for k, c in enumerate(classes):
        if grids[k].any() and not grids[k, a:b, c0:c1].any():
            out[c] = 0.0
    return out


# --------------------------------------------------------------------------- torch dataset


def _torch_dataset_base():
    import torch.utils.data

    return torch.utils.data.Dataset


class HPADataset(_torch_dataset_base()):
    """Items: ``{"image": float32 [4, S, S] ([4, crop, crop] when augmenting with a crop), "target": float32 [28],
    "antibody": int, "index": int}``."""

    def __init__(self, spec: DataSpec, indices, size: int, augment: bool = False, seed: int = 0,
                 cache: bool = True, crop: int | None = None, crop_targets: str = "image",
                 domain_rand: str = "none"):
        self.spec = spec
        self.indices = np.asarray(indices, dtype=np.int64)
        self.size = int(size)
        self.augment = augment
        self.crop = crop  # training windows of crop x crop (augment only)
        self.crop_targets = crop_targets  # "masks": a window's targets are the classes whose mask reaches into it
        self.grids: dict[int, np.ndarray] = {}
        self.domain_rand = profile(domain_rand)  # intensity randomisation after the geometric augmentation
        self.seed = seed
        self.epoch = 0
        self.ab = spec.antibody_ids
        self.cache: dict[int, np.ndarray] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.indices)

    def load(self, i: int) -> np.ndarray:
        """The model input of image ``i``, float32 ``(4, size, size)``.

        The cache keeps 8-bit sources as uint8 (rounded after resizing, which changes a value
        by at most half a grey level): a quarter of the memory, 1 MB per 512x512 set.
        """
        if self.cache is not None and i in self.cache:
            x = self.cache[i]
            return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x
        image_id = self.spec.ids[i]
        data = read_set(self.spec.sources[image_id]).data
        x = to_model_input(data, self.size)
        if self.cache is not None:
            if data.dtype == np.uint8:
                x = np.rint(x * 255.0).astype(np.uint8)
                self.cache[i] = x
                return x.astype(np.float32) / 255.0
            self.cache[i] = x
        return x

    def grid(self, i: int) -> np.ndarray:
        """Presence grids of image ``i``'s labelled classes (``--crop-targets masks``), kept once made."""
        if i not in self.grids:
            from ..dataset import load_masks, mask_path

            masks = load_masks(mask_path(self.spec.folder, self.spec.ids[i]))
            self.grids[i] = presence_grids(masks, np.flatnonzero(self.spec.targets[i]), self.size)
        return self.grids[i]

    def __getitem__(self, j: int) -> dict:
        import torch

        i = int(self.indices[j])
        x = self.load(i)
        target = self.spec.targets[i]
        if self.augment:
            rng = np.random.default_rng((self.seed, self.epoch, i))
            window: list = []
            dr = self.domain_rand
            if dr is None:
                x = augment(x, rng, crop=self.crop, window=window)
            else:
                x = randomise(augment(x, rng, dr.scale_p, self.crop, window, dr.scale_lo), rng, dr)
            if self.crop_targets == "masks":
                target = window_targets(target, np.flatnonzero(target), self.grid(i), window[0])
        return {
            "image": torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
            "target": torch.from_numpy(target),
            "antibody": int(self.ab[i]),
            "index": i,
        }
