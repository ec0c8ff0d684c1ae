"""Queue filters: predicted class, changed, has a note, unsure, not yet reviewed; combined
with any order, persisted with the queue, and on the command line."""

from __future__ import annotations

import pytest

from napari_hpa.cli import main
from napari_hpa.errors import SessionError
from napari_hpa.review import QueueFilter, ReviewSession
from napari_hpa.review.view import review_view

from review_data import SMALL


def test_each_filter_keeps_what_it_says(session):
    session.toggle("img-a", 3)
    session.set_note("img-c", "dim")
    session.mark_unsure("img-d")
    session.mark_reviewed("img-e")
    assert session.queue(filters=QueueFilter(predicted=(4,))) == ["img-b"]
    assert session.queue(filters=QueueFilter(predicted=(0, 5))) == ["img-a", "img-d", "img-f"]
    assert session.queue(filters=QueueFilter(changed=True)) == ["img-a"]
    assert session.queue(filters=QueueFilter(noted=True)) == ["img-c"]
    assert session.queue(filters=QueueFilter(unsure=True)) == ["img-d"]
    assert session.queue(filters=QueueFilter(unreviewed=True)) == [
        i for i in SMALL if i != "img-e"]
    # all conditions together
    assert session.queue(filters=QueueFilter(predicted=(0,), unsure=True)) == ["img-d"]
    assert session.queue(filters=QueueFilter(changed=True, noted=True)) == []
    assert session.queue(filters=QueueFilter()) == list(SMALL)


def test_any_order_combines_with_not_yet_reviewed(session):
    ranked = session.queue("suspicious")
    assert ranked[0] == "img-b"
    session.mark_reviewed("img-b")
    session.mark_reviewed(ranked[2])
    only = session.queue("suspicious", filters=QueueFilter(unreviewed=True))
    assert only == [i for i in ranked if i not in ("img-b", ranked[2])]
    dis = session.queue("disagreement")
    assert session.queue("disagreement", filters=QueueFilter(unreviewed=True)) == [
        i for i in dis if i not in ("img-b", ranked[2])]


def test_filters_are_persisted_with_the_queue(session, tmp_path):
    session.mark_unsure("img-c")
    session.mark_unsure("img-f")
    ids = session.set_queue("listed", filters=QueueFilter(unsure=True))
    assert ids == ["img-c", "img-f"] and session.queue_ids == ("img-c", "img-f")
    assert session.progress() == (0, 0, 2)
    view = review_view(session)
    assert view.filters == QueueFilter(unsure=True) and "unsure" in view.queue_text
    session.close()
    with ReviewSession.open(tmp_path / "s.hpa") as again:
        assert again.queue_filters == QueueFilter(unsure=True)
        assert again.queue_ids == ("img-c", "img-f")
        assert again.cursor.filters.unsure
        again.set_queue("listed")
        assert again.queue_ids == tuple(SMALL) and not again.queue_filters


def test_predicted_filter_needs_probabilities(plain_session):
    with pytest.raises(SessionError, match="filter on predicted classes needs"):
        plain_session.queue(filters=QueueFilter(predicted=(3,)))
    with pytest.raises(ValueError, match="outside 0-27"):
        QueueFilter(predicted=(28,))
    assert plain_session.queue(filters=QueueFilter(unreviewed=True)) == list(SMALL)


def test_cli_suspicious_filters(tmp_path, capsys, labels_csv, probs_csv):
    s = tmp_path / "s.hpa"
    assert main(["labels", "import", "--labels", str(labels_csv), "--probs", str(probs_csv),
                 "--session", str(s)]) == 0
    with ReviewSession.open(s) as sess:
        sess.mark_reviewed("img-b")
        sess.mark_unsure("img-d")
    capsys.readouterr()
    assert main(["labels", "suspicious", str(s), "--top", "10", "--unreviewed"]) == 0
    ids = [line.split("\t")[1] for line in capsys.readouterr().out.splitlines()[1:]]
    assert "img-b" not in ids and len(ids) == 5
    assert main(["labels", "suspicious", str(s), "--unsure", "--predicted", "0"]) == 0
    ids = [line.split("\t")[1] for line in capsys.readouterr().out.splitlines()[1:]]
    assert ids == ["img-d"]
    assert main(["labels", "suspicious", str(s), "--predicted", "40"]) == 2
    assert "--predicted" in capsys.readouterr().err


def test_a_selection_is_a_queue_in_its_own_order_kept_across_reopening(session, tmp_path):
    chosen = ["img-e", "img-b", "img-d", "img-b"]  # a repeat is kept once, first place
    assert session.set_queue("selection", selection=chosen) == ["img-e", "img-b", "img-d"]
    assert session.current_id == "img-e" and session.next() == "img-b"
    session.mark_unsure("img-d")
    # the filters and the class filter apply to the kept selection, in its order
    assert session.set_queue("selection", filters=QueueFilter(unsure=True)) == ["img-d"]
    assert session.set_queue("selection", class_filter=[3, 14]) == ["img-e", "img-b"]
    path = session.path
    session.close()
    with ReviewSession.open(path) as again:
        assert again.queue_order == "selection"
        assert again.queue_ids == ("img-e", "img-b")
        assert again.set_queue("selection") == ["img-e", "img-b", "img-d"]
        with pytest.raises(SessionError, match="1 of the 2 selected fields are not in this session.*'zz'"):
            again.set_queue("selection", selection=["img-a", "zz"])
        assert again.queue_ids == ("img-e", "img-b", "img-d")  # a refused selection changes nothing


def test_the_selection_order_needs_a_selection(plain_session):
    with pytest.raises(SessionError, match="no selection to review"):
        plain_session.set_queue("selection")
