"""napari reader: any channel file, multi-channel TIFF or folder opens a whole field of view.

Thin adapter over :mod:`napari_hpa.imageset`; errors are the core's
:class:`~napari_hpa.errors.ImageSetError`, which napari shows to the user.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .classes import CHANNELS
from .errors import HPAError
from .layers import CHANNEL_KEY, ID_KEY, channel_layer_name, channel_metadata
from .imageset import (
    ImageSet,
    SetSource,
    channel_file_parts,
    contrast_limits_for,
    find_sets,
    is_tiff,
    read_set,
    source_for_path,
    tiff_is_multichannel,
)

LayerDataTuple = tuple[Any, dict, str]


def get_reader(path: str | list[str]):
    """Return :func:`read_paths` if every path is something this plugin reads, else ``None``."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths or not all(_accepts(Path(p)) for p in paths):
        return None
    return read_paths


def _accepts(path: Path) -> bool:
    if path.is_dir():
        try:
            return bool(find_sets(path))
        except HPAError:
            return True  # ours, but broken: let the reader report it
    if channel_file_parts(path) is not None:
        return True
    return is_tiff(path) and tiff_is_multichannel(path)


def read_paths(path: str | list[str]) -> list[LayerDataTuple]:
    """Four image layers per field of view.

    Several files of one set open it once, also when napari calls the reader
    once per dropped file: a set whose four layers are already in the viewer
    is not added again.
    """
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    layers: list[LayerDataTuple] = []
    opened = _open_sources()
    for p in paths:
        source, count = source_for_path(p)
        key = _source_key(source)
        if key in opened:
            continue
        opened.add(key)
        extra = {}
        if count > 1:
            extra = {"folder": str(Path(p)), "sets_in_folder": count}
            _notify(
                f"{Path(p).name} holds {count} image sets; opened the first, {source.id!r}. "
                f"The HPA folder dock lists them ({FOLDER_KEYS})."
            )
            _dock_folder(Path(p))
        layers.extend(image_set_layers(read_set(source), extra))
    return layers or [(None,)]  # napari's "read, nothing to add" sentinel


def _source_key(source: SetSource) -> tuple[str, tuple[str, ...]]:
    return source.id, tuple(sorted(str(p) for p in source.paths))


def _open_sources() -> set[tuple[str, tuple[str, ...]]]:
    """Keys of the sets whose four channel layers are in the current viewer."""
    from napari import current_viewer

    viewer = current_viewer()
    if viewer is None:
        return set()
    channels: dict[tuple[str, tuple[str, ...]], set[str]] = {}
    for layer in viewer.layers:
        meta = layer.metadata
        if ID_KEY in meta and CHANNEL_KEY in meta:
            key = (meta[ID_KEY], tuple(sorted(set(meta.get("paths", {}).values()))))
            channels.setdefault(key, set()).add(meta[CHANNEL_KEY])
    return {key for key, chans in channels.items() if chans == set(CHANNELS)}


def image_set_layers(image_set: ImageSet, metadata: dict | None = None) -> list[LayerDataTuple]:
    """One additive image layer per channel, named ``"{id} {stain}"``."""
    limits = contrast_limits_for(image_set.data.dtype)
    layers = []
    for i, ch in enumerate(CHANNELS):
        meta = {**channel_metadata(image_set.id, ch, image_set.paths), **(metadata or {})}
        kwargs = {
            "name": channel_layer_name(image_set.id, ch),
            "colormap": ch,
            "blending": "additive",
            "contrast_limits": limits,
            "metadata": meta,
        }
        layers.append((image_set.data[i], kwargs, "image"))
    return layers


FOLDER_KEYS = "PageDown / PageUp: next / previous"
FOLDER_WIDGET = "HPA folder"  # the manifest's display name of napari_hpa._qt.folder:FolderWidget


def _dock_folder(folder: Path) -> None:
    """Once napari has added the layers, dock the folder list of the current viewer (it
    takes over the set just opened) and show ``folder`` in it."""
    from napari import current_viewer

    viewer = current_viewer()
    if viewer is None:
        return
    from qtpy.QtCore import QTimer

    def dock():
        try:
            _, widget = viewer.window.add_plugin_dock_widget("napari-hpa", FOLDER_WIDGET)
        except Exception as exc:  # a closed window, a plugin not registered (scripts)
            _notify(f"cannot dock the folder list: {type(exc).__name__}: {exc}")
            return
        widget.open_folder(folder)

    QTimer.singleShot(0, dock)


def _notify(message: str) -> None:
    from napari.utils.notifications import show_info

    show_info(message)
