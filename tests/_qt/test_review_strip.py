"""The review widget's decision strip and class grid, driven with key presses (Xvfb)."""

from __future__ import annotations

import pytest
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication
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


@pytest.fixture
def flagged_path(tmp_path):
    """Images whose flagged classes sit at the bottom of the class list (membranes, cytoplasm)."""
    import numpy as np

    from napari_hpa.classes import NUM_CLASSES
    from napari_hpa.labels import write_probabilities
    from napari_hpa.review import ReviewSession

    labels = {"m1": "0 27", "m2": "19", "m3": "0", "m4": "21 22"}
    p = np.full((4, NUM_CLASSES), 0.02)
    p[0, 0], p[0, 27], p[0, 17] = 0.9, 0.05, 0.9  # drop 27, add 17
    p[1, 19], p[1, 26] = 0.1, 0.9  # drop 19, add 26
    p[2, 0] = 0.9  # agrees
    p[3, 21], p[3, 22], p[3, 20] = 0.9, 0.3, 0.8  # drop 22, add 20
    (tmp_path / "labels.csv").write_text(
        "Id,Target\n" + "".join(f"{i},{t}\n" for i, t in labels.items()))
    probs = write_probabilities(tmp_path / "probs.csv", list(labels), p)
    path = tmp_path / "f.hpa"
    ReviewSession.create(path, None, tmp_path / "labels.csv", probs).close()
    return path, {"m1": (17, 27), "m2": (19, 26), "m3": (), "m4": (20, 22)}


def test_flagged_classes_are_in_view_on_every_image(review, qtbot, flagged_path):
    viewer, widget = review
    path, expected = flagged_path
    viewer.window._qt_window.resize(1000, 700)  # a short dock: the list must scroll
    assert widget.open_session(path)
    panel = widget.class_panel
    bar = panel.scroll.verticalScrollBar()
    for image_id, flagged in expected.items():
        qtbot.waitUntil(lambda i=image_id: widget.current_id == i, timeout=WAIT)
        QApplication.processEvents()
        assert bar.maximum() > 0  # the list is longer than its view
        assert bar.value() == 0  # each image starts at the top
        assert tuple(k for k, f in widget.class_flags().items() if f) == flagged
        for k in flagged:
            assert panel.in_view(k), (image_id, k)
        # scrolled away, the next image starts at the top again
        bar.setValue(bar.maximum())
        QApplication.processEvents()
        if flagged:
            assert not all(panel.in_view(k) for k in flagged)
        widget.next()
    assert panel.checks[27].text() == "27 Rods && rings"


def test_live_counts_one_undo_per_decision_and_type_to_toggle(review, qtbot, session_path):
    viewer, widget = review
    _open(qtbot, widget, session_path, "a")
    assert widget.progress_label.text() == "0 of 5 reviewed, 0 changed"
    widget.next()
    _wait_shown(qtbot, widget, "b")
    focus = widget.class_checks[0]
    focus.setFocus()
    _alt(qtbot, focus, Qt.Key.Key_A)  # drop 3, add 4 and mark reviewed: one decision
    st = stored(session_path)
    assert st["labels"]["b"] == (4,) and st["reviewed"]["b"]
    assert widget.progress_label.text() == "1 of 5 reviewed, 1 changed"
    assert widget.reviewed_check.isChecked()
    qtbot.keyClick(focus, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # one undo
    st = stored(session_path)
    assert st["labels"]["b"] == (3,) and not st["reviewed"]["b"]
    assert widget.progress_label.text() == "0 of 5 reviewed, 0 changed"

    # type-to-toggle: Alt+T, a class number or a name prefix, Enter
    _alt(qtbot, focus, Qt.Key.Key_T)
    qtbot.waitUntil(widget.type_edit.hasFocus, timeout=WAIT)
    qtbot.keyClicks(widget.type_edit, "rods")
    qtbot.keyClick(widget.type_edit, Qt.Key.Key_Return)
    assert stored(session_path)["labels"]["b"] == (3, 27)
    assert widget.type_edit.text() == ""
    qtbot.keyClicks(widget.type_edit, "3")
    qtbot.keyClick(widget.type_edit, Qt.Key.Key_Return)
    assert stored(session_path)["labels"]["b"] == (27,)
    qtbot.keyClicks(widget.type_edit, "nucle")  # several names start so: said, nothing done
    qtbot.keyClick(widget.type_edit, Qt.Key.Key_Return)
    assert "starts" in widget.error_label.text()
    assert stored(session_path)["labels"]["b"] == (27,)
    assert widget.progress_label.text() == "1 of 5 reviewed, 1 changed"

    # the unsure mark and the option
    _alt(qtbot, focus, Qt.Key.Key_U)
    assert widget.unsure_check.isChecked()
    widget.review_on_edit_check.setChecked(False)
    widget.next()
    _wait_shown(qtbot, widget, "c")
    widget.toggle_class(0)
    assert not stored(session_path)["reviewed"]["c"]
    assert widget.progress_label.text() == "1 of 5 reviewed, 2 changed"


def test_reviewer_name_is_remembered_in_the_session(review, qtbot, session_path):
    from napari_hpa.review import ReviewSession

    viewer, widget = review
    _open(qtbot, widget, session_path, "a")
    widget.reviewer_edit.setText("Dr. Lundberg")
    widget.reviewer_edit.editingFinished.emit()
    widget.toggle_class(5)
    widget.close_session()
    s = ReviewSession.open(session_path)
    try:
        assert s.history("a")[-1].reviewer == "Dr. Lundberg"
        assert s.saved_reviewer == "Dr. Lundberg"
    finally:
        s.close()
    _open(qtbot, widget, session_path, "a")
    assert widget.reviewer_edit.text() == "Dr. Lundberg"
