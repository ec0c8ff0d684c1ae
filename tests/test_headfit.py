"""``napari-hpa models refit-head``: the linear head of an ONNX model refitted on labelled fields."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hpa_testing import write_channel_files
from napari_hpa.classes import NUM_CLASSES
from napari_hpa.engine.contract import ModelContractError, contract_metadata
from napari_hpa.engine.onnx_tools import cpu_session, quantize_int8
from napari_hpa.errors import HPAError, TrainingError
from napari_hpa.headfit import extract, find_head, fit_head, refit_head, write_model
from onnx_toys import IR_VERSION, OPSET, make_toy

SIZE, D = 16, 8


def make_linear(path: Path, *, matmul: bool = False, seed: int = 0) -> Path:
    """``features = relu(mean over the field of a 1x1 convolution)`` (8 numbers), then a random
    linear head: a Gemm, or a MatMul and an Add."""
    rng = np.random.default_rng(seed)
    conv = rng.normal(size=(D, 4, 1, 1)).astype(np.float32)
    w = rng.normal(size=(NUM_CLASSES, D)).astype(np.float32)
    b = rng.normal(size=NUM_CLASSES).astype(np.float32)
    inits = [numpy_helper.from_array(conv, "conv")]
    nodes = [helper.make_node("Conv", ["image", "conv"], ["c"]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["features"])]
    if matmul:
        inits += [numpy_helper.from_array(w.T.copy(), "w"), numpy_helper.from_array(b, "b")]
        nodes += [helper.make_node("MatMul", ["features", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["logits"])]
    else:
        inits += [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]
        nodes.append(helper.make_node("Gemm", ["features", "w", "b"], ["logits"], transB=1))
    graph = helper.make_graph(
        nodes, "linear", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 4, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", NUM_CLASSES])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    helper.set_model_props(model, contract_metadata(input_size=SIZE, arch="linear toy", trained_on="nothing",
                                                    thresholds=[0.3] * NUM_CLASSES))
    onnx.save(model, path)
    return path


def labelled_folder(folder: Path, n: int = 40, seed: int = 1) -> np.ndarray:
    """Fields whose class 0 is on exactly when their green is brighter than their red, and
    class 3 on every other field; no other class.  Returns the fields as model input."""
    rng = np.random.default_rng(seed)
    rows, xs = ["Id,Target"], []
    for i in range(n):
        data = rng.uniform(0, 0.5, size=(4, SIZE, SIZE))
        bright = i % 2 == 0
        data[1 if bright else 0] += 0.4
        planes = (data * 255).astype(np.uint8)
        write_channel_files(folder, f"f{i:02d}", planes)
        xs.append(planes.astype(np.float32) / 255)
        rows.append(f"f{i:02d}," + " ".join(t for t, on in (("0", bright), ("3", i % 4 < 2)) if on))
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return np.stack(xs)


def run(path: Path, x: np.ndarray, names=("logits",)):
    return cpu_session(path).run(list(names), {"image": x})


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    return folder, labelled_folder(folder)


@pytest.mark.parametrize("matmul", [False, True])
def test_refit_learns_the_labels_and_keeps_other_classes(tmp_path, data, matmul):
    folder, x = data
    model = make_linear(tmp_path / "m.onnx", matmul=matmul)
    out = tmp_path / "refit.onnx"
    report = refit_head(model, out, [(folder, 1.0)], strength=1.0, tta="flip")
    assert "classes refitted: 2 of 28" in report
    before, after = run(model, x)[0], run(out, x)[0]
    y0 = np.arange(len(x)) % 2 == 0
    # the random head does not separate class 0; the refitted one does
    assert before[y0, 0].min() < before[~y0, 0].max()
    assert after[y0, 0].min() > after[~y0, 0].max()
    # the classes without positives keep their logits
    keep = [c for c in range(NUM_CLASSES) if c not in (0, 3)]
    np.testing.assert_allclose(after[:, keep], before[:, keep], rtol=1e-5, atol=1e-5)
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert "thresholds" not in meta and "head refitted on 40 labelled fields" in meta["trained_on"]
    assert meta["hpa_contract"] == "1"
    again = tmp_path / "again.onnx"  # a refitted model can be refitted again
    refit_head(out, again, [(folder, 1.0)], strength=1.0, tta="none")
    assert run(again, x)[0][y0, 0].min() > run(again, x)[0][~y0, 0].max()
    assert len(onnx.load(str(again)).graph.initializer) == len(onnx.load(str(out)).graph.initializer)


def test_classes_limits_the_refit_to_the_named_classes(tmp_path, data):
    folder, x = data
    model = make_linear(tmp_path / "m.onnx")
    out = tmp_path / "refit.onnx"
    report = refit_head(model, out, [(folder, 1.0)], strength=1.0, tta="none", classes=[3])
    assert "classes refitted: 1 of 28" in report and "not named by --classes: Nucleoplasm," in report
    before, after = run(model, x)[0], run(out, x)[0]
    keep = [c for c in range(NUM_CLASSES) if c != 3]
    np.testing.assert_allclose(after[:, keep], before[:, keep], rtol=1e-5, atol=1e-5)  # class 0 too
    assert np.abs(after[:, 3] - before[:, 3]).max() > 1e-3
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert "classes 3 only" in meta["trained_on"]
    for bad, message in (([28], "not a class index"), ([], "no class to refit"),
                         ([5], "no class named by --classes has both")):
        with pytest.raises(TrainingError, match=message):
            refit_head(model, tmp_path / "x.onnx", [(folder, 1.0)], tta="none", classes=bad)
    assert not (tmp_path / "x.onnx").exists()


def test_new_head_is_the_fitted_regression(tmp_path, data):
    folder, x = data
    model = make_linear(tmp_path / "m.onnx")
    ex = extract(model, [(folder, 1.0)], tta="none")
    assert ex.features.shape == (40, D) and ex.n_fields == 40
    fitted = fit_head(ex, 0.5)
    out = tmp_path / "refit.onnx"
    write_model(model, out, fitted, "test fields")
    np.testing.assert_allclose(run(out, x)[0], ex.features @ fitted.weight.T + fitted.bias, rtol=1e-4, atol=1e-4)
    # the present head read back from the graph gives the model's own logits
    np.testing.assert_allclose(ex.features @ ex.weight.T + ex.bias, run(model, x)[0], rtol=1e-4, atol=1e-4)


def test_an_int8_model_gets_a_float_head_and_keeps_its_other_outputs(tmp_path, data):
    folder, x = data
    fp32 = make_linear(tmp_path / "m.onnx")
    int8 = tmp_path / "m8.onnx"
    quantize_int8(fp32, int8, x[:8], {})
    head = find_head(onnx.load(str(int8)))
    assert head.nodes[0] != head.nodes[-1]  # the quantize and dequantize nodes after the Gemm
    out = tmp_path / "refit.onnx"
    refit_head(int8, out, [(folder, 1.0)], strength=1.0, tta="none")
    ex = extract(int8, [(folder, 1.0)], tta="none")
    np.testing.assert_allclose(ex.features @ ex.weight.T + ex.bias, run(int8, x)[0], atol=0.1)  # int8 logits
    graph = onnx.load(str(out)).graph
    last = [n for n in graph.node if "logits" in n.output]
    assert [n.op_type for n in last] == ["Gemm"]
    y0 = np.arange(len(x)) % 2 == 0
    after = run(out, x)[0]
    assert after[y0, 0].min() > after[~y0, 0].max()


def test_attention_and_embedding_outputs_are_untouched(tmp_path):
    """A model with more outputs than the logits keeps them, value for value."""
    model = make_linear(tmp_path / "m.onnx")
    m = onnx.load(str(model))
    m.graph.node.append(helper.make_node("Identity", ["features"], ["embedding"]))
    m.graph.output.append(helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", D]))
    onnx.save(m, model)
    folder = tmp_path / "data"
    x = labelled_folder(folder)
    out = tmp_path / "refit.onnx"
    refit_head(model, out, [(folder, 1.0)], tta="none")
    np.testing.assert_allclose(run(out, x, ["embedding"])[0], run(model, x, ["embedding"])[0])


def test_weights_pull_the_fit_towards_a_folder(tmp_path):
    """Two folders that disagree on class 0: the heavier one wins."""
    model = make_linear(tmp_path / "m.onnx")
    a, b = tmp_path / "a", tmp_path / "b"
    x = labelled_folder(a)
    labelled_folder(b)
    lines = (b / "labels.csv").read_text().splitlines()
    flipped = [lines[0]] + [f"{r.split(',')[0]},{'3' if '0' in r.split(',')[1] else '0'}" for r in lines[1:]]
    (b / "labels.csv").write_text("\n".join(flipped) + "\n")
    y0 = np.arange(len(x)) % 2 == 0
    for heavy, sign in ((a, 1), (b, -1)):
        out = tmp_path / f"refit-{heavy.name}.onnx"
        refit_head(model, out, [(a, 10.0 if heavy is a else 1.0), (b, 10.0 if heavy is b else 1.0)],
                   strength=1.0, tta="none")
        z = run(out, x)[0][:, 0]
        assert sign * (z[y0].mean() - z[~y0].mean()) > 0


def test_refusals(tmp_path, data):
    folder, _ = data
    model = make_linear(tmp_path / "m.onnx")
    conv = make_toy(tmp_path / "conv.onnx").path  # logits from a convolution: no linear head
    with pytest.raises(ModelContractError, match="linear layer"):
        refit_head(conv, tmp_path / "x.onnx", [(folder, 1.0)])
    (tmp_path / "taken.onnx").write_bytes(b"keep me")
    with pytest.raises(TrainingError, match="exists"):
        refit_head(model, tmp_path / "taken.onnx", [(folder, 1.0)])
    assert (tmp_path / "taken.onnx").read_bytes() == b"keep me"
    with pytest.raises(HPAError, match="model"):
        refit_head(model, model, [(folder, 1.0)])  # never over its input
    with pytest.raises(HPAError, match="nowhere"):
        refit_head(model, tmp_path / "nowhere" / "x.onnx", [(folder, 1.0)])
    with pytest.raises(TrainingError, match="positive number"):
        refit_head(model, tmp_path / "x.onnx", [(folder, 0.0)])
    with pytest.raises(TrainingError, match="strength"):
        refit_head(model, tmp_path / "x.onnx", [(folder, 1.0)], strength=-1)
    with pytest.raises(TrainingError, match="no such folder"):
        refit_head(model, tmp_path / "x.onnx", [(tmp_path / "nowhere", 1.0)])
    one = tmp_path / "one"
    labelled_folder(one, n=2)
    (one / "labels.csv").write_text("Id,Target\nf00,5\nf01,5\n")  # every field has class 5, no other
    with pytest.raises(TrainingError, match="nothing to fit"):
        refit_head(model, tmp_path / "x.onnx", [(one, 1.0)])
    assert not (tmp_path / "x.onnx").exists()


def test_cli(tmp_path, data, capsys):
    from napari_hpa.cli import main
    from napari_hpa.engine import Ensemble, ProviderRequest

    folder, x = data
    model = make_linear(tmp_path / "m.onnx")
    out = tmp_path / "refit.onnx"
    assert main(["models", "refit-head", str(model), "--data", str(folder), "--out", str(out),
                 "--tta", "none", "-q"]) == 0
    assert "classes refitted: 2 of 28" in capsys.readouterr().out
    ens = Ensemble.load(out, ProviderRequest())
    assert ens.predict([(x[0] * 255).astype(np.uint8)], tta="none").probs.shape == (1, NUM_CLASSES)
    rc = main(["models", "refit-head", str(model), "--data", str(folder), "--data-weight", "1",
               "--data-weight", "2", "--out", str(tmp_path / "y.onnx")])
    assert rc != 0 and "one weight per folder" in capsys.readouterr().err
    rc = main(["models", "refit-head", str(model), "--data", str(folder), "--classes", "0,x",
               "--out", str(tmp_path / "z.onnx")])
    assert rc != 0 and "--classes '0,x'" in capsys.readouterr().err
    assert main(["models", "refit-head", str(model), "--data", str(folder), "--classes", "3",
                 "--out", str(tmp_path / "z.onnx"), "--tta", "none", "-q"]) == 0
    assert "classes refitted: 1 of 28" in capsys.readouterr().out
