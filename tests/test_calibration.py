"""Calibration: a temperature fitted on validation fields, and a further one for fields out of
the ensemble's domain, so that a field unlike the training data is not answered with the
confidence of one like it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from napari_hpa.engine import Ensemble
from napari_hpa.engine.domain import Verdict
from napari_hpa.engine.manifest import Calibration, EnsembleError, read_manifest
from napari_hpa.evaluate import build_ensemble, collect
from napari_hpa.metrics import fit_out_of_domain_temperature, fit_temperature
from napari_hpa.synth import generate_dataset
from napari_hpa.thresholds import logit, shrink, sigmoid, temper
from onnx_toys import make_toy


def test_temper_divides_the_logits():
    p = np.array([[0.5, 0.9, 0.1]], dtype=np.float32)
    assert temper(p, 1.0) is p
    out = temper(p, 2.0)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, sigmoid(logit(p) / 2), rtol=1e-6)
    pulled = shrink(np.array([[0.9, 0.01], [0.9, 0.01]]), 1.0, np.array([1.0, 4.0]), prior=[0.1, 0.05])
    np.testing.assert_allclose(pulled[0], [0.9, 0.01])
    b = logit(np.array([0.1, 0.05]))
    np.testing.assert_allclose(pulled[1], sigmoid(b + (logit(np.array([0.9, 0.01])) - b) / 4))
    assert 0.01 < pulled[1, 1] < 0.05 and 0.1 < pulled[1, 0] < 0.9  # towards the prior, not 0.5


def test_the_fitted_temperature_undoes_an_overconfident_model():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, size=(4000, 28))
    y = rng.random(z.shape) < sigmoid(z / 2.5)  # the truth is a model 2.5 times less sure
    assert fit_temperature(sigmoid(z), y) == pytest.approx(2.5, rel=0.06)
    assert fit_temperature(sigmoid(z / 2.5), y) == pytest.approx(1.0, rel=0.06)


def test_the_out_of_domain_temperature_keeps_the_top_answers_under_the_ceiling():
    probs = np.full((100, 28), 0.01)
    probs[:, 3] = sigmoid(np.linspace(0.0, 6.0, 100))  # most confident: logit 6
    scores = np.full(100, 1.5)
    t = fit_out_of_domain_temperature(probs, scores, ceiling=0.9, quantile=1.0)
    assert t == pytest.approx(6.0 / (logit(0.9) * 1.5))
    capped = shrink(probs, 1.0, t * np.maximum(1, scores))
    assert capped.max() == pytest.approx(0.9)
    modest = np.full((5, 28), 0.6)
    assert fit_out_of_domain_temperature(modest, np.full(5, 2.0)) == 1.0  # nothing to temper
    prior = np.full(28, 0.05)
    t = fit_out_of_domain_temperature(probs, scores, prior, ceiling=0.9, quantile=1.0)
    assert t == pytest.approx((6.0 - logit(0.05)) / ((logit(0.9) - logit(0.05)) * 1.5))
    capped = shrink(probs, 1.0, np.full(100, t * 1.5), prior)
    assert capped.max() == pytest.approx(0.9)


def test_calibration_factors_follow_the_verdicts():
    c = Calibration(1.5, 2.0)
    verdicts = [Verdict(0.4, True), Verdict(3.0, False, "far"), Verdict(0.8, False, "empty"),
                Verdict(float("nan"), None), Verdict(float("nan"), False, "saturated")]
    np.testing.assert_allclose(c.ood_factors(verdicts), [1, 2 * 3, 2, 1, 2])
    np.testing.assert_allclose(Calibration(1.5).ood_factors(verdicts), [1] * 5)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    val = tmp_path_factory.mktemp("val")
    generate_dataset(val, 44, seed=7, size=64)  # a domain record needs 40 fields
    odd = tmp_path_factory.mktemp("odd")
    generate_dataset(odd, 6, seed=6, size=64)
    import imageio.v3 as iio

    from napari_hpa.imageset import find_sets, read_set

    for source in find_sets(odd):  # channels rotated: red shows the nucleus, and so on
        data = read_set(source).data
        for k, colour in enumerate(("red", "green", "blue", "yellow")):
            iio.imwrite(odd / f"{source.id}_{colour}.png", data[(k + 2) % 4])
    return val, odd


def test_build_calibrates_and_tempers_fields_out_of_the_domain(folders, tmp_path):
    val, odd = folders
    member = make_toy(tmp_path / "m.onnx", size=16, seed=1, scale=12.0).path
    path, _ = build_ensemble([member], val, tmp_path / "e" / "ensemble.json", calibrate=True,
                             ood_fields=odd, batch_size=8)
    raw = json.loads(path.read_text())["calibration"]
    spec = read_manifest(path)
    assert spec.calibration.temperature == pytest.approx(raw["temperature"], abs=1e-6)
    assert spec.calibration.temperature != 1.0 and spec.calibration.out_of_domain >= 1.0

    # the temperature is the one that fits the validation fields
    plain, _ = build_ensemble([member], val, tmp_path / "p" / "ensemble.json", batch_size=8)
    col = collect(Ensemble.load(plain), val, batch_size=8)
    assert spec.calibration.temperature == pytest.approx(fit_temperature(col.probs, col.y_true), rel=1e-3)

    # the odd fields: probabilities tempered by their verdicts, labels from those, members untouched
    calibrated = collect(Ensemble.load(path), odd, labelled=False, batch_size=8)
    uncalibrated = collect(Ensemble.load(plain), odd, labelled=False, batch_size=8)
    out = [i for i, v in enumerate(calibrated.verdicts) if v.in_domain is False]
    assert out, "rotated channels should be out of the domain"
    np.testing.assert_allclose(calibrated.probs, spec.calibration.apply(uncalibrated.probs, calibrated.verdicts),
                               atol=1e-5)
    assert np.quantile(calibrated.probs[out].max(axis=1), 0.99) <= 0.9 + 1e-4
    # a field the models cannot judge gets no label from the pull: the prior is below every threshold
    assert (np.asarray(spec.calibration.prior) <= np.asarray(spec.thresholds) / 2 + 1e-6).all()
    # out of the domain, each class lies between its in-domain calibrated value and its prior
    prior = np.broadcast_to(np.asarray(spec.calibration.prior), calibrated.probs[out].shape)
    within = temper(uncalibrated.probs[out], spec.calibration.temperature)
    assert (calibrated.probs[out] >= np.minimum(within, prior) - 1e-5).all()
    assert (calibrated.probs[out] <= np.maximum(within, prior) + 1e-5).all()
    for name, p in calibrated.member_probs.items():
        np.testing.assert_allclose(p, uncalibrated.member_probs[name], atol=1e-6)


def test_ood_fields_need_a_domain_record(folders, tmp_path):
    val, odd = folders
    small = tmp_path / "small"
    generate_dataset(small, 6, seed=1, size=64)
    member = make_toy(tmp_path / "m.onnx", size=16, seed=1).path
    from napari_hpa.errors import TrainingError

    with pytest.raises(TrainingError, match="at least 40 validation fields"):
        build_ensemble([member], small, tmp_path / "e" / "ensemble.json", ood_fields=odd)


@pytest.mark.parametrize("calibration, message", [
    ({"temperature": 0}, "calibration.temperature"),
    ({"temperature": 1.0, "out_of_domain": 0.5}, "calibration.out_of_domain"),
    ({"temperature": 1.0, "cap": 2}, "calibration.cap"),
    ({"temperature": 1.0, "prior": [0.1] * 27}, "calibration.prior"),
])
def test_a_bad_calibration_is_named(tmp_path, calibration, message):
    make_toy(tmp_path / "m.onnx", size=16)
    (tmp_path / "ensemble.json").write_text(json.dumps({
        "hpa_ensemble": 1, "members": [{"path": "m.onnx"}], "calibration": calibration}))
    with pytest.raises(EnsembleError, match=message):
        read_manifest(tmp_path / "ensemble.json")


def test_an_existing_ensemble_is_calibrated_without_changing_its_labels_in_the_domain(folders, tmp_path, capsys):
    from napari_hpa.cli import main

    val, odd = folders
    member = make_toy(tmp_path / "m.onnx", size=16, seed=1, scale=12.0).path
    plain, _ = build_ensemble([member], val, tmp_path / "plain" / "ensemble.json", batch_size=8)
    out = tmp_path / "elsewhere" / "ensemble.json"  # another folder: the domain record comes along
    assert main(["ensemble", "calibrate", str(plain), str(val), "--ood-fields", str(odd),
                 "--out", str(out), "-q"]) == 0
    assert "calibration: temperature" in capsys.readouterr().out
    spec = read_manifest(out)
    assert spec.domain.parent == out.parent and spec.calibration.prior is not None
    before = collect(Ensemble.load(plain), val, batch_size=8)
    after = collect(Ensemble.load(out), val, batch_size=8)
    assert spec.calibration.temperature == pytest.approx(fit_temperature(before.probs, before.y_true), rel=1e-3)
    inside = [i for i, v in enumerate(after.verdicts) if v.in_domain]
    assert len(inside) > 30
    ens_before, ens_after = Ensemble.load(plain), Ensemble.load(out)
    from napari_hpa.thresholds import apply_thresholds

    np.testing.assert_array_equal(
        apply_thresholds(before.probs[inside], ens_before.thresholds, True),
        apply_thresholds(after.probs[inside], ens_after.thresholds, True))
    assert main(["ensemble", "calibrate", str(plain), str(val), "--out", str(plain)]) == 2  # never over its input


def test_info_names_the_default_calibration(capsys):
    from napari_hpa.cli import main

    assert main(["info"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if "calibration:" in l)
    spec = read_manifest(Path(__file__).resolve().parents[1] / "models" / "default" / "ensemble.json")
    assert f"temperature {spec.calibration.temperature:.3f}" in line
    assert f"{spec.calibration.out_of_domain:.3f} x max(1, domain score)" in line
