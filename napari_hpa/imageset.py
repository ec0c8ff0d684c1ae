"""Image sets: find, read and validate four-channel HPA fields of view.

An image set is an id and a ``(4, H, W)`` array in RGBY order (red =
microtubules, green = protein, blue = nucleus, yellow = ER) with the native
dtype kept.  Sources:

* per-channel files ``{id}_{red,green,blue,yellow}.{png,jpg,jpeg,tif,tiff}``,
  grayscale, or RGB with the colour baked in (HPA v18 JPEGs): red takes R,
  green G, blue B and yellow (R + G) / 2;
* a multi-channel TIFF / OME-TIFF ``(4, H, W)`` or ``(H, W, 4)``; OME channel
  names such as ``microtubules``/``DAPI`` put the channels in RGBY order;
* folders of such sets.

Every failure raises :class:`~napari_hpa.errors.ImageSetError` naming the id,
the channel and the file.
"""

from __future__ import annotations

import os
import re
import stat
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .classes import CHANNELS
from .errors import ImageSetError

CHANNEL_EXTENSIONS = ("png", "jpg", "jpeg", "tif", "tiff")
TIFF_SUFFIXES = (".tif", ".tiff")
CHANNEL_FILE_RE = re.compile(
    r"^(?P<id>.+)_(?P<channel>red|green|blue|yellow)\.(?P<ext>png|jpe?g|tiff?)$", re.IGNORECASE
)
#: Glob patterns of the files napari may hand to our reader.
FILENAME_PATTERNS = tuple(
    f"*_{ch}.{ext}" for ch in CHANNELS for ext in CHANNEL_EXTENSIONS
) + ("*.tif", "*.tiff")
SUPPORTED_DTYPES = (np.uint8, np.uint16)
#: Largest channel plane decoded, in pixels (64 MP: 8000 x 8000; HPA fields are at most
#: 3072 x 3072). Checked from the file's header before any pixel is decoded, so that a small
#: compressed file cannot ask for gigabytes. ``NAPARI_HPA_MAX_PIXELS`` raises it.
DEFAULT_MAX_PIXELS = 64_000_000
MAX_PIXELS_ENV = "NAPARI_HPA_MAX_PIXELS"

#: Names (lower case) an OME-TIFF may give each channel.
CHANNEL_ALIASES = {
    "red": {"red", "microtubules", "microtubule", "tubulin", "mt"},
    "green": {"green", "protein", "antibody", "target", "poi"},
    "blue": {"blue", "nucleus", "nuclei", "dapi", "hoechst", "dna"},
    "yellow": {"yellow", "er", "endoplasmic reticulum", "calreticulin"},
}


@dataclass(frozen=True)
class SetSource:
    """Where an image set lives: four channel files, or one multi-channel TIFF."""

    id: str
    channel_files: dict[str, tuple[Path, ...]] = field(default_factory=dict)
    tiff: Path | None = None

    @property
    def paths(self) -> tuple[Path, ...]:
        if self.tiff is not None:
            return (self.tiff,)
        return tuple(p for ch in CHANNELS for p in self.channel_files.get(ch, ()))


@dataclass
class ImageSet:
    """A read field of view."""

    id: str
    data: np.ndarray  # (4, H, W), RGBY, native dtype
    #: channel -> file it came from (one file for all four for a TIFF)
    paths: dict[str, Path]

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape[1:]

    def channel(self, name: str) -> np.ndarray:
        return self.data[CHANNELS.index(name)]


# --------------------------------------------------------------------------- finding


def channel_file_parts(path: str | Path) -> tuple[str, str] | None:
    """``(id, channel)`` if ``path`` is named like a channel file, else ``None``."""
    m = CHANNEL_FILE_RE.match(Path(path).name)
    return (m["id"], m["channel"].lower()) if m else None


def is_tiff(path: str | Path) -> bool:
    return Path(path).suffix.lower() in TIFF_SUFFIXES


def tiff_set_id(path: Path) -> str:
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def find_sets(folder: str | Path) -> list[SetSource]:
    """The image sets in ``folder`` (not recursive), sorted by id.

    Sets with missing channels are listed too; reading them raises the error.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageSetError("is not a folder", path=folder)
    groups: dict[str, dict[str, list[Path]]] = {}
    tiffs: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.is_dir():
            continue  # special files (FIFOs, devices) are listed: reading them says what they are
        parts = channel_file_parts(p)
        if parts is not None:
            groups.setdefault(parts[0], {}).setdefault(parts[1], []).append(p)
        elif is_tiff(p):
            tiffs[tiff_set_id(p)] = p
    sources = [
        SetSource(i, {ch: tuple(ps) for ch, ps in chans.items()}) for i, chans in groups.items()
    ]
    for set_id, p in tiffs.items():
        if set_id in groups:
            raise ImageSetError(
                f"is both a multi-channel TIFF and a set of channel files in {folder}",
                set_id=set_id,
                path=p,
            )
        sources.append(SetSource(set_id, tiff=p))
    return sorted(sources, key=lambda s: s.id)


def source_for_file(path: str | Path) -> SetSource:
    """The set a single file belongs to: its sibling channel files, or the TIFF itself."""
    path = Path(path)
    parts = channel_file_parts(path)
    if parts is None:
        if is_tiff(path):
            return SetSource(tiff_set_id(path), tiff=path)
        raise ImageSetError(
            "is neither a channel file named {id}_{red,green,blue,yellow}.{png,jpg,tif} "
            "nor a multi-channel TIFF",
            path=path,
        )
    set_id = parts[0]
    files: dict[str, tuple[Path, ...]] = {}
    for p in sorted(path.parent.iterdir()) if path.parent.is_dir() else ():
        other = channel_file_parts(p)
        if other is not None and other[0] == set_id:
            files[other[1]] = files.get(other[1], ()) + (p,)
    return SetSource(set_id, files)


def source_for_path(path: str | Path) -> tuple[SetSource, int]:
    """The set to open for ``path`` (a file or a folder) and how many sets its folder holds."""
    path = Path(path)
    if path.is_dir():
        sources = find_sets(path)
        if not sources:
            raise ImageSetError(
                "holds no image sets ({id}_{red,green,blue,yellow}.png/.jpg/.tif files "
                "or multi-channel TIFFs)",
                path=path,
            )
        return sources[0], len(sources)
    if not path.exists():
        raise ImageSetError("does not exist", path=path)
    return source_for_file(path), 1


# --------------------------------------------------------------------------- reading


def max_pixels() -> int:
    """The pixel budget per channel plane: ``$NAPARI_HPA_MAX_PIXELS`` or :data:`DEFAULT_MAX_PIXELS`."""
    raw = os.environ.get(MAX_PIXELS_ENV)
    if raw is None:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(raw))
    except ValueError:
        value = 0
    if value < 1:
        raise ImageSetError(f"${MAX_PIXELS_ENV} is {raw!r}; it must be a positive number of pixels")
    return value


def _plane_pixels(shape) -> int:
    """Pixels of one channel plane of a four-channel TIFF series shape."""
    dims = [int(n) for n in shape if n != 1]
    if 4 in dims and len(dims) == 3:
        dims.remove(4)
    return int(np.prod(dims[-2:])) if dims else 0


def _check_budget(height: int, width: int, set_id, channel, path) -> None:
    limit = max_pixels()
    if height * width > limit:
        raise ImageSetError(
            f"is {width} x {height} pixels ({height * width / 1e6:.0f} MP a channel), above the limit "
            f"of {limit / 1e6:.0f} MP that keeps one field from taking the machine's memory: raise "
            f"it with --max-pixels or ${MAX_PIXELS_ENV} to read it",
            set_id=set_id, channel=channel, path=path,
        )


def _header_size(path: Path) -> tuple[int, int] | None:
    """``(height, width)`` of a channel file from its header only, or None when unknown."""
    try:
        if is_tiff(path):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                shape = tif.series[0].shape
            plane = [n for n in shape if n not in (1, 3, 4)][-2:] or list(shape[-2:])
            return (int(plane[0]), int(plane[-1])) if len(plane) == 2 else None
        from PIL import Image

        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except Exception:  # noqa: BLE001 - the decoder reports unreadable files itself
        return None


def _check_regular(path: Path, set_id, channel) -> None:
    """A FIFO, device or socket is never opened (reading one can block forever)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ImageSetError("file not found", set_id=set_id, channel=channel, path=path) from None
    except OSError as exc:
        raise ImageSetError(f"cannot be read ({exc.strerror or exc})", set_id=set_id, channel=channel,
                            path=path) from None
    if not stat.S_ISREG(mode):
        raise ImageSetError("is not a regular file (a FIFO, device or socket): not opened",
                            set_id=set_id, channel=channel, path=path)


def read_set(source: SetSource | str | Path) -> ImageSet:
    """Read one image set (a :class:`SetSource`, or any file or folder path)."""
    if not isinstance(source, SetSource):
        source, _ = source_for_path(source)
    if source.tiff is not None:
        data = read_multichannel_tiff(source.tiff, source.id)
        return ImageSet(source.id, data, {ch: source.tiff for ch in CHANNELS})

    planes: list[np.ndarray] = []
    paths: dict[str, Path] = {}
    for ch in CHANNELS:
        found = source.channel_files.get(ch, ())
        if not found:
            have = ", ".join(p.name for p in source.paths) or "none"
            raise ImageSetError(
                f"is missing: no file {source.id}_{ch}.{{{','.join(CHANNEL_EXTENSIONS)}}} "
                f"(found: {have})",
                set_id=source.id,
                channel=ch,
                path=_expected_path(source, ch),
            )
        if len(found) > 1:
            raise ImageSetError(
                f"has {len(found)} files ({', '.join(p.name for p in found)}); keep one",
                set_id=source.id,
                channel=ch,
                path=found[0],
            )
        plane = read_channel_file(found[0], ch, source.id)
        if planes and plane.shape != planes[0].shape:
            raise ImageSetError(
                f"has shape {plane.shape}, but channel 'red' ({paths['red'].name}) "
                f"has shape {planes[0].shape}; all four channels must match",
                set_id=source.id,
                channel=ch,
                path=found[0],
            )
        if planes and plane.dtype != planes[0].dtype:
            raise ImageSetError(
                f"has dtype {plane.dtype}, but channel 'red' ({paths['red'].name}) "
                f"has dtype {planes[0].dtype}; all four channels must match",
                set_id=source.id,
                channel=ch,
                path=found[0],
            )
        planes.append(plane)
        paths[ch] = found[0]
    return ImageSet(source.id, np.stack(planes), paths)


def _expected_path(source: SetSource, channel: str) -> Path:
    any_file = next(iter(source.paths), None)
    folder = any_file.parent if any_file is not None else Path(".")
    ext = any_file.suffix if any_file is not None else ".png"
    return folder / f"{source.id}_{channel}{ext}"


def read_channel_file(path: Path, channel: str, set_id: str) -> np.ndarray:
    """Read one channel file as a 2-D array (RGB files: the channel's own colour)."""
    _check_regular(path, set_id, channel)
    size = _header_size(path)
    if size is not None:
        _check_budget(*size, set_id, channel, path)
    try:
        if is_tiff(path):
            import tifffile

            arr = tifffile.imread(path)
        else:
            import imageio.v3 as iio

            arr = iio.imread(path)
    except FileNotFoundError:
        raise ImageSetError("file not found", set_id=set_id, channel=channel, path=path) from None
    except MemoryError:
        raise ImageSetError("does not fit in memory once decoded", set_id=set_id, channel=channel,
                            path=path) from None
    except Exception as exc:  # decoders raise many types for corrupt files
        raise ImageSetError(
            f"cannot be read, the file is unreadable or truncated ({type(exc).__name__}: {exc})",
            set_id=set_id,
            channel=channel,
            path=path,
        ) from None
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = _colour_plane(arr[..., :3], channel)
    elif arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ImageSetError(
            f"has an unsupported array shape {arr.shape}: a channel file must be "
            "grayscale (H, W) or RGB (H, W, 3)",
            set_id=set_id,
            channel=channel,
            path=path,
        )
    return _check_dtype(arr, set_id, channel, path)


def _colour_plane(rgb: np.ndarray, channel: str) -> np.ndarray:
    """The channel's plane of an RGB file with the colour baked in."""
    if channel == "yellow":
        wide = rgb[..., 0].astype(np.uint32) + rgb[..., 1]
        return (wide // 2).astype(rgb.dtype)
    return np.ascontiguousarray(rgb[..., {"red": 0, "green": 1, "blue": 2}[channel]])


def _check_dtype(arr: np.ndarray, set_id: str, channel: str | None, path: Path) -> np.ndarray:
    if arr.dtype.type in SUPPORTED_DTYPES:
        return arr
    if arr.dtype.kind == "f":
        return arr.astype(np.float32, copy=False)
    if arr.dtype.kind in "iu" and arr.size and arr.min() >= 0 and arr.max() <= 65535:
        return arr.astype(np.uint16)  # e.g. 16-bit data decoded as int32
    raise ImageSetError(
        f"has an unsupported dtype {arr.dtype} (expected 8- or 16-bit unsigned integers "
        "or floats in [0, 1])",
        set_id=set_id,
        channel=channel,
        path=path,
    )


def read_multichannel_tiff(path: Path, set_id: str | None = None) -> np.ndarray:
    """A ``(4, H, W)`` RGBY array from a multi-channel TIFF or OME-TIFF."""
    import tifffile

    set_id = set_id or tiff_set_id(path)
    _check_regular(path, set_id, None)
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            # a pyramid: the largest level within the pixel budget (a field is shrunk to the
            # model's size anyway); else the one level, checked against the budget
            levels = list(getattr(series, "levels", None) or [series])
            level = next((lv for lv in levels if _plane_pixels(lv.shape) <= max_pixels()), levels[-1])
            dims = [n for n in level.shape if n != 1]
            if len(dims) == 3 and 4 in dims:
                dims.remove(4)  # the channel axis
                _check_budget(dims[0], dims[1], set_id, None, path)
            arr = level.asarray()
            axes = level.axes
            names = _ome_channel_names(tif.ome_metadata) if tif.is_ome else []
    except FileNotFoundError:
        raise ImageSetError("file not found", set_id=set_id, path=path) from None
    except ImageSetError:
        raise
    except MemoryError:
        raise ImageSetError("does not fit in memory once decoded", set_id=set_id, path=path) from None
    except Exception as exc:
        raise ImageSetError(
            f"cannot be read, the file is unreadable or truncated ({type(exc).__name__}: {exc})",
            set_id=set_id,
            path=path,
        ) from None
    arr, axes = _squeeze(arr, axes)
    channel_axis = _channel_axis(arr.shape, axes)
    if channel_axis is None:
        raise ImageSetError(
            f"has an unsupported array shape {arr.shape} (axes {axes!r}): a multi-channel "
            "TIFF must hold four channels as (4, H, W) or (H, W, 4)",
            set_id=set_id,
            path=path,
        )
    arr = np.moveaxis(arr, channel_axis, 0)
    order = _rgby_order(names, set_id, path)
    if order is not None:
        arr = arr[order]
    return _check_dtype(np.ascontiguousarray(arr), set_id, None, path)


def tiff_is_multichannel(path: str | Path) -> bool:
    """Cheap check (no pixel data read) that a TIFF holds a four-channel image."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape, axes = series.shape, series.axes
    except Exception:
        return False
    dims = [(n, a) for n, a in zip(shape, axes) if n != 1]
    return _channel_axis(tuple(n for n, _ in dims), "".join(a for _, a in dims)) is not None


def _squeeze(arr: np.ndarray, axes: str) -> tuple[np.ndarray, str]:
    keep = [i for i, n in enumerate(arr.shape) if n != 1]
    return arr.reshape([arr.shape[i] for i in keep]), "".join(axes[i] for i in keep if i < len(axes))


def _channel_axis(shape: tuple[int, ...], axes: str) -> int | None:
    if len(shape) != 3:
        return None
    for label in "CS":  # tifffile: C = channel, S = sample (RGBA-like)
        if label in axes and shape[axes.index(label)] == 4:
            return axes.index(label)
    if shape[0] == 4:
        return 0
    if shape[2] == 4:
        return 2
    return None


def _ome_channel_names(ome_xml: str | None) -> list[str]:
    if not ome_xml:
        return []
    try:
        root = ET.fromstring(ome_xml)
    except ET.ParseError:
        return []
    names = []
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == "Channel":
            names.append(el.get("Name") or "")
        if len(names) == 4 and el.tag.rsplit("}", 1)[-1] == "Pixels":
            break
    return names[:4] if len(names) >= 4 else []


def channel_of_name(name: str) -> str | None:
    """The channel an OME channel name stands for (``DAPI`` -> blue), or None when unknown.

    A name matches when it is an alias, or when one of its words or word pairs is
    (``Protein antibody`` -> green, ``ER (calreticulin)`` -> yellow).
    """
    key = re.sub(r"[^a-z0-9]+", " ", name.lower()).strip()
    words = key.split()
    candidates = [key, *words, *(" ".join(p) for p in zip(words, words[1:]))]
    hits = {ch for ch, aliases in CHANNEL_ALIASES.items() for c in candidates if c in aliases}
    return hits.pop() if len(hits) == 1 else None


def _rgby_order(names: list[str], set_id=None, path=None) -> list[int] | None:
    """Indices that put channels named ``names`` in RGBY order.

    Every name known: by name. All but one known: the last one by elimination. Fewer, or
    two names for one channel: refused, naming what was seen; file order is never taken
    in silence when the file names its channels. No names at all: file order (RGBY).
    """
    if not names or not any(n.strip() for n in names):
        return None
    seen = ", ".join(repr(n) for n in names)
    if len(names) != 4:
        raise ImageSetError(f"names {len(names)} channels ({seen}); a field needs 4 (RGBY)",
                            set_id=set_id, path=path)
    found: dict[str, int] = {}
    for i, name in enumerate(names):
        ch = channel_of_name(name)
        if ch is None:
            continue
        if ch in found:
            raise ImageSetError(
                f"names two channels {ch} ({names[found[ch]]!r} and {name!r}); channel names: {seen}",
                set_id=set_id, path=path)
        found[ch] = i
    missing = [ch for ch in CHANNELS if ch not in found]
    if len(missing) == 1:
        found[missing[0]] = next(i for i in range(4) if i not in found.values())
    elif missing:
        raise ImageSetError(
            f"has channel names {seen}, of which only {len(found)} are known "
            f"({', '.join(f'{ch}: {names[i]!r}' for ch, i in found.items()) or 'none'}); name the "
            "channels red/microtubules, green/protein, blue/nucleus/DAPI, yellow/ER, or remove the "
            "names to take the file order as RGBY",
            set_id=set_id, path=path)
    return [found[ch] for ch in CHANNELS]


# --------------------------------------------------------------------------- model input


def check_values(data: np.ndarray, set_id: str | None = None) -> None:
    """Refuse what no model can be given: NaN or infinite values, float channels outside [0, 1].

    Integer images always fit (they are scaled by their type's range); float images
    must already be scaled to [0, 1], or their values would be clipped in silence.
    """
    data = np.asarray(data)
    if data.dtype.kind != "f":
        return
    for ch, plane in zip(CHANNELS, data):
        bad = int(np.count_nonzero(~np.isfinite(plane)))
        if bad:
            raise ImageSetError(
                f"{bad:,} of {plane.size:,} pixels are NaN or infinite; no model can classify them",
                set_id=set_id, channel=ch,
            )
        lo, hi = float(plane.min()), float(plane.max())
        if lo < 0 or hi > 1:
            raise ImageSetError(
                f"float values range {lo:.4g}..{hi:.4g}; float images must be scaled to [0, 1] "
                "(save integer images, or divide by the maximum, to classify them)",
                set_id=set_id, channel=ch,
            )


def to_model_input(data: np.ndarray, size: int) -> np.ndarray:
    """The model contract's input: float32 ``(4, size, size)`` in [0, 1].

    uint8 is divided by 255, uint16 by 65535, floats are clipped; resizing uses
    anti-aliasing.
    """
    if data.ndim != 3 or data.shape[0] != 4:
        raise ValueError(f"expected a (4, H, W) image set, got shape {data.shape}")
    if data.dtype == np.uint8:
        x = data.astype(np.float32) / 255.0
    elif data.dtype == np.uint16:
        x = data.astype(np.float32) / 65535.0
    else:
        x = np.clip(data.astype(np.float32), 0.0, 1.0)
    if x.shape[1:] != (size, size):
        from skimage.transform import resize

        x = resize(x, (4, size, size), order=1, anti_aliasing=True, preserve_range=True)
        x = x.astype(np.float32)
    return x


def contrast_limits_for(dtype: np.dtype) -> tuple[float, float]:
    """Display range for a dtype: its full integer range, or [0, 1] for floats."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return (float(max(info.min, 0)), float(info.max))
    return (0.0, 1.0)
