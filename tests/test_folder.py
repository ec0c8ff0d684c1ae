"""The folder walk (core) and batch prediction into a folder: the same files as ``predict``,
cancelled between batches and resumed."""

from __future__ import annotations

import pytest
from hpa_testing import random_set, write_channel_files
from onnx_toys import make_toy

from napari_hpa.cli import main
from napari_hpa.engine.batch import PredictCancelled
from napari_hpa.errors import FileError, HPAError, ImageSetError, LabelsCSVError
from napari_hpa.folder import (
    OUTPUT_NAMES,
    FolderWalk,
    default_output,
    predict_command,
    predict_folder,
    predict_outputs,
    read_predictions,
)
from napari_hpa.labels import read_labels

IDS = [f"s{i:02d}" for i in range(7)]
CSVS = ("submission", "probs", "domain", "errors")


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "sets"
    for i, set_id in enumerate(reversed(IDS)):
        write_channel_files(d, set_id, random_set((24, 24), seed=i))
    return d


@pytest.fixture
def toy(tmp_path):
    return make_toy(tmp_path / "toy.onnx", size=16, grid=4, emb_dim=8)


def _predict_cli(folder, out, toy, *extra):
    outputs = predict_outputs(out, attention=True, embeddings=True)
    args = predict_command(folder, outputs, models=toy.path) + ["--batch-size", "8", "--quiet",
                                                                *extra]
    assert main(args) == 0
    return outputs


def test_predict_folder_writes_what_predict_writes(tmp_path, folder, toy):
    cli = _predict_cli(folder, tmp_path / "cli", toy)
    seen = []
    summary = predict_folder(folder, tmp_path / "gui", models=toy.path, attention=True,
                             embeddings=True, progress=lambda d, t: seen.append((d, t)))
    assert summary.predicted == len(IDS)
    for key in CSVS:
        name = OUTPUT_NAMES[key]
        assert (tmp_path / "gui" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name
    assert sorted(p.name for p in (tmp_path / "gui" / "attention").iterdir()) == \
        sorted(p.name for p in cli.attention_dir.iterdir())
    assert seen[-1] == (len(IDS), len(IDS))


def test_cancel_between_batches_then_resume_gives_the_same_files(tmp_path, folder, toy):
    _predict_cli(folder, tmp_path / "cli", toy)
    out = tmp_path / "gui"
    seen = []
    with pytest.raises(PredictCancelled) as info:
        from napari_hpa.engine.batch import collect_sources, predict_sources
        from napari_hpa.engine import Ensemble

        sources, _ = collect_sources([folder])
        predict_sources(Ensemble.load(toy.path), sources, predict_outputs(out, attention=True,
                        embeddings=True), batch_size=2, progress=lambda d, t: seen.append(d),
                        should_stop=lambda: len(seen) >= 2)
    assert info.value.done == 4 and seen == [2, 4]
    assert not (out / "submission.csv").exists()  # the outputs are written at the end only
    partial = (out / "submission.csv.partial").read_text().splitlines()
    assert len(partial) == 1 + 4
    summary = predict_folder(folder, out, models=toy.path, attention=True, embeddings=True,
                             resume=True)
    assert (summary.skipped, summary.predicted) == (4, 3)
    for key in CSVS:
        name = OUTPUT_NAMES[key]
        assert (out / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name
    assert not list(out.glob("*.partial"))


def test_stop_before_the_first_batch_writes_nothing_final(tmp_path, folder, toy):
    with pytest.raises(PredictCancelled):
        predict_folder(folder, tmp_path / "o", models=toy.path, should_stop=lambda: True)
    assert not (tmp_path / "o" / "submission.csv").exists()


def test_predict_folder_refuses_bad_places_before_any_work(tmp_path, folder, toy):
    (tmp_path / "file").write_text("x")
    with pytest.raises(HPAError, match="cannot write"):
        predict_folder(folder, tmp_path / "file", models=toy.path)
    assert (tmp_path / "file").read_text() == "x"
    with pytest.raises(FileError, match="is not a folder"):
        predict_folder(tmp_path / "nope", tmp_path / "o", models=toy.path)


def test_walk_lists_sets_and_joins_predictions_and_classifications(tmp_path, folder, toy):
    walk = FolderWalk(folder)
    assert walk.ids == IDS and walk.current_id == IDS[0]
    assert all(r.labels is None and r.verdict_text == "" for r in walk.rows())
    assert walk.find_predictions() is None
    predict_folder(folder, default_output(folder), models=toy.path)
    walk = FolderWalk(folder)
    found = walk.find_predictions()  # the default output folder is found by itself
    sub = read_labels(default_output(folder) / "submission.csv").targets
    assert found.labels == sub
    rows = walk.rows()
    assert [r.labels for r in rows] == [sub[i] for i in IDS]
    assert all(r.origin == "predict" and r.labels_text for r in rows)
    assert all(r.verdict_text in ("unknown",) or "domain" in r.verdict_text for r in rows)
    # a classification made in the viewer wins over the batch run's
    meta = {"labels": [0, 25], "domain": {"in_domain": False, "score": 3.5, "reason": "odd"}}
    assert walk.note_classification(IDS[2], meta)
    assert not walk.note_classification(IDS[2], dict(meta))  # unchanged
    assert not walk.note_classification("elsewhere", meta)
    row = walk.row(2)
    assert (row.labels, row.in_domain, row.origin) == ((0, 25), False, "viewer")
    assert row.verdict_text == "OUT of domain (3.50)"
    assert row.labels_text == "Nucleoplasm, Cytosol"
    assert "1 out of domain" in walk.summary()


def test_walk_moves_within_the_list_and_reads_sets(folder):
    walk = FolderWalk(folder)
    assert not walk.step(-1) and walk.position == 0
    assert walk.step(3) and walk.current_id == IDS[3]
    assert walk.go(100) and walk.position == len(IDS) - 1
    loaded = walk.load(IDS[1])
    assert loaded.image_set is not None and loaded.image_set.id == IDS[1]
    assert loaded.message is None
    missing = walk.load("zz")
    assert missing.image_set is None and "not an image set" in missing.message


def test_read_predictions_tells_files_apart_and_names_bad_lines(tmp_path):
    sub = tmp_path / "sub.csv"
    sub.write_text("Id,Predicted\na,0 5\nb,\n")
    assert read_predictions(sub).labels == {"a": (0, 5), "b": ()}
    dom = tmp_path / "dom.csv"
    dom.write_text("Id,domain_score,in_domain,reason\na,0.5,true,\nb,,,\n")
    assert read_predictions(dom).domain == {"a": (True, 0.5, ""), "b": (None, None, "")}
    dom.write_text("Id,domain_score,in_domain,reason\na,0.5,maybe,\n")
    with pytest.raises(LabelsCSVError, match="line 2"):
        read_predictions(dom)
    probs = tmp_path / "probs.csv"
    probs.write_text("Id,Nucleoplasm,Cytosol\na,0.1,0.2\n")
    with pytest.raises(FileError, match="probabilities CSV"):
        read_predictions(probs)
    other = tmp_path / "x.csv"
    other.write_text("a,b\n")
    with pytest.raises(FileError, match="not a predictions CSV"):
        read_predictions(other)
    with pytest.raises(FileError, match="holds no predictions"):
        read_predictions(tmp_path / "empty_dir" if (tmp_path / "empty_dir").mkdir() is None else None)


def test_an_empty_folder_is_refused(tmp_path):
    with pytest.raises(ImageSetError, match="holds no image sets"):
        FolderWalk(tmp_path)
