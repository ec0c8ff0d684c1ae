"""``ensemble build`` keeps its members' outputs: building again with other weights or
thresholds gives what a fresh build gives, without running the members again."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from napari_hpa.engine.ensemble import Member
from napari_hpa.evaluate import build_ensemble, collect
from napari_hpa.engine import Ensemble
from napari_hpa.synth import generate_dataset
from onnx_toys import make_toy


@pytest.fixture(scope="module")
def val(tmp_path_factory):
    folder = tmp_path_factory.mktemp("val")
    generate_dataset(folder, 12, seed=5, size=64)
    return folder


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    d = tmp_path_factory.mktemp("members")
    return [make_toy(d / "a.onnx", size=16, seed=1).path,
            make_toy(d / "b.onnx", size=32, seed=2, emb_dim=None).path]


@pytest.fixture
def runs(monkeypatch):
    calls = []
    original = Member.run

    def counting(self, x):
        calls.append(self.name)
        return original(self, x)

    monkeypatch.setattr(Member, "run", counting)
    return calls


def _build(members, val, out, **kw):
    path, report = build_ensemble(members, val, out, tta="flip", batch_size=5, **kw)
    return json.loads(path.read_text()), report


def test_a_second_build_runs_no_member_and_matches_a_fresh_one(members, val, tmp_path, runs):
    cache = tmp_path / "cache"
    fresh, fresh_report = _build(members, val, tmp_path / "fresh" / "ensemble.json", weights=[1, 3])
    assert runs
    runs.clear()
    first, _ = _build(members, val, tmp_path / "e1" / "ensemble.json", cache_dir=cache)
    assert len(runs) == 2 * 3 * 2  # two members, three batches, two TTA views
    assert len(list(cache.glob("*.npz"))) == 2
    runs.clear()
    again, report = _build(members, val, tmp_path / "e2" / "ensemble.json", cache_dir=cache, weights=[1, 3])
    assert runs == []
    assert again["thresholds"] == fresh["thresholds"]
    assert report.to_json() == fresh_report.to_json()
    stacked, _ = _build(members, val, tmp_path / "e3" / "ensemble.json", cache_dir=cache, stack=True)
    assert runs == [] and stacked["stacking"] is not None


def test_a_changed_image_or_member_or_tta_is_computed_again(members, val, tmp_path, runs):
    cache = tmp_path / "cache"
    ens = Ensemble.load(members[0])
    reference = collect(ens, val, batch_size=4, cache_dir=cache)
    runs.clear()
    first = sorted(val.glob("*_green.png"))[0]
    st = first.stat()
    os.utime(first, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    col = collect(ens, val, batch_size=4, cache_dir=cache)
    assert len(runs) == 1  # only the batch of the touched image
    np.testing.assert_array_equal(col.probs, reference.probs)
    runs.clear()
    collect(ens, val, batch_size=4, tta="flip", cache_dir=cache)
    assert len(runs) == 3 * 2
    runs.clear()
    other = Ensemble.load(make_toy(tmp_path / "a.onnx", size=16, seed=9).path)
    collect(other, val, batch_size=4, cache_dir=cache)
    assert len(runs) == 3


def test_an_unreadable_cache_file_is_an_empty_one(members, val, tmp_path, runs):
    cache = tmp_path / "cache"
    ens = Ensemble.load(members[0])
    reference = collect(ens, val, batch_size=6, cache_dir=cache)
    for f in cache.glob("*.npz"):
        f.write_bytes(b"not a zip")
    runs.clear()
    col = collect(ens, val, batch_size=6, cache_dir=cache)
    assert len(runs) == 2
    np.testing.assert_array_equal(col.probs, reference.probs)
    np.testing.assert_array_equal(col.features, reference.features)


def test_the_command_keeps_its_cache_where_asked_or_nowhere(members, val, tmp_path, runs, monkeypatch):
    from napari_hpa.cli import main
    from napari_hpa.engine.member_cache import default_cache_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home"))
    build = ["ensemble", "build", str(val), *map(str, members), "-q"]
    assert main([*build, "--out", str(tmp_path / "a" / "ensemble.json"), "--no-cache"]) == 0
    assert not default_cache_dir().exists()
    assert main([*build, "--out", str(tmp_path / "b" / "ensemble.json")]) == 0
    assert len(list(default_cache_dir().glob("*.npz"))) == 2
    assert main([*build, "--out", str(tmp_path / "c" / "ensemble.json"), "--cache", str(tmp_path / "c2")]) == 0
    assert len(list((tmp_path / "c2").glob("*.npz"))) == 2
    runs.clear()
    assert main([*build, "--out", str(tmp_path / "d" / "ensemble.json"), "--weights", "2", "1"]) == 0
    assert runs == []
