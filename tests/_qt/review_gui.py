"""Fixtures of the review widget's GUI tests: a small session with images and probabilities,
and a viewer with the widget docked; helpers to open it and read the file back."""

from __future__ import annotations

import numpy as np
import pytest
from hpa_testing import random_set, write_channel_files
from qtpy.QtCore import Qt

from napari_hpa._qt.review import ReviewWidget
from napari_hpa.classes import NUM_CLASSES
from napari_hpa.labels import write_probabilities
from napari_hpa.review import ReviewSession

ALT = Qt.KeyboardModifier.AltModifier
CTRL = Qt.KeyboardModifier.ControlModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier

#: id -> labels; probabilities below make the queue orders known (see test_queue_orders)
#: Milliseconds to wait for background work or focus: generous, so that a loaded machine does not
#: fail a test (a wait ends as soon as its condition holds).
WAIT = 60_000

LABELS = {"a": "0", "b": "3", "c": "25", "d": "0 25", "e": "14"}
HAS_IMAGES = ("a", "b", "c", "d")  # "e" has none


def _probs() -> np.ndarray:
    p = np.full((len(LABELS), NUM_CLASSES), 0.02)
    rows = {i: n for n, i in enumerate(LABELS)}
    p[rows["a"], 0] = 0.9
    p[rows["b"], 3], p[rows["b"], 4] = 0.05, 0.95  # labelled 3, the model says 4
    p[rows["c"], 25] = 0.6
    p[rows["d"], [0, 25, 2]] = 0.9, 0.9, 0.7  # 2 probable but unlabelled
    p[rows["e"], 14] = 0.52  # barely confident
    return p


@pytest.fixture
def session_path(tmp_path):
    images = tmp_path / "images"
    for n, image_id in enumerate(HAS_IMAGES):
        write_channel_files(images, image_id, random_set((64, 64), seed=n))
    labels = tmp_path / "labels.csv"
    labels.write_text("Id,Target\n" + "".join(f"{i},{t}\n" for i, t in LABELS.items()))
    probs = write_probabilities(tmp_path / "probs.csv", list(LABELS), _probs())
    path = tmp_path / "s.hpa"
    ReviewSession.create(path, images, labels, probs, reviewer="ann").close()
    return path


def stored(path):
    """A fresh look at the file: what was committed."""
    s = ReviewSession.open(path)
    try:
        return {
            "labels": {i: s.labels(i) for i in s.ids},
            "reviewed": {i: s.is_reviewed(i) for i in s.ids},
            "note": {i: s.note(i) for i in s.ids},
            "current": s.current_id,
            "queue": s.queue_ids,
        }
    finally:
        s.close()


@pytest.fixture
def review(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    widget = ReviewWidget(viewer)
    viewer.window.add_dock_widget(widget, name="HPA label review")
    viewer.window._qt_window.activateWindow()
    yield viewer, widget
    widget.close_session()
    widget.unbind_keys()


def _open(qtbot, widget, path, first):
    assert widget.open_session(path), widget.error_label.text()
    qtbot.waitUntil(lambda: widget.shown_image_id == first, timeout=WAIT)


def _wait_shown(qtbot, widget, image_id):
    qtbot.waitUntil(lambda: widget.shown_image_id == image_id, timeout=WAIT)


