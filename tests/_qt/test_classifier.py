"""The HPA classifier dock widget, driven in a real viewer (runs under Xvfb)."""

from __future__ import annotations

import numpy as np
import pytest
from hpa_testing import random_set, write_channel_files
from onnx_toys import make_toy

from napari_hpa._qt.classifier import BY_HAND, ClassifierWidget
from napari_hpa.classes import CLASS_NAMES
from napari_hpa.classify import classify
from napari_hpa.attention import contours as attention_contours
from napari_hpa.engine import Ensemble
from napari_hpa.similar import ReferenceIndex, build_index

pytestmark = pytest.mark.gui


@pytest.fixture
def toy(tmp_path):
    return make_toy(tmp_path / "toy.onnx", size=16, grid=4, emb_dim=8)


@pytest.fixture
def field(tmp_path):
    data = random_set((64, 64), seed=5)
    paths = write_channel_files(tmp_path / "sets", "fov", data)
    return data, paths


def _classify(qtbot, widget, timeout=20000):
    with qtbot.waitSignal(widget.classified, timeout=timeout) as blocker:
        widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=timeout)
    return blocker.args[0]


def test_classify_shows_the_engine_numbers_and_attention(make_napari_viewer, qtbot, toy, field):
    data, paths = field
    viewer = make_napari_viewer()
    viewer.open(str(paths["red"]), plugin="napari-hpa")
    widget = ClassifierWidget(viewer, models=toy.path)
    viewer.window.add_dock_widget(widget)
    assert widget.field_combo.currentText() == "fov"

    result = _classify(qtbot, widget)
    expected = classify(Ensemble.load(toy.path), "fov", data)
    np.testing.assert_allclose(result.probs, expected.probs, rtol=1e-6)

    rows = widget.table_rows()
    assert len(rows) == 28
    assert [r[0] for r in rows] == expected.ranked()  # sorted by probability
    for c, p, t, predicted in rows:
        assert p == pytest.approx(float(expected.probs[c]), abs=1e-6)
        assert t == pytest.approx(float(expected.thresholds[c]))
        assert predicted == (c in expected.labels)
    assert widget.summary_label.text() == f"fov: {', '.join(expected.label_names)}"

    # the numbers are in the channel layers' metadata too
    meta = viewer.layers["fov protein"].metadata["hpa_classification"]
    assert meta["labels"] == list(expected.labels)
    assert meta["probabilities"] == pytest.approx(list(expected.probs), abs=1e-6)

    # attention layer: (28, 4, 4) laid exactly over the 64x64 field of view
    att = viewer.layers["fov attention"]
    assert att.data.shape == (28, 4, 4)
    np.testing.assert_allclose(att.data, expected.attention, rtol=1e-6)
    assert tuple(att.scale) == (1.0, 16.0, 16.0)
    assert tuple(att.translate) == (0.0, 7.5, 7.5)
    # outer edges coincide: the image spans [-0.5, 63.5] in world coordinates
    lo = att.translate[1] - att.scale[1] / 2
    hi = att.translate[1] + (att.data.shape[1] - 0.5) * att.scale[1]
    assert (lo, hi) == (-0.5, 63.5)
    assert viewer.dims.axis_labels[0] == "class"
    # drawn so the stains stay visible: transparent where the map is low
    assert att.colormap.colors[0][3] == 0 and att.blending == "translucent"

    # the slider starts at the top class; selecting a class in the table moves it
    assert viewer.dims.current_step[0] == expected.top_class
    qtbot.waitUntil(lambda: "fov attention contours" in viewer.layers)
    contours = viewer.layers["fov attention contours"]
    qtbot.waitUntil(lambda: contours.metadata.get("class") == expected.top_class)
    target_row = 5
    c = rows[target_row][0]
    widget.table.selectRow(target_row)
    assert viewer.dims.current_step[0] == c
    assert CLASS_NAMES[c] in viewer.canvas.overlays["text"].text
    # the contours follow, as the core draws them for that class, inside the field
    qtbot.waitUntil(lambda: contours.metadata.get("class") == c)
    lines = attention_contours(expected.attention[c], (64, 64))
    assert len(contours.data) == len(lines)
    for drawn, line in zip(contours.data, lines):
        np.testing.assert_allclose(drawn, line.path, atol=1e-4)
        assert drawn.min() >= -0.5 and drawn.max() <= 63.5

    # per-member columns on demand
    widget.members_check.setChecked(True)
    assert widget.table.columnCount() == 4


def test_second_click_while_running_starts_nothing(make_napari_viewer, qtbot, toy, field):
    _, paths = field
    viewer = make_napari_viewer()
    viewer.open(str(paths["red"]), plugin="napari-hpa")
    widget = ClassifierWidget(viewer, models=toy.path)
    results = []
    widget.classified.connect(results.append)
    widget.run()
    worker = widget._worker
    assert widget.busy and not widget.classify_button.isEnabled()
    widget.run()
    assert widget._worker is worker
    qtbot.waitUntil(lambda: not widget.busy, timeout=20000)
    qtbot.wait(50)
    assert len(results) == 1
    assert widget.classify_button.isEnabled()


def test_layers_picked_by_hand(make_napari_viewer, qtbot, toy):
    data = random_set((32, 32), seed=9)
    viewer = make_napari_viewer()
    for name, plane in zip(["a", "b", "c", "d"], data):
        viewer.add_image(plane, name=name)
    widget = ClassifierWidget(viewer, models=toy.path)
    assert widget.field_combo.currentText() == BY_HAND
    for ch, name in zip(["red", "green", "blue", "yellow"], ["a", "b", "c", "d"]):
        widget.channel_combos[ch].setCurrentText(name)
    result = _classify(qtbot, widget)
    expected = classify(Ensemble.load(toy.path), "a", data)
    np.testing.assert_allclose(result.probs, expected.probs, rtol=1e-6)


def test_errors_are_shown_not_raised(make_napari_viewer, qtbot, toy, tmp_path):
    viewer = make_napari_viewer()
    widget = ClassifierWidget(viewer, models=toy.path)
    widget.run()
    assert "no image layers" in widget.error_label.text()
    assert not widget.busy

    # layers of different shapes
    viewer.add_image(np.zeros((32, 32), np.uint8), name="a")
    viewer.add_image(np.zeros((16, 16), np.uint8), name="b")
    viewer.add_image(np.zeros((32, 32), np.uint8), name="c")
    viewer.add_image(np.zeros((32, 32), np.uint8), name="d")
    for ch, name in zip(["red", "green", "blue", "yellow"], ["a", "b", "c", "d"]):
        widget.channel_combos[ch].setCurrentText(name)
    widget.run()
    assert "differ in shape" in widget.error_label.text() and "'b' (16, 16)" in widget.error_label.text()

    # the same layer twice
    widget.channel_combos["green"].setCurrentText("a")
    widget.run()
    assert "four different layers" in widget.error_label.text()

    # a model refused by the contract: the message reaches the widget
    broken = tmp_path / "three.onnx"
    make_toy(broken, channels=3)
    widget.channel_combos["green"].setCurrentText("c")
    viewer.layers["b"].data = np.zeros((32, 32), np.uint8)
    widget.channel_combos["green"].setCurrentText("b")
    widget.set_models(broken)
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=20000)
    assert "input has 3 channels, the contract needs 4" in widget.error_label.text()
    assert widget.classify_button.isEnabled()


def test_similar_images_from_an_index(make_napari_viewer, qtbot, toy, tmp_path):
    ref = tmp_path / "ref"
    for i in range(6):
        write_channel_files(ref, f"r{i}", random_set((32, 32), seed=100 + i))
    labels = tmp_path / "labels.csv"
    labels.write_text("Id,Target\n" + "".join(f"r{i},{i} 25\n" for i in range(6)))
    index = build_index(Ensemble.load(toy.path), ref, labels)
    assert len(index) == 6
    index.save(tmp_path / "index.npz")
    assert ReferenceIndex.load(tmp_path / "index.npz").ids == index.ids

    viewer = make_napari_viewer()
    viewer.open(str(ref / "r3_red.png"), plugin="napari-hpa")  # a reference image itself
    widget = ClassifierWidget(viewer, models=toy.path)
    widget.set_index(tmp_path / "index.npz")
    suggestions = []
    widget.labels_suggested.connect(suggestions.append)
    result = _classify(qtbot, widget)
    # the image is excluded from its own neighbours; the list is best first
    expected = index.query(result.embedding, k=5, exclude="r3")
    shown = [widget.neighbours.item(i).text() for i in range(widget.neighbours.count())]
    assert len(shown) == 5 and all(not s.split()[1].startswith("r3:") for s in shown)
    assert [s.split()[1].rstrip(":") for s in shown] == [n.id for n in expected]
    if expected[0].similarity > 0.65:
        assert suggestions == [expected[0].labels]
        assert "Suggested labels" in widget.suggestion_label.text()
    # double-click opens the neighbour
    widget._open_neighbour(widget.neighbours.item(0))
    assert f"{expected[0].id} protein" in viewer.layers


def test_out_of_domain_field_is_said_plainly_and_the_model_card_is_one_click_away(
        make_napari_viewer, qtbot, real_dir):
    """The default ensemble (trained on synthetic fields) on a real HPA field (Human Protein Atlas,
    www.proteinatlas.org): the verdict is out of domain, in red, with why and what to do. The
    Kaggle PNG field: its intensities are within generator v3's, and its texture gives it away
    (models/default/MODEL_CARD.md, "Domain record")."""
    from hpa_testing import REAL_KAGGLE_ID

    viewer = make_napari_viewer()
    viewer.open(str(real_dir / f"{REAL_KAGGLE_ID}_red.png"), plugin="napari-hpa")
    widget = ClassifierWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert "never a whole real field" in widget.trained_label.text()
    widget.tta_combo.setCurrentText("none")
    result = _classify(qtbot, widget, timeout=60000)
    assert result.verdict.in_domain is False
    text = widget.domain_label.text()
    assert text.startswith("OUT OF DOMAIN") and "guesses" in text and "Choose…" in text
    assert "never a whole real field" in text and "its texture is unlike the domain fields'" in text
    assert not widget.domain_label.isHidden() and "background" in widget.domain_label.styleSheet()
    meta = viewer.layers[f"{REAL_KAGGLE_ID} protein"].metadata["hpa_classification"]
    assert meta["domain"]["in_domain"] is False and meta["domain"]["score"] > 1
    dialog = widget.show_model_card()
    assert dialog is not None and dialog.isVisible()
    assert "Model card" in dialog.windowTitle()
    dialog.close()


def test_a_foreign_onnx_is_imported_from_the_widget_and_then_used(make_napari_viewer, qtbot, tmp_path, field):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from napari_hpa.importer import ImportOptions, needs_import

    w = np.random.default_rng(1).normal(size=(4, 28)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["m"], axes=[2, 3], keepdims=0),
         helper.make_node("MatMul", ["m", "w"], ["z"]), helper.make_node("Sigmoid", ["z"], ["p"])],
        "foreign", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 32, 32])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, ["N", 28])], [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 9
    src = tmp_path / "foreign.onnx"
    onnx.save(model, src)
    assert needs_import(src)
    viewer = make_napari_viewer()
    viewer.open(str(field[1]["red"]), plugin="napari-hpa")
    widget = ClassifierWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.import_model(src, tmp_path / "imported", ImportOptions())
    qtbot.waitUntil(lambda: not widget.busy, timeout=30000)
    assert widget.models == tmp_path / "imported", widget.error_label.text()
    assert not needs_import(tmp_path / "imported" / "foreign.onnx")
    assert "Imported foreign.onnx" in widget.summary_label.text()
    result = _classify(qtbot, widget)
    x = field[0].astype(np.float32) / 255
    from skimage.transform import resize

    x = resize(x, (4, 32, 32), order=1, anti_aliasing=True, preserve_range=True)
    want = 1 / (1 + np.exp(-(x.mean((1, 2)) @ w)))
    np.testing.assert_allclose(result.probs, want, atol=1e-4)
    assert result.verdict.in_domain is None  # no calibration fields: the domain is unknown
    assert widget.domain_label.text().startswith("Domain unknown")


def test_the_dock_fits_and_says_in_full_what_it_shortens(make_napari_viewer, qtbot, toy, field):
    """At 1400 x 900, no text is cut without the whole of it as tooltip, there is one scroll
    area (the class table's) and every class row is in view once classified."""
    from qtpy.QtWidgets import QAbstractScrollArea, QLabel

    _, paths = field
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1400, 900)
    viewer.open(str(paths["red"]), plugin="napari-hpa")
    long = paths["red"].parent / ("a-very-long-folder-name-" * 6) / "ensemble.json"
    widget = ClassifierWidget(viewer, models=toy.path)
    viewer.window.add_dock_widget(widget, area="right")
    widget.model_label.setText(str(long))
    _classify(qtbot, widget)
    qtbot.wait(50)
    for label in widget.findChildren(QLabel):
        shown = label.shown_text() if hasattr(label, "shown_text") else label.text()
        if label.isVisible() and not label.wordWrap() and shown and \
                label.fontMetrics().horizontalAdvance(shown) > label.width() + 1:
            assert label.toolTip(), f"{shown!r} is cut without a tooltip"
    assert widget.model_label.shown_text() != str(long) and widget.model_label.toolTip() == str(long)
    scrolls = [w for w in widget.findChildren(QAbstractScrollArea)
               if w.isVisible() and (w is widget.table or not widget.table.isAncestorOf(w))]  # not its headers
    assert scrolls == [widget.table]
    table = widget.table
    last = table.rowViewportPosition(table.rowCount() - 1) + table.rowHeight(table.rowCount() - 1)
    assert last <= table.viewport().height(), "some class rows are out of view"
