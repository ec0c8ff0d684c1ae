"""What the review widget shows for the current image of a session (no Qt):
:class:`ReviewView`, and :func:`review_view`, which reads it from the session in one pass
(the state, one image row and the edit log's new rows), so a key press costs a few
indexed queries and the widget draws from one value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..classes import NUM_CLASSES
from ..labels import Target
from .decisions import Plan, Proposal, accept_plan, class_names, proposals
from .highlights import predicted_set
from .ordering import ORDERS
from .queue import QueueFilter
from .store import ReviewSession


@dataclass(frozen=True)
class ReviewView:
    """The current image of the queue, its labels and the model's, and the queue state."""

    id: str
    position: int  # the stored position in the queue (0-based)
    queue_length: int
    order: str
    class_filter: list[int] | None
    labels: Target
    original: Target
    predicted: Target | None  # None without probabilities
    probs: np.ndarray | None  # (28,)
    thresholds: np.ndarray  # (28,)
    flags: tuple[str | None, ...]  # per class: :meth:`.Highlights.flag`
    note: str
    reviewed: bool
    score: float | None  # P(labels right), when computed for these labels
    can_undo: bool
    can_redo: bool
    proposals: tuple[Proposal, ...] = ()  # strongest first
    plan: Plan | None = None  # what accepting all proposals does
    unsure: bool = False
    progress: tuple[int, int, int] = (0, 0, 0)  # reviewed, changed, images of the queue
    filters: QueueFilter = QueueFilter()

    @property
    def progress_text(self) -> str:
        """``"12 of 60 reviewed, 5 changed"`` (of the queue)."""
        reviewed, changed, n = self.progress
        return f"{reviewed} of {n} reviewed, {changed} changed"

    @property
    def labels_words(self) -> str:
        return class_names(self.labels)

    @property
    def predicted_words(self) -> str:
        return "no model probabilities" if self.predicted is None else class_names(self.predicted)

    @property
    def changed(self) -> bool:
        return self.labels != self.original

    @property
    def queue_text(self) -> str:
        """The queue's order, class filter and length, in words."""
        cfilter = self.class_filter
        return (f"{ORDERS.get(self.order, self.order)}"
                + (f", labelled {', '.join(str(k) for k in cfilter)}" if cfilter else "")
                + (f", {self.filters.words}" if self.filters else "")
                + f": {self.queue_length} images")

    @property
    def labels_text(self) -> str:
        """The current, imported and predicted label sets and the score, on one line."""
        changed = " (changed)" if self.changed else ""
        return (f"labels{changed}: {' '.join(map(str, self.labels)) or 'none'}"
                f" · imported: {' '.join(map(str, self.original)) or 'none'}"
                + (f" · model: {' '.join(map(str, self.predicted))}"
                   if self.predicted is not None else "")
                + (f" · P(labels right) {self.score:.2g}" if self.score is not None else ""))


def review_view(session: ReviewSession) -> ReviewView | None:
    """The view of the session's current image; ``None`` when the queue is empty."""
    cursor = session.cursor
    image_id = cursor.current_id
    if image_id is None:
        return None
    rec, hl = session.record_with_highlights(image_id)
    thresholds = session.thresholds
    props = proposals(rec.labels, rec.probs, thresholds, session.calibration)
    return ReviewView(
        id=image_id,
        position=cursor.position,
        queue_length=len(cursor.ids),
        order=cursor.order,
        class_filter=cursor.class_filter,
        filters=cursor.filters,
        labels=rec.labels,
        original=rec.original,
        predicted=predicted_set(rec.probs, thresholds),
        probs=rec.probs,
        thresholds=thresholds,
        flags=tuple(hl.flag(k) for k in range(NUM_CLASSES)),
        note=rec.note,
        reviewed=rec.reviewed,
        score=rec.score,
        can_undo=session.can_undo,
        can_redo=session.can_redo,
        proposals=props,
        unsure=rec.unsure,
        progress=session.progress(),
        plan=None if rec.probs is None else accept_plan(rec.labels, props),
    )
