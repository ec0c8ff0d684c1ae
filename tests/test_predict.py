"""``napari-hpa predict``: outputs in the Kaggle formats, errors, resume, Dask."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from hpa_testing import random_set, write_channel_files
from onnx_toys import make_toy

from napari_hpa.classes import CLASS_NAMES
from napari_hpa.cli import main
from napari_hpa.engine import Ensemble
from napari_hpa.engine.batch import PredictOutputs, collect_sources, predict_sources
from napari_hpa.imageset import read_set
from napari_hpa.labels import format_target, read_labels

IDS = ["s03", "s01", "s04", "s00", "s02"]


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "sets"
    for i, set_id in enumerate(IDS):
        write_channel_files(d, set_id, random_set((24, 24), seed=i))
    return d


@pytest.fixture
def toy(tmp_path):
    return make_toy(tmp_path / "toy.onnx", size=16, grid=4, emb_dim=8)


def expected(toy_path, folder, ids):
    ens = Ensemble.load(toy_path)
    return ens.predict([read_set(folder / f"{i}_red.png").data for i in ids], ids=ids)


def test_predict_writes_kaggle_formats(tmp_path, folder, toy, capsys):
    out = tmp_path / "out"
    rc = main([
        "predict", str(folder), "--models", str(toy.path), "--out", str(out / "sub.csv"),
        "--probs", str(out / "probs.csv"), "--attention", str(out / "att"),
        "--embeddings", str(out / "emb.npz"), "--batch-size", "2", "--quiet",
    ])
    assert rc == 0
    ids = sorted(IDS)
    pred = expected(toy.path, folder, ids)
    lines = (out / "sub.csv").read_text().splitlines()
    assert lines[0] == "Id,Predicted"
    assert [line.split(",")[0] for line in lines[1:]] == ids  # sorted ids
    for i, line in enumerate(lines[1:]):
        assert line.split(",")[1] == format_target(pred.label_indices(i))
    assert read_labels(out / "sub.csv").column == "Predicted"
    with open(out / "probs.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["Id", *CLASS_NAMES]
    probs = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    np.testing.assert_allclose(probs, pred.probs, atol=2e-6)
    with np.load(out / "att" / "s02.npz") as z:
        assert z["attention"].shape == (28, 4, 4)
        np.testing.assert_allclose(z["attention"], pred.attention[2], atol=1e-3)
    with np.load(out / "emb.npz") as z:
        assert list(z["ids"]) == ids
        np.testing.assert_allclose(z["embeddings"], pred.embeddings, atol=1e-5)
    assert not list(out.glob("*.partial*"))


def test_unreadable_set_is_reported_counted_and_run_continues(tmp_path, folder, toy, capsys):
    (folder / "s01_green.png").write_bytes(b"broken")
    (folder / "s04_yellow.png").unlink()
    errors = tmp_path / "errors.csv"
    rc = main([
        "predict", str(folder), "--models", str(toy.path), "--out", str(tmp_path / "sub.csv"),
        "--errors", str(errors), "--quiet",
    ])
    assert rc == 1
    err = capsys.readouterr().err
    assert "s01_green.png" in err and "s04_yellow" in err and "2 failed" in err
    sub = read_labels(tmp_path / "sub.csv")
    assert sub.ids == ["s00", "s02", "s03"]
    with open(errors, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["Id"] for r in rows] == ["s01", "s04"]
    assert "cannot be read" in rows[0]["Error"] and "missing" in rows[1]["Error"]


def test_resume_skips_done_ids_and_keeps_their_rows(tmp_path, folder, toy):
    ens = Ensemble.load(toy.path)
    out = PredictOutputs(tmp_path / "sub.csv", probs=tmp_path / "probs.csv")
    sources, _ = collect_sources([folder])
    first = predict_sources(ens, sources[:2], out, batch_size=1)
    assert first.predicted == 2
    before = (tmp_path / "sub.csv").read_text().splitlines()
    # a run cut short leaves a partial file: its complete rows count as done, a torn row not
    partial = tmp_path / "sub.csv.partial"
    full = expected(toy.path, folder, ["s02"])
    partial.write_text(f"Id,Predicted\ns02,{format_target(full.label_indices(0))}\ns03,0 1")
    (tmp_path / "probs.csv.partial").write_text(
        "Id," + ",".join(CLASS_NAMES) + "\ns02," + ",".join(f"{p:.6f}" for p in full.probs[0]) + "\n"
    )
    second = predict_sources(ens, sources, out, batch_size=2, resume=True)
    assert (second.total, second.skipped, second.predicted) == (5, 3, 2)
    after = (tmp_path / "sub.csv").read_text().splitlines()
    assert after[1:3] == before[1:3]
    assert [line.split(",")[0] for line in after[1:]] == sorted(IDS)
    again = predict_sources(ens, sources, out, resume=True)
    assert (again.skipped, again.predicted) == (5, 0)
    assert (tmp_path / "sub.csv").read_text().splitlines() == after


def test_duplicate_ids_across_folders_are_reported(tmp_path, toy):
    a, b = tmp_path / "a", tmp_path / "b"
    write_channel_files(a, "x", random_set(seed=1))
    write_channel_files(b, "x", random_set(seed=2))
    sources, problems = collect_sources([a, b, tmp_path / "missing"])
    assert [s.id for s in sources] == ["x"]
    assert any("found twice" in p[2] for p in problems)
    assert any("no such file or folder" in p[2] for p in problems)


def test_no_default_ensemble_is_a_clear_error(tmp_path, folder, monkeypatch, capsys):
    monkeypatch.setenv("NAPARI_HPA_MODELS", str(tmp_path / "nothing" / "ensemble.json"))
    rc = main(["predict", str(folder), "--out", str(tmp_path / "s.csv"), "--quiet"])
    assert rc == 2
    assert "no default ensemble" in capsys.readouterr().err


def test_dask_local_cluster_gives_the_same_outputs(tmp_path, folder, toy):
    pytest.importorskip("distributed", reason="the dask extra is not installed")
    local, dist = tmp_path / "local", tmp_path / "dask"
    args = ["--models", str(toy.path), "--batch-size", "2", "--quiet"]
    assert main(["predict", str(folder), "--out", str(local / "s.csv"),
                 "--probs", str(local / "p.csv"), *args]) == 0
    assert main(["predict", str(folder), "--out", str(dist / "s.csv"),
                 "--probs", str(dist / "p.csv"), "--dask", "local:2", *args]) == 0
    assert (local / "s.csv").read_text() == (dist / "s.csv").read_text()
    assert (local / "p.csv").read_text() == (dist / "p.csv").read_text()


def test_info_reports_working_providers(toy, capsys):
    assert main(["info", "--models", str(toy.path), "--json"]) == 0
    import json

    info = json.loads(capsys.readouterr().out)
    assert info["providers_working"]["cpu"].startswith("yes")
    assert info["ensemble"]["members"][0]["arch"] == "toy"
    assert "CPUExecutionProvider" in info["providers_compiled_in"]


def test_index_command(tmp_path, folder, toy, capsys):
    from napari_hpa.similar import ReferenceIndex

    labels = tmp_path / "labels.csv"
    labels.write_text("Id,Target\n" + "".join(f"{i},{n}\n" for n, i in enumerate(IDS[:4])))
    rc = main(["index", str(folder), "--labels", str(labels), "--out", str(tmp_path / "i.npz"),
               "--models", str(toy.path), "--quiet"])
    assert rc == 0
    index = ReferenceIndex.load(tmp_path / "i.npz")
    assert index.ids == sorted(IDS[:4])  # only the labelled sets
    assert index.embeddings.shape == (4, 8)
    assert index.targets[index.ids.index("s03")] == (0,)
    hits = index.query(index.embeddings[1], k=2)
    assert hits[0].id == index.ids[1] and hits[0].similarity == pytest.approx(1.0, abs=1e-5)
