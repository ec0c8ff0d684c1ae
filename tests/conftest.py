from __future__ import annotations

from pathlib import Path

import pytest
from hpa_testing import KAGGLE_TRAIN_CSV, REAL_DIR


@pytest.fixture
def real_dir() -> Path:
    if not REAL_DIR.is_dir():
        pytest.skip(f"real HPA images not available: {REAL_DIR} is absent")
    return REAL_DIR


@pytest.fixture
def kaggle_train_csv() -> Path:
    if not KAGGLE_TRAIN_CSV.is_file():
        pytest.skip(f"the Kaggle 2018 train.csv is not available: {KAGGLE_TRAIN_CSV} is absent")
    return KAGGLE_TRAIN_CSV


@pytest.fixture(autouse=True, scope="session")
def _cache_home(tmp_path_factory):
    """Caches the commands keep (``ensemble build``'s member outputs) go to a temporary folder."""
    import os

    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache-home"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old
