"""Crash safety: SIGKILL in the middle of scripted edits and exports loses nothing that
returned, and the export file is always complete (old or new, never partial)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from napari_hpa.labels import read_labels
from napari_hpa.review import ReviewSession

from review_data import write_csv

CHILD = r"""
import random, sys
from napari_hpa.review import ReviewSession
s = ReviewSession.open(sys.argv[1], reviewer="robot")
out = sys.argv[2]
rng = random.Random(int(sys.argv[3]))
ids = s.ids
n = 0
print("READY", flush=True)
while True:
    i = ids[rng.randrange(len(ids))]
    t = sorted(rng.sample(range(28), rng.randint(0, 3)))
    e = s.set_labels(i, t, note=f"edit {n}")
    if e is not None:
        print(f"EDIT\t{e.seq}\t{i}\t{e.after}", flush=True)
    n += 1
    if n % 4 == 0:
        s.export(out)
        print("EXPORTED", flush=True)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.parametrize("seed, kill_after", [(1, 40), (2, 77)])
def test_sigkill_loses_no_returned_edit(tmp_path, seed, kill_after):
    n_ids = 3000
    labels = write_csv(
        tmp_path / "labels.csv",
        "Id,Target\n" + "".join(f"id{n:05d},{n % 28}\n" for n in range(n_ids)),
    )
    path = tmp_path / "s.hpa"
    out = tmp_path / "export.csv"
    with ReviewSession.create(path, None, labels) as s:
        s.export(out)
        original = {i: s.labels(i) for i in s.ids}
        ids = s.ids

    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(out), str(seed)],
        stdout=subprocess.PIPE,
        text=True,
    )
    printed = []
    deadline = time.monotonic() + 60
    try:
        for line in proc.stdout:
            if line.startswith("EDIT"):
                _, seq, image_id, after = line.rstrip("\n").split("\t")
                printed.append((int(seq), image_id, after))
                if len(printed) >= kill_after:
                    break
            assert time.monotonic() < deadline, "the child made too few edits"
        os.kill(proc.pid, signal.SIGKILL)
        rest = proc.stdout.read()  # what the child printed before it died
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    for line in rest.splitlines():
        if line.startswith("EDIT"):
            _, seq, image_id, after = line.split("\t")
            printed.append((int(seq), image_id, after))

    with ReviewSession.open(path) as s:
        history = s.history()
        # every printed edit is in the log, in order; at most one more committed unprinted
        assert [(e.seq, e.id, e.after) for e in history[: len(printed)]] == printed
        assert len(history) - len(printed) in (0, 1)
        assert all(e.reviewer == "robot" for e in history)
        state = dict(original)
        for e in history:
            state[e.id] = tuple(int(k) for k in e.after.split())
        assert {i: s.labels(i) for i in ids} == state

    # the export file is complete, and equals the labels after some prefix of the edits
    table = read_labels(out)
    assert table.ids == list(ids)
    state = dict(original)
    matches = [table.targets == state]
    for e in history:
        state[e.id] = tuple(int(k) for k in e.after.split())
        matches.append(table.targets == state)
    assert any(matches)
