"""Train -> export -> onnxruntime -> contract + parity, resume, overfit, bad input, ensemble build."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")
pytest.importorskip("onnx")
pytest.importorskip("iterstrat")

from napari_hpa.cli import main  # noqa: E402

ARCHS = ["densenet121", "dual-resnet34", "gapnet", "arcface-resnet", "timm:resnet18"]
EXPECTED_OUTPUTS = {
    "densenet121": {"logits"},
    "dual-resnet34": {"logits", "attention"},
    "gapnet": {"logits"},
    "arcface-resnet": {"logits", "embedding"},
    "timm:resnet18": {"logits"},
}


def _train(data, out, arch, *extra):
    return main(
        ["train", "--data", str(data), "--arch", arch, "--size", "64", "--epochs", "1", "--out", str(out),
         "--folds", "4", "--fold", "0", "--batch-size", "4", "--limit-steps", "2", "--threads", "2",
         "--seed", "0", "-q", *extra]
    )


@pytest.fixture(scope="module")
def exported(tiny_data, tmp_path_factory):
    """Each architecture trained for 2 steps and exported: arch -> (run dir, onnx path, export stdout)."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for arch in ARCHS:
        name = arch.replace(":", "_")
        run = root / name
        assert _train(tiny_data, run, arch) == 0
        onnx_path = root / f"{name}.onnx"
        assert main(["export", str(run), "--out", str(onnx_path)]) == 0
        out[arch] = (run, onnx_path)
    return out


@pytest.mark.parametrize("arch", ARCHS)
def test_train_export_contract_parity(arch, exported, tiny_data):
    import onnxruntime as ort

    from napari_hpa.engine.contract import check_contract
    from napari_hpa.train.export import load_images
    from napari_hpa.train.loop import load_checkpoint, model_from_checkpoint

    run, path = exported[arch]
    config = json.loads((run / "config.json").read_text())
    assert config["arch"] == arch and config["input_size"] == 64
    assert "synthetic generator v" in config["trained_on"] and "seed 1" in config["trained_on"]
    rows = list(csv.DictReader(open(run / "log.csv")))
    assert [r["epoch"] for r in rows] == ["1"]
    assert set(rows[0]) == {"epoch", "train_loss", "val_loss", "val_macro_f1", "seconds"}
    assert float(rows[0]["val_macro_f1"]) >= 0

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    info = check_contract(sess, path)
    assert info.arch == arch and info.input_size == 64
    assert {o.name for o in sess.get_outputs()} == EXPECTED_OUTPUTS[arch]
    assert sess.get_inputs()[0].shape[0] == "N"  # dynamic batch

    x = load_images(tiny_data, 64, 5)  # an odd batch size: the batch is dynamic
    model = model_from_checkpoint(load_checkpoint(run / "last.pt")).eval()
    with torch.no_grad():
        ref = model(torch.from_numpy(x))
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"image": x})))
    assert np.abs(ref["logits"].numpy() - got["logits"]).max() < 1e-3
    if "attention" in got:
        assert got["attention"].shape == (5, 28, 4, 4)
        assert np.abs(ref["attention"].numpy() - got["attention"]).max() < 1e-4
    if "embedding" in got:
        assert np.allclose(np.linalg.norm(got["embedding"], axis=1), 1, atol=1e-4)


def test_export_prints_parity_and_int8(exported, tiny_data, tmp_path, capsys):
    run, _ = exported["gapnet"]
    out = tmp_path / "q.onnx"
    assert main(["export", str(run), "--out", str(out), "--int8", "--calib", str(tiny_data),
                 "--thresholds", "0.4"]) == 0
    text = capsys.readouterr()
    assert "max abs logit difference" in text.err + text.out
    assert "label agreement" in text.out
    import onnxruntime as ort

    from napari_hpa.engine.contract import check_contract

    info = check_contract(ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]), out)
    assert info.thresholds == (0.4,) * 28
    onnx = __import__("onnx")
    graph = onnx.load(str(out)).graph
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in graph.node}
    # activations are quantized to uint8 (the x86 kernels' native form), weights to int8
    zero_points = {t.name: t.data_type for t in graph.initializer}
    act = {zero_points[n.input[2]] for n in graph.node if n.op_type == "QuantizeLinear"}
    assert act == {onnx.TensorProto.UINT8}


def test_resume_continues_epoch_count(tiny_data, tmp_path):
    run = tmp_path / "run"
    assert _train(tiny_data, run, "gapnet") == 0
    ck1 = torch.load(run / "last.pt", weights_only=True)
    assert ck1["epoch"] == 1
    assert _train(tiny_data, run, "gapnet", "--epochs", "2", "--resume") == 0
    ck2 = torch.load(run / "last.pt", weights_only=True)
    assert ck2["epoch"] == 2 and ck2["arch"] == "gapnet"
    rows = list(csv.DictReader(open(run / "log.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    # the weights moved on from the first checkpoint
    k = next(k for k in ck1["model"] if k.endswith("fc2.weight"))
    assert not torch.equal(ck1["model"][k], ck2["model"][k])


def test_init_starts_from_another_runs_weights(exported, tiny_data, tmp_path):
    """--init copies every tensor of a run of the same arch, head included; a data-sized head
    (ArcFace over other antibodies) starts fresh; the new run counts its own epochs."""
    from napari_hpa.train.loop import TrainConfig, build_model, init_checkpoint, load_init

    src, _ = exported["timm:resnet18"]
    run = tmp_path / "ft"
    assert _train(tiny_data, run, "timm:resnet18", "--init", str(src), "--lr", "0") == 0
    before = torch.load(src / "last.pt", weights_only=True)["model"]
    after = torch.load(run / "last.pt", weights_only=True)
    assert after["epoch"] == 1
    # lr 0 (warm-up and cosine scale it, AdamW decay is lr-scaled): the weights are the source's
    for k, v in before.items():
        if "running" not in k and "num_batches" not in k:
            assert torch.equal(after["model"][k], v), k

    src, _ = exported["arcface-resnet"]
    ckpt = init_checkpoint(TrainConfig(data="", arch="arcface-resnet", out="", init=str(src)))
    kw = dict(ckpt["build_kwargs"], num_ids=ckpt["build_kwargs"]["num_ids"] + 3)
    model = build_model("arcface-resnet", **kw)
    n, fresh = load_init(model, ckpt)
    assert fresh and all("arc" in k for k in fresh), fresh
    assert n == len(model.state_dict()) - len(fresh)


def test_folds_give_out_of_fold_probabilities_for_review(tiny_data, tmp_path):
    """Each fold writes val_probs.csv for its held-out ids; the K files import into a session."""
    from napari_hpa.labels import read_labels, read_probabilities
    from napari_hpa.review.store import ReviewSession

    files, held_out = [], []
    for i in range(4):
        run = tmp_path / f"fold{i}"
        assert _train(tiny_data, run, "timm:resnet18", "--fold", str(i)) == 0
        ids, p = read_probabilities(run / "val_probs.csv")
        assert p.shape == (len(ids), 28) and ((p >= 0) & (p <= 1)).all()
        held_out += ids
        files.append(run / "val_probs.csv")
    all_ids = read_labels(tiny_data / "labels.csv").ids
    assert sorted(held_out) == sorted(all_ids)  # every id held out exactly once

    session = tmp_path / "s.hpa"
    assert main(["labels", "import", "--images", str(tiny_data), "--labels", str(tiny_data / "labels.csv"),
                 "--probs", *map(str, files), "--session", str(session)]) == 0
    with ReviewSession.open(session) as s:
        ids, p = read_probabilities(files[2])
        np.testing.assert_allclose(s.probabilities(ids[0]), p[0])
    # a fold missing is an error naming an id without probabilities; nothing is written
    assert main(["labels", "import", "--labels", str(tiny_data / "labels.csv"),
                 "--probs", *map(str, files[:3]), "--session", str(tmp_path / "t.hpa")]) == 2
    assert not (tmp_path / "t.hpa").exists()


def test_training_is_seeded(tiny_data, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert _train(tiny_data, a, "timm:resnet18") == 0
    assert _train(tiny_data, b, "timm:resnet18") == 0
    ma = torch.load(a / "last.pt", weights_only=True)["model"]
    mb = torch.load(b / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(ma[k], mb[k]) for k in ma)


def test_val_every_validates_less_and_trains_the_same_weights(tiny_data, tmp_path):
    """--val-every 0 validates after the last epoch only; validation draws no random numbers
    from the training's stream, so the weights are those of a run validated every epoch."""
    every, last = tmp_path / "every", tmp_path / "last"
    assert _train(tiny_data, every, "timm:resnet18", "--epochs", "3") == 0
    assert _train(tiny_data, last, "timm:resnet18", "--epochs", "3", "--val-every", "0") == 0
    rows = {r: list(csv.DictReader(open(r / "log.csv"))) for r in (every, last)}
    assert [bool(x["val_macro_f1"]) for x in rows[every]] == [True, True, True]
    assert [bool(x["val_macro_f1"]) for x in rows[last]] == [False, False, True]
    assert rows[every][2]["val_loss"] == rows[last][2]["val_loss"]
    ma = torch.load(every / "last.pt", weights_only=True)["model"]
    mb = torch.load(last / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(ma[k], mb[k]) for k in ma)
    two = tmp_path / "two"
    assert _train(tiny_data, two, "timm:resnet18", "--epochs", "3", "--val-every", "2") == 0
    assert [bool(x["val_macro_f1"]) for x in csv.DictReader(open(two / "log.csv"))] == [False, True, True]


def test_cache_keeps_8bit_sets_as_uint8(tiny_data):
    """The training cache holds 8-bit sets in a quarter of the memory, within half a grey level."""
    from napari_hpa.train.data import HPADataset, load_data

    spec = load_data(tiny_data)
    cached, plain = HPADataset(spec, [0, 1], 48), HPADataset(spec, [0, 1], 48, cache=False)
    first = cached.load(0)
    assert cached.cache[0].dtype == np.uint8 and cached.cache[0].shape == (4, 48, 48)
    assert first.dtype == np.float32
    np.testing.assert_allclose(first, plain.load(0), atol=0.5 / 255 + 1e-6)
    np.testing.assert_array_equal(cached.load(0), first)  # from the cache, the same input


def test_crop_windows_are_at_the_input_scale():
    """--crop: a training item is a D4 transform of a crop x crop window of the input, unresized."""
    from napari_hpa.engine import tta
    from napari_hpa.train.data import augment

    x = np.random.default_rng(0).random((4, 64, 64), dtype=np.float32)
    for seed in range(10):
        y = augment(x, np.random.default_rng(seed), scale_p=0.0, crop=32)
        assert y.shape == (4, 32, 32)
        found = False
        for t in tta.TTA_MODES["d4"]:
            w = tta.invert(y, t)
            (a, b), = np.argwhere(x[0] == w[0, 0, 0])  # random values: one place only
            found |= np.array_equal(x[:, a:a + 32, b:b + 32], w)
        assert found, seed
    # with scale jitter the window is resized to the crop size
    assert augment(x, np.random.default_rng(1), scale_p=1.0, crop=32).shape == (4, 32, 32)


def test_augment_reports_the_window_it_shows():
    from napari_hpa.engine import tta
    from napari_hpa.train.data import augment

    x = np.random.default_rng(0).random((4, 64, 64), dtype=np.float32)
    for seed in range(10):
        window = []
        y = augment(x, np.random.default_rng(seed), scale_p=0.0, crop=32, window=window)
        (a, b, side), = window
        assert side == 32
        assert any(np.array_equal(x[:, a:a + 32, b:b + 32], tta.invert(y, t)) for t in tta.TTA_MODES["d4"]), seed
    window = []
    augment(x, np.random.default_rng(0), scale_p=0.0, window=window)
    assert window == [(0, 0, 64)]


def test_window_targets_drop_classes_whose_mask_lies_outside():
    from napari_hpa.train.data import MASK_GRID, presence_grids, window_targets

    masks = np.zeros((28, 128, 128), bool)
    masks[3, 4:8, 4:8] = True  # top left
    masks[16, 100:110, 100:110] = True  # bottom right
    target = np.zeros(28, np.float32)
    target[[3, 16, 25]] = 1  # 25 is labelled but has no mask: it keeps its label
    classes = np.flatnonzero(target)
    grids = presence_grids(masks, classes, 64)  # the model sees the field at half its size
    assert grids.shape == (3, 64 // MASK_GRID, 64 // MASK_GRID) and not grids[2].any()
    kept = lambda w: list(np.flatnonzero(window_targets(target, classes, grids, w)))  # noqa: E731
    assert kept((0, 0, 64)) == [3, 16, 25]
    assert kept((0, 0, 16)) == [3, 25]
    assert kept((40, 40, 24)) == [16, 25]
    assert kept((20, 0, 16)) == [25]
    assert target.sum() == 3  # the image's own targets are untouched


def test_crop_targets_masks_trains_on_what_the_window_shows(tiny_data, tmp_path):
    from napari_hpa.dataset import load_masks
    from napari_hpa.train.data import MASK_GRID, HPADataset, augment, load_data

    spec = load_data(tiny_data)
    ds = HPADataset(spec, np.arange(len(spec)), 64, augment=True, crop=16, crop_targets="masks")
    dropped = kept = 0
    for epoch in range(3):
        ds.epoch = epoch
        for i in range(len(spec)):
            t = ds[i]["target"].numpy()
            window = []  # the window the item was cut from (the dataset's own random stream)
            augment(ds.load(i), np.random.default_rng((ds.seed, epoch, i)), crop=16, window=window)
            (y0, x0, side), = window
            masks = load_masks(tiny_data / "masks" / f"{spec.ids[i]}.npz")  # 128 px: 2 per input pixel
            for c in np.flatnonzero(spec.targets[i]):
                inside = masks[c, 2 * y0:2 * (y0 + side), 2 * x0:2 * (x0 + side)].any()
                g0y, g0x = 2 * MASK_GRID * (y0 // MASK_GRID), 2 * MASK_GRID * (x0 // MASK_GRID)
                near = masks[c, g0y:2 * (y0 + side) + 2 * MASK_GRID, g0x:2 * (x0 + side) + 2 * MASK_GRID].any()
                if t[c]:
                    assert near, (i, c)  # kept: the mask reaches into the window (to a grid cell)
                    kept += 1
                else:
                    assert not inside, (i, c)  # dropped: no mask pixel in the window
                    dropped += 1
            assert not (t > spec.targets[i]).any()
    assert dropped > 0 and kept > 0  # 16-px windows of 64 px miss some classes and show others
    run = tmp_path / "run"
    assert _train(tiny_data, run, "timm:resnet18", "--crop", "32", "--crop-targets", "masks") == 0
    assert json.loads((run / "config.json").read_text())["args"]["crop_targets"] == "masks"


def test_crop_targets_bad_input(tiny_data, tmp_path, capsys):
    import shutil

    base = ["train", "--arch", "gapnet", "--out", str(tmp_path / "r"), "--crop-targets", "masks"]
    assert "--crop-targets masks needs --crop" in _error(capsys, base + ["--data", str(tiny_data)])
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    gone = sorted((data / "masks").glob("*.npz"))[0]
    gone.unlink()
    err = _error(capsys, base + ["--data", str(data), "--crop", "32"])
    assert f"no mask file in {data / 'masks'}" in err and gone.name in err
    assert not (tmp_path / "r").exists()


def test_train_with_crop_validates_and_exports_the_whole_input(tiny_data, tmp_path):
    import onnxruntime as ort

    from napari_hpa.engine.contract import check_contract

    run = tmp_path / "run"
    assert _train(tiny_data, run, "timm:resnet18", "--crop", "32") == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["input_size"] == 64 and cfg["args"]["crop"] == 32
    assert main(["export", str(run), "--out", str(tmp_path / "m.onnx")]) == 0
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert check_contract(sess).input_size == 64


def test_bf16_training_records_its_precision_and_exports_float32(tiny_data, tmp_path, capsys):
    import onnx

    from napari_hpa.train.loop import TrainConfig, train
    from napari_hpa.errors import TrainingError

    run = tmp_path / "run"
    assert _train(tiny_data, run, "timm:resnet18", "--precision", "bf16") == 0
    assert json.loads((run / "config.json").read_text())["args"]["precision"] == "bf16"
    assert main(["export", str(run), "--out", str(tmp_path / "m.onnx")]) == 0
    model = onnx.load(str(tmp_path / "m.onnx"))
    assert {i.data_type for i in model.graph.initializer} == {onnx.TensorProto.FLOAT}
    with pytest.raises(TrainingError, match="unknown --precision 'fp16'; choose one of fp32, bf16"):
        train(TrainConfig(data=str(tiny_data), arch="gapnet", out=str(tmp_path / "r"), precision="fp16"))
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(("arch", "precision"), [("dual-resnet34", "fp32"), ("arcface-resnet", "fp32"),
                                                 ("gapnet", "fp32"), ("densenet121", "fp32"),
                                                 ("dual-resnet34", "bf16"), ("arcface-resnet", "bf16")])
def test_loss_goes_down_on_a_fixed_batch(arch, precision, tiny_data):
    from napari_hpa.train.data import HPADataset, load_data
    from napari_hpa.train.loop import _forward
    from napari_hpa.train.losses import make_criterion, pos_weights
    from napari_hpa.train.models import build_model

    torch.manual_seed(0)
    torch.set_num_threads(2)
    spec = load_data(tiny_data)
    ds = HPADataset(spec, np.arange(8), 64)
    batch = {k: torch.stack([torch.as_tensor(ds[i][k]) for i in range(8)]) for k in ("image", "target", "antibody")}
    kw = {"num_ids": int(spec.antibody_ids.max()) + 1} if arch == "arcface-resnet" else {}
    if arch in ("dual-resnet34", "arcface-resnet"):
        kw["backbone"] = "resnet18"  # the same code path, half the CPU time
    model = build_model(arch, **kw)
    crit = make_criterion(arch, "combo", pos_weights(batch["target"]), model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    history = []
    for _ in range(20):
        out = _forward(model, batch["image"], precision)
        assert all(v.dtype == torch.float32 for v in out.values()), {k: v.dtype for k, v in out.items()}
        loss, _ = crit(out, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    assert np.mean(history[-3:]) < 0.85 * np.mean(history[:3]), history


# --------------------------------------------------------------------------- bad input


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err


def test_missing_folder(tmp_path, capsys):
    err = _error(capsys, ["train", "--data", str(tmp_path / "nope"), "--arch", "gapnet", "--out", str(tmp_path / "r")])
    assert "no such folder" in err and "nope" in err
    assert not (tmp_path / "r").exists()


def test_malformed_folder(tmp_path, capsys):
    (tmp_path / "d").mkdir()
    err = _error(capsys, ["train", "--data", str(tmp_path / "d"), "--arch", "gapnet", "--out", str(tmp_path / "r")])
    assert "labels.csv" in err
    (tmp_path / "d" / "labels.csv").write_text("Id,Target\nx,99\n")
    err = _error(capsys, ["train", "--data", str(tmp_path / "d"), "--arch", "gapnet", "--out", str(tmp_path / "r")])
    assert "line 2" in err and "99" in err


def test_unknown_arch(tiny_data, tmp_path, capsys):
    err = _error(capsys, ["train", "--data", str(tiny_data), "--arch", "timm:no_such_net", "--out", str(tmp_path / "r")])
    assert "timm does not know" in err
    err = _error(capsys, ["train", "--data", str(tiny_data), "--arch", "resnet9000", "--out", str(tmp_path / "r")])
    assert "unknown architecture 'resnet9000'" in err


def test_negative_map_weight(tiny_data, tmp_path, capsys):
    err = _error(capsys, ["train", "--data", str(tiny_data), "--arch", "dual-resnet34", "--map-weight", "-1",
                          "--out", str(tmp_path / "r")])
    assert "--map-weight must be 0 or more" in err
    assert not (tmp_path / "r").exists()


def test_negative_val_every(tiny_data, tmp_path, capsys):
    err = _error(capsys, ["train", "--data", str(tiny_data), "--arch", "gapnet", "--val-every", "-1",
                          "--out", str(tmp_path / "r")])
    assert "--val-every must be 0 or more (got -1)" in err
    assert not (tmp_path / "r").exists()


def test_crop_out_of_range(tiny_data, tmp_path, capsys):
    for crop in ("16", "65"):
        err = _error(capsys, ["train", "--data", str(tiny_data), "--arch", "gapnet", "--size", "64",
                              "--crop", crop, "--out", str(tmp_path / "r")])
        assert f"--crop must be between 32 and --size 64 (got {crop})" in err
    assert not (tmp_path / "r").exists()


def test_labels_naming_unknown_ids(tiny_data, tmp_path, capsys):
    labels = tmp_path / "labels.csv"
    labels.write_text((tiny_data / "labels.csv").read_text() + "ghost_0001,3,abX\n")
    err = _error(capsys, ["train", "--data", str(tiny_data), "--labels", str(labels), "--arch", "gapnet",
                          "--out", str(tmp_path / "r")])
    assert "ghost_0001" in err and "without an image set" in err


def test_checkpoint_of_another_arch(exported, tiny_data, capsys):
    run, _ = exported["dual-resnet34"]
    err = _error(capsys, ["train", "--data", str(tiny_data), "--arch", "gapnet", "--out", str(run), "--resume"])
    assert "architecture 'dual-resnet34', not 'gapnet'" in err
    err = _error(capsys, ["train", "--data", str(tiny_data), "--arch", "dual-resnet34", "--out", str(run)])
    assert "already holds a training run" in err


def test_init_bad_input(exported, tiny_data, tmp_path, capsys):
    run, _ = exported["dual-resnet34"]
    err = _error(capsys, ["train", "--data", str(tiny_data), "--arch", "gapnet", "--init", str(run),
                          "--out", str(tmp_path / "r")])
    assert "is a run of architecture 'dual-resnet34', not 'gapnet'" in err
    err = _error(capsys, ["train", "--data", str(tiny_data), "--arch", "gapnet", "--init", str(tmp_path / "none"),
                          "--out", str(tmp_path / "r")])
    assert "no such file" in err and "none" in err
    err = _error(capsys, ["train", "--data", str(tiny_data), "--arch", "dual-resnet34", "--init", str(run),
                          "--pretrained", str(run / "last.pt"), "--out", str(tmp_path / "r")])
    assert "leave out --pretrained" in err
    assert not (tmp_path / "r").exists()


def test_ensemble_build_bad_input(exported, tiny_data, tmp_path, capsys):
    member = str(exported["gapnet"][1])
    out = tmp_path / "m" / "ensemble.json"
    base = ["ensemble", "build", member, "--val", str(tiny_data), "--out", str(out)]
    assert "--weights has 2 numbers for 1 members" in _error(capsys, base + ["--weights", "1", "2"])
    assert "--weights must be >= 0 with at least one > 0" in _error(capsys, base + ["--weights", "0"])
    assert "--weights must be >= 0 with at least one > 0" in _error(capsys, base + ["--weights=-1"])
    assert "--stack-c must be positive, not 0.0" in _error(capsys, base + ["--stack", "--stack-c", "0"])
    assert "is not a member" in _error(capsys, base + ["--embedding-member", "zz"])
    err = _error(capsys, ["ensemble", "build", str(tmp_path / "none.onnx"), "--val", str(tiny_data), "--out", str(out)])
    assert "no such file" in err
    assert not out.exists()


def test_export_bad_input(tmp_path, capsys):
    err = _error(capsys, ["export", str(tmp_path / "none"), "--out", str(tmp_path / "m.onnx")])
    assert "no such folder" in err


# --------------------------------------------------------------------------- ensemble


def test_ensemble_build_and_evaluate(exported, tiny_data, tmp_path, capsys):
    from napari_hpa.engine import Ensemble

    members = [str(exported[a][1]) for a in ("dual-resnet34", "arcface-resnet", "gapnet")]
    manifest = tmp_path / "models" / "tiny" / "ensemble.json"
    emb = exported["arcface-resnet"][1].stem
    assert main(["ensemble", "build", *members, "--val", str(tiny_data), "--out", str(manifest),
                 "--thresholds", "ratio", "--tta", "flip", "--embedding-member", emb, "-q",
                 "--provider", "cpu", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("member ") == 3 and "ensemble: macro F1" in out
    assert "run on CPUExecutionProvider)" in out
    ens = Ensemble.load(manifest)
    assert ens.spec.thresholds is not None and len(ens.spec.thresholds) == 28
    assert ens.spec.tta == "flip" and ens.embedding_member.name == emb
    assert main(["evaluate", "--models", str(manifest), "--data", str(tiny_data), "--json", "-q",
                 "--provider", "cpu", "--threads", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_images"] == 16 and report["providers"] == ["CPUExecutionProvider"]
    assert 0 <= report["macro_f1"] <= 1
    assert report["pointing_game"] is not None and report["pointing_pairs"] > 0
    assert report["retrieval_top1"] is not None and report["retrieval_n"] == 16
    # --stack: a per-class logistic combination, fitted on the same folder, in the manifest
    stacked = tmp_path / "models" / "stacked" / "ensemble.json"
    assert main(["ensemble", "build", *members, "--val", str(tiny_data), "--out", str(stacked),
                 "--stack", "--stack-c", "0.5", "-q"]) == 0
    assert "ensemble (stacked): macro F1" in capsys.readouterr().out
    ens = Ensemble.load(stacked)
    assert ens.spec.stacking is not None and ens.spec.stacking.weights.shape == (3, 28)
    assert main(["evaluate", "--models", str(stacked), "--data", str(tiny_data), "--json", "-q"]) == 0
    assert 0 <= json.loads(capsys.readouterr().out)["macro_f1"] <= 1
