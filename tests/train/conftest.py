"""Tiny synthetic data for the training tests, generated once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """16 synthetic fields at 128 px (the models see them at 64 px), 2 fields per antibody."""
    from napari_hpa.synth import generate_dataset

    out = tmp_path_factory.mktemp("tiny") / "data"
    generate_dataset(out, 16, 1, size=128, fields_per_antibody=2)
    return out
