"""The review widget's decision strip and class grid, driven with key presses (Xvfb)."""

from __future__ import annotations

import pytest
from qtpy.QtCore import Qt
from review_gui import ALT, WAIT, _open, _wait_shown, stored

pytestmark = pytest.mark.gui


def _alt(qtbot, target, key):
    qtbot.keyClick(target, key, ALT)


def test_strip_items_act_with_one_key_each(review, qtbot, session_path):
    viewer, widget = review
    _open(qtbot, widget, session_path, "a")
    strip = widget.strip
    assert strip.item_texts() == []  # labels and model agree
    assert strip.labels_line.text() == "labels: 0 Nucleoplasm"
    assert strip.model_line.text() == "model: 0 Nucleoplasm"

    widget.next()
    _wait_shown(qtbot, widget, "b")
    # labelled 3 at p 0.05, the model says 4 at p 0.95: two items, in words
    assert strip.item_texts() == ["Alt+1   drop 3 Nucleoli fibrillar center",
                                  "Alt+2   add 4 Nuclear speckles"]
    assert [b.value() for b in strip.item_bars[:2]] == [95, 95]
    widget.class_checks[0].setFocus()
    _alt(qtbot, widget.class_checks[0], Qt.Key.Key_2)  # add 4
    assert stored(session_path)["labels"]["b"] == (3, 4)
    assert strip.item_texts() == ["Alt+1   drop 3 Nucleoli fibrillar center"]
    _alt(qtbot, widget.class_checks[0], Qt.Key.Key_1)  # drop 3
    assert stored(session_path)["labels"]["b"] == (4,)
    assert strip.item_texts() == []
    assert strip.labels_line.text() == "labels (changed): 4 Nuclear speckles"

    # d: labelled 0 25, class 2 at p 0.7: a weak call, which accept-all leaves alone
    widget.jump("d")
    _wait_shown(qtbot, widget, "d")
    assert strip.item_texts() == ["Alt+1   add 2 Nucleoli"]
    assert "(weak)" in strip.item_evidence[0].text()
    assert not strip.accept_button.isEnabled()
    assert "does not add 2 Nucleoli (weak evidence)" in strip.plan_line.text()
    _alt(qtbot, widget.class_checks[0], Qt.Key.Key_A)
    assert stored(session_path)["labels"]["d"] == (0, 25)
    _alt(qtbot, widget.class_checks[0], Qt.Key.Key_1)  # the user's own call
    assert stored(session_path)["labels"]["d"] == (0, 2, 25)


def test_strip_keys_are_napari_actions_on_the_canvas(review, qtbot, session_path):
    from napari.utils.action_manager import action_manager

    viewer, widget = review
    _open(qtbot, widget, session_path, "a")
    assert "napari-hpa:review_item1" in action_manager._actions  # listed in the preferences
    widget.next()
    _wait_shown(qtbot, widget, "b")
    viewer.layers.selection.active = widget.image_layers[1]
    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    qtbot.waitUntil(canvas.hasFocus, timeout=WAIT)
    _alt(qtbot, canvas, Qt.Key.Key_A)  # both calls strong: one edit
    assert stored(session_path)["labels"]["b"] == (4,)
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert stored(session_path)["labels"]["b"] == (3,)
    _alt(qtbot, canvas, Qt.Key.Key_2)
    assert stored(session_path)["labels"]["b"] == (3, 4)


def test_ampersand_is_shown_as_one(review, qtbot, session_path):
    viewer, widget = review
    _open(qtbot, widget, session_path, "a")
    check = widget.class_checks[27]
    assert check.text() == "27 Rods && rings"  # Qt shows "&&" as "&" (no mnemonic)
    # a proposal naming the class: the strip escapes it too
    from napari_hpa.review.decisions import Proposal
    from napari_hpa._qt.review_strip import mnemonic_safe

    p = Proposal("drop", 27, 0.1, 0.5, 0.9)
    assert mnemonic_safe(p.text) == "drop 27 Rods && rings"
