"""Small Qt pieces the dock widgets share."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QLabel, QSizePolicy

ERROR_STYLE = "color: #ff6b6b;"


def path_value(value) -> Path | None:
    """A magicgui file field's value as a path; None when it is empty (magicgui gives ".")."""
    text = str(value or "").strip()
    return None if text in ("", ".") else Path(text)


class ErrorLabel(QLabel):
    """A red, selectable, word-wrapped message line, hidden while there is nothing to say."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWordWrap(True)
        self.setStyleSheet(ERROR_STYLE)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hide()

    def show_error(self, message: str, notify: bool = True) -> None:
        """Show ``message`` here and, with ``notify``, as a napari error notification."""
        self.setText(message)
        self.show()
        if notify:
            from napari.utils.notifications import show_error

            show_error(message)

    def clear_error(self) -> None:
        self.clear()
        self.hide()


class ElidedLabel(QLabel):
    """One line that never wraps or clips: text too long for the width ends in "…", and the
    whole text is the tooltip."""

    def __init__(self, text: str = "", parent=None, *, mode=Qt.TextElideMode.ElideMiddle):
        super().__init__(parent)
        self._full = ""
        self._mode = mode
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt)
        self._full = text or ""
        self.setToolTip(self._full)
        self._elide()

    def text(self) -> str:
        """The whole text, not what fits."""
        return self._full

    def shown_text(self) -> str:
        """What is drawn (the elided text)."""
        return super().text()

    def setToolTip(self, tip: str) -> None:  # noqa: N802 (Qt)
        super().setToolTip(tip or self._full)

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt)
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        width = max(self.width(), 10)
        super().setText(self.fontMetrics().elidedText(self._full, self._mode, width))


class AwaitsImage:
    """Showing a set once the prefetch pool has read it: the part the review widget and the
    folder dock share.  The widget holds ``_cache`` (a :class:`~napari_hpa.prefetch.PrefetchCache`),
    ``_wanted``, ``shown_image_id``, ``image_message``, the ``_image_ready`` signal, the
    ``_prefetch_timer`` and its own ``_display``."""

    def _show_when_read(self, image_id: str, fut) -> None:
        """Show ``fut``'s set now if it is read, else when it is (on the GUI thread)."""
        self._wanted = image_id
        if fut.done():
            self._display(fut.result())
        else:
            self.image_message.setText(f"loading {image_id}…")
            self.image_message.show()
            fut.add_done_callback(lambda f, i=image_id: self._image_ready.emit(i))
        self._prefetch_timer.start()

    def _on_image_ready(self, image_id: str) -> None:
        if image_id != self._wanted or self.shown_image_id == image_id:
            return
        fut = self._cache.get(image_id)
        if fut is not None and fut.done() and not fut.cancelled():
            self._display(fut.result())
