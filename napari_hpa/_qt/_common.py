"""Small Qt pieces the dock widgets share."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QLabel

ERROR_STYLE = "color: #ff6b6b;"


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
