"""The embedding map of a large folder: time to compute it, and the longest GUI stall while
the HPA map dock computes and shows it and while a user works with it (needs a display:
xvfb-run).

A synthetic predict run of N fields (clustered 512-D embeddings, a submission and domain
verdicts) is mapped twice: by the core alone (:func:`napari_hpa.fieldmap.load_field_map`,
timed step by step) and by the dock in a napari viewer, with a QTimer ticking every 5 ms on
the GUI thread; the longest gap between ticks is the longest stall a user would feel.
Prints the figures; asserts nothing.

    xvfb-run -a python benchmarks/bench_map.py [--n 20000] [--dim 512] [--method auto]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_gui_stall import Ticks, _pump


def make_run(folder: Path, n: int, dim: int, seed: int = 0) -> Path:
    """A predict output folder of ``n`` fields in 28 clusters."""
    from napari_hpa.labels import write_labels

    rng = np.random.default_rng(seed)
    group = rng.integers(0, 28, n)
    centres = rng.normal(size=(28, dim))
    emb = (centres[group] + 0.6 * rng.normal(size=(n, dim))).astype(np.float32)
    ids = [f"field{i:06d}" for i in range(n)]
    folder.mkdir(parents=True)
    np.savez(folder / "embeddings.npz", ids=np.array(ids), embeddings=emb)
    write_labels(folder / "submission.csv", {i: (int(g),) for i, g in zip(ids, group)},
                 column="Predicted")
    verdicts = np.where(rng.random(n) < 0.1, "false", "true")
    (folder / "domain.csv").write_text("Id,domain_score,in_domain,reason\n" + "".join(
        f"{i},0.5,{v},\n" for i, v in zip(ids, verdicts)))
    return folder


def bench_core(run: Path, method: str) -> None:
    from napari_hpa.fieldmap import load_field_map

    steps: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    fm = load_field_map(run, method=method, progress=lambda s: steps.append((s, time.perf_counter())))
    total = time.perf_counter() - t0
    marks = [t0] + [t for _, t in steps[1:]] + [t0 + total]
    print(f"core: {len(fm):,} fields mapped by {fm.map.method.upper()} in {total:.1f} s")
    for (what, _), a, b in zip(steps, marks, marks[1:]):
        print(f"  {what:<30s} {b - a:6.2f} s")


def bench_dock(run: Path, method: str) -> None:
    import napari

    from napari_hpa._qt.fieldmap import MapWidget

    viewer = napari.Viewer(show=True)
    viewer.open_sample("napari-hpa", "synthetic_field")  # a field on screen, as when mapping its folder
    _pump(1.0)
    ticks = Ticks()
    widget = MapWidget(viewer, source=run / "embeddings.npz")
    viewer.window.add_dock_widget(widget, name="HPA map")
    _pump(0.5)
    shown = widget.show_map
    spent: list[float] = []

    def timed_show(field_map) -> None:  # the dock's own work on the GUI thread
        a = time.perf_counter()
        shown(field_map)
        spent.append(time.perf_counter() - a)

    widget.show_map = timed_show
    for attempt in ("first", "again"):  # the first Points layer of a viewer compiles its shaders
        t0 = time.perf_counter()
        before = widget.field_map
        widget.compute()
        while widget.field_map is before or widget.busy:
            if widget.error is not None:
                raise SystemExit(f"mapping failed: {widget.error}")
            _pump(0.02)
        t_shown = time.perf_counter()
        _pump(1.0)  # the first draw
        gap, at = ticks.gaps(t0, time.perf_counter())[0]
        print(f"dock, {attempt}: map on screen {t_shown - t0:.1f} s after Map; longest stall "
              f"{gap * 1000:.0f} ms ({at:.1f} s after Map), of which showing the map "
              f"{spent[-1] * 1000:.0f} ms (the rest: napari drawing)")
    layer = widget.layer

    def stall(what: str, action, repeat: int = 5) -> None:
        worst = 0.0
        for k in range(repeat):
            a = time.perf_counter()
            action(k)
            _pump(0.3)
            worst = max(worst, ticks.longest(a, time.perf_counter()))
        print(f"  {what:<44s} longest stall {worst * 1000:5.0f} ms")

    choices = ["verdict", "predicted", "outlier", "disagreement", "review"]
    stall("recolour", lambda k: setattr(widget.colour_combo, "value", choices[k % len(choices)]))
    stall("hover (status of the point under the cursor)",
          lambda k: layer.get_status(tuple(layer.data[(k * 997) % len(layer.data)]), world=True))
    widget.count_spin.value = 500
    stall("select the 500 strongest outliers", lambda k: widget.select_top(), repeat=3)
    stall("zoom in and out", lambda k: setattr(viewer.camera, "zoom", viewer.camera.zoom * (1.6 if k % 2 else 0.625)))
    stall("pan", lambda k: setattr(viewer.camera, "center", tuple(np.add(viewer.camera.center, (0, 0, 40))[-len(viewer.camera.center):])))
    ticks.timer.stop()
    viewer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="fields (default 20000)")
    parser.add_argument("--dim", type=int, default=512, help="embedding size (default 512)")
    parser.add_argument("--method", default="auto", choices=["auto", "umap", "pca"])
    parser.add_argument("--what", nargs="+", default=["core", "dock"], choices=["core", "dock"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = make_run(Path(tmp) / "predictions", args.n, args.dim)
        if "core" in args.what:
            bench_core(run, args.method)
        if "dock" in args.what:
            bench_dock(run, args.method)


if __name__ == "__main__":
    main()
