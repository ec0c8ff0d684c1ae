"""Table cells of the classifier: probability bars, and items that sort by number."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QStyledItemDelegate, QTableWidgetItem


class BarDelegate(QStyledItemDelegate):
    """Draws a probability cell as a bar with its value."""

    def paint(self, painter, option, index):
        value = index.data(Qt.ItemDataRole.UserRole)
        if value is None:
            return super().paint(painter, option, index)
        painter.save()
        rect = option.rect.adjusted(2, 3, -2, -3)
        painter.fillRect(rect, QColor(60, 60, 60))
        bar = rect.adjusted(0, 0, -int(rect.width() * (1 - float(value))), 0)
        painter.fillRect(bar, QColor(70, 160, 230))
        painter.setPen(QColor(240, 240, 240))
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, f"{float(value):.3f}")
        painter.restore()


class NumberItem(QTableWidgetItem):
    """A table item that sorts by its number, not its text."""

    def __lt__(self, other):
        a, b = self.data(Qt.ItemDataRole.UserRole), other.data(Qt.ItemDataRole.UserRole)
        if a is None or b is None:
            return super().__lt__(other)
        return float(a) < float(b)
