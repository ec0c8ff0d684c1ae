"""Fixtures for the label-review tests: small labels/probabilities CSVs and sessions."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_hpa.labels import write_probabilities
from napari_hpa.review import ReviewSession

from review_data import SMALL, small_probs, write_csv


@pytest.fixture
def labels_csv(tmp_path) -> Path:
    rows = "".join(f"{i},{t},ab{n}\n" for n, (i, t) in enumerate(SMALL.items()))
    return write_csv(tmp_path / "labels.csv", "Id,Target,Antibody\n" + rows)


@pytest.fixture
def probs_csv(tmp_path) -> Path:
    return write_probabilities(tmp_path / "probs.csv", list(SMALL), small_probs())


@pytest.fixture
def images_dir(tmp_path) -> Path:
    d = tmp_path / "images"
    d.mkdir()
    return d


@pytest.fixture
def session(tmp_path, images_dir, labels_csv, probs_csv):
    s = ReviewSession.create(tmp_path / "s.hpa", images_dir, labels_csv, probs_csv, reviewer="ann")
    yield s
    s.close()


@pytest.fixture
def plain_session(tmp_path, images_dir, labels_csv):
    """A session without probabilities."""
    s = ReviewSession.create(tmp_path / "plain.hpa", images_dir, labels_csv, reviewer="ann")
    yield s
    s.close()
