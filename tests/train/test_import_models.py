"""`napari-hpa models import`: the published 1st-place DenseNet121, in its ONNX and its
PyTorch form, through surrogates of exactly their interface (random weights)."""

from __future__ import annotations

import csv
import json
import pickle

import numpy as np
import onnx
import pytest
import torch
from hpa_densenet_surrogate import (
    make_surrogate,
    reference_probabilities,
    save_checkpoint,
    save_onnx_release,
)

from napari_hpa.classes import CLASS_NAMES
from napari_hpa.cli import main
from napari_hpa.engine import Ensemble
from napari_hpa.imageset import find_sets, read_set, to_model_input


@pytest.fixture(scope="session")
def surrogate():
    return make_surrogate(seed=3)


@pytest.fixture(scope="session")
def fields_1024(tmp_path_factory):
    """Two synthetic fields already at 1024 px, so no resizing stands between the two sides."""
    from napari_hpa.synth import generate_dataset

    out = tmp_path_factory.mktemp("f1024") / "fields"
    generate_dataset(out, 2, 7, size=1024)
    x = np.stack([to_model_input(read_set(s).data, 1024) for s in find_sets(out)])
    return out, x


@pytest.fixture(scope="session")
def release_onnx(tmp_path_factory, surrogate):
    return save_onnx_release(surrogate, tmp_path_factory.mktemp("release") / "model_fold0_final_probability.onnx")


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory, surrogate):
    return save_checkpoint(surrogate, tmp_path_factory.mktemp("ckpt") / "bestfitting_default_model.pth")


def _predict_probs(models, folder, tmp_path):
    out = tmp_path / "sub.csv"
    probs = tmp_path / "probs.csv"
    rc = main(["predict", str(folder), "--models", str(models), "--out", str(out), "--probs", str(probs),
               "-q", "--provider", "cpu"])
    assert rc == 0
    with open(probs) as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["Id", *CLASS_NAMES]
    return np.array([[float(v) for v in r[1:]] for r in rows[1:]])


def _one_error_line(capsys, *words):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for w in words:
        assert w in err[0], err[0]
    assert "Traceback" not in err[0]
    return err[0]


def test_onnx_release_is_recognised_and_predict_matches_torch(tmp_path, surrogate, release_onnx, fields_1024, capsys):
    folder, x = fields_1024
    out = tmp_path / "densenet"
    assert main(["models", "import", str(release_onnx), "--out", str(out), "-q"]) == 0
    said = capsys.readouterr().out
    assert "recognised as Kaggle HPA 2018 1st place DenseNet121" in said
    assert "1024" in said
    manifest = json.loads((out / "ensemble.json").read_text())
    assert manifest["thresholds"] == [0.5] * 28 and manifest["tta"] == "none"
    assert "real HPA" in manifest["trained_on"]
    card = (out / "MODEL_CARD.md").read_text()
    import hashlib

    assert hashlib.sha256(release_onnx.read_bytes()).hexdigest() in card
    ens = Ensemble.load(out)
    member = ens.members[0]
    assert member.info.input_size == 1024 and member.info.embedding_dim == 1024

    got = _predict_probs(out, folder, tmp_path)
    want = reference_probabilities(surrogate, x)
    assert np.abs(got - want).max() < 1e-4

    # the embedding is the L2-normalised feature
    pred = ens.predict([read_set(s).data for s in find_sets(folder)], tta="none")
    with torch.no_grad():
        feature = surrogate(torch.from_numpy(x))[0].numpy()
    feature /= np.linalg.norm(feature, axis=1, keepdims=True)
    assert np.abs(pred.embeddings - feature).max() < 1e-4


def test_checkpoint_is_rebuilt_exported_and_matches_torch(tmp_path, surrogate, checkpoint, fields_1024, capsys):
    folder, x = fields_1024
    # the state dict holds every backbone weight twice, as the published one does
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    assert "conv1.0.weight" in state and "backbone.features.conv0.weight" in state
    out = tmp_path / "densenet-pth"
    assert main(["models", "import", str(checkpoint), "--out", str(out), "-q"]) == 0
    assert "parity" in capsys.readouterr().err
    got = _predict_probs(out, folder, tmp_path)
    want = reference_probabilities(surrogate, x)
    assert np.abs(got - want).max() < 1e-4


def test_checkpoint_with_wrong_or_missing_keys_is_one_clear_line(tmp_path, surrogate, capsys):
    state = surrogate.state_dict()
    missing = dict(state)
    del missing["bn2.running_var"]
    save = tmp_path / "missing.pth"
    torch.save({"state_dict": missing}, save)
    assert main(["models", "import", str(save), "--out", str(tmp_path / "a")]) == 2
    _one_error_line(capsys, "missing.pth", "1 missing keys", "bn2.running_var")

    extra = dict(state)
    extra["head.weight"] = torch.zeros(3)
    save = tmp_path / "extra.pth"
    torch.save({"state_dict": extra}, save)
    assert main(["models", "import", str(save), "--out", str(tmp_path / "b")]) == 2
    _one_error_line(capsys, "1 unexpected keys", "head.weight")

    wrong = dict(state)
    wrong["logit.weight"] = torch.zeros(19, 1024)
    save = tmp_path / "wrong.pth"
    torch.save({"state_dict": wrong}, save)
    assert main(["models", "import", str(save), "--out", str(tmp_path / "c")]) == 2
    _one_error_line(capsys, "logit.weight", "[19, 1024]")
    assert not any(p.name in "abc" for p in tmp_path.iterdir())  # nothing left behind


def test_three_channel_models_are_refused(tmp_path, capsys):
    rgb = make_surrogate(seed=1, in_channels=3)
    save_checkpoint(rgb, tmp_path / "rgb.pth")
    assert main(["models", "import", str(tmp_path / "rgb.pth"), "--out", str(tmp_path / "x")]) == 2
    _one_error_line(capsys, "takes 3 channels", "4-channel RGBY")
    save_onnx_release(rgb, tmp_path / "rgb.onnx", trace_size=32)
    assert main(["models", "import", str(tmp_path / "rgb.onnx"), "--out", str(tmp_path / "y")]) == 2
    _one_error_line(capsys, "rgb.onnx", "3 channels", "4-channel RGBY")


class _Payload:
    """Anything that is not a tensor needs code to unpickle."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_checkpoint_with_pickled_code_is_refused_not_run(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:
        pickle.dump({"state_dict": {"x": _Payload()}}, fh)
    assert main(["models", "import", str(path), "--out", str(tmp_path / "x")]) == 2
    captured = capsys.readouterr()
    assert "this must never run" not in captured.out
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "never runs code" in err[0]

    torch.save({"state_dict": {"x": _Payload()}}, path)
    assert main(["models", "import", str(path), "--out", str(tmp_path / "x")]) == 2
    captured = capsys.readouterr()
    assert "this must never run" not in captured.out
    assert "never runs code" in captured.err


def test_existing_output_folder_is_never_overwritten(tmp_path, checkpoint, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["models", "import", str(checkpoint), "--out", str(out)]) == 2
    _one_error_line(capsys, "already exists")
    assert (out / "keep.txt").read_text() == "mine"


def test_foreign_onnx_with_logits_other_class_order_and_normalisation(tmp_path):
    """An unknown model: options say what the graph cannot."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 28)).astype(np.float32)
    order = list(rng.permutation(28))  # model output k is HPA class order[k]
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["pixels"], ["pooled"], axes=[2, 3], keepdims=0),
         helper.make_node("MatMul", ["pooled", "w"], ["scores"])],
        "foreign", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 4, 64, 64])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 28])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 9
    src = tmp_path / "foreign.onnx"
    onnx.save(model, src)
    mean, std = [0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.25, 1.0]
    out = tmp_path / "imported"
    rc = main(["models", "import", str(src), "--out", str(out), "--outputs", "logits",
               "--class-order", ",".join(map(str, order)),
               "--normalize", ",".join(map(str, mean)) + "/" + ",".join(map(str, std)), "-q"])
    assert rc == 0
    ens = Ensemble.load(out)
    assert ens.members[0].info.input_size == 64  # read from the graph
    image = rng.integers(0, 255, size=(4, 64, 64), dtype=np.uint8)
    x = image.astype(np.float32) / 255
    raw = (((x - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]).mean((1, 2))) @ w
    want = np.empty(28)
    want[order] = raw
    got = ens.members[0].run(x[None])["logits"][0]
    assert np.abs(got - want).max() < 1e-4
