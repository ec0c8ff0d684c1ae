"""A scripted review of the noise benchmark's top-K queue with the decision strip.

Takes a review session made from synthetic data generated with ``--noise-rate`` (see
``bench_noise_review.py`` for the recipe), the generator's clean ``labels.csv`` (the truth,
standing for the reviewer's judgement) and its ``noise.csv``::

    xvfb-run -a python benchmarks/bench_review_strip.py noisy.hpa data/labels.csv data/noise.csv

Works on a copy of the session (the input is not changed).  Opens the review widget in a
napari viewer, builds the "most suspicious" queue and reviews its first K images (K = the
number of corrupted images, or ``--top``) with key presses, as a reviewer who knows the true
labels would: Alt+A when every proposal the accept-all would apply is right and no right one
is left out; otherwise one Alt+<n> per right proposal (wrong ones are left alone); then
Alt+T, the class number and Enter for each true class the model did not propose (and each
wrong label it did not flag); Alt+R for an image left unedited; Alt+Right to move on.

Prints: keys per image, images fixed per minute of GUI time (from the first image shown to
the last decision, image loading included), images still wrong, and how many correct labels a
blind accept-all down the same K images would break -- before (Alt+A replaced the labels by
the prediction) and now (the strip's accept-all applies only the strong proposals).  A label
here is one class of one image, correct when present exactly where the truth has it.
Prints figures only (no assertions).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import tempfile
import time
from pathlib import Path

from napari_hpa.labels import read_labels
from napari_hpa.review.decisions import accept_plan
from napari_hpa.review.store import ReviewSession


def broken_and_fixed(before, after, truth) -> tuple[int, int, int]:
    """Correct labels (classes) ``after`` breaks, wrong ones it fixes, and whether it
    leaves the image right (1/0)."""
    b, a, t = set(before), set(after), set(truth)
    classes = b | a | t
    broke = sum(1 for k in classes if (k in b) == (k in t) and (k in a) != (k in t))
    fixed = sum(1 for k in classes if (k in b) != (k in t) and (k in a) == (k in t))
    return broke, fixed, int(a == t)


def blind(session: ReviewSession, ids, truth) -> dict[str, tuple[int, int, int]]:
    """Totals of :func:`broken_and_fixed` for a blind accept-all down ``ids``."""
    out = {"replace by prediction (before)": [0, 0, 0], "strip accept-all (now)": [0, 0, 0]}
    for image_id in ids:
        labels = session.labels(image_id)
        plans = {"replace by prediction (before)": session.predicted(image_id),
                 "strip accept-all (now)": accept_plan(labels, session.proposals(image_id)).after}
        for name, after in plans.items():
            for n, v in enumerate(broken_and_fixed(labels, after, truth[image_id])):
                out[name][n] += v
    return {k: tuple(v) for k, v in out.items()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("session", help="review session (.hpa) with probabilities")
    ap.add_argument("truth", help="the clean labels.csv of napari-hpa synth")
    ap.add_argument("noise", help="noise.csv of napari-hpa synth --noise-rate")
    ap.add_argument("--top", type=int, help="images to review (default: the corrupted count)")
    ap.add_argument("--order", default="suspicious")
    args = ap.parse_args(argv)

    truth = read_labels(args.truth).targets
    with open(args.noise, newline="") as fh:
        corrupted = {row["Id"] for row in csv.DictReader(fh)}
    tmp = Path(tempfile.mkdtemp(prefix="bench-strip-"))
    path = tmp / "s.hpa"
    shutil.copyfile(args.session, path)
    with ReviewSession.open(path) as s:
        queue = s.set_queue(args.order)
        k = args.top or len(corrupted)
        top = queue[:k]
        wrong = [i for i in top if s.labels(i) != truth[i]]
        print(f"{len(s)} images, {len(corrupted)} corrupted; reviewing the first {k} of "
              f"'{args.order}': {len(wrong)} with wrong labels "
              f"({len(corrupted & set(top))} of them corrupted by the generator)")
        figures = blind(s, top, truth)
    print(f"{'blind accept-all down the queue':34s} {'breaks':>7s} {'fixes':>6s} {'images right':>13s}")
    for name, (broke, fixed, right) in figures.items():
        print(f"{name:34s} {broke:7d} {fixed:6d} {right:6d} of {k}")

    keys, seconds, left = scripted_review(path, top, truth)
    fixed_images = sum(1 for i in wrong if i not in left)
    print(f"scripted review with the strip: {sum(keys.values())} keys for {k} images "
          f"({sum(keys.values()) / k:.2f} per image; "
          + ", ".join(f"{n} {v}" for n, v in keys.items()) + ")")
    print(f"  {fixed_images} of {len(wrong)} wrong images fixed in {seconds:.1f} s of GUI time: "
          f"{fixed_images / seconds * 60:.1f} images fixed per minute "
          f"({k / seconds * 60:.1f} images reviewed per minute); {len(left)} still wrong")
    shutil.rmtree(tmp, ignore_errors=True)


def scripted_review(path: Path, top, truth):
    import napari
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest
    from qtpy.QtWidgets import QApplication

    from napari_hpa._qt.review import ReviewWidget

    alt = Qt.KeyboardModifier.AltModifier
    digit = {n: getattr(Qt.Key, f"Key_{n}") for n in range(10)}
    viewer = napari.Viewer(show=True)
    widget = ReviewWidget(viewer)
    viewer.window.add_dock_widget(widget, name="HPA label review")
    widget.window().activateWindow()

    def wait(cond, timeout=60.0):
        t0 = time.perf_counter()
        while not cond():
            QApplication.processEvents()
            if time.perf_counter() - t0 > timeout:
                raise SystemExit(f"the widget did not answer in time (showing "
                                 f"{widget.shown_image_id}, current {widget.current_id}; "
                                 f"{widget.error_label.text()})")
            time.sleep(0.002)

    widget.open_session(path)
    session = widget.session
    keys = {"Alt+A": 0, "Alt+<n>": 0, "typed toggle": 0, "Alt+R": 0, "Alt+Right": 0}
    left = []

    def press(key, counter, target=None):
        QTest.keyClick(target or widget, key, alt)
        keys[counter] += 1

    wait(lambda: widget.shown_image_id == top[0])
    t0 = time.perf_counter()
    for n, image_id in enumerate(top):
        wait(lambda: widget.shown_image_id == image_id)
        t = set(truth[image_id])
        edited = False
        while True:
            props = widget.strip.proposals
            right = [p for p in props if (p.action == "add") == (p.cls in t)]
            if not right:
                break
            plan = accept_plan(session.labels(image_id), props)
            if plan.applied and set(plan.applied) == set(right):
                press(Qt.Key.Key_A, "Alt+A")
            else:
                i = props.index(right[0]) + 1
                if i > 9:
                    break
                press(digit[i], "Alt+<n>")
            edited = True
        for cls in sorted(set(session.labels(image_id)) ^ t):  # what the model did not say
            press(Qt.Key.Key_T, "typed toggle")
            QTest.keyClicks(widget.type_edit, str(cls))
            QTest.keyClick(widget.type_edit, Qt.Key.Key_Return)
            keys["typed toggle"] += len(str(cls)) + 1
            edited = True
        if not edited:
            press(Qt.Key.Key_R, "Alt+R")
        if set(session.labels(image_id)) != t:
            left.append(image_id)
        if n + 1 < len(top):
            press(Qt.Key.Key_Right, "Alt+Right")
    seconds = time.perf_counter() - t0
    widget.close_session()
    viewer.close()
    return keys, seconds, left


if __name__ == "__main__":
    main()
