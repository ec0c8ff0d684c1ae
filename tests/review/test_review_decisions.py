"""The decision strip's core: the model's proposals for one image, their strength and what
accepting all of them does."""

from __future__ import annotations

import numpy as np
import pytest

from napari_hpa.classes import NUM_CLASSES
from napari_hpa.review import ordering
from napari_hpa.review.decisions import (
    STRONG,
    accept_plan,
    apply,
    class_names,
    proposals,
)

T = np.full(NUM_CLASSES, 0.5)


def probs(**by_class) -> np.ndarray:
    p = np.full(NUM_CLASSES, 0.02)
    for k, v in by_class.items():
        p[int(k.lstrip("c"))] = v
    return p


def test_each_disagreement_is_one_proposal_strongest_first():
    # labelled 0 and 27; the model: 0 yes, 27 unsure-low, 6 strongly, 2 just over
    p = probs(c0=0.9, c27=0.3, c6=0.95, c2=0.55)
    props = proposals((0, 27), p, T)
    assert [(x.action, x.cls) for x in props] == [("add", 6), ("drop", 27), ("add", 2)]
    add6, drop27, add2 = props
    assert add6.strength == pytest.approx(0.95) and add6.strong
    assert drop27.strength == pytest.approx(0.7) and not drop27.strong
    assert add2.strength == pytest.approx(0.55) and not add2.strong
    assert add6.text == "add 6 Endoplasmic reticulum"
    assert drop27.text == "drop 27 Rods & rings"
    assert add6.evidence == "p 0.95 · 95 % sure"


def test_agreement_and_no_probabilities_give_no_proposals():
    assert proposals((0,), probs(c0=0.9), T) == ()
    assert proposals((0,), None, T) == ()


def test_the_top_class_is_proposed_even_under_its_threshold_but_weak():
    props = proposals((), probs(c3=0.3), T)
    assert [(x.action, x.cls) for x in props] == [("add", 3)]
    assert not props[0].strong


def test_per_class_thresholds_decide_the_proposals():
    t = T.copy()
    t[5] = 0.2
    props = proposals((), probs(c0=0.9, c5=0.25), t)
    assert {x.cls for x in props} == {0, 5}


def test_accept_all_applies_strong_calls_and_keeps_a_weakly_doubted_label():
    p = probs(c0=0.9, c27=0.3, c6=0.95, c25=0.01)
    props = proposals((0, 25, 27), p, T)
    plan = accept_plan((0, 25, 27), props)
    # 25 at p 0.01: a strong drop; 27 at p 0.3: weak, kept
    assert plan.after == (0, 6, 27)
    assert {x.cls for x in plan.applied} == {6, 25}
    assert [x.cls for x in plan.kept] == [27]
    assert "keeps 27 Rods & rings (weak evidence)" in plan.text
    assert plan.text.startswith("drop 25 Cytosol; add 6 Endoplasmic reticulum")  # strongest first


def test_apply_single_proposals():
    p = probs(c0=0.9, c6=0.95)
    props = proposals((0, 27), p, T)
    by = {x.cls: x for x in props}
    assert apply((0, 27), [by[6]]) == (0, 6, 27)
    assert apply((0, 27), [by[27]]) == (0,)
    assert accept_plan((0,), ()).text == "labels and model agree"


def test_calibration_makes_a_low_probability_of_a_poorly_seen_class_weak_evidence():
    # class 27: present in half the images, but the model never gives it above 0.3
    rng = np.random.default_rng(1)
    n = 400
    y = np.zeros((n, NUM_CLASSES), dtype=bool)
    y[:, 0] = True
    y[: n // 2, 27] = True
    p = np.full((n, NUM_CLASSES), 0.02)
    p[:, 0] = 0.9
    p[:, 27] = np.where(y[:, 27], rng.uniform(0.1, 0.3, n), rng.uniform(0.0, 0.1, n))
    ab = ordering.calibration(y, p)
    raw = proposals((0, 27), p[0], T)
    cal = proposals((0, 27), p[0], T, ab)
    assert [x.cls for x in raw] == [x.cls for x in cal] == [27]
    assert raw[0].strong  # raw: p 0.1-0.3 looks like a sure drop
    assert not cal[0].strong  # calibrated: this class is often present at such p
    assert cal[0].strength < STRONG


def test_class_names_in_words():
    assert class_names((0, 27)) == "0 Nucleoplasm, 27 Rods & rings"
    assert class_names(()) == "none"


def test_the_session_accepts_only_strong_proposals_in_one_edit(session):
    # img-b: labelled 3 (p 0.05), model 4 (p 0.95): both strong
    edit = session.accept_proposals("img-b")
    assert session.labels("img-b") == (4,)
    assert edit.kind == "accept"
    assert session.proposals("img-b") == ()
    session.undo()
    assert session.labels("img-b") == (3,)


def test_a_decision_of_several_edits_is_undone_as_one(session):
    session.review_on_edit = True
    session.toggle("img-a", 5)
    assert session.labels("img-a") == (0, 5, 25) and session.is_reviewed("img-a")
    session.accept_proposals("img-b")  # two classes and the review mark: one decision
    assert session.labels("img-b") == (4,) and session.is_reviewed("img-b")
    assert session.progress() == (2, 2, len(session))
    session.undo()
    assert session.labels("img-b") == (3,) and not session.is_reviewed("img-b")
    assert session.labels("img-a") == (0, 5, 25)  # the earlier decision stands
    session.redo()
    assert session.labels("img-b") == (4,) and session.is_reviewed("img-b")
    session.undo()
    session.undo()
    assert session.labels("img-a") == (0, 25) and not session.is_reviewed("img-a")
    assert not session.can_undo
    # the stacks survive reopening the file
    session.redo()
    again = type(session).open(session.path)
    try:
        assert again.can_undo and again.can_redo
        again.undo()
        assert again.labels("img-a") == (0, 25) and not again.is_reviewed("img-a")
    finally:
        again.close()


def test_an_unchanged_label_edit_logs_nothing(session):
    session.review_on_edit = True
    assert session.set_labels("img-a", "0 25") is None
    assert not session.is_reviewed("img-a")


def test_unsure_mark_and_progress_of_a_filtered_queue(session):
    session.mark_unsure("img-c")
    assert session.record("img-c").unsure
    session.mark_reviewed("img-a")
    session.set_queue("listed", [25])  # img-a only
    assert session.progress() == (1, 0, 1)
    session.undo()
    assert not session.is_reviewed("img-a") and session.record("img-c").unsure


def test_a_schema_1_session_is_upgraded_on_opening(session):
    import sqlite3

    path = session.path
    session.set_labels("img-a", "0")
    session.close()
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE edits DROP COLUMN decision")
    conn.execute("ALTER TABLE images DROP COLUMN unsure")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    from napari_hpa.review import ReviewSession

    s = ReviewSession.open(path)
    try:
        assert not s.record("img-a").unsure
        s.undo()
        assert s.labels("img-a") == (0, 25)
        s.mark_unsure("img-a")
        assert s.record("img-a").unsure
    finally:
        s.close()
