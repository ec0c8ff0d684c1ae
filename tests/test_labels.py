"""The Kaggle labels CSV: reading, errors naming the line, atomic writing."""

from __future__ import annotations

import csv
import os

import pytest

from napari_hpa.errors import LabelsCSVError
from napari_hpa.labels import format_target, parse_target, read_labels, write_labels


def test_parse_and_format():
    assert parse_target("7 1 2 0") == (0, 1, 2, 7)
    assert parse_target("3 3 25") == (3, 25)
    assert parse_target("") == ()
    assert format_target([25, 0, 0]) == "0 25"


def test_round_trip_keeps_order_and_extra_columns(tmp_path):
    path = tmp_path / "labels.csv"
    targets = {"b": (25, 0), "a": (7,), "c": ()}
    write_labels(path, targets, extra={"Antibody": {"b": "ab1", "a": "ab2", "c": "ab1"}})
    assert path.read_text().splitlines() == ["Id,Target,Antibody", "b,0 25,ab1", "a,7,ab2", "c,,ab1"]
    table = read_labels(path)
    assert table.ids == ["b", "a", "c"]
    assert table.targets == {"b": (0, 25), "a": (7,), "c": ()}
    assert table.extra == {"Antibody": {"b": "ab1", "a": "ab2", "c": "ab1"}}


def test_predicted_column(tmp_path):
    path = tmp_path / "submission.csv"
    write_labels(path, {"x": [2, 0]}, column="Predicted")
    assert path.read_text() == "Id,Predicted\nx,0 2\n"
    assert read_labels(path).column == "Predicted"


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        ("", None, "empty"),
        ("Id,Target\na,0\nb,28\n", 3, "outside 0-27"),
        ("Id,Target\na,0 x\n", 2, "not an integer"),
        ("Id,Target\na,-1\n", 2, "outside 0-27"),
        ("Id,Target\na,0\nb,1\na,2\n", 4, "duplicate Id 'a'"),
        ("Id,Labels\na,0\n", 1, "no 'Target' column"),
        ("a,0\nb,1\n", 1, "no 'Id' column"),
        ("Id,Target\na,0,extra\n", 2, "expected 2 fields"),
        ("Id,Target\n,0\n", 2, "Id is empty"),
    ],
)
def test_bad_csv_names_file_and_line(tmp_path, text, line, fragment):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(LabelsCSVError) as err:
        read_labels(path)
    assert err.value.line == line
    assert fragment in str(err.value)
    assert str(path) in str(err.value)
    if line is not None:
        assert f"line {line}" in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(LabelsCSVError, match="not found"):
        read_labels(tmp_path / "nope.csv")


def test_failed_write_keeps_old_file(tmp_path):
    path = tmp_path / "labels.csv"
    write_labels(path, {"a": [1]})

    class Boom(dict):
        def items(self):
            yield "a", [2]
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_labels(path, Boom())
    assert path.read_text() == "Id,Target\na,1\n"
    assert os.listdir(tmp_path) == ["labels.csv"]  # no temporary file left behind


def test_real_kaggle_train_csv_round_trip(kaggle_train_csv, tmp_path):
    table = read_labels(kaggle_train_csv)
    assert len(table) == 31072
    with open(kaggle_train_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert table.ids == [r["Id"] for r in rows]
    for r in rows[:1000]:
        assert set(table.targets[r["Id"]]) == {int(t) for t in r["Target"].split()}
    out = tmp_path / "out.csv"
    write_labels(out, table.targets)
    again = read_labels(out)
    assert again.targets == table.targets and again.ids == table.ids


def test_probability_files_together_cover_the_ids(tmp_path):
    """Out-of-fold probabilities come as one file per fold: merged, each id once."""
    import numpy as np

    from napari_hpa.labels import read_probability_files, write_probabilities

    ids = [f"id{i}" for i in range(6)]
    p = np.random.default_rng(0).random((6, 28))
    a = write_probabilities(tmp_path / "a.csv", ids[:4], p[:4])
    b = write_probabilities(tmp_path / "b.csv", ids[4:], p[4:])
    got_ids, got = read_probability_files([a, b], ids)
    assert got_ids == ids
    np.testing.assert_allclose(got, p, atol=1e-6)

    with pytest.raises(LabelsCSVError, match=r"no row for Id 'id5' in any of the 2"):
        read_probability_files([a, write_probabilities(tmp_path / "c.csv", ids[4:5], p[4:5])], ids)
    dup = write_probabilities(tmp_path / "d.csv", ids[3:], p[3:])
    with pytest.raises(LabelsCSVError, match=r"d\.csv: Id 'id3' is in .*a\.csv too"):
        read_probability_files([a, dup], ids)
    stray = write_probabilities(tmp_path / "e.csv", ["id4", "id5", "zz"], p[:3])
    with pytest.raises(LabelsCSVError, match=r"e\.csv, line 4: Id 'zz' is not among the labelled ids"):
        read_probability_files([a, stray], ids)
