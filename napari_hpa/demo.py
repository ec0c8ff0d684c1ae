"""Open napari from the command line: ``napari-hpa demo`` and ``napari-hpa view``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def layer_report(viewer) -> list[dict]:
    """Name, shape, scale and translate of every layer (what ``--json`` prints)."""
    return [
        {
            "name": layer.name,
            "shape": list(layer.data.shape),
            "dtype": str(layer.data.dtype),
            "scale": [float(s) for s in layer.scale],
            "translate": [float(t) for t in layer.translate],
            "colormap": layer.colormap.name,
            "blending": str(layer.blending),
        }
        for layer in viewer.layers
    ]


def run_viewer(
    paths: Sequence[str | Path] = (),
    *,
    screenshot: Path | None = None,
    size: tuple[int, int] = (1400, 900),
    title: str = "napari-hpa",
) -> dict:
    """Open napari with ``paths`` (through this plugin's reader), or the sample if none.

    With ``screenshot`` the window is drawn, saved as PNG and closed, and the
    function returns; otherwise napari's event loop runs until the window closes.
    """
    import napari

    viewer = napari.Viewer(title=title)
    viewer.window.resize(*size)
    try:
        if paths:
            for path in paths:
                viewer.open(str(path), plugin="napari-hpa")
        else:
            viewer.open_sample("napari-hpa", "synthetic_field")
    except BaseException:
        viewer.close()
        raise
    report = {"layers": layer_report(viewer)}
    if screenshot is not None:
        import imageio.v3 as iio
        from qtpy.QtWidgets import QApplication

        QApplication.processEvents()
        image = viewer.screenshot(canvas_only=False, flash=False)
        Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(screenshot, image)
        report["screenshot"] = str(screenshot)
        viewer.close()
    else:
        napari.run()
    return report
