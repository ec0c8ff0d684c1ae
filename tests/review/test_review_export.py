"""The export's review CSV and audit: notes, review and unsure marks, reviewer and time of
every image, every edit with its kind, all files written together; the round trip."""

from __future__ import annotations

import csv

import pytest

from napari_hpa.cli import main
from napari_hpa.labels import read_labels
from napari_hpa.review import ReviewSession

from review_data import SMALL


def rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _review_some(s: ReviewSession) -> None:
    s.review_on_edit = True
    s.toggle("img-b", 4)                      # labels + reviewed, one decision (ann)
    s.mark_unsure("img-c", reviewer="bob")
    s.set_note("img-c", "faint, cytosol?", reviewer="bob")
    s.set_note("img-e", "looks fine")
    s.mark_reviewed("img-e")
    s.mark_reviewed("img-e", False)
    s.set_labels("img-f", "5")
    s.undo()                                  # takes back img-f's whole decision


def test_review_csv_and_audit(session, tmp_path, images_dir):
    _review_some(session)
    out = session.export(tmp_path / "c.csv", audit=tmp_path / "a.csv",
                         review=tmp_path / "r.csv")
    assert out["written"] == 6 and out["changed"] == 1 and out["review_rows"] == 6
    review = rows(tmp_path / "r.csv")
    assert list(review[0]) == ["Id", "Reviewed", "Unsure", "Note", "Reviewer", "Time"]
    assert [r["Id"] for r in review] == list(SMALL)
    by_id = {r["Id"]: r for r in review}
    assert (by_id["img-b"]["Reviewed"], by_id["img-b"]["Unsure"]) == ("1", "0")
    assert by_id["img-c"]["Unsure"] == "1" and by_id["img-c"]["Note"] == "faint, cytosol?"
    assert by_id["img-c"]["Reviewer"] == "bob"
    assert by_id["img-e"]["Reviewed"] == "0" and by_id["img-e"]["Note"] == "looks fine"
    assert by_id["img-f"]["Reviewed"] == "0"   # the undo took back the mark too
    for image_id in SMALL:
        hist = session.history(image_id)
        assert by_id[image_id]["Time"] == (hist[-1].time if hist else "")
        assert by_id[image_id]["Reviewer"] == (hist[-1].reviewer if hist else "")
    assert by_id["img-a"]["Time"] == "" and by_id["img-a"]["Reviewer"] == ""

    audit = rows(tmp_path / "a.csv")
    assert list(audit[0]) == ["Id", "Before", "After", "Time", "Reviewer", "Note", "Kind", "Field"]
    assert len(audit) == len(session.history()) == out["audit_edits"]
    kinds = [(r["Id"], r["Kind"], r["Field"]) for r in audit]
    assert ("img-b", "toggle", "labels") in kinds and ("img-b", "review", "reviewed") in kinds
    assert ("img-c", "unsure", "unsure") in kinds and ("img-c", "note", "note") in kinds
    assert ("img-f", "undo", "labels") in kinds and ("img-f", "undo", "reviewed") in kinds
    note = next(r for r in audit if r["Kind"] == "note" and r["Id"] == "img-c")
    assert (note["Before"], note["After"], note["Reviewer"]) == ("", "faint, cytosol?", "bob")

    # importing the corrected CSV gives the same labels
    with ReviewSession.create(tmp_path / "again.hpa", images_dir, tmp_path / "c.csv") as again:
        assert again.ids == session.ids
        assert all(again.labels(i) == session.labels(i) for i in SMALL)
    assert read_labels(tmp_path / "c.csv").targets["img-b"] == (3, 4)


def test_review_csv_with_changed_only_lists_every_image(session, tmp_path):
    session.toggle("img-a", 25)
    out = session.export(tmp_path / "c.csv", changed_only=True, review=tmp_path / "r.csv")
    assert out["written"] == 1
    assert [r["Id"] for r in rows(tmp_path / "r.csv")] == list(SMALL)


def test_export_writes_all_files_or_none(session, tmp_path):
    session.set_note("img-a", "x")
    (tmp_path / "c.csv").write_text("old\n")
    with pytest.raises(OSError):
        session.export(tmp_path / "c.csv", audit=tmp_path / "a.csv",
                       review=tmp_path / "missing" / "r.csv")
    assert (tmp_path / "c.csv").read_text() == "old\n"
    assert not (tmp_path / "a.csv").exists()


def test_cli_export_review(tmp_path, capsys, labels_csv, probs_csv, images_dir):
    s = tmp_path / "s.hpa"
    assert main(["labels", "import", "--images", str(images_dir), "--labels", str(labels_csv),
                 "--probs", str(probs_csv), "--session", str(s)]) == 0
    with ReviewSession.open(s, reviewer="cy") as sess:
        sess.mark_unsure("img-d")
        sess.set_note("img-d", "check nucleoli")
    capsys.readouterr()
    argv = ["labels", "export", str(s), "--out", str(tmp_path / "c.csv"),
            "--audit", str(tmp_path / "a.csv"), "--review", str(tmp_path / "r.csv")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "2 edits to" in out and "6 review rows to" in out
    d = next(r for r in rows(tmp_path / "r.csv") if r["Id"] == "img-d")
    assert (d["Unsure"], d["Note"], d["Reviewer"]) == ("1", "check nucleoli", "cy")
    # outputs are checked before any work: one path twice, or the session itself
    for review in (tmp_path / "c2.csv", s):
        assert main(["labels", "export", str(s), "--out", str(tmp_path / "c2.csv"),
                     "--review", str(review)]) == 2
        err = capsys.readouterr().err
        assert "--review" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "c2.csv").exists()
