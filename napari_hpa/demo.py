"""Open napari from the command line: ``napari-hpa demo`` and ``napari-hpa view``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path


def layer_report(viewer) -> list[dict]:
    """Name, kind, shape, scale and translate of every layer (what ``--json`` prints); an
    image layer's dtype, colormap and blending, a shapes or points layer's number of them."""
    report = []
    for layer in viewer.layers:
        entry = {
            "name": layer.name,
            "kind": type(layer).__name__.lower(),
            "scale": [float(s) for s in layer.scale],
            "translate": [float(t) for t in layer.translate],
            "blending": str(layer.blending),
        }
        if entry["kind"] == "points":
            entry["points"] = len(layer.data)
        elif hasattr(layer.data, "shape"):
            entry.update(shape=list(layer.data.shape), dtype=str(layer.data.dtype),
                         colormap=layer.colormap.name)
        else:
            entry["shapes"] = len(layer.data)
        report.append(entry)
    return report


def run_viewer(
    paths: Sequence[str | Path] = (),
    *,
    classify: bool = False,
    models: Path | None = None,
    screenshot: Path | None = None,
    palette: bool = False,
    size: tuple[int, int] = (1400, 900),
    title: str = "napari-hpa",
    timeout: float = 600.0,
    map_source: Path | None = None,
    colour_by: str | None = None,
) -> dict:
    """Open napari with ``paths`` (through this plugin's reader), or the sample if none.

    With ``classify`` the HPA classifier is docked and run on the field of
    view; the report then holds the top predictions.  With ``screenshot`` the
    window is drawn (after classification), saved as PNG and closed, and the
    function returns; otherwise napari's event loop runs until the window closes.  With
    ``palette`` the screenshot is a 256-colour PNG (about a third of the size: for
    documentation).  With ``map_source`` (a predict run's embeddings or a map CSV) the HPA map
    is docked and shown, coloured ``colour_by``.
    """
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(title=title)
    viewer.window.resize(*size)
    report: dict = {}
    try:
        if paths:
            for path in paths:
                viewer.open(str(path), plugin="napari-hpa")
        else:
            viewer.open_sample("napari-hpa", "synthetic_field")
        if classify:
            report["classification"] = _classify(viewer, models, timeout)
        if map_source is not None:
            report["map"] = _show_map(viewer, map_source, colour_by, timeout)
    except BaseException:
        viewer.close()
        raise
    report["layers"] = layer_report(viewer)
    if screenshot is not None:
        import imageio.v3 as iio

        for _ in range(3):  # layouts settle in more than one pass (a dock widening to fit its contents)
            QApplication.processEvents()
        from .errors import file_errors

        image = viewer.screenshot(canvas_only=False, flash=False)
        with file_errors(screenshot, writing=True):
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            if palette:
                from .report import palette_png

                Path(screenshot).write_bytes(palette_png(image))
            else:
                iio.imwrite(screenshot, image)
        report["screenshot"] = str(screenshot)
        viewer.close()
    else:
        napari.run()
    return report


def _wait(widget, timeout: float, what: str) -> None:
    """Run the GUI until ``widget`` is no longer busy."""
    from qtpy.QtWidgets import QApplication

    from .errors import HPAError

    deadline = time.monotonic() + timeout
    while widget.busy and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.01)
    if widget.busy:
        raise HPAError(f"{what} did not finish within {timeout:.0f} s")
    QApplication.processEvents()  # what the result schedules


def _show_map(viewer, source: Path, colour_by: str | None, timeout: float) -> dict:
    """Dock the HPA map, compute it from ``source``, wait for it."""
    from ._qt.fieldmap import MapWidget
    from .errors import HPAError

    widget = MapWidget(viewer, source=source)
    viewer.window.add_dock_widget(widget, name="HPA map", area="right", tabify=True)
    if colour_by:
        widget.colour_combo.value = colour_by
    widget.compute()
    _wait(widget, timeout, "the map")
    if widget.field_map is None:
        raise HPAError(f"the map failed: {widget.status.value}")
    return {"fields": len(widget.field_map), "method": widget.field_map.map.method,
            "colour_by": widget.colour_combo.value, "sources": widget.field_map.sources}


def _classify(viewer, models: Path | None, timeout: float) -> dict:
    """Dock the classifier, run it, wait for the result (the GUI keeps running)."""
    from ._qt.classifier import ClassifierWidget
    from .classes import CLASS_NAMES
    from .errors import HPAError

    widget = ClassifierWidget(viewer, models=models)
    viewer.window.add_dock_widget(widget, name="HPA classifier", area="right")
    widget.run()
    _wait(widget, timeout, "classification")
    if widget.result is None:
        raise HPAError(f"classification failed: {widget.error_label.text()}")
    result = widget.result
    return {
        "id": result.image_id,
        "ensemble": result.ensemble,
        "providers": result.providers,
        "tta": result.tta,
        "labels": result.label_names,
        "top": [
            {"class": c, "name": CLASS_NAMES[c], "probability": round(float(result.probs[c]), 4)}
            for c in result.ranked()[:5]
        ],
        "attention_shown_for": int(viewer.dims.current_step[0]) if result.attention is not None else None,
        "domain": result.as_metadata()["domain"],
    }
