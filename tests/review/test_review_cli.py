"""``napari-hpa labels ...``."""

from __future__ import annotations

import sqlite3

from napari_hpa.cli import main
from napari_hpa.labels import read_labels

from review_data import SMALL


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_labels_commands(tmp_path, capsys, labels_csv, probs_csv, images_dir):
    s = tmp_path / "s.hpa"
    rc, out, _ = run(capsys, "labels", "import", "--images", images_dir, "--labels", labels_csv,
                     "--probs", probs_csv, "--session", s)
    assert rc == 0 and "imported 6 images" in out and "with probabilities" in out
    rc, out, _ = run(capsys, "labels", "set", s, "img-c", "0 25", "--note", "cytosol seen")
    assert rc == 0 and "img-c: (none) -> 0 25" in out
    rc, out, _ = run(capsys, "labels", "set", s, "img-e", "1")
    rc, out, _ = run(capsys, "labels", "undo", s)
    assert rc == 0 and "img-e labels 1 -> 14" in out
    rc, out, _ = run(capsys, "labels", "redo", s)
    rc, out, _ = run(capsys, "labels", "undo", s)
    rc, out, _ = run(capsys, "labels", "show", s)
    assert rc == 0 and "changed: 1" in out and "edits: 5" in out
    rc, out, _ = run(capsys, "labels", "show", s, "img-c")
    assert "labels:    0 Nucleoplasm, 25 Cytosol" in out and "(cytosol seen)" in out
    rc, out, _ = run(capsys, "labels", "suspicious", s, "--top", "2")
    lines = out.splitlines()
    assert rc == 0 and lines[0].startswith("Rank\tId\tScore") and len(lines) == 3
    assert lines[1].split("\t")[1] in ("img-b", "img-c")
    rc, out, _ = run(capsys, "labels", "suspicious", s, "--top", "3", "--out", tmp_path / "sus.csv")
    assert rc == 0 and len((tmp_path / "sus.csv").read_text().splitlines()) == 4
    rc, out, _ = run(capsys, "labels", "export", s, "--out", tmp_path / "c.csv",
                     "--audit", tmp_path / "audit.csv")
    assert rc == 0 and "wrote 6 rows" in out and "(1 changed)" in out
    table = read_labels(tmp_path / "c.csv")
    assert table.ids == list(SMALL) and table.targets["img-c"] == (0, 25)
    assert len((tmp_path / "audit.csv").read_text().splitlines()) == 6
    rc, out, _ = run(capsys, "labels", "export", s, "--out", tmp_path / "d.csv", "--changed-only")
    assert read_labels(tmp_path / "d.csv").ids == ["img-c"]


def test_labels_errors_are_one_line(tmp_path, capsys, labels_csv):
    s = tmp_path / "s.hpa"
    assert run(capsys, "labels", "import", "--labels", labels_csv, "--session", s)[0] == 0
    cases = [
        (["labels", "set", s, "nope", "1"], "no image 'nope'"),
        (["labels", "set", s, "img-a", "0 99"], "outside 0-27"),
        (["labels", "suspicious", s], "needs: import it with --probs"),
        (["labels", "export", s, "--out", tmp_path / "no" / "x.csv"], "cannot write"),
        (["labels", "show", tmp_path / "missing.hpa"], "no such session file"),
        (["labels", "import", "--labels", labels_csv, "--session", s], "already exists"),
        (["labels", "import", "--labels", tmp_path / "none.csv", "--session", tmp_path / "t.hpa"],
         "file not found"),
    ]
    for argv, words in cases:
        rc, out, err = run(capsys, *argv)
        assert rc == 2 and words in err and err.count("\n") == 1, (argv, err)
        assert err.startswith("napari-hpa labels: error:")
    with sqlite3.connect(s) as c:
        assert c.execute("SELECT COUNT(*) FROM edits").fetchone()[0] == 0
    c.close()
