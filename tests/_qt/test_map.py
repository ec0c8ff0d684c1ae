"""The HPA map dock in a real viewer (Xvfb): a predict run's embeddings as a Points layer whose
features carry id, labels and verdict; clicking a point opens its field; a selection becomes
the review queue."""

from __future__ import annotations

import numpy as np
import pytest
from hpa_testing import random_set, write_channel_files

from napari_hpa._qt.fieldmap import LAYER_NAME, MapWidget
from napari_hpa._qt.folder import FolderWidget, show_folder
from napari_hpa._qt.review import ReviewWidget
from napari_hpa.labels import write_labels
from napari_hpa.review import ReviewSession

pytestmark = pytest.mark.gui

WAIT = 60_000
IDS = [f"s{i}" for i in range(8)]


@pytest.fixture
def run(tmp_path):
    """Eight small sets and a predict run beside them: embeddings (two groups and one field
    far from both, s7), submission and domain verdicts."""
    folder = tmp_path / "sets"
    for n, image_id in enumerate(IDS):
        write_channel_files(folder, image_id, random_set((40, 40), seed=n))
    out = folder / "predictions"
    out.mkdir()
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 8))
    emb = np.concatenate([a + 0.05 * rng.normal(size=(4, 8)), b + 0.05 * rng.normal(size=(3, 8)),
                          5 * rng.normal(size=(1, 8))])
    np.savez(out / "embeddings.npz", ids=np.array(IDS), embeddings=emb.astype(np.float32))
    write_labels(out / "submission.csv", {i: (0,) if n < 4 else (25,) for n, i in enumerate(IDS)},
                 column="Predicted")
    (out / "domain.csv").write_text("Id,domain_score,in_domain,reason\n" + "".join(
        f"{i},0.5,{'false' if i == 's7' else 'true'},\n" for i in IDS))
    return folder, out


def _mapped(viewer, qtbot, source, **dock):
    widget = MapWidget(viewer, source=source)
    viewer.window.add_dock_widget(widget, name="HPA map", **dock)
    widget.compute()
    qtbot.waitUntil(lambda: widget.layer is not None and not widget.busy, timeout=WAIT)
    return widget


def test_the_map_shows_every_field_with_its_features(make_napari_viewer, qtbot, run):
    folder, out = run
    viewer = make_napari_viewer(show=True)
    widget = _mapped(viewer, qtbot, out / "embeddings.npz")
    assert str(widget.images_edit.value) == str(folder)  # found beside the run
    layer = viewer.layers[LAYER_NAME]
    assert len(layer.data) == len(IDS)
    features = layer.features
    assert list(features["id"]) == IDS
    assert features["predicted"][0] == "0 Nucleoplasm" and features["predicted"][5] == "25 Cytosol"
    assert features["verdict"][7] == "out of domain" and features["verdict"][0] == "in domain"
    assert (layer.data[:, 1] < 0).all()  # left of the image, which starts at the origin
    # hovering shows the id and labels
    status = layer.get_status(tuple(layer.data[7]), world=True)
    assert "id: s7" in status["coordinates"] and "out of domain" in status["coordinates"]
    # recolouring follows the combo
    widget.colour_combo.value = "verdict"
    np.testing.assert_allclose(layer.face_color, widget.field_map.colours("verdict"))
    assert "out of domain (1)" in widget.legend.value
    # mapping again fills the same layer (no second layer, the features follow the new map)
    np.savez(out / "embeddings.npz", ids=np.array(IDS[:5]),
             embeddings=np.random.default_rng(1).normal(size=(5, 8)).astype(np.float32))
    widget.compute()
    qtbot.waitUntil(lambda: not widget.busy and len(widget.field_map) == 5, timeout=WAIT)
    assert widget.layer is layer and [l.name for l in viewer.layers].count(LAYER_NAME) == 1
    assert len(layer.data) == 5 and list(layer.features["id"]) == IDS[:5]
    np.testing.assert_allclose(layer.face_color, widget.field_map.colours("verdict"))


def test_clicking_a_point_opens_its_field(make_napari_viewer, qtbot, run):
    folder, out = run
    viewer = make_napari_viewer(show=True)
    widget = _mapped(viewer, qtbot, out / "embeddings.npz")
    widget.layer.selected_data = {5}  # what a click in select mode does
    dock = next(w for w in viewer.window.dock_widgets.values() if isinstance(w, FolderWidget))
    qtbot.waitUntil(lambda: dock.shown_image_id == "s5", timeout=WAIT)
    assert widget.opened == ["s5"]
    assert any(layer.name.startswith("s5") for layer in viewer.layers)
    widget.layer.selected_data = {2}
    qtbot.waitUntil(lambda: dock.shown_image_id == "s2", timeout=WAIT)
    # the image came in at the origin; the map stays left of it
    assert (widget.layer.data[:, 1] < 0).all()


def test_a_selection_becomes_the_review_queue(make_napari_viewer, qtbot, run, tmp_path):
    folder, out = run
    labels = {i: (0,) if n < 4 else (25,) for n, i in enumerate(IDS)}
    labels["s1"] = (14,)  # labelled unlike its neighbours
    csv = write_labels(tmp_path / "labels.csv", {i: t for i, t in labels.items() if i != "s6"})
    path = tmp_path / "s.hpa"
    ReviewSession.create(path, folder, csv).close()
    viewer = make_napari_viewer(show=True)
    review = ReviewWidget(viewer)
    viewer.window.add_dock_widget(review, name="HPA label review")
    assert review.open_session(path)
    widget = _mapped(viewer, qtbot, out / "embeddings.npz")
    assert widget.field_map.review[6] == "not in session"
    assert widget.field_map.labelled[1] == (14,)  # from the session
    widget.select_combo.value = "disagreement"
    widget.count_spin.value = 1
    widget.select_top()
    assert set(widget.layer.selected_data) == {1}
    widget.layer.selected_data = {1, 6, 7}
    assert widget.selected_ids[0] == "s1"  # strongest disagreement first
    widget.send_to_review()
    qtbot.waitUntil(lambda: not review.busy and review.session.queue_order == "selection",
                    timeout=WAIT)
    assert review.session.queue_ids == tuple(i for i in widget.selected_ids if i != "s6")
    assert "1 not in the session left out" in widget.status.value
    qtbot.waitUntil(lambda: review.current_id == "s1", timeout=WAIT)
    review.close_session()
    review.unbind_keys()


def test_without_inputs_it_says_what_is_missing(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer(show=True)
    widget = MapWidget(viewer)
    widget.compute()
    assert "choose the embeddings" in widget.status.value
    widget.send_to_review()
    assert "open a review session" in widget.status.value
    widget.source_edit.value = str(tmp_path)  # a folder with no embeddings
    widget.compute()
    qtbot.waitUntil(lambda: not widget.busy and widget.error is not None, timeout=WAIT)
    assert "--embeddings" in widget.status.value


def test_view_with_map_docks_and_shows_it(run, tmp_path):
    """napari-hpa view FOLDER --map --colour-by verdict --screenshot PATH --json."""
    import json
    import os
    import subprocess
    import sys

    import imageio.v3 as iio

    folder, out = run
    shot = tmp_path / "map.png"
    proc = subprocess.run(
        [sys.executable, "-m", "napari_hpa.cli", "view", str(folder), "--map", "--colour-by",
         "verdict", "--screenshot", str(shot), "--json"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["map"]["fields"] == len(IDS) and report["map"]["colour_by"] == "verdict"
    assert report["map"]["sources"]["embeddings"] == str(out / "embeddings.npz")
    assert any(layer["name"] == LAYER_NAME for layer in report["layers"])
    assert iio.imread(shot).shape[0] > 400
    bare = tmp_path / "bare"
    bare.mkdir()
    write_channel_files(bare, "x", random_set((40, 40)))
    proc = subprocess.run([sys.executable, "-m", "napari_hpa.cli", "view", str(bare), "--map"],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert proc.returncode == 2 and "predict with --embeddings" in proc.stderr


def test_a_folder_and_an_ensemble_are_predicted_then_mapped(make_napari_viewer, qtbot, tmp_path):
    from onnx_toys import make_toy

    folder = tmp_path / "sets"
    for n, image_id in enumerate(IDS):
        write_channel_files(folder, image_id, random_set((40, 40), seed=n))
    toy = make_toy(tmp_path / "toy.onnx", size=16, grid=4, emb_dim=8)
    viewer = make_napari_viewer(show=True)
    widget = MapWidget(viewer)
    widget.images_edit.value = str(folder)
    widget.models_edit.value = str(toy.path)
    widget.compute()
    qtbot.waitUntil(lambda: not widget.busy and (widget.layer is not None or widget.error), timeout=WAIT)
    assert widget.error is None, widget.status.value
    assert (folder / "predictions" / "embeddings.npz").is_file()
    assert sorted(widget.field_map.ids) == IDS and all(widget.field_map.predicted)
    assert widget.field_map.sources["predictions"] == str(folder / "predictions")


def test_the_legend_fits_the_dock(make_napari_viewer, qtbot, run):
    """Long class names in two legend columns: the dock widens rather than cutting them off."""
    folder, out = run
    long_names = (3, 6, 18, 16, 22, 26, 27, 13)  # Nucleoli fibrillar center, Endoplasmic reticulum, ...
    write_labels(out / "submission.csv", {i: (long_names[n],) for n, i in enumerate(IDS)}, column="Predicted")
    viewer = make_napari_viewer(show=True)
    show_folder(viewer, folder)  # tabbed with the folder dock, as `view --map` shows it
    widget = _mapped(viewer, qtbot, out / "embeddings.npz", area="right", tabify=True)
    qtbot.wait(50)
    label = widget.legend.native
    assert "Endoplasmic" in widget.legend.value
    assert label.width() >= label.sizeHint().width()
