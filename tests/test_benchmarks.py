"""The benchmark scripts run end to end at tiny sizes (their figures are not checked here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hpa_testing import BENCHMARKS as BENCH, load_benchmark


def _run(script: str, *args: str, cwd=None, timeout: int = 600) -> str:
    out = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                         cwd=cwd, timeout=timeout, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_bench_noise_review(tmp_path):
    """Recall at K of each queue order, on a session whose corrupted ids are known."""
    from napari_hpa.labels import write_labels, write_probabilities
    from napari_hpa.review.store import ReviewSession

    rng = np.random.default_rng(0)
    ids = [f"im{i:03d}" for i in range(60)]
    truth = {i: (int(rng.integers(28)),) for i in ids}
    noisy = dict(truth)
    corrupted = ids[::10]  # 6 images: each given a class that is not there
    for i in corrupted:
        noisy[i] = tuple(sorted({truth[i][0], (truth[i][0] + 1) % 28}))
    probs = np.full((60, 28), 0.02)
    for n, i in enumerate(ids):
        probs[n, truth[i][0]] = 0.95  # a model that knows the truth
    write_labels(tmp_path / "noisy.csv", noisy)
    write_probabilities(tmp_path / "p.csv", ids, probs)
    (tmp_path / "noise.csv").write_text(
        "Id,Target,Noisy,Change\n" + "".join(f"{i},{truth[i][0]},x,added\n" for i in corrupted)
    )
    ReviewSession.create(tmp_path / "s.hpa", None, tmp_path / "noisy.csv", tmp_path / "p.csv").close()
    out = _run("bench_noise_review.py", str(tmp_path / "s.hpa"), str(tmp_path / "noise.csv"), "--shuffles", "50")
    assert "K = 6 corrupted" in out
    suspicious = next(line for line in out.splitlines() if line.startswith("suspicious"))
    assert float(suspicious.split()[1]) == 1.0  # all six first: the model disagrees only there
    assert "random (mean)" in out


def test_bench_int8_and_inference_run(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("timm")
    out = _run("bench_int8.py", "--arch", "densenet121", "--size", "64", "--n", "1", "--calib", "2",
               "--variants", "qdq-u8s8", "qdq-u8s8-bnq", "--profile", cwd=tmp_path)
    assert "standalone BatchNorms rewritten" in out and "qdq-u8s8-bnq" in out and "QLinearConv" in out
    assert not list(tmp_path.iterdir())  # the profiler's files stay in the benchmark's temporary folder
    out = _run("bench_inference.py", "--size", "64", "--n", "1", "--archs", "timm:resnet18",
               "--sets", "3", "--memory-factor", "2")
    assert "vs torch" in out and "waiting for data" in out and "peak memory: 3 sets" in out


def test_bench_densenet_import_runs():
    pytest.importorskip("torch")
    out = _run("bench_densenet_import.py", "--size", "128", "--images", "1", "--calib", "2")
    assert "torch eager" in out and "onnxruntime int8" in out and "x torch eager" in out
    assert "CPU:" in out and "label agreement" in out


@pytest.mark.gui
def test_bench_map_runs():
    out = _run("bench_map.py", "--n", "300", "--dim", "16")
    assert "core: 300 fields mapped" in out and "laying out 300 fields" in out
    assert "map on screen" in out and "select the 500 strongest outliers" in out


def test_make_ood_fields_writes_real_composites_and_permuted_sets(real_dir, tmp_path):
    from napari_hpa.imageset import find_sets, read_set
    from napari_hpa.synth import generate_dataset

    generate_dataset(tmp_path / "s", 3, seed=1, size=64)
    out = tmp_path / "ood"
    text = _run("make_ood_fields.py", "--singles", str(real_dir / "kaggle_singles"), "--synth",
                str(tmp_path / "s"), "--out", str(out), "--n-real", "2", "--n-perm", "3")
    assert "2 real composites and 3 channel-permuted" in text
    sets = {s.id: s for s in find_sets(out)}
    assert sorted(sets) == ["perm-000", "perm-001", "perm-002", "real-000", "real-001"]
    assert read_set(sets["real-000"]).data.shape == (4, 512, 512)
    original = read_set(find_sets(tmp_path / "s")[0]).data
    np.testing.assert_array_equal(read_set(sets["perm-000"]).data, original[[1, 2, 3, 0]])
    assert _run_fails("make_ood_fields.py", "--out", str(out))  # never into a folder that exists


def _run_fails(script: str, *args: str) -> bool:
    out = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                         timeout=120, check=False)
    return out.returncode != 0


def test_real_proxy_composites_carry_the_green_fields_labels(real_dir, tmp_path):
    import csv

    import imageio.v3 as iio

    proxy = load_benchmark("bench_real_proxy")
    n = len(proxy.write_composites(real_dir.parent, tmp_path, [0]))
    with open(real_dir / "kaggle_singles" / "labels.csv", newline="") as fh:
        singles = list(csv.DictReader(fh))
    greens = sorted((r for r in singles if r["Channel"] == "green"), key=lambda r: r["Id"])
    assert n == len(greens) >= 40
    with open(tmp_path / "labels.csv", newline="") as fh:
        labels = list(csv.DictReader(fh))
    assert [r["Target"] for r in labels] == [g["Target"] for g in greens]  # each green once, with its labels
    first = greens[0]["Id"]
    np.testing.assert_array_equal(iio.imread(tmp_path / "real0-000_green.png"),
                                  iio.imread(real_dir / "kaggle_singles" / f"{first}_green.png"))
    assert not np.array_equal(iio.imread(tmp_path / "real0-000_blue.png"),
                              iio.imread(tmp_path / "real0-001_blue.png"))  # reference channels vary


def test_real_proxy_score_on_a_hand_made_example():
    proxy = load_benchmark("bench_real_proxy")
    truth = np.zeros((3, 28), bool)
    truth[0, 0] = truth[1, 0] = truth[2, 5] = True
    probs = np.full((3, 28), 0.1)
    probs[0, 0], probs[1, 0], probs[2, 5] = 0.8, 0.3, 0.6
    probs[1, 7] = 0.95  # a confident wrong label
    pred = probs >= 0.5
    s = proxy.score(probs, truth, pred)
    assert s["classes"] == 2
    assert s["f1"] == pytest.approx((2 / 3 + 1.0) / 2)  # class 0: one of two found; class 5: found
    assert s["wrong"] == 1 and s["right"] == 2  # the Golgi label wrong; class 0 once and class 5 right
    assert s["wrong_09"] == 1 and s["max_wrong"] == pytest.approx(0.95)
    assert s["max_wrong_class"] == "Golgi apparatus"
    assert s["p_true"] == pytest.approx((0.8 + 0.3 + 0.6) / 3)


def test_bench_real_proxy_runs(real_dir):
    model = Path(__file__).resolve().parents[1] / "models" / "default" / "first-resnet10t.onnx"
    out = _run("bench_real_proxy.py", str(model), "--seeds", "0", "1")
    assert "composites" in out and "first-resnet10t.onnx" in out and "largest wrong probability" in out
    assert "seeds 0 1" in out and "the complete field is labelled" in out
    n = int(out.split(" composites")[0].split()[-1])
    assert n % 2 == 0 and n >= 80  # one composite per green and seed


def test_bench_domain_runs(real_dir, tmp_path):
    from napari_hpa.synth import generate_dataset

    generate_dataset(tmp_path / "held", 8, 21, size=128, fields_per_antibody=4)
    out = _run("bench_domain.py", "--synth", str(tmp_path / "held"), "--n", "8", "--data", str(real_dir.parent))
    assert "views intensity, texture, features" in out
    for line in ("held-out fields", "real composites (50)", "shuffled fields", "rotated", "red-yellow swapped",
                 "real field 000a6c98", "real field 800_A6_1"):
        assert line in out, line
    shuffled = next(line for line in out.splitlines() if line.startswith("shuffled fields"))
    assert " of 8 " in shuffled


def test_bench_train_step_runs():
    pytest.importorskip("torch")
    pytest.importorskip("timm")
    out = _run("bench_train_step.py", "--crop", "32", "--batch-size", "2", "--threads", "1", "--steps", "1",
               "--rounds", "1")
    assert "CPU:" in out and "fp32:" in out and "bf16:" in out and "bf16 / fp32 step time" in out


def test_make_real_composites_writes_one_labelled_composite_per_green_and_seed(real_dir, tmp_path):
    from napari_hpa.dataset import load_labelled

    out = tmp_path / "real"
    _run("make_real_composites.py", "--out", str(out), "--data", str(real_dir.parent), "--seeds", "3", "4")
    data = load_labelled(out)
    assert len(data) == 100 and data.ids[0] == "real3-000" and data.ids[50] == "real4-000"
    np.testing.assert_array_equal(data.targets[:50], data.targets[50:])  # the same greens, the same labels
    assert (out / "real3-000_green.png").resolve() == (out / "real4-000_green.png").resolve()
    assert _run_fails("make_real_composites.py", "--out", str(out), "--data", str(real_dir.parent))  # never over a folder


def test_bench_refit_cv_runs_and_leaves_the_ensemble_alone(real_dir, tmp_path):
    import shutil

    models = tmp_path / "default"
    shutil.copytree(Path(__file__).resolve().parents[1] / "models" / "default", models)
    before = {p.name: p.read_bytes() for p in models.iterdir()}
    out = _run("bench_refit_cv.py", str(models), "--member", "first-resnet10t", "--seeds", "0", "--folds", "2",
               "--tta", "none", "--classes", "0,25", "--data", str(real_dir.parent))
    assert "50 composites" in out and "0 synthetic fields" in out and "classes 0,25;" in out
    assert "as given" in out and "refitted (held out)" in out
    assert {p.name: p.read_bytes() for p in models.iterdir()} == before  # the folds work on copies
