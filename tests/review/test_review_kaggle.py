"""The real Kaggle 2018 train.csv (31,072 ids, no images): import, reopen, export unchanged."""

from __future__ import annotations

import time

from napari_hpa.labels import read_labels
from napari_hpa.review import ReviewSession


def test_kaggle_train_csv_round_trip(kaggle_train_csv, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    t = time.perf_counter()
    s = ReviewSession.create(tmp_path / "train.hpa", images, kaggle_train_csv)
    t_import = time.perf_counter() - t
    s.close()
    t = time.perf_counter()
    s = ReviewSession.open(tmp_path / "train.hpa")
    first = s.record(s.current_id)
    t_open = time.perf_counter() - t
    with s:
        assert len(s) == 31072 and not s.has_image(s.ids[0])
        t = time.perf_counter()
        s.export(tmp_path / "out.csv")
        t_export = time.perf_counter() - t
        t = time.perf_counter()
        for i in s.ids[:1000]:
            s.record(i)
        t_record = (time.perf_counter() - t) / 1000
    want = read_labels(kaggle_train_csv)
    got = read_labels(tmp_path / "out.csv")
    assert got.ids == want.ids
    assert got.targets == want.targets  # the same label set for every id
    assert first.labels == want.targets[want.ids[0]]
    print(
        f"\nkaggle train.csv, 31,072 ids: import {t_import:.2f} s, reopen {t_open:.3f} s, "
        f"export {t_export:.2f} s, one record {t_record * 1e3:.3f} ms"
    )
    assert t_import < 3.0 and t_open < 2.0 and t_record < 0.005
