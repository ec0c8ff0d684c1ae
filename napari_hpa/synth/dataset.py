"""Data sets on disk: :func:`generate_dataset` and the files it writes.

One field is written by :func:`write_field` (four 8-bit grayscale PNGs from a
small hand-written encoder, and the mask file); :func:`generate_dataset` checks
its arguments, renders ``n`` fields with the seed scheme of the package
docstring (fields of one antibody share labels and pattern parameters), draws
the noisy labels when asked and writes ``labels.csv``, ``synth.json`` and the
noise files.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..classes import CHANNELS, NUM_CLASSES
from ..errors import SynthError
from ..fileio import atomic_write_text
from ..labels import write_labels
from .labelsets import _check_freq, _rng, draw_antibody_params, draw_labels
from ..dataset import MASKS, mask_path, save_masks
from .render import VERSIONS, SyntheticField, _check_size, _check_version, generate_field

#: The default generator version (written to ``synth.json``); ``version=3`` is opt-in.
GENERATOR_VERSION = "2"
GENERATOR_VERSIONS = tuple(str(v) for v in VERSIONS)

# ----------------------------------------------------------------------------
# PNG writing (8-bit grayscale, no row filter, zlib at ``level``; level 0 stores
# the pixels uncompressed: about 1 MB per 512 x 512 set, but ~50x faster to write
# than zlib level 1 here, and fastest to read back).  Not Pillow's encoder: it
# splits the image data into 64 KiB chunks and filters rows adaptively, so its
# files differ from these byte for byte, and it is slower (about 16 against 24
# sets of 512 px per second at level 0).

PNG_LEVEL = 0


def _write_png(path: Path, a: np.ndarray, level: int = PNG_LEVEL) -> None:
    a = np.ascontiguousarray(a, np.uint8)
    h, w = a.shape
    raw = np.empty((h, w + 1), np.uint8)
    raw[:, 0] = 0
    raw[:, 1:] = a
    data = zlib.compress(raw.tobytes(), level)

    def chunk(tag, body):
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    with open(path, "wb") as fh:
        fh.write(png)


def write_field(out_dir: str | Path, fld: SyntheticField, compress_level: int = PNG_LEVEL) -> None:
    """Write the four channel PNGs and the mask file of one field."""
    out_dir = Path(out_dir)
    for k, ch in enumerate(CHANNELS):
        _write_png(out_dir / f"{fld.id}_{ch}.png", fld.image[k], compress_level)
    path = mask_path(out_dir, fld.id)
    path.parent.mkdir(exist_ok=True)
    save_masks(path, fld.masks)


# ----------------------------------------------------------------------------
# datasets


@dataclass
class DatasetSummary:
    out_dir: Path
    n: int
    ids: list[str]
    labels: dict[str, tuple[int, ...]]
    antibodies: dict[str, str]
    noisy: dict[str, tuple[int, ...]]  # only the changed ids
    seconds: float
    params: dict


def _apply_noise(rng, target: tuple[int, ...]) -> tuple[tuple[int, ...], str]:
    kinds = ["added", "swapped"] if len(target) < 4 else ["swapped"]
    if len(target) > 1:
        kinds.insert(0, "dropped")
    kind = kinds[int(rng.integers(len(kinds)))]
    cur = list(target)
    others = [c for c in range(NUM_CLASSES) if c not in cur]
    if kind == "dropped":
        cur.pop(int(rng.integers(len(cur))))
    elif kind == "added":
        cur.append(others[int(rng.integers(len(others)))])
    else:
        cur[int(rng.integers(len(cur)))] = others[int(rng.integers(len(others)))]
    return tuple(sorted(cur)), kind


def generate_dataset(
    out_dir: str | Path,
    n: int,
    seed: int,
    *,
    size: int = 512,
    freq: str = "uniform",
    noise_rate: float = 0.0,
    fields_per_antibody: int = 1,
    progress: Callable[[int, int], None] | None = None,
    compress_level: int = PNG_LEVEL,
    version: int | str = GENERATOR_VERSION,
) -> DatasetSummary:
    """Generate ``n`` fields into ``out_dir`` (PNGs, ``labels.csv``, ``masks/``,
    ``synth.json``; with ``noise_rate > 0`` also ``labels_noisy.csv`` and
    ``noise.csv``).

    ``compress_level`` (0-9) is the PNG zlib level: 0 (default) stores the
    pixels uncompressed (about 1 MB per 512 x 512 set; needed for the speed
    target on one core), 1 gives files about 40 % smaller at roughly half the
    speed.  ``version`` picks the generator (2, the default, or 3; recorded in
    ``synth.json`` as ``generator_version``).
    """
    version = _check_version(version)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise SynthError(f"n must be a positive integer, not {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SynthError(f"seed must be a non-negative integer, not {seed!r}")
    size = _check_size(size)
    _check_freq(freq)
    try:
        noise_rate = float(noise_rate)
    except (TypeError, ValueError):
        raise SynthError(f"noise_rate must be a number in [0, 1], not {noise_rate!r}") from None
    if not 0.0 <= noise_rate <= 1.0:
        raise SynthError(f"noise_rate must be in [0, 1], not {noise_rate}")
    if isinstance(fields_per_antibody, bool) or not isinstance(fields_per_antibody, (int, np.integer)) \
            or fields_per_antibody < 1:
        raise SynthError(f"fields_per_antibody must be a positive integer, not {fields_per_antibody!r}")
    if isinstance(compress_level, bool) or compress_level not in range(10):
        raise SynthError(f"compress_level must be an integer 0-9, not {compress_level!r}")
    n, seed, k_ab = int(n), int(seed), int(fields_per_antibody)
    out_dir = Path(out_dir)
    if (out_dir / "labels.csv").exists():
        raise SynthError(f"{out_dir} already holds a dataset (labels.csv exists); "
                         "choose a new or empty folder, nothing was written")
    if out_dir.exists() and not out_dir.is_dir():
        raise SynthError(f"{out_dir} exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MASKS).mkdir(exist_ok=True)
    params = {"generator_version": str(version), "n": n, "seed": seed, "size": size, "freq": freq,
              "noise_rate": noise_rate, "fields_per_antibody": k_ab, "png_compress_level": int(compress_level),
              "mask_format": "npz: packed (k,H,ceil(W/8)) uint8 bit-packed present planes, classes (k,), shape"}
    t0 = time.perf_counter()
    ids, labels, abs_ = [], {}, {}
    group_cache: dict[int, tuple] = {}
    for i in range(n):
        g = i // k_ab
        if g not in group_cache:
            group_cache.clear()
            rg = _rng(seed, 1, g)
            lbl = draw_labels(rg, freq)
            group_cache[g] = (lbl, draw_antibody_params(rg, lbl), f"ab{seed}_{g:05d}")
        lbl, abp, ab_id = group_cache[g]
        fid = f"synth_{seed}_{i:06d}"
        fld = generate_field(np.random.SeedSequence(seed, spawn_key=(0, i)), size, lbl, antibody_params=abp,
                             id=fid, antibody=ab_id, version=version)
        write_field(out_dir, fld, compress_level)
        ids.append(fid)
        labels[fid] = fld.labels
        abs_[fid] = ab_id
        if progress is not None:
            progress(i + 1, n)
    noisy: dict[str, tuple[int, ...]] = {}
    if noise_rate > 0:
        n_noisy = int(round(noise_rate * n))
        rng = _rng(seed, 2)
        chosen = np.sort(rng.choice(n, size=n_noisy, replace=False)) if n_noisy else np.zeros(0, int)
        changes = {}
        for i in chosen:
            fid = ids[int(i)]
            noisy[fid], changes[fid] = _apply_noise(rng, labels[fid])
        write_labels(out_dir / "labels_noisy.csv", {f: noisy.get(f, labels[f]) for f in ids},
                     extra={"Antibody": abs_})
        rows = ["Id,Target,Noisy,Change"]
        for fid in ids:
            if fid in noisy:
                rows.append(f"{fid},{' '.join(map(str, labels[fid]))},{' '.join(map(str, noisy[fid]))},"
                            f"{changes[fid]}")
        atomic_write_text(out_dir / "noise.csv", "\n".join(rows) + "\n")
    seconds = time.perf_counter() - t0
    (out_dir / "synth.json").write_text(json.dumps({**params, "seconds": round(seconds, 3)}, indent=2) + "\n")
    # labels.csv last: its presence marks a complete dataset
    write_labels(out_dir / "labels.csv", labels, extra={"Antibody": abs_})
    return DatasetSummary(out_dir, n, ids, labels, abs_, noisy, seconds, params)
