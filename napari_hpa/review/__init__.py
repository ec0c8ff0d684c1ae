"""Label review: the session store (:mod:`.store`, over :mod:`.db`, :mod:`.edits`,
:mod:`.queue`, :mod:`.highlights` and :mod:`.export`), the queue orders (:mod:`.ordering`),
and for a review view what it shows (:mod:`.view`) and the image sets it reads ahead
(:mod:`.prefetch`).

Core layer: no Qt, napari or torch.  ``cleanlab`` is imported only when a queue
that needs it is built.
"""

from __future__ import annotations

from .ordering import ORDERS
from .queue import QueueFilter
from .store import SCHEMA_VERSION, Edit, Highlights, ImageRecord, ReviewSession

__all__ = ["ORDERS", "SCHEMA_VERSION", "Edit", "Highlights", "ImageRecord", "QueueFilter",
           "ReviewSession"]
