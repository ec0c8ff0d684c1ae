"""The ONNX ensemble engine: contract checks, providers, TTA, thresholds, ensembles."""

from __future__ import annotations

import json
import sys

import numpy as np
import onnxruntime as ort
import pytest
from onnx_toys import make_toy

from napari_hpa.engine import (
    Ensemble,
    EnsembleError,
    EnsembleSpec,
    MemberSpec,
    ModelContractError,
    ProviderError,
    ProviderRequest,
    apply_thresholds,
    attention_layer_geometry,
    write_manifest,
)
from napari_hpa.engine import tta as T
from napari_hpa.engine.providers import create_session
from napari_hpa.imageset import to_model_input


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def images(n=3, size=16, seed=0, dtype=np.uint8):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, np.iinfo(dtype).max, (4, size, size)).astype(dtype) for _ in range(n)]


@pytest.fixture
def toy(tmp_path):
    return make_toy(tmp_path / "toy.onnx")


# --------------------------------------------------------------------------- contract


def test_good_model_loads_and_matches_direct_onnxruntime(toy):
    ens = Ensemble.load(toy.path)
    ims = images()
    pred = ens.predict(ims, tta="none")
    x = np.stack([to_model_input(im, toy.size) for im in ims])
    sess = ort.InferenceSession(str(toy.path), providers=["CPUExecutionProvider"])
    logits, attention, embedding = sess.run(None, {"image": x})
    np.testing.assert_allclose(pred.probs, sigmoid(logits), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pred.member_probs["toy"], sigmoid(logits), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pred.attention, attention, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pred.embeddings, embedding, rtol=1e-5, atol=1e-6)
    # and with the numbers the toy's formulas give
    np.testing.assert_allclose(logits, toy.logits(x), rtol=1e-4, atol=1e-4)
    assert ens.members[0].info.input_size == 16
    assert ens.members[0].info.attention_shape == (4, 4)
    assert ens.members[0].info.embedding_dim == 8


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"channels": 3}, "input has 3 channels, the contract needs 4"),
        ({"input_name": "input"}, "exactly one input named 'image'"),
        ({"logits_name": "scores"}, "no output named 'logits'"),
        ({"n_classes": 27}, "'logits' has shape"),
        ({"drop_metadata": ("hpa_contract",)}, "no 'hpa_contract' metadata"),
        ({"metadata": {"hpa_contract": "2"}}, "contract version 2"),
        ({"drop_metadata": ("arch", "trained_on")}, "metadata is missing arch, trained_on"),
        ({"metadata": {"classes": json.dumps(["a"] * 28)}}, "must list the 28 HPA classes"),
        ({"metadata": {"classes": "not json"}}, "'classes' is not JSON"),
        ({"metadata": {"input_size": "32"}}, "metadata input_size is 32"),
        ({"metadata": {"input_size": "big"}}, "'input_size' is 'big'"),
        ({"metadata": {"thresholds": json.dumps([0.5] * 27)}}, "'thresholds' must be 28 numbers"),
        ({"metadata": {"thresholds": "[0.5,"}}, "'thresholds' is not a JSON list"),
    ],
)
def test_broken_contract_is_refused_with_reason(tmp_path, kwargs, fragment):
    path = tmp_path / "broken.onnx"
    make_toy(path, **kwargs)
    with pytest.raises(ModelContractError) as err:
        Ensemble.load(path)
    assert fragment in str(err.value)
    assert str(path) in str(err.value)


def test_not_an_onnx_file(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"junk")
    with pytest.raises(EnsembleError, match="onnxruntime cannot load"):
        Ensemble.load(path)


# --------------------------------------------------------------------------- providers


def test_auto_reports_providers_actually_in_use(toy):
    session, note = create_session(toy.path, ProviderRequest("auto"))
    used = session.get_providers()
    assert used[-1] == "CPUExecutionProvider"
    if "CUDAExecutionProvider" in ort.get_available_providers() and used == ["CPUExecutionProvider"]:
        assert note and "cuda" in note and "CPU" in note  # the fallback is said, not hidden


def test_cpu_only(toy):
    session, note = create_session(toy.path, ProviderRequest("cpu"))
    assert session.get_providers() == ["CPUExecutionProvider"] and note is None


def test_explicit_cuda_that_cannot_start_is_a_clear_error_not_a_crash(toy):
    try:
        session, _ = create_session(toy.path, ProviderRequest("cuda"))
    except ProviderError as exc:
        assert "cuda" in str(exc).lower()
    else:  # a machine with a working GPU
        assert session.get_providers()[0] == "CUDAExecutionProvider"


def test_missing_driver_is_found_by_its_library(monkeypatch):
    from napari_hpa.engine import providers

    monkeypatch.setattr(providers, "_DRIVER_LIBRARY", {sys.platform: "libnot-a-gpu-driver.so.9"})
    providers._missing_gpu_driver.cache_clear()
    try:
        assert "libnot-a-gpu-driver.so.9 could not be loaded" in providers._missing_gpu_driver()
        if sys.platform == "linux":  # any library that loads stands for the driver's
            monkeypatch.setattr(providers, "_DRIVER_LIBRARY", {"linux": "libc.so.6"})
            providers._missing_gpu_driver.cache_clear()
            assert providers._missing_gpu_driver() is None
    finally:
        providers._missing_gpu_driver.cache_clear()


def test_without_a_driver_cuda_is_not_even_tried(toy, monkeypatch):
    """No CUDA library loading (slow, and holding the GIL) where no driver can run it."""
    from napari_hpa.engine import providers

    monkeypatch.setattr(providers, "available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(providers, "_missing_gpu_driver", lambda: "no NVIDIA driver (libcuda.so.1 could not be loaded)")

    def no_preload():
        raise AssertionError("CUDA libraries loaded without a driver")

    monkeypatch.setattr(providers, "_preload_gpu_libraries", no_preload)
    session, note = create_session(toy.path, ProviderRequest("auto"))
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert note.startswith("cuda provider not in use: no NVIDIA driver (libcuda.so.1")
    assert note.endswith("running on the CPU")
    with pytest.raises(ProviderError, match=r"cuda provider not in use: no NVIDIA driver .*--provider auto"):
        create_session(toy.path, ProviderRequest("cuda"))


def test_unknown_provider():
    with pytest.raises(ProviderError, match="unknown provider 'gpu'"):
        ProviderRequest("gpu")
    with pytest.raises(ProviderError, match="threads must be 0 .all cores. or more, not -1"):
        ProviderRequest("cpu", threads=-1)


def test_threads_reach_the_session(toy):
    session, _ = create_session(toy.path, ProviderRequest("cpu", threads=1))
    assert session.get_session_options().intra_op_num_threads == 1


# --------------------------------------------------------------------------- TTA


def test_tta_views_are_the_d4_group():
    x = np.arange(9.0).reshape(3, 3)
    views = {T.apply(x, t).tobytes() for t in T.TTA_MODES["d4"]}
    assert len(views) == 8
    for t in T.TTA_MODES["d4"]:
        np.testing.assert_array_equal(T.invert(T.apply(x, t), t), x)
    np.testing.assert_array_equal(T.apply(x, T.TTA_MODES["flip"][1]), x[:, ::-1])


@pytest.mark.parametrize("mode", ["flip", "d4"])
@pytest.mark.parametrize("combine", ["mean", "max"])
def test_tta_matches_the_known_outputs_of_each_view(tmp_path, toy, mode, combine):
    manifest = tmp_path / "ensemble.json"
    write_manifest(EnsembleSpec([MemberSpec("toy", toy.path)], tta=mode, combine=combine), manifest)
    ens = Ensemble.load(manifest)
    ims = images()
    pred = ens.predict(ims)
    x = np.stack([to_model_input(im, toy.size) for im in ims])
    per_view = np.stack([sigmoid(toy.logits(T.apply(x, t))) for t in T.TTA_MODES[mode]])
    expected = per_view.mean(0) if combine == "mean" else per_view.max(0)
    np.testing.assert_allclose(pred.probs, expected, rtol=1e-4, atol=1e-5)
    # the views really differ, so the test would notice a missing or wrong view
    assert np.abs(per_view[0] - per_view[1]).max() > 1e-2
    # attention seen through each view, mapped back, is the plain attention
    np.testing.assert_allclose(pred.attention, toy.attention(x), rtol=1e-4, atol=1e-5)


def test_tta_override_and_unknown(toy):
    ens = Ensemble.load(toy.path)
    assert ens.spec.tta == "none"
    ims = images(1)
    assert not np.allclose(ens.predict(ims, tta="d4").probs, ens.predict(ims).probs)
    with pytest.raises(ValueError, match="unknown TTA"):
        ens.predict(ims, tta="d8")


def test_images_of_any_size_are_resized(toy):
    ens = Ensemble.load(toy.path)
    big = images(2, size=64)
    pred = ens.predict(big)
    x = np.stack([to_model_input(im, 16) for im in big])
    np.testing.assert_allclose(pred.probs, sigmoid(toy.logits(x)), rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- thresholds


def test_thresholds_and_min_one_label():
    probs = np.array([[0.1, 0.6, 0.3], [0.2, 0.1, 0.05], [0.9, 0.95, 0.4]], np.float32)
    probs = np.pad(probs, ((0, 0), (0, 25)))
    thr = np.full(28, 0.5, np.float32)
    thr[2] = 0.25
    labels = apply_thresholds(probs, thr, min_one_label=False)
    assert [list(np.flatnonzero(r)) for r in labels] == [[1, 2], [], [0, 1, 2]]
    labels = apply_thresholds(probs, thr, min_one_label=True)
    assert [list(np.flatnonzero(r)) for r in labels] == [[1, 2], [0], [0, 1, 2]]
    # the top class is on even when its own threshold is higher
    thr[1] = 0.99
    labels = apply_thresholds(probs, thr, min_one_label=True)
    assert list(np.flatnonzero(labels[2])) == [0, 1, 2]


def test_model_metadata_thresholds_apply_to_a_single_model(tmp_path):
    thr = [0.9] * 28
    path = tmp_path / "t.onnx"
    make_toy(path, metadata={"thresholds": json.dumps(thr)})
    ens = Ensemble.load(path)
    np.testing.assert_allclose(ens.thresholds, thr)
    pred = ens.predict(images(4))
    expected = apply_thresholds(pred.probs, np.array(thr, np.float32), True)
    np.testing.assert_array_equal(pred.labels, expected)


# --------------------------------------------------------------------------- ensembles


def test_weighted_ensemble_of_members(tmp_path):
    a = make_toy(tmp_path / "a.onnx", seed=1, emb_dim=None)
    b = make_toy(tmp_path / "b.onnx", seed=2, size=32, grid=8, attention=True, emb_dim=6)
    c = make_toy(tmp_path / "c.onnx", seed=3, attention=False, emb_dim=None)
    thr = [0.3] * 28
    spec = EnsembleSpec(
        [MemberSpec("a", a.path, 1.0), MemberSpec("b", b.path, 2.0), MemberSpec("c", c.path, 1.0)],
        thresholds=tuple(thr),
        min_one_label=False,
        embedding_member="b",
    )
    manifest = write_manifest(spec, tmp_path / "ens" / "ensemble.json")
    data = json.loads(manifest.read_text())
    # members outside the ensemble's folder are brought into it (linked, or copied)
    assert data["members"][0]["path"] == "a.onnx"
    assert (tmp_path / "ens" / "a.onnx").read_bytes() == a.path.read_bytes()
    ens = Ensemble.load(manifest.parent)  # a folder holding ensemble.json
    ims = images(3, size=32)
    pred = ens.predict(ims, ids=["x", "y", "z"])
    xa = np.stack([to_model_input(im, 16) for im in ims])
    xb = np.stack([to_model_input(im, 32) for im in ims])
    pa, pb, pc = sigmoid(a.logits(xa)), sigmoid(b.logits(xb)), sigmoid(c.logits(xa))
    np.testing.assert_allclose(pred.probs, (pa + 2 * pb + pc) / 4, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(pred.labels, pred.probs >= 0.3)
    # attention: members a (4x4) and b (8x8) averaged on a's grid, weights 1:2
    assert pred.attention.shape == (3, 28, 4, 4)
    from skimage.transform import resize

    att_b = resize(b.attention(xb), (3, 28, 4, 4), order=1, preserve_range=True)
    np.testing.assert_allclose(pred.attention, (a.attention(xa) + 2 * att_b) / 3, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(pred.embeddings, b.embedding(xb), rtol=1e-4, atol=1e-5)
    assert pred.ids == ["x", "y", "z"]
    assert set(ens.providers) == {"a", "b", "c"}


def test_member_with_weight_zero_keeps_its_maps_but_not_its_vote(tmp_path):
    a = make_toy(tmp_path / "a.onnx", seed=1, emb_dim=6)  # attention and embedding
    c = make_toy(tmp_path / "c.onnx", seed=3, attention=False, emb_dim=None)
    spec = EnsembleSpec([MemberSpec("a", a.path, 0.0), MemberSpec("c", c.path, 1.0)], embedding_member="a")
    ens = Ensemble.load(write_manifest(spec, tmp_path / "ensemble.json"))
    assert [m.spec.weight for m in ens.members] == [0.0, 1.0]
    ims = images(3)
    pred = ens.predict(ims, tta="none")
    x = np.stack([to_model_input(im, 16) for im in ims])
    np.testing.assert_allclose(pred.probs, sigmoid(c.logits(x)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(pred.member_probs["a"], sigmoid(a.logits(x)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(pred.attention, a.attention(x), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(pred.embeddings, a.embedding(x), rtol=1e-4, atol=1e-5)


def test_stacked_ensemble_combines_members_per_class(tmp_path):
    from napari_hpa.engine.ensemble import Stacking

    a = make_toy(tmp_path / "a.onnx", seed=1, emb_dim=None)
    b = make_toy(tmp_path / "b.onnx", seed=2, attention=False, emb_dim=None)
    rng = np.random.default_rng(0)
    bias, w = rng.normal(0, 1, 28), rng.normal(0, 1, (2, 28))
    spec = EnsembleSpec([MemberSpec("a", a.path, 1.0), MemberSpec("b", b.path, 3.0)], stacking=Stacking(bias, w))
    manifest = write_manifest(spec, tmp_path / "ensemble.json")
    assert set(json.loads(manifest.read_text())["stacking"]["weights"]) == {"a", "b"}
    ens = Ensemble.load(manifest)
    np.testing.assert_allclose(ens.spec.stacking.weights, w, atol=1e-6)
    ims = images(4)
    pred = ens.predict(ims, tta="none")
    x = np.stack([to_model_input(im, 16) for im in ims])
    la, lb = a.logits(x), b.logits(x)
    np.testing.assert_allclose(pred.probs, sigmoid(bias + w[0] * la + w[1] * lb), rtol=1e-4, atol=1e-5)
    # the member weights still weigh the attention maps (only a has one here)
    np.testing.assert_allclose(pred.attention, a.attention(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda d: d.update(stacking=[1, 2]), "'stacking': input should be a valid dictionary"),
        (lambda d: d.update(stacking={"bias": [0] * 27, "weights": {"toy": [1] * 28}}), "'stacking.bias' must be"),
        (lambda d: d.update(stacking={"bias": [0] * 28, "weights": {"other": [1] * 28}}), "one list per member (toy)"),
        (lambda d: d.update(stacking={"bias": [0] * 28, "weights": {"toy": [1] * 27 + [float("nan")]}}),
         "'stacking.weights.toy' must be a list of 28 finite numbers"),
        (lambda d: d.update(hpa_ensemble=2), "reads version 1"),
        (lambda d: d.update(members=[]), "'members': list should have at least 1 item"),
        (lambda d: d["members"][0].update(path="nope.onnx"), "members[0].path 'nope.onnx'"),
        (lambda d: d["members"][0].update(weight=-1), "'members[0].weight': input should be greater than or equal to 0"),
        (lambda d: d["members"][0].update(weight="1"), "'members[0].weight': input should be a valid number (got '1')"),
        (lambda d: d["members"][0].update(weight=0), "at least one member needs a weight > 0"),
        (lambda d: d.update(tta="d8"), "'tta': input should be 'none', 'flip' or 'd4' (got 'd8')"),
        (lambda d: d.update(combine="median"), "'combine': input should be 'mean' or 'max' (got 'median')"),
        (lambda d: d.update(thresholds=[0.5] * 3), "'thresholds': list should have at least 28 items"),
        (lambda d: d.update(embedding_member="zz"), "'embedding_member' 'zz' is not a member"),
    ],
)
def test_bad_manifest(tmp_path, toy, change, fragment):
    manifest = write_manifest(EnsembleSpec([MemberSpec("toy", toy.path)]), tmp_path / "ensemble.json")
    data = json.loads(manifest.read_text())
    change(data)
    manifest.write_text(json.dumps(data))
    with pytest.raises(EnsembleError) as err:
        Ensemble.load(manifest)
    assert fragment in str(err.value) and str(manifest) in str(err.value)


def test_manifest_not_json(tmp_path):
    (tmp_path / "ensemble.json").write_text("{")
    with pytest.raises(EnsembleError, match="not valid JSON"):
        Ensemble.load(tmp_path)


def test_embedding_member_without_embedding(tmp_path):
    a = make_toy(tmp_path / "a.onnx", emb_dim=None)
    manifest = write_manifest(
        EnsembleSpec([MemberSpec("a", a.path)], embedding_member="a"), tmp_path / "ensemble.json"
    )
    with pytest.raises(EnsembleError, match="has no 'embedding' output"):
        Ensemble.load(manifest)


def test_attention_geometry_covers_the_image():
    scale, translate = attention_layer_geometry((512, 512), (32, 32))
    assert scale == (16.0, 16.0) and translate == (7.5, 7.5)
    # first cell's outer edge is the image's outer edge (-0.5), last cell's is 511.5
    assert translate[0] - scale[0] / 2 == -0.5
    assert translate[0] + 31 * scale[0] + scale[0] / 2 == 511.5
