"""The image side of the review widget: reading the current image set (from the prefetch
cache, off the GUI thread) and showing it as four layers, or the message saying why not.
A mixin of :class:`~napari_hpa._qt.review.ReviewWidget`, which holds the cache, the layers
and the signals it uses.
"""

from __future__ import annotations

import time

from ..review.prefetch import LoadedSet
from ._common import AwaitsImage


class ImageDisplay(AwaitsImage):
    """Requesting, prefetching and showing the image sets of the queue."""

    # ------------------------------------------------------------------ images

    def clear_cache(self) -> None:
        """Forget the image sets read so far (the next image is read afresh)."""
        self._reset_cache()

    def _reset_cache(self) -> None:
        self._cache.clear()

    def _request_image(self, image_id: str) -> None:
        self._show_when_read(image_id, self._cache.request(self.session, image_id))

    def _prefetch(self) -> None:
        s = self.session
        if s is None or self.prefetch <= 0:
            return
        self._cache.prefetch(s, s.queue_ids, s.position, self.prefetch, self.cache_size)

    def _display(self, loaded: LoadedSet) -> None:
        if loaded.image_set is not None:
            meta = {"hpa_review_session": str(self.session.path) if self.session else ""}
            self._set_layers.show(loaded.image_set, meta)
            self.shown_message = None
            self.image_message.clear()
            self.image_message.hide()
        else:
            self._remove_layers()
            self.shown_message = loaded.message
            self.image_message.setText(loaded.message)
            self.image_message.setToolTip(loaded.message)
            self.image_message.show()
        self.shown_image_id = loaded.id
        self.last_show_ms = (time.perf_counter() - self._nav_t0) * 1000
        self.image_shown.emit(loaded.id)

    def _remove_layers(self) -> None:
        self._set_layers.remove()

    @property
    def image_layers(self) -> list:
        """The four layers of the image set on screen (empty when its images are missing)."""
        return self._set_layers.layers
