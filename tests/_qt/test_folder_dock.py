"""The HPA folder dock and the batch prediction dock in a real viewer (Xvfb): walking a folder
with keys and clicks, prefetching, layers swapped in place keeping the user's display
settings; predicting a folder with the same files as ``predict``, progress, cancel, resume."""

from __future__ import annotations

import numpy as np
import pytest
from hpa_testing import random_set, write_channel_files
from onnx_toys import make_toy
from qtpy.QtCore import Qt

from napari_hpa._qt.folder import FolderWidget
from napari_hpa._qt.predict import PredictWidget
from napari_hpa.cli import main
from napari_hpa.folder import OUTPUT_NAMES, default_output, predict_command, predict_outputs
from napari_hpa.labels import read_labels

pytestmark = pytest.mark.gui

WAIT = 60_000
IDS = ["a", "b", "c", "d", "e"]


@pytest.fixture
def sets(tmp_path):
    folder = tmp_path / "sets"
    data = {i: random_set((48, 48), seed=n) for n, i in enumerate(IDS)}
    for i, d in data.items():
        write_channel_files(folder, i, d)
    return folder, data


@pytest.fixture
def toy(tmp_path):
    return make_toy(tmp_path / "toy.onnx", size=16, grid=4, emb_dim=8)


def _folder_dock(viewer):
    return next((w for w in viewer.window.dock_widgets.values() if isinstance(w, FolderWidget)),
                None)


def _key(qtbot, viewer, key):
    """A key pressed on the canvas (the focus a user has after clicking the image)."""
    viewer.window._qt_window.activateWindow()
    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    qtbot.waitUntil(canvas.hasFocus, timeout=WAIT)
    qtbot.keyClick(canvas, key)


def test_opening_a_folder_docks_the_list_and_keys_walk_it(make_napari_viewer, qtbot, sets):
    folder, data = sets
    viewer = make_napari_viewer(show=True)
    viewer.open(str(folder), plugin="napari-hpa")
    qtbot.waitUntil(lambda: _folder_dock(viewer) is not None, timeout=WAIT)
    widget = _folder_dock(viewer)
    assert widget.table.rowCount() == len(IDS)
    assert [widget.table.item(r, 0).text() for r in range(len(IDS))] == IDS
    assert widget.shown_image_id == "a" and len(viewer.layers) == 4
    layers = list(viewer.layers)
    assert widget.image_layers == layers  # the reader's layers are taken over, not added again
    # the user's display settings on the green channel
    green = layers[1]
    green.contrast_limits = (10.0, 99.0)
    green.gamma = 0.7
    layers[3].visible = False
    qtbot.waitUntil(lambda: "b" in widget._cache and widget._cache["b"].done(), timeout=WAIT)
    assert "c" in widget._cache  # the next two are read ahead
    with qtbot.waitSignal(widget.image_shown, timeout=WAIT):
        _key(qtbot, viewer, Qt.Key.Key_PageDown)
    assert widget.shown_image_id == "b" and widget.walk.position == 1
    assert list(viewer.layers) == layers  # the same four layers, swapped in place
    assert layers[0].name == "b microtubules" and layers[0].metadata["hpa_id"] == "b"
    np.testing.assert_array_equal(green.data, data["b"][1])
    assert green.contrast_limits == [10.0, 99.0] and green.gamma == 0.7
    assert not layers[3].visible
    with qtbot.waitSignal(widget.image_shown, timeout=WAIT):
        _key(qtbot, viewer, Qt.Key.Key_PageUp)
    assert widget.shown_image_id == "a"
    # a click on a row opens that set
    rect = widget.table.visualItemRect(widget.table.item(3, 0))
    with qtbot.waitSignal(widget.image_shown, timeout=WAIT):
        qtbot.mouseClick(widget.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert widget.shown_image_id == "d" and layers[2].name == "d nucleus"
    assert widget.table.selectedItems()[0].row() == 3
    assert widget.position_label.text() == "4 / 5"
    # PageUp/PageDown are not napari's: its keymap has no binding for them
    from napari.utils.shortcuts import _default_shortcuts

    bound = {str(k) for keys in _default_shortcuts.values() for k in keys}
    assert not any("PageUp" in k or "PageDown" in k for k in bound)


def test_classifications_and_predictions_show_in_the_list(make_napari_viewer, qtbot, sets, toy,
                                                          tmp_path):
    folder, _ = sets
    viewer = make_napari_viewer()
    widget = FolderWidget(viewer, folder)
    viewer.window.add_dock_widget(widget)
    qtbot.waitUntil(lambda: widget.shown_image_id == "a", timeout=WAIT)
    assert widget.table.item(0, 1).text() == ""
    out = tmp_path / "run"
    assert main(predict_command(folder, predict_outputs(out), models=toy.path) + ["--quiet"]) == 0
    assert widget.load_predictions(out / "submission.csv")
    sub = read_labels(out / "submission.csv").targets
    assert [r.labels for r in widget.rows] == [sub[i] for i in IDS]
    assert widget.table.item(1, 1).text() == widget.rows[1].labels_text != ""
    # what the classifier stored on the layers of "a" is noted when the set changes
    meta = {"labels": [7], "domain": {"in_domain": False, "score": 2.0, "reason": "too dark"}}
    for layer in widget.image_layers:
        layer.metadata["hpa_classification"] = meta
    with qtbot.waitSignal(widget.image_shown, timeout=WAIT):
        widget.next()
    assert widget.table.item(0, 1).text() == "Cytosol"[:0] + widget.rows[0].labels_text
    assert widget.rows[0].labels == (7,) and widget.table.item(0, 2).text().startswith("OUT")
    assert "hpa_classification" not in widget.image_layers[0].metadata  # "b" is not classified
    with qtbot.waitSignal(widget.image_shown, timeout=WAIT):
        widget.previous()
    assert widget.image_layers[0].metadata["hpa_classification"] == meta  # back with "a"
    assert not widget.load_predictions(tmp_path / "nothing.csv")
    assert "no such file" in widget.error_label.text()


def test_batch_widget_writes_what_predict_writes_then_lists_it(make_napari_viewer, qtbot, sets,
                                                                toy, tmp_path):
    folder, _ = sets
    cli = tmp_path / "cli"
    assert main(predict_command(folder, predict_outputs(cli), models=toy.path) + ["--quiet"]) == 0
    viewer = make_napari_viewer()
    widget = PredictWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.folder_edit.value = str(folder)
    assert str(widget.out_edit.value) == str(default_output(folder))
    widget.models_edit.value = str(toy.path)
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT)
    assert widget.error is None and widget.summary.predicted == len(IDS)
    for key in ("submission", "probs", "domain", "errors"):
        name = OUTPUT_NAMES[key]
        assert (default_output(folder) / name).read_bytes() == (cli / name).read_bytes(), name
    assert widget.progress_log and widget.progress_log[-1] == (len(IDS), len(IDS))
    dock = _folder_dock(viewer)  # the results open in the folder list
    assert dock is not None and all(r.origin == "predict" for r in dock.rows)
    assert widget.run_button.enabled and not widget.cancel_button.enabled


def test_batch_widget_cancels_and_resumes(make_napari_viewer, qtbot, sets, toy, tmp_path,
                                          monkeypatch):
    import napari_hpa.folder as core

    folder, _ = sets
    cli = tmp_path / "cli"
    assert main(predict_command(folder, predict_outputs(cli), models=toy.path) + ["--quiet"]) == 0
    real = core.predict_folder

    def small_batches(*args, **kw):  # batches of one, so that Cancel lands mid-run
        from napari_hpa.engine import batch

        original = batch.predict_sources
        monkeypatch.setattr(batch, "predict_sources",
                            lambda *a, **k: original(*a, **{**k, "batch_size": 1}))
        return real(*args, **kw)

    monkeypatch.setattr("napari_hpa._qt.predict.predict_folder", small_batches)
    viewer = make_napari_viewer()
    widget = PredictWidget(viewer, folder)
    widget.models_edit.value = str(toy.path)
    widget._bridge.progressed.connect(lambda d, t: widget.cancel() if d == 2 else None)
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT)
    assert widget.cancelled and widget.error is None
    done = widget.progress_log[-1][0]
    assert 2 <= done < len(IDS)
    out = default_output(folder)
    assert not (out / "submission.csv").exists()
    assert len((out / "submission.csv.partial").read_text().splitlines()) == 1 + done
    assert widget.resume_check.value  # ticked for the next run
    assert "resume" in widget.status.value
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT)
    assert widget.summary.skipped == done and widget.summary.predicted == len(IDS) - done
    for key in ("submission", "probs", "domain", "errors"):
        name = OUTPUT_NAMES[key]
        assert (out / name).read_bytes() == (cli / name).read_bytes(), name


def test_batch_widget_reports_bad_input_in_one_line(make_napari_viewer, qtbot, tmp_path, toy):
    viewer = make_napari_viewer()
    widget = PredictWidget(viewer, tmp_path / "nowhere")
    widget.models_edit.value = str(toy.path)
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT)
    assert "nowhere" in widget.status.value and "not a folder" in widget.status.value
    assert "\n" not in widget.status.value


def test_the_manifest_offers_both_docks(make_napari_viewer, qtbot, sets):
    folder, _ = sets
    viewer = make_napari_viewer()
    viewer.open(str(folder / "c_red.png"), plugin="napari-hpa")
    _, w = viewer.window.add_plugin_dock_widget("napari-hpa", "HPA batch prediction")
    assert isinstance(w, PredictWidget)
    _, f = viewer.window.add_plugin_dock_widget("napari-hpa", "HPA folder")
    assert isinstance(f, FolderWidget) and f.walk is None  # one set opened: no folder yet
    assert f.open_folder(folder) and f.walk.ids == IDS


def test_the_classifier_follows_the_set_on_screen(make_napari_viewer, qtbot, sets, toy):
    """Walking to another set clears the classifier's result for the one that left, and its
    field list names the set now on screen."""
    from napari_hpa._qt.classifier import ClassifierWidget

    folder, _ = sets
    viewer = make_napari_viewer(show=True)
    viewer.open(str(folder), plugin="napari-hpa")
    qtbot.waitUntil(lambda: _folder_dock(viewer) is not None, timeout=WAIT)
    dock = _folder_dock(viewer)
    classifier = ClassifierWidget(viewer, models=toy.path)
    viewer.window.add_dock_widget(classifier, area="right")
    classifier.run()
    qtbot.waitUntil(lambda: classifier.result is not None, timeout=WAIT)
    assert classifier.table.rowCount() == 28 and classifier.summary_label.text().startswith("a:")
    dock.next()
    qtbot.waitUntil(lambda: dock.shown_image_id == "b", timeout=WAIT)
    qtbot.waitUntil(lambda: classifier.result is None, timeout=WAIT)
    assert classifier.field_combo.currentText() == "b"
    assert classifier.table.rowCount() == 0 and classifier.summary_label.text() == "Not classified yet."
    assert not any(layer.name.startswith("a ") for layer in viewer.layers)
    classifier.run()
    qtbot.waitUntil(lambda: classifier.result is not None, timeout=WAIT)
    assert classifier.result.image_id == "b"
