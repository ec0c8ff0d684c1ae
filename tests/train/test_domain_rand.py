"""Domain randomisation of training inputs (``napari_hpa.train.randomise``, ``--domain-rand``)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_hpa.errors import TrainingError
from napari_hpa.train import DOMAIN_RAND
from napari_hpa.train.randomise import PROFILES, add_noise, apply_gain, apply_gamma, blur, profile, randomise

# a profile whose every step is off, to switch on one at a time
IDENTITY = dataclasses.replace(
    PROFILES["default"], gain_centre=(1.0, 1.0, 1.0, 1.0), channel_gain=(1.0, 1.0), field_gain=(1.0, 1.0),
    gamma=(1.0, 1.0), offset_p=0.0, blur_p=0.0, noise_p=0.0)


def _field(seed: int = 0, s: int = 64) -> np.ndarray:
    """A cell-like test input: smooth blobs with fine texture, in [0, 0.5]."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    x = gaussian_filter(rng.random((4, s, s)), (0, 3, 3))
    x = (x - x.min()) / (x.max() - x.min())
    x = x * 0.4 + 0.1 * rng.random((4, s, s))
    return x.astype(np.float32)


def test_levels_are_the_profiles():
    assert DOMAIN_RAND == tuple(PROFILES) and DOMAIN_RAND[0] == "none"
    with pytest.raises(TrainingError, match="unknown --domain-rand 'wild'"):
        profile("wild")


def test_none_is_an_exact_identity():
    x = _field()
    rng = np.random.default_rng(1)
    state = rng.bit_generator.state
    assert randomise(x, rng, "none") is x
    assert randomise(x, rng, None) is x
    assert rng.bit_generator.state == state  # draws nothing: the rest of the augmentation is as before


@pytest.mark.parametrize("level", ["default", "mild", "strong"])
def test_deterministic_per_seed_and_different_across_seeds(level):
    x = _field()
    a = randomise(x, np.random.default_rng((0, 1, 2)), level)
    b = randomise(x, np.random.default_rng((0, 1, 2)), level)
    c = randomise(x, np.random.default_rng((0, 1, 3)), level)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.dtype == np.float32 and a.shape == x.shape
    assert np.isfinite(a).all() and a.min() >= 0.0 and a.max() <= 1.0
    assert not np.array_equal(a, x)


def test_gain_moves_a_channels_mean_by_its_factor():
    x = _field()
    y = apply_gain(x, [2.0, 0.5, 1.0, 3.0])
    np.testing.assert_allclose(y.mean((1, 2)), x.mean((1, 2)) * [2.0, 0.5, 1.0, 3.0], rtol=1e-5)
    # through randomise: the per-channel means move by the drawn gains (nothing clips at these levels)
    prof = dataclasses.replace(IDENTITY, channel_gain=(0.5, 2.0))
    r = randomise(x, np.random.default_rng(5), prof)
    ratio = r.mean((1, 2)) / x.mean((1, 2))
    assert (ratio >= 0.5 - 1e-4).all() and (ratio <= 2.0 + 1e-4).all()
    assert np.ptp(ratio) > 0.05  # per channel, not one factor
    np.testing.assert_allclose(r / np.maximum(x, 1e-9), np.broadcast_to(ratio[:, None, None], x.shape), rtol=1e-4)


def test_gamma_below_one_brightens_and_above_one_darkens():
    x = _field()
    lo, hi = apply_gamma(x, [0.7] * 4), apply_gamma(x, [1.4] * 4)
    mid = (x > 0) & (x < 1)
    assert (lo[mid] > x[mid]).all() and (hi[mid] < x[mid]).all()
    np.testing.assert_array_equal(apply_gamma(x, [1.0] * 4), x)


def test_offset_raises_the_background():
    x = np.zeros((4, 32, 32), np.float32)
    prof = dataclasses.replace(IDENTITY, offset_p=1.0, offset=(0.02, 0.05))
    y = randomise(x, np.random.default_rng(0), prof)
    per = y.reshape(4, -1)
    assert (per.min(1) == per.max(1)).all()  # one flat offset per channel
    assert ((per[:, 0] >= 0.02) & (per[:, 0] <= 0.05)).all()


def _high_frequency_energy(x: np.ndarray) -> float:
    return float((np.diff(x, axis=-1) ** 2).sum() + (np.diff(x, axis=-2) ** 2).sum())


def test_blur_lowers_high_frequency_energy_and_keeps_the_mean():
    x = _field()
    y = blur(x, 1.0)
    assert _high_frequency_energy(y) < 0.5 * _high_frequency_energy(x)
    np.testing.assert_allclose(y.mean((1, 2)), x.mean((1, 2)), rtol=1e-3)
    prof = dataclasses.replace(IDENTITY, blur_p=1.0, blur_sigma=(0.8, 1.5))
    r = randomise(x, np.random.default_rng(0), prof)
    assert _high_frequency_energy(r) < 0.6 * _high_frequency_energy(x)


def test_noise_adds_signal_dependent_variance():
    flat = np.stack([np.full((64, 64), v, np.float32) for v in (0.1, 0.1, 0.8, 0.8)])
    y = add_noise(flat, np.random.default_rng(0), 0.0, 100.0)
    sd = y.reshape(4, -1).std(1)
    np.testing.assert_allclose(sd, np.sqrt([0.1, 0.1, 0.8, 0.8] / np.float32(100.0)), rtol=0.1)  # Poisson-like
    g = add_noise(np.zeros_like(flat), np.random.default_rng(0), 0.03, 1e9)
    np.testing.assert_allclose(g.reshape(4, -1).std(1), 0.03, rtol=0.1)  # Gaussian where there is no signal
    prof = dataclasses.replace(IDENTITY, noise_p=1.0, gauss_sigma=(0.01, 0.02))
    r = randomise(flat, np.random.default_rng(0), prof)
    assert (r.reshape(4, -1).std(1) > 0.005).all() and _high_frequency_energy(r) > 0


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), c=st.integers(1, 5), s=st.integers(1, 40),
       level=st.sampled_from(["default", "mild", "strong"]),
       kind=st.sampled_from(["uniform", "zeros", "ones", "binary"]))
def test_shape_dtype_range_on_any_input(seed, c, s, level, kind):
    rng = np.random.default_rng(seed)
    x = {"uniform": lambda: rng.random((c, s, s)), "zeros": lambda: np.zeros((c, s, s)),
         "ones": lambda: np.ones((c, s, s)), "binary": lambda: (rng.random((c, s, s)) > 0.5) * 1.0}[kind]()
    x = x.astype(np.float32)
    y = randomise(x, np.random.default_rng(seed + 1), level)
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.isfinite(y).all() and y.min() >= 0.0 and y.max() <= 1.0


def test_dataset_randomises_training_items_only_and_deterministically(tiny_data):
    pytest.importorskip("torch")
    from napari_hpa.train.data import HPADataset, load_data

    spec = load_data(tiny_data)
    idx = np.arange(len(spec))
    plain = HPADataset(spec, idx, 64, augment=True, crop=32)
    a = HPADataset(spec, idx, 64, augment=True, crop=32, domain_rand="default")
    b = HPADataset(spec, idx, 64, augment=True, crop=32, domain_rand="default")
    none = HPADataset(spec, idx, 64, augment=True, crop=32, domain_rand="none")
    for i in range(4):
        xa, xb = a[i]["image"].numpy(), b[i]["image"].numpy()
        assert np.array_equal(xa, xb) and xa.shape == (4, 32, 32)
        assert np.array_equal(none[i]["image"].numpy(), plain[i]["image"].numpy())
        assert not np.array_equal(xa, plain[i]["image"].numpy())
        assert np.array_equal(a[i]["target"].numpy(), plain[i]["target"].numpy())
    a.epoch = 1
    assert not np.array_equal(a[0]["image"].numpy(), b[0]["image"].numpy())
    val = HPADataset(spec, idx, 64, domain_rand="default")  # no augmentation: no randomisation
    assert np.array_equal(val[0]["image"].numpy(), HPADataset(spec, idx, 64)[0]["image"].numpy())


def test_cli_option_is_accepted_and_stored(tiny_data, tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("timm")
    from napari_hpa.cli import main

    base = ["train", "--data", str(tiny_data), "--arch", "timm:resnet18", "--size", "64", "--epochs", "1",
            "--batch-size", "4", "--limit-steps", "1", "--threads", "2", "-q"]
    assert main([*base, "--out", str(tmp_path / "r"), "--domain-rand", "strong"]) == 0
    assert json.loads((tmp_path / "r" / "config.json").read_text())["args"]["domain_rand"] == "strong"
    assert main([*base, "--out", str(tmp_path / "d")]) == 0
    assert json.loads((tmp_path / "d" / "config.json").read_text())["args"]["domain_rand"] == "none"
    with pytest.raises(SystemExit):
        main([*base, "--out", str(tmp_path / "x"), "--domain-rand", "wild"])
    assert "invalid choice: 'wild'" in capsys.readouterr().err
