"""Bad inputs: each a clear error naming the line or the file; session data untouched."""

from __future__ import annotations

import os
import sqlite3

import numpy as np
import pytest

from napari_hpa.classes import CLASS_NAMES
from napari_hpa.errors import LabelsCSVError, SessionError
from napari_hpa.labels import read_probabilities, write_probabilities
from napari_hpa.review import ReviewSession

from review_data import SMALL, small_probs, write_csv

GOOD = "Id,Target\n" + "".join(f"{i},{t}\n" for i, t in SMALL.items())


def snapshot(path):
    """Everything a session holds, read through a fresh connection."""
    with ReviewSession.open(path) as s:
        return (
            s.ids,
            [s.record(i).labels for i in s.ids],
            [(e.seq, e.after) for e in s.history()],
        )


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("Id,Target\na,0\nb,28\n", 3, "outside 0-27"),
        ("Id,Target\na,0\nb,1 x\n", 3, "not an integer"),
        ("Id,Target\na,0\nb,1\na,2\n", 4, "duplicate Id 'a'"),
        ("Id\na\nb\n", 1, "no 'Target' column"),
        ("a,0 25\nb,1\n", 1, "no 'Id' column"),
        ("Id,Target\na,0\nb\n", 3, "expected 2 fields"),
    ],
)
def test_bad_labels_csv(tmp_path, text, line, words):
    bad = write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(LabelsCSVError) as info:
        ReviewSession.create(tmp_path / "s.hpa", None, bad)
    assert info.value.line == line and words in str(info.value)
    assert str(bad) in str(info.value) and f"line {line}" in str(info.value)
    assert not (tmp_path / "s.hpa").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.csv"]  # no temporary left


def test_empty_labels_csv(tmp_path):
    bad = write_csv(tmp_path / "empty.csv", "")
    with pytest.raises(LabelsCSVError, match="empty"):
        ReviewSession.create(tmp_path / "s.hpa", None, bad)


def test_bad_import_leaves_existing_session_untouched(tmp_path):
    good = write_csv(tmp_path / "good.csv", GOOD)
    path = tmp_path / "s.hpa"
    with ReviewSession.create(path, None, good) as s:
        s.set_labels("img-a", "1")
    before = snapshot(path)
    bad = write_csv(tmp_path / "bad.csv", "Id,Target\nimg-a,99\n")
    with pytest.raises(LabelsCSVError, match="line 2"):
        ReviewSession.create(path, None, bad, overwrite=True)
    with pytest.raises(SessionError, match="already exists"):
        ReviewSession.create(path, None, good)
    assert snapshot(path) == before


def probs_text(header, rows):
    return ",".join(header) + "\n" + "".join(",".join(r) + "\n" for r in rows)


def test_probabilities_round_trip_names_and_indices(tmp_path):
    p = small_probs()
    write_probabilities(tmp_path / "p.csv", list(SMALL), p)
    ids, q = read_probabilities(tmp_path / "p.csv")
    assert ids == list(SMALL) and np.allclose(q, p, atol=1e-6)
    # index-named columns, shuffled
    order = np.random.default_rng(1).permutation(28)
    rows = [[i, *(f"{p[n, k]:.6f}" for k in order)] for n, i in enumerate(SMALL)]
    write_csv(tmp_path / "p2.csv", probs_text(["Id", *map(str, order)], rows))
    ids, q2 = read_probabilities(tmp_path / "p2.csv", expected_ids=reversed(list(SMALL)))
    assert np.allclose(q2, p, atol=1e-6)


def _probs_file(tmp_path, mutate):
    header = ["Id", *CLASS_NAMES]
    rows = [[i, *(f"{v:.4f}" for v in row)] for i, row in zip(SMALL, small_probs())]
    header, rows = mutate(header, rows)
    return write_csv(tmp_path / "probs.csv", probs_text(header, rows))


def _set(rows, r, c, v):
    rows[r][c] = v
    return rows


@pytest.mark.parametrize(
    "mutate, line, words",
    [
        (lambda h, r: (h, r[:-1]), None, "no row for Id 'img-f'"),
        (lambda h, r: (h, r + [["img-x", *r[0][1:]]]), 8, "'img-x' is not among the labelled"),
        (lambda h, r: (h[:-1], [row[:-1] for row in r]), 1, "no column for class 27 (Rods & rings)"),
        (lambda h, r: (h[:-1] + ["Rods"], r), 1, "'Rods' is neither a class name"),
        (lambda h, r: (h[:-1] + ["0"], r), 1, "both class 0"),
        (lambda h, r: (h, _set(r, 2, 5, "abc")), 4, "column 'Nuclear speckles': 'abc' is not a number"),
        (lambda h, r: (h, _set(r, 1, 1, "1.5")), 3, "column 'Nucleoplasm': 1.5 is outside [0, 1]"),
        (lambda h, r: (h, _set(r, 1, 1, "nan")), 3, "outside [0, 1]"),
        (lambda h, r: (["Name", *h[1:]], r), 1, "no 'Id' column"),
    ],
)
def test_bad_probabilities(tmp_path, labels_csv, mutate, line, words):
    bad = _probs_file(tmp_path, mutate)
    with pytest.raises(LabelsCSVError) as info:
        ReviewSession.create(tmp_path / "s.hpa", None, labels_csv, bad)
    assert info.value.line == line and words in str(info.value), str(info.value)
    assert str(bad) in str(info.value)
    assert not (tmp_path / "s.hpa").exists()


def test_session_from_a_newer_version(session):
    path = session.path
    session.close()
    with sqlite3.connect(path) as c:
        c.execute("PRAGMA user_version = 99")
    c.close()
    data = path.read_bytes()
    with pytest.raises(SessionError) as info:
        ReviewSession.open(path)
    assert "newer" in str(info.value) and str(path) in str(info.value)
    assert path.read_bytes() == data


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda p: p.write_bytes(b"Id,Target\na,0\n" * 20), "not an SQLite database"),
        (lambda p: p.write_bytes(b""), "not an SQLite database"),
        (lambda p: p.write_bytes(p.read_bytes()[:100] + os.urandom(20000)), "corrupt"),
        (lambda p: _foreign_db(p), "not a napari-hpa review session"),
    ],
)
def test_corrupt_or_foreign_session(session, damage, words):
    path = session.path
    session.close()
    for suffix in ("-wal", "-shm"):
        (path.parent / (path.name + suffix)).unlink(missing_ok=True)
    damage(path)
    data = path.read_bytes()
    with pytest.raises(SessionError) as info:
        ReviewSession.open(path)
    assert words in str(info.value) and str(path) in str(info.value)
    assert path.read_bytes() == data


def _foreign_db(path):
    path.unlink()
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE t (x)")
    c.close()


def test_missing_session(tmp_path):
    with pytest.raises(SessionError, match="no such session file"):
        ReviewSession.open(tmp_path / "nope.hpa")


@pytest.mark.parametrize("where", ["missing_folder", "is_a_folder"])
def test_unwritable_export_path(session, tmp_path, where):
    session.set_labels("img-a", "3")
    before = snapshot(session.path)
    out = tmp_path / "no" / "such" / "out.csv" if where == "missing_folder" else tmp_path
    with pytest.raises(OSError) as info:
        session.export(out)
    assert str(out) in str(info.value)
    with pytest.raises(OSError):
        session.export(tmp_path / "ok.csv", audit=tmp_path / "missing" / "audit.csv")
    assert snapshot(session.path) == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
