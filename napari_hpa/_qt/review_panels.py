"""Two panels of the review widget.  The queue box: the order, the class filter, the filters
(predicted class, changed, has a note, unsure, not yet reviewed), a box to jump to an id
and a status line.  The class panel: one check box per class, grouped by
compartment, each with the model's probability beside it and coloured where label and
model disagree, under a legend of the two colours.  They draw a
:class:`~napari_hpa.review.view.ReviewView` and report what is chosen or clicked as
signals; the widget calls the session.
"""

from __future__ import annotations

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from ..classes import CLASSES, NUM_CLASSES
from ..review.ordering import NEEDS_PROBABILITIES, ORDERS
from ..review.queue import QueueFilter
from ..review.view import ReviewView
from .review_keys import KEYS
from .review_strip import mnemonic_safe

#: Highlight colours (background of the class row) and their legend text.
IMPROBABLE_COLOUR = "#b5452f"  # labelled, but the model finds it improbable
UNLABELLED_COLOUR = "#2f6db5"  # probable, but not labelled
COMPARTMENTS = ("nucleus", "nucleoli", "cytoplasm", "secretory", "cytoskeleton", "cell cycle",
                "membranes")
ALL_CLASSES = "all classes"


class QueuePanel(QGroupBox):
    """The queue: its order and class filter (chosen here, built by the widget), a box to
    jump to an id, and a status line."""

    #: emitted with the order key chosen
    order_chosen = Signal(str)
    #: emitted with the class index chosen as filter, or ``None`` for all classes
    filter_chosen = Signal(object)
    #: emitted with the :class:`~napari_hpa.review.queue.QueueFilter` the controls now say
    filters_chosen = Signal(object)
    #: emitted with the id typed into the jump box
    jump_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Queue", parent)
        grid = QGridLayout(self)
        self.order_combo = QComboBox()
        for key, text in ORDERS.items():
            self.order_combo.addItem(text, key)
        self.order_combo.activated.connect(
            lambda i: self.order_chosen.emit(self.order_combo.itemData(i)))
        grid.addWidget(QLabel("order"), 0, 0)
        grid.addWidget(self.order_combo, 0, 1, 1, 2)
        self.filter_combo = QComboBox()
        self.filter_combo.addItem(ALL_CLASSES, None)
        for c in CLASSES:
            self.filter_combo.addItem(f"{c.index} {c.name}", c.index)
        self.filter_combo.activated.connect(
            lambda i: self.filter_chosen.emit(self.filter_combo.itemData(i)))
        self.predicted_combo = QComboBox()
        self.predicted_combo.setToolTip("keep only images the model predicts this class for")
        self.predicted_combo.addItem("any class", None)
        for c in CLASSES:
            self.predicted_combo.addItem(f"{c.index} {c.name}", c.index)
        self.predicted_combo.activated.connect(self._filters_changed)
        classes = QHBoxLayout()  # labelled and predicted side by side: one row for both
        for combo in (self.filter_combo, self.predicted_combo):  # no wider than the dock
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(10)
        self.filter_combo.setToolTip("keep only images labelled with this class")
        classes.addWidget(self.filter_combo, 1)
        classes.addWidget(QLabel("predicted"))
        classes.addWidget(self.predicted_combo, 1)
        grid.addWidget(QLabel("labelled"), 1, 0)
        grid.addLayout(classes, 1, 1, 1, 2)
        marks = QHBoxLayout()
        self.mark_checks: dict[str, QCheckBox] = {}
        for key, text, tip in (
            ("unreviewed", "not reviewed", "only images not yet marked reviewed (with any order)"),
            ("changed", "changed", "only images whose labels differ from the import"),
            ("noted", "note", "only images with a note"),
            ("unsure", "unsure", "only images marked unsure"),
        ):
            box = QCheckBox(text)
            box.setToolTip(tip)
            box.toggled.connect(self._filters_changed)
            self.mark_checks[key] = box
            marks.addWidget(box)
        marks.addStretch(1)
        grid.addWidget(QLabel("only"), 2, 0)
        grid.addLayout(marks, 2, 1, 1, 2)
        self.jump_edit = QLineEdit()
        self.jump_edit.setPlaceholderText(f"image id ({KEYS['jump'][0]})")
        self.jump_edit.returnPressed.connect(self._jump)
        jump_button = QPushButton("Go")
        jump_button.clicked.connect(self._jump)
        grid.addWidget(QLabel("jump to"), 3, 0)
        grid.addWidget(self.jump_edit, 3, 1)
        grid.addWidget(jump_button, 3, 2)
        self.status = QLabel()
        self.status.setWordWrap(True)
        grid.addWidget(self.status, 4, 0, 1, 3)

    @property
    def filter_controls(self) -> list[QWidget]:
        """The controls that rebuild the queue (disabled while it is built)."""
        return [self.order_combo, self.filter_combo, self.predicted_combo,
                *self.mark_checks.values()]

    def filters(self) -> QueueFilter:
        """The filters the controls say."""
        cls = self.predicted_combo.currentData()
        return QueueFilter(predicted=() if cls is None else (cls,),
                           **{k: b.isChecked() for k, b in self.mark_checks.items()})

    def _filters_changed(self, *_) -> None:
        self.filters_chosen.emit(self.filters())

    def _jump(self) -> None:
        self.jump_requested.emit(self.jump_edit.text().strip())

    def allow_orders(self, has_probabilities: bool) -> None:
        """Enable the orders that need probabilities only when the session has them."""
        model = self.order_combo.model()
        for i in range(self.order_combo.count()):
            needs = self.order_combo.itemData(i) in NEEDS_PROBABILITIES
            model.item(i).setEnabled(has_probabilities or not needs)
        self.predicted_combo.setEnabled(has_probabilities)

    def show_view(self, view: ReviewView, *, status: bool = True) -> None:
        """Show the queue's order and class filter (and, with ``status``, its status line)."""
        if status:
            self.status.setText(view.queue_text)
        _set_combo(self.order_combo, view.order)
        _set_combo(self.filter_combo, view.class_filter[0] if view.class_filter else None)
        f = view.filters
        _set_combo(self.predicted_combo, f.predicted[0] if f.predicted else None)
        for key, box in self.mark_checks.items():
            if box.isChecked() != getattr(f, key):
                box.blockSignals(True)
                box.setChecked(getattr(f, key))
                box.blockSignals(False)


def _set_combo(combo: QComboBox, data) -> None:
    i = combo.findData(data)
    if i >= 0 and combo.currentIndex() != i:
        combo.blockSignals(True)
        combo.setCurrentIndex(i)
        combo.blockSignals(False)


class ClassPanel(QWidget):
    """The 28 classes of the current image: ticked when labelled, with the probability."""

    #: emitted with the index of the class whose check box was clicked
    class_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        legend = QHBoxLayout()
        for colour, text in ((IMPROBABLE_COLOUR, "labelled, improbable"),
                             (UNLABELLED_COLOUR, "probable, not labelled")):
            swatch = QLabel(f" {text} ")
            swatch.setStyleSheet(f"background-color: {colour}; color: white; border-radius: 3px;")
            legend.addWidget(swatch)
        legend.addStretch(1)
        layout.addLayout(legend)

        classes = QWidget()
        cl = QVBoxLayout(classes)
        cl.setContentsMargins(0, 0, 0, 0)
        self.checks: dict[int, QCheckBox] = {}
        self.prob_labels: dict[int, QLabel] = {}
        self._flags: dict[int, str | None] = {}
        #: class -> (its compartment's grid, its row there)
        self._home: dict[int, tuple[QGridLayout, int]] = {}
        # Flagged classes are moved into this box at the top, so they are in view on every
        # image without scrolling; the others stay in their compartment.
        self.flagged_box = QGroupBox("disagreements")
        self._flagged_grid = QGridLayout(self.flagged_box)
        self._flagged_grid.setVerticalSpacing(1)
        self.flagged_box.hide()
        cl.addWidget(self.flagged_box)
        self._compartments: dict[str, QGroupBox] = {}
        for comp in COMPARTMENTS:
            box = QGroupBox(comp)
            g = QGridLayout(box)
            g.setVerticalSpacing(1)
            for r, c in enumerate(x for x in CLASSES if x.compartment == comp):
                check = QCheckBox(mnemonic_safe(f"{c.index} {c.name}"))
                check.clicked.connect(lambda _=False, k=c.index: self.class_clicked.emit(k))
                prob = QLabel("")
                prob.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                prob.setMinimumWidth(40)
                g.addWidget(check, r, 0)
                g.addWidget(prob, r, 1)
                self.checks[c.index] = check
                self.prob_labels[c.index] = prob
                self._home[c.index] = (g, r)
            cl.addWidget(box)
            self._compartments[comp] = box
        cl.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(classes)
        layout.addWidget(self.scroll, 1)
        self._placed: tuple[int, ...] = ()  # the classes now in the flagged box
        self._image_id: str | None = None

    def _place(self, flagged: tuple[int, ...]) -> None:
        """Move the ``flagged`` classes to the box at the top and the rest home."""
        if flagged == self._placed:
            return
        for k in self._placed:
            g, r = self._home[k]
            g.addWidget(self.checks[k], r, 0)
            g.addWidget(self.prob_labels[k], r, 1)
        for r, k in enumerate(flagged):
            self._flagged_grid.addWidget(self.checks[k], r, 0)
            self._flagged_grid.addWidget(self.prob_labels[k], r, 1)
        self._placed = flagged
        self.flagged_box.setVisible(bool(flagged))
        for comp, box in self._compartments.items():  # a compartment left empty is hidden
            box.setVisible(any(c.compartment == comp and c.index not in flagged for c in CLASSES))

    def show_view(self, view: ReviewView) -> None:
        """Tick, colour and annotate every class for the image of ``view``."""
        thresholds = view.thresholds
        labels = set(view.labels)
        self._flags = {}
        for k in range(NUM_CLASSES):
            check = self.checks[k]
            check.setChecked(k in labels)
            flag = view.flags[k]
            self._flags[k] = flag
            colour = {"labelled_improbable": IMPROBABLE_COLOUR,
                      "probable_unlabelled": UNLABELLED_COLOUR}.get(flag)
            style = f"background-color: {colour}; color: white;" if colour else ""
            if check.styleSheet() != style:  # restyling is slow: only on change
                check.setStyleSheet(style)
            prob = self.prob_labels[k]
            if view.probs is None:
                prob.setText("")
                prob.setToolTip("")
            else:
                p = float(view.probs[k])
                prob.setText(f"<b>{p:.2f}</b>" if p >= thresholds[k] else f"{p:.2f}")
                prob.setToolTip(f"p = {p:.4f}, threshold {thresholds[k]:.2f}")
            if prob.styleSheet() != style:
                prob.setStyleSheet(style)
            orig = "labelled at import" if k in view.original else "not labelled at import"
            check.setToolTip(f"{orig}; Space toggles")
        self._place(tuple(k for k in range(NUM_CLASSES) if view.flags[k]))
        if view.id != self._image_id:  # a new image starts at the top
            self._image_id = view.id
            self.scroll.verticalScrollBar().setValue(0)

    def in_view(self, cls: int) -> bool:
        """Whether the check box of class ``cls`` is within the visible part of the list."""
        check = self.checks[cls]
        if not check.isVisibleTo(self.scroll):
            return False
        viewport = self.scroll.viewport()
        top_left = check.mapTo(viewport, check.rect().topLeft())
        bottom = top_left.y() + check.height()
        return top_left.y() >= 0 and bottom <= viewport.height()

    def flags(self) -> dict[int, str | None]:
        """Per class, the highlight on screen: ``'labelled_improbable'``,
        ``'probable_unlabelled'`` or ``None``."""
        return dict(self._flags)

    def checked(self) -> tuple[int, ...]:
        """The classes whose check boxes are ticked."""
        return tuple(k for k, c in self.checks.items() if c.isChecked())
