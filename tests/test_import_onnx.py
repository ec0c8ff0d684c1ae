"""`napari-hpa models import` of a small foreign ONNX classifier: thresholds, int8, domain."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from napari_hpa.cli import main
from napari_hpa.engine import Ensemble
from napari_hpa.evaluate import class_ratios, collect


def _foreign(path, size=32, seed=0):
    """probabilities = sigmoid(mean(x over pixels) @ W + b): a Sigmoid makes the output."""
    rng = np.random.default_rng(seed)
    w = rng.normal(scale=8, size=(4, 28)).astype(np.float32)
    b = rng.normal(scale=1, size=(28,)).astype(np.float32) - 1
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "k"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("ReduceMean", ["c"], ["m"], axes=[2, 3], keepdims=0),
         helper.make_node("MatMul", ["m", "w"], ["z0"]), helper.make_node("Add", ["z0", "b"], ["z"]),
         helper.make_node("Sigmoid", ["z"], ["prob"])],
        "foreign", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, size, size])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 28])],
        [numpy_helper.from_array(rng.normal(size=(4, 4, 3, 3)).astype(np.float32) / 6, "k"),
         numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 9
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    from napari_hpa.synth import generate_dataset

    out = tmp_path_factory.mktemp("calib") / "fields"
    generate_dataset(out, 48, 21, size=128)
    return out


def test_ratio_thresholds_int8_and_domain_from_calibration_fields(tmp_path, calib, capsys):
    src = _foreign(tmp_path / "net.onnx")
    out = tmp_path / "imported"
    rc = main(["models", "import", str(src), "--out", str(out), "--calib", str(calib), "--int8",
               "--thresholds", "ratio", "--class-ratios", str(calib / "labels.csv"), "-q"])
    assert rc == 0, capsys.readouterr().err
    said = capsys.readouterr().out
    assert "int8 vs fp32 on 32 calibration fields: label agreement" in said
    assert "domain record from 48 calibration fields" in said
    manifest = json.loads((out / "ensemble.json").read_text())
    assert manifest["domain"] == "domain.npz" and (out / "domain.npz").is_file()
    ens = Ensemble.load(out)
    assert "QuantizeLinear" in {n.op_type for n in onnx.load(str(ens.members[0].spec.path)).graph.node}
    # each class's predicted-positive rate on the calibration fields matches its share of the labels
    col = collect(ens, calib, labelled=False)
    rates = (col.probs >= ens.thresholds).mean(0)
    target = class_ratios(calib / "labels.csv")
    matched = (ens.thresholds > 0.01) & (ens.thresholds < 0.99)
    assert matched.sum() >= 20
    # (within two fields: the int8 model's probabilities are coarse, and ties cannot be split)
    assert np.abs(rates - target)[matched].max() <= 2 / 48 + 1e-9
    assert np.abs(rates - target)[matched].mean() < 0.5 / 48
    # the calibration fields lie in the domain they define; a blank field does not
    from napari_hpa.imageset import find_sets, read_set

    fields = [read_set(s).data for s in find_sets(calib)]
    assert np.mean([v.in_domain for v in ens.predict(fields).verdicts]) >= 0.9
    blank = ens.predict([np.full((4, 64, 64), 9, np.uint8)]).verdicts[0]
    assert blank.in_domain is False and "empty" in blank.reason
    card = (out / "MODEL_CARD.md").read_text()
    assert "the 1st place's rule" in card and "int8" in card


def test_f1_thresholds_need_labels_and_are_fitted_on_them(tmp_path, calib, capsys):
    src = _foreign(tmp_path / "net.onnx", seed=1)
    assert main(["models", "import", str(src), "--out", str(tmp_path / "a"), "--thresholds", "f1",
                 "--calib", str(calib)]) == 2
    assert "--thresholds f1 needs --calib DIR and --labels CSV" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    assert main(["models", "import", str(src), "--out", str(tmp_path / "b"), "--thresholds", "f1",
                 "--calib", str(calib), "--labels", str(calib / "labels.csv"), "-q"]) == 0
    manifest = json.loads((tmp_path / "b" / "ensemble.json").read_text())
    assert len(set(manifest["thresholds"])) > 1  # fitted per class, not one value


def test_an_onnx_without_a_class_output_is_refused(tmp_path, capsys):
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["m"], axes=[2, 3], keepdims=0)],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 16, 16])],
        [helper.make_tensor_value_info("m", TensorProto.FLOAT, ["N", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 9
    onnx.save(model, tmp_path / "m.onnx")
    assert main(["models", "import", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no output of shape [N, 28]" in err[0]
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    assert main(["models", "import", str(tmp_path / "junk.onnx"), "--out", str(tmp_path / "o")]) == 2
    assert "not a readable ONNX model" in capsys.readouterr().err
