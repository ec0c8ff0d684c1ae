"""Hostile inputs and faults: no ordinary command destroys data, a bad set costs only itself,
nonsense is never answered in silence, every failure is one line."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
import tifffile
from hpa_testing import random_set, write_channel_files
from onnx import TensorProto, helper, numpy_helper
from onnx_toys import IR_VERSION, OPSET, make_toy

from napari_hpa.cli import main
from napari_hpa.engine import Ensemble, EnsembleError, ModelContractError
from napari_hpa.engine.contract import contract_metadata
from napari_hpa.errors import ImageSetError, LabelsCSVError
from napari_hpa.imageset import MAX_PIXELS_ENV, read_set, source_for_path
from napari_hpa.labels import read_labels


def _one_line(capsys, *words):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for w in words:
        assert w in err[0], err[0]
    return err[0]


# --------------------------------------------------------------------------- outputs


def test_labels_export_never_replaces_the_session_or_its_own_other_output(tmp_path, capsys):
    from napari_hpa.review import ReviewSession

    (tmp_path / "labels.csv").write_text("Id,Target\na,0\nb,1 2\n")
    session = tmp_path / "s.hpa"
    ReviewSession.create(session, None, tmp_path / "labels.csv").close()
    before = session.read_bytes()
    assert main(["labels", "export", str(session), "--out", str(session)]) == 2
    _one_line(capsys, "--out", "the session", "would destroy it")
    assert main(["labels", "export", str(session), "--out", str(tmp_path / "x.csv"),
                 "--audit", str(session)]) == 2
    _one_line(capsys, "--audit")
    assert main(["labels", "export", str(session), "--out", str(tmp_path / "x.csv"),
                 "--audit", str(tmp_path / "x.csv")]) == 2
    _one_line(capsys, "--audit and --out name the same path")
    assert main(["labels", "suspicious", str(session), "--out", str(session)]) == 2
    capsys.readouterr()
    assert main(["labels", "suspicious", str(session), "--top", "-1"]) == 2
    _one_line(capsys, "--top must be at least 1")
    assert session.read_bytes() == before
    # an output that cannot be written is refused before anything is written
    assert main(["labels", "export", str(session), "--out", str(tmp_path / "y.csv"),
                 "--audit", str(tmp_path / "new" / "dir" / "a.csv")]) == 2
    _one_line(capsys, "no such folder")
    assert not (tmp_path / "y.csv").exists()
    (tmp_path / "ro").mkdir()
    blocker = tmp_path / "ro" / "file"
    blocker.write_text("")
    assert main(["labels", "export", str(session), "--out", str(tmp_path / "z.csv"),
                 "--audit", str(blocker / "a.csv")]) == 2
    _one_line(capsys, "cannot write")
    assert not (tmp_path / "z.csv").exists()


def test_predict_refuses_outputs_on_inputs_and_on_each_other_before_any_work(tmp_path, capsys):
    toy = make_toy(tmp_path / "toy.onnx", size=16)
    paths = write_channel_files(tmp_path / "sets", "s1", random_set((32, 32)))
    red = paths["red"]
    before = red.read_bytes()
    for extra in (["--out", str(red)], ["--out", str(tmp_path / "o.csv"), "--errors", str(tmp_path / "o.csv")],
                  ["--out", str(tmp_path / "o.csv"), "--embeddings", str(tmp_path / "o.csv")]):
        assert main(["predict", str(red), "--models", str(toy.path), *extra]) == 2
        capsys.readouterr()
    assert red.read_bytes() == before and not (tmp_path / "o.csv").exists()
    (tmp_path / "adir").mkdir()
    assert main(["predict", str(red), "--models", str(toy.path), "--out", str(tmp_path / "adir")]) == 2
    _one_line(capsys, "is a folder")


# --------------------------------------------------------------------------- one bad set costs itself


def test_a_set_over_the_pixel_budget_is_its_own_error_row(tmp_path, capsys, monkeypatch):
    toy = make_toy(tmp_path / "toy.onnx", size=16)
    folder = tmp_path / "in"
    write_channel_files(folder, "a-good", random_set((32, 32), seed=1))
    write_channel_files(folder, "b-huge-png", random_set((64, 64), seed=2))
    tifffile.imwrite(folder / "c-huge.tif", random_set((64, 64), seed=3), photometric="minisblack")
    write_channel_files(folder, "d-good", random_set((32, 32), seed=4))
    monkeypatch.setenv(MAX_PIXELS_ENV, str(40 * 40))
    rc = main(["predict", str(folder), "--models", str(toy.path), "--out", str(tmp_path / "s.csv"),
               "--errors", str(tmp_path / "e.csv"), "-q"])
    assert rc == 1
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert [r["Id"] for r in rows] == ["a-good", "d-good"]
    errors = {r["Id"]: r["Error"] for r in csv.DictReader(open(tmp_path / "e.csv"))}
    assert set(errors) == {"b-huge-png", "c-huge"}
    assert all("64 x 64 pixels" in e and "--max-pixels" in e for e in errors.values())
    # the option raises the budget
    rc = main(["predict", str(folder), "--models", str(toy.path), "--out", str(tmp_path / "t.csv"),
               "--max-pixels", "5000", "-q"])
    assert rc == 0


def test_a_huge_tiff_is_refused_from_its_header_under_a_memory_limit(tmp_path):
    """A 20000 x 20000 four-channel TIFF (1.6 GB once decoded) among good sets, with the address
    space limited to 4 GB: the run finishes, keeps the good sets and lists the huge one."""
    toy = make_toy(tmp_path / "toy.onnx", size=16)
    folder = tmp_path / "in"
    write_channel_files(folder, "good1", random_set((32, 32), seed=1))
    write_channel_files(folder, "good2", random_set((32, 32), seed=2))
    # an empty image: tifffile writes the header only (a sparse file, nothing on disk)
    tifffile.imwrite(folder / "huge.tif", shape=(4, 20000, 20000), dtype=np.uint8, photometric="minisblack")
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))\n"
        "from napari_hpa.cli import main\n"
        f"sys.exit(main(['predict', {str(folder)!r}, '--models', {str(toy.path)!r}, '--out', "
        f"{str(tmp_path / 's.csv')!r}, '--errors', {str(tmp_path / 'e.csv')!r}, '-q', '--provider', 'cpu']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert [r["Id"] for r in csv.DictReader(open(tmp_path / "s.csv"))] == ["good1", "good2"]
    errors = list(csv.DictReader(open(tmp_path / "e.csv")))
    assert [e["Id"] for e in errors] == ["huge"] and "20000 x 20000" in errors[0]["Error"]


def test_a_fifo_is_never_opened(tmp_path, capsys):
    toy = make_toy(tmp_path / "toy.onnx", size=16)
    folder = tmp_path / "in"
    write_channel_files(folder, "good", random_set((32, 32), seed=1))
    paths = write_channel_files(folder, "pipe", random_set((32, 32), seed=2))
    paths["green"].unlink()
    os.mkfifo(paths["green"])
    rc = main(["predict", str(folder), "--models", str(toy.path), "--out", str(tmp_path / "s.csv"),
               "--errors", str(tmp_path / "e.csv"), "-q"])
    assert rc == 1
    errors = list(csv.DictReader(open(tmp_path / "e.csv")))
    assert errors[0]["Id"] == "pipe" and "not a regular file" in errors[0]["Error"]


def _nan_model(path, size=16):
    """logits = sqrt(mean(x) - 0.5) for every class: NaN for fields darker than half."""
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image"], ["m"], axes=[1, 2, 3], keepdims=0),
         helper.make_node("Sub", ["m", "half"], ["d"]), helper.make_node("Sqrt", ["d"], ["r"]),
         helper.make_node("Unsqueeze", ["r", "ax"], ["r1"]), helper.make_node("Mul", ["r1", "ones"], ["logits"])],
        "nan", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 4, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 28])],
        [numpy_helper.from_array(np.array([0.5], np.float32).reshape(()), "half"),
         numpy_helper.from_array(np.array([1], np.int64), "ax"),
         numpy_helper.from_array(np.ones((1, 28), np.float32), "ones")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    helper.set_model_props(model, contract_metadata(input_size=size, arch="nan", trained_on="nothing"))
    onnx.save(model, path)
    return path


def test_a_model_that_answers_nan_gets_an_error_row_not_labels(tmp_path):
    model = _nan_model(tmp_path / "nan.onnx")
    folder = tmp_path / "in"
    write_channel_files(folder, "bright", np.full((4, 32, 32), 230, np.uint8) + random_set((32, 32)) % 20)
    write_channel_files(folder, "dark", random_set((32, 32)) % 40)
    rc = main(["predict", str(folder), "--models", str(model), "--out", str(tmp_path / "s.csv"),
               "--errors", str(tmp_path / "e.csv"), "--probs", str(tmp_path / "p.csv"), "-q"])
    assert rc == 1
    assert [r["Id"] for r in csv.DictReader(open(tmp_path / "s.csv"))] == ["bright"]
    assert [r["Id"] for r in csv.DictReader(open(tmp_path / "p.csv"))] == ["bright"]
    errors = list(csv.DictReader(open(tmp_path / "e.csv")))
    assert errors[0]["Id"] == "dark" and "NaN or infinite outputs" in errors[0]["Error"]
    from napari_hpa.classify import classify
    from napari_hpa.errors import HPAError

    with pytest.raises(HPAError, match="NaN or infinite outputs"):
        classify(Ensemble.load(model), "dark", random_set((32, 32)) % 40)


# --------------------------------------------------------------------------- channel names


@pytest.mark.parametrize(
    "names, order",
    [
        (["DAPI", "Microtubules", "ER", "Protein antibody"], [1, 3, 0, 2]),  # all known, by words
        (["DAPI", "Microtubules", "ER", "Alexa 488"], [1, 3, 0, 2]),  # the last by elimination
    ],
)
def test_ome_channel_names_map_by_name_or_elimination(tmp_path, names, order):
    data = random_set((32, 40))
    path = tmp_path / "f.ome.tif"
    tifffile.imwrite(path, data, ome=True, photometric="minisblack",
                     metadata={"axes": "CYX", "Channel": {"Name": names}})
    got = read_set(source_for_path(path)[0]).data
    np.testing.assert_array_equal(got, data[order])


def test_ome_channel_names_that_cannot_be_mapped_are_refused_not_taken_in_file_order(tmp_path):
    path = tmp_path / "f.ome.tif"
    tifffile.imwrite(path, random_set((32, 40)), ome=True, photometric="minisblack",
                     metadata={"axes": "CYX", "Channel": {"Name": ["Ch1", "Ch2", "DAPI", "Ch4"]}})
    with pytest.raises(ImageSetError, match=r"'Ch1', 'Ch2', 'DAPI', 'Ch4'.*only 1 are known"):
        read_set(source_for_path(path)[0])


# --------------------------------------------------------------------------- types and bounds


def test_malformed_csv_lines_name_file_and_line(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("Id,Target\na,0\nb," + "x" * 200_000 + "\n")
    with pytest.raises(LabelsCSVError, match=r"labels.csv, line 3: is not valid CSV \(field larger"):
        read_labels(path)
    path.write_text("Id,Target\na,0\nb,1\x00\n")
    with pytest.raises(LabelsCSVError, match=r"labels.csv, line 3: "):
        read_labels(path)


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"tta": ["d4"]}, "'tta': input should be 'none', 'flip' or 'd4' (got ['d4'])"),
        ({"combine": 5}, "'combine': input should be 'mean' or 'max' (got 5)"),
        ({"members": [{"path": 5}]}, "'members[0].path': input should be a valid string (got 5)"),
        ({"members": [{"path": None}]}, "'members[0].path': input should be a valid string (got None)"),
        ({"members": [{"path": "toy.onnx", "weight": float("inf")}]}, "'members[0].weight': input should be a finite number"),
        ({"min_one_label": "false"}, "'min_one_label': input should be a valid boolean (got 'false')"),
        ({"trained_on": 3}, "'trained_on': input should be a valid string (got 3)"),
    ],
)
def test_manifest_fields_of_the_wrong_type_are_one_clear_error(tmp_path, change, fragment):
    make_toy(tmp_path / "toy.onnx", size=16)
    manifest = {"hpa_ensemble": 1, "members": [{"path": "toy.onnx"}], **change}
    (tmp_path / "ensemble.json").write_text(json.dumps(manifest))
    with pytest.raises(EnsembleError) as info:
        Ensemble.load(tmp_path / "ensemble.json")
    assert fragment in str(info.value) and "ensemble.json" in str(info.value)


@pytest.mark.parametrize("value, fragment", [("100000", "from 16 to 4096"), ("0", "from 16 to 4096"),
                                             ("-3", "from 16 to 4096")])
def test_model_input_size_out_of_bounds_is_refused(tmp_path, value, fragment):
    toy = make_toy(tmp_path / "toy.onnx", size=16, metadata={"input_size": value})
    with pytest.raises(ModelContractError, match=fragment):
        Ensemble.load(toy.path)


@pytest.mark.parametrize("classes", ["5", "null", '"Nucleoplasm"'])
def test_model_classes_that_are_not_a_list_are_refused(tmp_path, classes):
    toy = make_toy(tmp_path / "toy.onnx", size=16, metadata={"classes": classes})
    with pytest.raises(ModelContractError, match="must be a JSON list"):
        Ensemble.load(toy.path)


def test_dask_local_zero_is_refused(tmp_path, capsys):
    pytest.importorskip("distributed")
    toy = make_toy(tmp_path / "toy.onnx", size=16)
    paths = write_channel_files(tmp_path / "sets", "s1", random_set((32, 32)))
    assert main(["predict", str(paths["red"]), "--models", str(toy.path), "--out", str(tmp_path / "o.csv"),
                 "--dask", "local:0"]) == 2
    assert "N >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("bad_id", ["../../etc/x", "a/b", "a\\b", ".."])
def test_ids_that_climb_out_of_the_images_folder_are_refused(tmp_path, bad_id):
    path = tmp_path / "labels.csv"
    path.write_text(f"Id,Target\nfine,0\n{bad_id},1\n")
    with pytest.raises(LabelsCSVError, match=r"line 3: Id .* holds a path separator"):
        read_labels(path)


def test_a_tampered_session_never_looks_outside_its_images_folder(tmp_path):
    import sqlite3

    from napari_hpa.review import ReviewSession

    images = tmp_path / "images"
    write_channel_files(images, "a", random_set((16, 16)))
    outside = tmp_path / "outside"
    write_channel_files(outside, "a", random_set((16, 16)))
    (tmp_path / "labels.csv").write_text("Id,Target\na,0\n")
    path = tmp_path / "s.hpa"
    ReviewSession.create(path, images, tmp_path / "labels.csv").close()
    conn = sqlite3.connect(path)
    escape = json.dumps({ch: [f"../outside/a_{ch}.png"] for ch in ("red", "green", "blue", "yellow")})
    conn.execute("UPDATE images SET source=? WHERE id='a'", (escape,))
    conn.commit()
    conn.close()
    with ReviewSession.open(path) as s:
        src = s.image_source("a")
    assert src is not None and all(p.parent == images for p in src.paths)  # found again by name


@pytest.mark.parametrize("name", ["../toy.onnx", "sub/../../toy.onnx", "ABSOLUTE"])
def test_members_must_lie_inside_the_ensemble_folder(tmp_path, name):
    toy = make_toy(tmp_path / "toy.onnx", size=16)
    (tmp_path / "ens").mkdir()
    name = str(toy.path) if name == "ABSOLUTE" else name
    (tmp_path / "ens" / "ensemble.json").write_text(json.dumps({"hpa_ensemble": 1, "members": [{"path": name}]}))
    with pytest.raises(EnsembleError, match="points outside the ensemble's folder"):
        Ensemble.load(tmp_path / "ens")


def test_a_session_edit_that_cannot_be_saved_is_one_line_and_changes_nothing(tmp_path):
    import sqlite3

    from napari_hpa.errors import SessionError
    from napari_hpa.review import ReviewSession
    from napari_hpa.review.db import _write_failure

    (tmp_path / "labels.csv").write_text("Id,Target\na,0\n")
    path = tmp_path / "s.hpa"
    ReviewSession.create(path, None, tmp_path / "labels.csv").close()
    other = sqlite3.connect(path, isolation_level=None)
    with ReviewSession.open(path) as s:
        s._conn.execute("PRAGMA busy_timeout = 200")
        other.execute("BEGIN EXCLUSIVE")  # another program writing
        with pytest.raises(SessionError, match=r"s.hpa: cannot save the edit: another program holds a lock"):
            s.set_labels("a", "1 2")
        other.execute("ROLLBACK")
        assert s.labels("a") == (0,)
        s.set_labels("a", "1 2")  # once the lock is gone, edits go through
        assert s.labels("a") == (1, 2)
    other.close()
    for message, words in [("attempt to write a readonly database", "read-only"),
                           ("database or disk is full", "the disk is full")]:
        assert words in _write_failure(sqlite3.OperationalError(message))


def test_values_tampered_inside_a_session_name_the_file(tmp_path, capsys):
    import sqlite3

    from napari_hpa.errors import SessionError
    from napari_hpa.review import ReviewSession

    (tmp_path / "labels.csv").write_text("Id,Target\na,0\nb,1\n")
    path = tmp_path / "s.hpa"
    ReviewSession.create(path, None, tmp_path / "labels.csv").close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE images SET labels='x y' WHERE id='a'")
    conn.execute("UPDATE images SET labels='1 99' WHERE id='b'")
    conn.commit()
    conn.close()
    with ReviewSession.open(path) as s:
        for image_id in ("a", "b"):
            with pytest.raises(SessionError, match=r"s.hpa: is damaged: a stored label set"):
                s.labels(image_id)
    assert main(["labels", "export", str(path), "--out", str(tmp_path / "o.csv")]) == 2
    _one_line(capsys, "s.hpa: is damaged")


def test_outputs_of_one_command_are_replaced_together_or_not_at_all(tmp_path):
    from napari_hpa.labels import atomic_write_group

    first = tmp_path / "first.csv"
    first.write_text("old\n")
    with pytest.raises(OSError, match="cannot write"):
        atomic_write_group({first: b"new\n", tmp_path / "missing" / "second.csv": b"x"})
    assert first.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["first.csv"]  # no temporary file left
    atomic_write_group({first: b"new\n", tmp_path / "second.csv": b"x"})
    assert first.read_text() == "new\n" and (tmp_path / "second.csv").read_bytes() == b"x"


def test_a_pyramid_tiff_over_the_budget_is_read_at_a_level_that_fits(tmp_path, monkeypatch):
    full = random_set((256, 256), seed=3)
    path = tmp_path / "pyr.ome.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(full, subifds=2, photometric="minisblack", metadata={"axes": "CYX"})
        tif.write(full[:, ::2, ::2], subfiletype=1, photometric="minisblack")
        tif.write(full[:, ::4, ::4], subfiletype=1, photometric="minisblack")
    monkeypatch.setenv(MAX_PIXELS_ENV, str(128 * 128))
    got = read_set(source_for_path(path)[0]).data
    np.testing.assert_array_equal(got, full[:, ::2, ::2])
    monkeypatch.setenv(MAX_PIXELS_ENV, str(10 * 10))  # no level fits
    with pytest.raises(ImageSetError, match="64 x 64 pixels"):
        read_set(source_for_path(path)[0])
