"""The embedding map's data (no Qt): a predict run's map joined with labels, verdicts and
review states; the colourings; the outlier and label/neighbour disagreement selections."""

from __future__ import annotations

import numpy as np
import pytest

from napari_hpa.classes import CLASSES
from napari_hpa.embedmap import embedding_map, map_csv, read_map_csv
from napari_hpa.errors import FileError
from napari_hpa.fieldmap import (
    COLOUR_BY,
    load_field_map,
    main_classes,
    neighbour_disagreement,
)
from napari_hpa.labels import write_labels
from napari_hpa.review import ReviewSession

IDS = [f"f{i:02d}" for i in range(12)]


def _emb(seed=0):
    """Two tight clusters of six and one field far from both (f11)."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(2, 16))
    x = np.concatenate([a + 0.05 * rng.normal(size=(6, 16)), b + 0.05 * rng.normal(size=(5, 16)),
                        rng.normal(size=(1, 16)) * 3])
    return x.astype(np.float32)


@pytest.fixture
def run(tmp_path):
    """A predict output folder: embeddings, submission, domain."""
    run = tmp_path / "predictions"
    run.mkdir()
    np.savez(run / "embeddings.npz", ids=np.array(IDS), embeddings=_emb())
    preds = {i: (0,) if n < 6 else (3,) for n, i in enumerate(IDS)}
    write_labels(run / "submission.csv", preds, column="Predicted")
    rows = "".join(f"{i},0.9,{'false' if i == 'f11' else 'true'},\n" for i in IDS)
    (run / "domain.csv").write_text("Id,domain_score,in_domain,reason\n" + rows)
    return run


def test_a_run_becomes_a_map_with_predictions_verdicts_and_scores(run):
    fm = load_field_map(run, method="pca", k=3)
    assert fm.ids == IDS and fm.map.xy.shape == (12, 2)
    assert fm.predicted[0] == (0,) and fm.predicted[7] == (3,)
    assert fm.verdict[11] == "out of domain" and fm.verdict[0] == "in domain"
    assert fm.review == ["not in session"] * 12 and fm.labelled == [None] * 12
    assert int(np.argmax(fm.outlier)) == 11  # the field far from both clusters
    features = fm.features()
    assert features["id"] == IDS
    assert features["predicted"][0] == "0 Nucleoplasm"
    assert features["verdict"][11] == "out of domain"
    assert set(features) == {"id", "predicted", "labelled", "verdict", "review", "disagreement",
                             "outlier"}
    assert set(fm.sources) == {"embeddings", "predictions"}


def test_labels_unlike_the_neighbours_stand_out(run, tmp_path):
    labels = {i: (0,) if n < 6 else (3,) for n, i in enumerate(IDS)}
    labels["f02"] = (14,)  # mislabelled inside the first cluster
    csv = write_labels(tmp_path / "labels.csv", labels)
    fm = load_field_map(run, labels=csv, method="pca", k=3)
    assert fm.labelled[2] == (14,)
    assert fm.top("disagreement", 1) == [2]
    assert fm.disagreement[2] == pytest.approx(1.0)
    assert fm.colour_values("labelled")[2] == CLASSES[14].name


def test_the_review_session_gives_labels_and_states(run, tmp_path):
    labels = write_labels(tmp_path / "labels.csv", {i: (0,) for i in IDS[:6]})
    session = ReviewSession.create(tmp_path / "s.hpa", None, labels)
    session.set_labels("f01", [5])
    session.mark_reviewed("f02")
    session.mark_unsure("f03")
    fm = load_field_map(run, session=session, method="pca", k=3)
    assert fm.labelled[1] == (5,) and fm.labelled[0] == (0,) and fm.labelled[8] is None
    assert fm.review[:5] == ["to review", "changed", "reviewed", "unsure", "to review"]
    assert fm.review[8] == "not in session"
    session.close()


def test_a_map_csv_is_read_back_as_written(run, tmp_path):
    m = embedding_map(IDS, _emb(), method="pca", k=3)
    (run / "map.csv").write_text(map_csv(m))
    back = read_map_csv(run / "map.csv")
    assert back.ids == IDS
    np.testing.assert_allclose(back.xy, m.xy, atol=1e-5)
    np.testing.assert_array_equal(back.neighbours, m.neighbours)
    fm = load_field_map(run / "map.csv")  # predictions from the CSV's folder
    assert fm.map.method == "csv" and fm.verdict[11] == "out of domain"


@pytest.mark.parametrize("text, message", [
    ("Id,x\na,1\n", "not a map CSV"),
    ("Id,x,y,neighbours,similarities\na,1,2,b,0.5\nb,1,2,a,0.5\n", "at least 3"),
    ("Id,x,y,neighbours,similarities\na,1,2,b,0.5\nb,1,2,zz,0.5\nc,0,0,a,0.1\n", "line 3.*'zz'"),
    ("Id,x,y,neighbours,similarities\na,1,x,b,0.5\nb,1,2,a,0.5\nc,0,0,a,0.1\n", "line 2"),
    ("Id,x,y,neighbours,similarities\na,1,2,b c,0.5\nb,1,2,a,0.5\nc,0,0,a,0.1\n", "do not match"),
])
def test_bad_map_csvs_are_named(tmp_path, text, message):
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(FileError, match=message):
        read_map_csv(tmp_path / "m.csv")


def test_a_folder_without_embeddings_says_what_to_run(tmp_path):
    with pytest.raises(FileError, match="--embeddings"):
        load_field_map(tmp_path)


def test_the_main_class_is_the_rarest_of_the_set():
    sets = [(0, 25), (0,), (0,), (25, 3), (), None, (5, 6)]  # 0: 3 times, 25: 2, 3: 1
    assert main_classes(sets) == [CLASSES[25].name, CLASSES[0].name, CLASSES[0].name,
                                  CLASSES[3].name, "(none)", "", CLASSES[5].name]  # ties: lower


def test_disagreement_is_one_minus_the_mean_jaccard_over_known_neighbours():
    sets = [(0,), (0, 1), (2,), None]
    nbrs = np.array([[1, 2], [0, 3], [3, 0], [0, 1]])
    d = neighbour_disagreement(sets, nbrs)
    assert d[0] == pytest.approx(1 - (0.5 + 0.0) / 2)
    assert d[1] == pytest.approx(1 - 0.5)  # the unknown neighbour is left out
    assert d[2] == pytest.approx(1.0)
    assert np.isnan(d[3])


def test_every_colouring_gives_one_colour_per_field_and_a_legend(run):
    fm = load_field_map(run, method="pca", k=3)
    for by in COLOUR_BY:
        colours = fm.colours(by)
        assert colours.shape == (12, 4) and np.isfinite(colours).all()
        assert ((0 <= colours) & (colours <= 1)).all()
        assert fm.legend(by)
    verdict = fm.colours("verdict")
    assert not np.allclose(verdict[11], verdict[0])  # out of domain looks different
    assert np.allclose(verdict[0], verdict[5])
    names = [name for name, _, _ in fm.legend("predicted")]
    assert sorted(names) == sorted([CLASSES[0].name, CLASSES[3].name])
    with pytest.raises(ValueError, match="unknown colouring"):
        fm.colours("nonsense")
