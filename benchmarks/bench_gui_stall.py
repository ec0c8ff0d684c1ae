"""Longest GUI stall while the classifier widget classifies, while the batch prediction
widget predicts a folder, and while the folder dock walks through a folder (needs a display:
xvfb-run).

A QTimer ticks every 5 ms on the GUI thread; the longest gap between ticks
while the work runs in worker threads is the longest stall a user
would feel.  Prints the figures; asserts nothing.

    xvfb-run -a python benchmarks/bench_gui_stall.py [--models PATH] [--runs 3]
        [--what classify folder batch] [--sets 16] [--size 512]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="ensemble or .onnx (default: the bundled ensemble)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tta", default=None, choices=["none", "flip", "d4"])
    parser.add_argument("--what", nargs="+", default=["classify", "folder", "batch"],
                        choices=["classify", "folder", "batch"])
    parser.add_argument("--sets", type=int, default=16, help="synthetic sets in the folder")
    parser.add_argument("--size", type=int, default=512, help="their side in pixels")
    args = parser.parse_args()
    if "classify" in args.what:
        bench_classify(args)
    if {"folder", "batch"} & set(args.what):
        import tempfile
        from pathlib import Path

        from napari_hpa.synth.dataset import generate_dataset

        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "sets"
            generate_dataset(folder, args.sets, seed=0, size=args.size)
            if "folder" in args.what:
                bench_folder(folder, args)
            if "batch" in args.what:
                bench_batch(folder, Path(tmp) / "out", args)


class Ticks:
    """Timer ticks on the GUI thread every 5 ms; ``longest(t0, t1)`` is the longest gap."""

    def __init__(self):
        from qtpy.QtCore import QTimer

        self.ticks: list[float] = []
        self.timer = QTimer()
        self.timer.setInterval(5)
        self.timer.timeout.connect(lambda: self.ticks.append(time.perf_counter()))
        self.timer.start()

    def gaps(self, t0: float, t1: float) -> list[tuple[float, float]]:
        """(gap, when it began after t0), longest first."""
        inside = [t0, *(t for t in self.ticks if t0 < t < t1), t1]
        return sorted(((b - a, a - t0) for a, b in zip(inside, inside[1:])), reverse=True)

    def longest(self, t0: float, t1: float) -> float:
        return self.gaps(t0, t1)[0][0]


def _pump(seconds: float) -> None:
    from qtpy.QtWidgets import QApplication

    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        QApplication.processEvents()
        time.sleep(0.001)


def bench_folder(folder, args) -> None:
    """Walk the folder with the dock: each step shows the next set (prefetched by then, as
    when a user looks at each set for a moment) and the pool reads ahead meanwhile."""
    import napari

    from napari_hpa._qt.folder import FolderWidget

    viewer = napari.Viewer(show=True)
    widget = FolderWidget(viewer, folder)
    viewer.window.add_dock_widget(widget)
    _pump(1.0)
    ticks = Ticks()
    stalls, shown, showing = [], [], []
    for n in range(1, len(widget.walk)):
        t0 = time.perf_counter()
        widget.next()
        while widget.shown_image_id != widget.walk.ids[n]:
            _pump(0.001)
        shown.append(widget.last_show_ms)
        _pump(0.05)  # napari draws the new set
        t2 = time.perf_counter()
        _pump(0.3)  # the user looks; the pool reads ahead
        showing.append(ticks.longest(t0, t2))
        stalls.append(ticks.longest(t2, time.perf_counter()))
    ticks.timer.stop()
    print(f"folder walk ({len(widget.walk)} sets of {args.size} px): set in the layers "
          f"{min(shown):.0f}-{max(shown):.0f} ms after the step (median "
          f"{sorted(shown)[len(shown) // 2]:.0f}); longest GUI stall while the pool reads ahead: "
          f"median {1000 * sorted(stalls)[len(stalls) // 2]:.1f} ms, max {1000 * max(stalls):.1f} ms; "
          f"while napari shows the set (GUI thread): median "
          f"{1000 * sorted(showing)[len(showing) // 2]:.1f} ms, max {1000 * max(showing):.1f} ms")
    viewer.close()


def bench_batch(folder, out, args) -> None:
    """Predict the folder with the batch widget; the stall is measured while its worker
    runs (until it reports the result), then with the results listed."""
    import napari

    from napari_hpa._qt.predict import PredictWidget

    viewer = napari.Viewer(show=True)
    widget = PredictWidget(viewer, folder)
    viewer.window.add_dock_widget(widget)
    if args.models:
        widget.models_edit.value = args.models
    if args.tta:
        widget.tta_combo.value = args.tta
    widget.out_edit.value = str(out)
    _pump(1.0)
    ticks = Ticks()
    done: list[float] = []
    widget._bridge.progressed.connect(lambda d, t: done.append(time.perf_counter()) if d == t else None)
    t0 = time.perf_counter()
    widget.run()
    while widget.busy:
        _pump(0.001)
    t1 = time.perf_counter()
    _pump(0.5)
    end = done[0] if done else t1
    ticks.timer.stop()
    print(f"batch widget ({len(list(folder.glob('*_red.png')))} sets of {args.size} px): "
          f"{t1 - t0:.1f} s; longest GUI stall while the worker runs "
          f"{1000 * ticks.longest(t0, end):.1f} ms, including listing the results "
          f"{1000 * ticks.longest(t0, time.perf_counter()):.1f} ms; {widget.status.value.splitlines()[0]}")
    print("  longest gaps while the worker runs (ms, at s after Predict): " + ", ".join(
        f"{1000 * g:.0f} at {w:.2f}" for g, w in ticks.gaps(t0, end)[:5]))
    viewer.close()


def bench_classify(args) -> None:
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
