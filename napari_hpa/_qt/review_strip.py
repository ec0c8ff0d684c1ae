"""The decision strip at the top of the review widget: the current labels and the model's
proposal in words, each disagreement as its own item (add X / drop X, with its key and the
strength of its evidence as a bar graded from grey to full colour), and what accepting all
proposals does.  It draws a :class:`~napari_hpa.review.view.ReviewView` (the proposals are
computed in :mod:`napari_hpa.review.decisions`) and reports clicks as signals.

The layout is stable: each line is one line (elided, the whole text in its tooltip), and the
first :data:`ROWS` item rows keep their place when empty.
"""

from __future__ import annotations

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QGridLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ..review.decisions import STRONG, Proposal
from ..review.view import ReviewView
from .review_keys import KEYS, STRIP_KEYS

#: Item rows that keep their place when there are fewer proposals (no jump between images).
ROWS = 3
ADD_COLOUR = (47, 109, 181)  # probable, not labelled
DROP_COLOUR = (181, 69, 47)  # labelled, improbable
WEAK_COLOUR = (110, 110, 110)


def mnemonic_safe(text: str) -> str:
    """``text`` for a button or check box, whose ``&`` Qt takes as a mnemonic: ``&&``."""
    return text.replace("&", "&&")


def strength_colour(p: Proposal) -> str:
    """The item's colour: grey for no evidence, the action's full colour for certainty."""
    full = ADD_COLOUR if p.action == "add" else DROP_COLOUR
    # strengths under 0.5 would favour the labels; the grade runs from 0.5 to 1
    f = min(max((p.strength - 0.5) / 0.5, 0.0), 1.0)
    r, g, b = (round(w + (c - w) * f) for w, c in zip(WEAK_COLOUR, full))
    return f"#{r:02x}{g:02x}{b:02x}"


def _line() -> QLabel:
    label = QLabel()
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
    return label


class DecisionStrip(QWidget):
    """Labels, proposal and one item per disagreement, each acting with one key."""

    #: emitted with the 0-based index of the item clicked
    item_chosen = Signal(int)
    #: emitted when "accept all" is clicked
    accept_all = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.labels_line = _line()
        self.model_line = _line()
        for w in (self.labels_line, self.model_line):
            layout.addWidget(w)
        grid = QGridLayout()
        grid.setVerticalSpacing(2)
        grid.setColumnStretch(1, 1)
        self.item_buttons: list[QPushButton] = []
        self.item_bars: list[QProgressBar] = []
        self.item_evidence: list[QLabel] = []
        for n in range(STRIP_KEYS):
            button = QPushButton()
            button.setStyleSheet("text-align: left; padding: 1px 6px;")
            button.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
            button.clicked.connect(lambda _=False, i=n: self.item_chosen.emit(i))
            bar = QProgressBar()
            bar.setRange(0, 100)
            bar.setTextVisible(False)
            bar.setFixedSize(70, 12)
            evidence = QLabel()
            evidence.setMinimumWidth(120)
            for w in (button, bar, evidence):
                sp = w.sizePolicy()
                sp.setRetainSizeWhenHidden(n < ROWS)
                w.setSizePolicy(sp)
                w.hide()
            grid.addWidget(button, n, 1)
            grid.addWidget(bar, n, 2)
            grid.addWidget(evidence, n, 3)
            self.item_buttons.append(button)
            self.item_bars.append(bar)
            self.item_evidence.append(evidence)
        layout.addLayout(grid)
        self.accept_button = QPushButton(f"Accept all strong ({KEYS['accept'][0]})")
        self.accept_button.clicked.connect(self.accept_all.emit)
        self.plan_line = _line()
        layout.addWidget(self.accept_button)
        layout.addWidget(self.plan_line)
        self._proposals: tuple[Proposal, ...] = ()

    @property
    def proposals(self) -> tuple[Proposal, ...]:
        """The proposals on screen, in item order."""
        return self._proposals

    def show_view(self, view: ReviewView | None) -> None:
        props = () if view is None else view.proposals
        self._proposals = props
        if view is None:
            texts = ("labels: –", "model: –", "")
        else:
            changed = " (changed)" if view.changed else ""
            score = "" if view.score is None else f"P(labels right) {view.score:.2g} · "
            texts = (f"{score}labels{changed}: {view.labels_words}",
                     f"model: {view.predicted_words}",
                     "" if view.plan is None else f"{KEYS['accept'][0]}: {view.plan.text}")
        for label, text in zip((self.labels_line, self.model_line, self.plan_line), texts):
            label.setText(text)
            label.setToolTip(text)
        for n, button in enumerate(self.item_buttons):
            bar, evidence = self.item_bars[n], self.item_evidence[n]
            if n >= len(props):
                for w in (button, bar, evidence):
                    w.hide()
                continue
            p = props[n]
            colour = strength_colour(p)
            button.setText(mnemonic_safe(f"{KEYS[f'item{n + 1}'][0]}   {p.text}"))
            button.setToolTip(f"{p.text}: p {p.prob:.3f} (threshold {p.threshold:.2f}); "
                              f"{p.strength * 100:.0f} % likely right"
                              + ("" if p.strong else " — weak: accept-all leaves it"))
            button.setStyleSheet(f"text-align: left; padding: 1px 6px; color: white; "
                                 f"background-color: {colour};"
                                 + ("" if p.strong else " font-style: italic;"))
            bar.setValue(round(p.strength * 100))
            bar.setStyleSheet(f"QProgressBar::chunk {{ background-color: {colour}; }}")
            evidence.setText(p.evidence + ("" if p.strong else " (weak)"))
            for w in (button, bar, evidence):
                w.show()
        self.accept_button.setEnabled(bool(view is not None and view.plan is not None
                                           and view.plan.applied))
        self.accept_button.setToolTip(f"applies the proposals at least {STRONG * 100:.0f} % "
                                      "likely right; weak ones stay for their own key")

    def item_texts(self) -> list[str]:
        """The visible items' button texts as shown (``&&`` read back as ``&``)."""
        return [b.text().replace("&&", "&") for b in self.item_buttons if not b.isHidden()]
