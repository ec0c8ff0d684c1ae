"""Longest GUI stall while the classifier widget classifies (needs a display: xvfb-run).

A QTimer ticks every 5 ms on the GUI thread; the longest gap between ticks
while classification runs in the worker thread is the longest stall a user
would feel.  Prints the figures; asserts nothing.

    xvfb-run -a python benchmarks/bench_gui_stall.py [--models PATH] [--runs 3]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="ensemble or .onnx (default: the bundled ensemble)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tta", default=None, choices=["none", "flip", "d4"])
    args = parser.parse_args()

    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_hpa._qt.classifier import ClassifierWidget

    viewer = napari.Viewer(show=True)
    viewer.open_sample("napari-hpa", "synthetic_field")
    t0 = time.perf_counter()
    widget = ClassifierWidget(viewer, models=args.models)
    viewer.window.add_dock_widget(widget)
    print(f"opening the widget (on the GUI thread): {(time.perf_counter() - t0) * 1000:.0f} ms")
    # let the window draw for the first time (GL set-up, textures), as it does before a
    # user can click Classify; otherwise that first draw is counted as a classification stall
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 1.0:
        QApplication.processEvents()
        time.sleep(0.005)
    if args.tta:
        widget.tta_combo.setCurrentText(args.tta)

    ticks: list[float] = []
    shown: list[float] = []
    widget.classified.connect(lambda _: shown.append(time.perf_counter()))
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    for run in range(args.runs):
        ticks.clear()
        shown.clear()
        t0 = time.perf_counter()
        widget.run()
        while widget.busy:
            QApplication.processEvents()
            time.sleep(0.001)
        for _ in range(5):  # let the result's layers draw
            QApplication.processEvents()
        elapsed = time.perf_counter() - t0
        # stalls while the worker thread runs (until the result handler starts), and overall
        # (the result handler adds layers and draws on the GUI thread)
        end = shown[0] if shown else time.perf_counter()
        before = [t for t in [t0, *ticks] if t <= end]
        gaps_inference = [b - a for a, b in zip(before, before[1:])] or [0.0]
        every = [t0, *ticks, time.perf_counter()]
        gaps_all = [b - a for a, b in zip(every, every[1:])]
        what = "load + classify" if run == 0 else "classify"
        print(
            f"run {run + 1} ({what}): {elapsed * 1000:.0f} ms; longest GUI stall while the "
            f"worker runs {max(gaps_inference) * 1000:.1f} ms, including showing the result "
            f"{max(gaps_all) * 1000:.1f} ms ({len(ticks)} timer ticks)"
        )
        if widget.result is None:
            print("classification failed:", widget.error_label.text())
            break
    timer.stop()
    viewer.close()


if __name__ == "__main__":
    main()
