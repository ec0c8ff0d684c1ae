"""The shipped default ensemble (models/default): contract, size, and what it shows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from napari_hpa.bundled import MODELS_DIR
from napari_hpa.classes import NUM_CLASSES
from napari_hpa.classify import classify
from napari_hpa.engine import Ensemble, ProviderRequest

DEFAULT = MODELS_DIR / "default"
ROOT = Path(__file__).resolve().parents[1]


def test_default_ensemble_meets_the_contract():
    ens = Ensemble.load(DEFAULT, ProviderRequest("cpu"))  # check_contract runs on every member
    assert len(ens.members) >= 3
    assert ens.has_attention and ens.embedding_member is not None
    assert ens.thresholds.shape == (NUM_CLASSES,) and not np.allclose(ens.thresholds, 0.5)
    for m in ens.members:
        assert "synthetic generator" in m.info.trained_on
    manifest = json.loads((DEFAULT / "ensemble.json").read_text())
    assert manifest["min_one_label"] is True


def test_default_models_are_small_and_documented():
    files = [p for p in (ROOT / "models" / "default").iterdir() if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    assert total <= 30_000_000, f"models/default holds {total / 1e6:.1f} MB"
    card = (ROOT / "models" / "default" / "MODEL_CARD.md").read_text()
    for p in files:
        if p.suffix == ".onnx":
            assert p.name in card  # every file is described in the card


def test_default_ensemble_classifies_the_sample():
    from napari_hpa.synth import sample_field

    field = sample_field()
    ens = Ensemble.load(DEFAULT, ProviderRequest("cpu"))
    result = classify(ens, field.id, field.image)
    assert result.attention is not None and result.attention.shape[0] == NUM_CLASSES
    assert 0.0 <= result.attention.min() and result.attention.max() <= 1.0
    assert result.embedding is not None
    assert np.linalg.norm(result.embedding) == pytest.approx(1.0, abs=1e-3)
    assert result.labels  # the top class is always predicted
