"""Property-based tests: random bytes and random structures fed to the file readers.

Every failure must be the project's own error class naming the file; nothing else escapes."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_hpa.classes import CLASS_NAMES
from napari_hpa.engine import EnsembleError, read_manifest
from napari_hpa.engine.domain import DomainError, DomainModel
from napari_hpa.errors import HPAError, LabelsCSVError, SessionError
from napari_hpa.labels import read_labels, read_probabilities

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# CSV-ish text: the characters that matter to a CSV parser, ids and numbers
CSV_TEXT = st.lists(st.sampled_from(list('ab0123456789 ,;."\'\n\r\t-e/\\\x00') + ["Id", "Target"]),
                   max_size=150).map("".join)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=25,
)


def _write(data: bytes | str, suffix: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="hpa-fuzz-"))
    path = folder / f"f{suffix}"
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8", newline="")
    else:
        path.write_bytes(data)
    return path


def _only_our_error(fn, path: Path, error=HPAError):
    try:
        fn(path)
    except error as exc:
        assert str(path) in str(exc) or path.name in str(exc), str(exc)


@SETTINGS
@given(st.one_of(st.binary(max_size=400), CSV_TEXT, CSV_TEXT.map(lambda t: "Id,Target\n" + t)))
def test_labels_reader_raises_only_its_own_error(data):
    _only_our_error(read_labels, _write(data, ".csv"), LabelsCSVError)


@SETTINGS
@given(st.one_of(
    st.binary(max_size=400),
    CSV_TEXT.map(lambda t: "Id," + ",".join(CLASS_NAMES) + "\n" + t),
    st.lists(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4)),
                      min_size=27, max_size=30), max_size=4).map(
        lambda rows: "Id," + ",".join(str(i) for i in range(28)) + "\n"
        + "".join(f"r{n}," + ",".join(map(str, r)) + "\n" for n, r in enumerate(rows))),
))
def test_probabilities_reader_raises_only_its_own_error(data):
    _only_our_error(read_probabilities, _write(data, ".csv"), LabelsCSVError)


@SETTINGS
@given(st.one_of(
    st.binary(max_size=300),
    JSONISH.map(json.dumps),
    st.fixed_dictionaries({"hpa_ensemble": st.just(1)}, optional={
        "members": JSONISH | st.lists(st.fixed_dictionaries({"path": JSONISH}, optional={"weight": JSONISH,
                                                                                            "name": JSONISH})),
        "tta": JSONISH, "combine": JSONISH, "thresholds": JSONISH, "min_one_label": JSONISH,
        "embedding_member": JSONISH, "stacking": JSONISH, "trained_on": JSONISH, "domain": JSONISH,
        "name": JSONISH,
    }).map(json.dumps),
))
def test_manifest_reader_raises_only_its_own_error(data):
    path = _write(data, ".json")
    (path.parent / "m.onnx").write_bytes(b"x")  # a member file that exists, whatever it holds
    _only_our_error(read_manifest, path, EnsembleError)


@SETTINGS
@given(st.binary(max_size=600))
def test_session_reader_raises_only_its_own_error(data):
    from napari_hpa.review import ReviewSession

    def open_it(p):
        ReviewSession.open(p).close()

    _only_our_error(open_it, _write(data, ".hpa"), SessionError)


@SETTINGS
@given(st.binary(max_size=400))
def test_domain_record_reader_raises_only_its_own_error(data):
    _only_our_error(DomainModel.load, _write(data, ".npz"), DomainError)


def test_a_damaged_domain_record_names_the_file(tmp_path):
    path = tmp_path / "domain.npz"
    np.savez(path, meta=np.array("{not json"))
    _only_our_error(DomainModel.load, path, DomainError)
