"""The review session store: round trip, persistence, undo/redo, history, queue, export."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from napari_hpa.errors import SessionError
from napari_hpa.labels import read_labels
from napari_hpa.review import ReviewSession, ordering
from napari_hpa.review.store import SCHEMA_VERSION

from review_data import SMALL, small_probs


def test_create_round_trip(session, labels_csv):
    assert session.ids == tuple(SMALL)
    for i, t in SMALL.items():
        want = tuple(sorted(int(k) for k in t.split()))
        assert session.labels(i) == want == session.original(i)
        rec = session.record(i)
        assert rec.labels == want and not rec.reviewed and rec.note == "" and not rec.changed
    assert session.has_probabilities
    np.testing.assert_allclose(session.probabilities("img-b"), small_probs()[1], atol=1e-6)
    with sqlite3.connect(session.path) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert session._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_every_edit_is_persisted(session):
    path = session.path
    session.set_labels("img-a", "0 1", note="membrane too")
    session.toggle("img-b", 4)
    session.accept_predicted("img-d")
    session.mark_reviewed("img-e")
    session.set_note("img-f", "rods are doubtful")
    # a second connection sees every edit at once, without closing the first
    with ReviewSession.open(path) as other:
        assert other.labels("img-a") == (0, 1)
        assert other.labels("img-b") == (3, 4)
        assert other.labels("img-d") == (0, 1, 2, 7)  # predicted = labelled here
        assert other.record("img-e").reviewed
        assert other.record("img-f").note == "rods are doubtful"
        assert other.original("img-a") == (0, 25)
        kinds = [e.kind for e in other.history()]
        assert kinds == ["set", "toggle", "review", "note"]  # accept changed nothing
        assert other.history("img-a")[0].note == "membrane too"
        assert other.history("img-a")[0].reviewer == "ann"


def test_no_op_edits_are_not_logged(session):
    assert session.set_labels("img-a", [25, 0]) is None
    assert session.mark_reviewed("img-a", False) is None
    assert session.history() == []


def test_undo_redo(session):
    e1 = session.set_labels("img-a", "1")
    e2 = session.toggle("img-b", 5)
    u = session.undo()
    assert u.kind == "undo" and u.undoes == e2.seq and session.labels("img-b") == (3,)
    u = session.undo()
    assert u.undoes == e1.seq and session.labels("img-a") == (0, 25)
    assert session.undo() is None and not session.can_undo
    r = session.redo()
    assert r.kind == "redo" and session.labels("img-a") == (1,)
    r = session.redo()
    assert session.labels("img-b") == (3, 5)
    assert session.redo() is None and not session.can_redo
    # undo the redo, then a new edit clears the redo stack
    session.undo()
    assert session.labels("img-b") == (3,)
    session.mark_reviewed("img-c")
    assert session.redo() is None
    session.undo()
    assert not session.record("img-c").reviewed
    session.undo()  # undoes the redo of e1
    assert session.labels("img-a") == (0, 25)
    # the log only grows; every row is kept
    kinds = [e.kind for e in session.history()]
    assert kinds == ["set", "toggle", "undo", "undo", "redo", "redo", "undo", "review", "undo",
                     "undo"]


def test_undo_survives_reopen_and_is_shared(session):
    session.set_labels("img-a", "2")
    session.set_note("img-a", "x")
    path = session.path
    session.close()
    with ReviewSession.open(path) as s:
        s.undo()
        assert s.note("img-a") == ""
    with ReviewSession.open(path) as s:
        s.undo()
        assert s.labels("img-a") == (0, 25)
        s.redo()
        assert s.labels("img-a") == (2,)


def test_history_per_id_and_limit(session):
    for k in (1, 2, 3):
        session.toggle("img-c", k)
    session.toggle("img-e", 0)
    h = session.history("img-c")
    assert [e.after for e in h] == ["1", "1 2", "1 2 3"]
    assert [e.before for e in h] == ["", "1", "1 2"]
    assert [e.id for e in session.history(limit=2)] == ["img-c", "img-e"]
    assert all(e.time.endswith("+00:00") for e in h)


def test_export_reproduces_labels_and_round_trips(session, tmp_path, images_dir):
    session.set_labels("img-c", "5 4")
    session.toggle("img-a", 25)
    out = session.export(tmp_path / "out.csv", audit=tmp_path / "audit.csv")
    assert out == {"written": 6, "changed": 2, "audit_edits": 2, "review_rows": 0}
    table = read_labels(tmp_path / "out.csv")
    assert table.ids == list(SMALL)
    for i in SMALL:
        assert table.targets[i] == session.labels(i)
    assert table.extra["Antibody"]["img-b"] == "ab1"
    text = (tmp_path / "out.csv").read_text()
    assert "img-c,4 5," in text and "img-a,0,ab0" in text
    audit = (tmp_path / "audit.csv").read_text().splitlines()
    assert audit[0] == "Id,Before,After,Time,Reviewer,Note,Kind,Field"
    assert audit[1].startswith("img-c,,4 5,") and audit[1].endswith(",ann,,set,labels")
    # import(export) reproduces the labels exactly
    with ReviewSession.create(tmp_path / "again.hpa", images_dir, tmp_path / "out.csv") as again:
        assert again.ids == session.ids
        for i in SMALL:
            assert again.labels(i) == session.labels(i)
        again.export(tmp_path / "out2.csv")
    assert (tmp_path / "out2.csv").read_bytes() == (tmp_path / "out.csv").read_bytes()
    session.export(tmp_path / "changed.csv", changed_only=True)
    assert read_labels(tmp_path / "changed.csv").ids == ["img-a", "img-c"]


def test_queue_position_persist(session):
    assert session.queue_ids == tuple(SMALL) and session.position == 0
    assert session.current_id == "img-a"
    assert session.next() == "img-b"
    session.jump("img-e")
    assert session.position == 4
    assert session.next() == "img-f" and session.next() == "img-f"  # stays at the end
    q = session.set_queue("listed", class_filter=0)
    assert q == ["img-a", "img-d"] and session.current_id == "img-a"
    session.next()
    with pytest.raises(SessionError, match="not in the current queue"):
        session.jump("img-b")
    with pytest.raises(SessionError, match="no image 'nope'"):
        session.jump("nope")
    path = session.path
    session.close()
    with ReviewSession.open(path) as s:
        assert s.queue_order == "listed" and s.class_filter == [0]
        assert s.queue_ids == ("img-a", "img-d") and s.current_id == "img-d"
        assert s.previous() == "img-a" and s.previous() == "img-a"
        with pytest.raises(ValueError, match="outside the queue"):
            s.position = 5


def test_suspicious_queue_and_highlights(session):
    q = session.set_queue("suspicious")
    assert q[0] == "img-b"  # labelled 3, model says 4
    h = session.highlights("img-b")
    assert h.labelled_improbable == (3,) and h.probable_unlabelled == (4,)
    assert h.flag(3) == "labelled_improbable" and h.flag(4) == "probable_unlabelled"
    assert h.flag(0) is None
    assert session.highlights("img-a") .labelled_improbable == ()
    assert session.predicted("img-b") == (4,)
    scores = session.scores()
    assert scores.shape == (6,) and scores.argmin() == 1
    assert session.record("img-b").score == scores[1] and session.record("img-a").score == scores[0]
    session.accept_predicted("img-b")
    assert session.labels("img-b") == (4,)
    assert session.highlights("img-b") == session.highlights("img-b").__class__()
    assert session.record("img-b").score is None  # computed on labels since changed
    assert session.record("img-a").score == scores[0]
    # a session whose scores an earlier version stored (cleanlab's) shows none
    path = session.path
    session.close()
    with sqlite3.connect(path) as c:
        c.execute("DELETE FROM meta WHERE key='score'")
    c.close()
    with ReviewSession.open(path) as s:
        assert s.record("img-a").score is None and s.scores() is None


def test_unreviewed_queue(session):
    session.mark_reviewed("img-a")
    session.mark_reviewed("img-c")
    assert session.queue("unreviewed") == ["img-b", "img-d", "img-e", "img-f"]


def test_thresholds_and_top_class(session):
    session.set_thresholds(0.95)
    assert session.predicted("img-a") in ((0,), (25,))  # nothing passes: the top class forced
    t = np.full(28, 0.5)
    t[25] = 0.95
    session.set_thresholds(t)
    assert session.predicted("img-a") == (0,)
    with pytest.raises(ValueError, match="between 0 and 1"):
        session.set_thresholds(1.5)


def test_orders_need_probabilities(plain_session):
    for order in sorted(ordering.NEEDS_PROBABILITIES):
        with pytest.raises(SessionError, match="probabilities"):
            plain_session.queue(order)
    with pytest.raises(SessionError, match="no model probabilities"):
        plain_session.accept_predicted("img-a")
    assert plain_session.predicted("img-a") is None
    assert plain_session.highlights("img-a").labelled_improbable == ()
    with pytest.raises(ValueError, match="unknown queue order"):
        plain_session.queue("random")


def test_image_presence(tmp_path, images_dir, labels_csv):
    import imageio.v3 as iio

    from napari_hpa.imageset import read_set

    plane = np.zeros((8, 8), np.uint8)
    for ch in ("red", "green", "blue", "yellow"):
        iio.imwrite(images_dir / f"img-a_{ch}.png", plane)
    iio.imwrite(images_dir / "img-b_red.png", plane)  # incomplete set
    with ReviewSession.create(tmp_path / "s.hpa", images_dir, labels_csv) as s:
        assert s.summary()["images_found_at_import"] == 2
        assert s.has_image("img-a") and read_set(s.image_source("img-a")).data.shape == (4, 8, 8)
        assert s.has_image("img-b") and not s.has_image("img-c")
        for ch in ("red", "green", "blue", "yellow"):  # added after the import
            iio.imwrite(images_dir / f"img-c_{ch}.png", plane)
        assert s.has_image("img-c")
        (images_dir / "img-a_red.png").unlink()  # removed after the import
        assert s.image_source("img-a").channel_files.keys() == {"green", "blue", "yellow"}


def test_bad_edits_leave_data_untouched(session):
    with pytest.raises(ValueError, match="outside 0-27"):
        session.set_labels("img-a", "0 28")
    with pytest.raises(ValueError, match="not an integer"):
        session.set_labels("img-a", "zero")
    with pytest.raises(ValueError, match="outside 0-27"):
        session.toggle("img-a", -1)
    with pytest.raises(SessionError, match="no image"):
        session.toggle("nope", 1)
    assert session.labels("img-a") == (0, 25) and session.history() == []


def test_record_is_fast(session):
    import time

    t = time.perf_counter()
    for _ in range(200):
        session.record("img-d")
        session.highlights("img-d")
    assert (time.perf_counter() - t) / 200 < 0.005
