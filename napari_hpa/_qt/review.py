"""The **HPA label review** dock widget: a thin Qt view over a
:class:`~napari_hpa.review.ReviewSession`.

Every action calls the session first (the edit is committed to the SQLite file
before the call returns) and the screen is then redrawn from what the session
reads back -- never from the widget's own state.  Importing a session, building
a queue (cleanlab takes seconds on 31k ids) and exporting run in napari worker
threads; image sets are read in a small background pool that prefetches the
neighbours of the current image, so moving on shows an image already in memory.

Keys (chosen not to clash with napari 0.9's own shortcuts; see :data:`KEYS`):

=====================  ===========================================================
Alt+Right / Alt+Left   next / previous image of the queue
Alt+A                  accept the model's predicted label set
Alt+R                  mark reviewed / not reviewed
Ctrl+Z / Ctrl+Shift+Z  undo / redo (the session's undo: appends the inverse edit)
Alt+J / Alt+N          focus the jump-to-id box / the note box
Space                  toggles the focused class check box (Tab moves between them)
=====================  ===========================================================

The Alt keys are window-wide shortcuts, so they work wherever the focus is in
the napari window (canvas with an image layer selected, layer list, this dock).
Ctrl+Z / Ctrl+Shift+Z are bound in this dock and in the *viewer* keymap, which
napari consults after the selected layer's keymap: with an image layer selected
they reach the review, and a Labels layer keeps its own painting undo.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtGui import QKeySequence
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QShortcut,
    QVBoxLayout,
    QWidget,
)

from .._reader import image_set_layers
from ._common import ErrorLabel
from ..classes import CLASSES, NUM_CLASSES
from ..errors import HPAError
from ..imageset import ImageSet
from ..review import ORDERS, ReviewSession
from ..review.ordering import NEEDS_PROBABILITIES
from ..review.prefetch import LoadedSet, PrefetchCache
from ..review.view import review_view

MESSAGE_STYLE = "color: #ffb347; font-weight: bold;"
#: Highlight colours (background of the class row) and their legend text.
IMPROBABLE_COLOUR = "#b5452f"  # labelled, but the model finds it improbable
UNLABELLED_COLOUR = "#2f6db5"  # probable, but not labelled
COMPARTMENTS = ("nucleus", "nucleoli", "cytoplasm", "secretory", "cytoskeleton", "cell cycle",
                "membranes")
ALL_CLASSES = "all classes"
PREFETCH_DELAY_MS = 60

#: action -> (Qt key sequence, napari viewer-keymap key or None, what it does)
KEYS: dict[str, tuple[str, str | None, str]] = {
    "next": ("Alt+Right", None, "next image"),
    "previous": ("Alt+Left", None, "previous image"),
    "accept": ("Alt+A", None, "accept the model's predicted labels"),
    "reviewed": ("Alt+R", None, "mark reviewed / not reviewed"),
    "undo": ("Ctrl+Z", "Control-Z", "undo"),
    "redo": ("Ctrl+Shift+Z", "Control-Shift-Z", "redo"),
    "jump": ("Alt+J", None, "type an id to jump to"),
    "note": ("Alt+N", None, "type a note"),
}
#: Keys that must yield to a layer's own binding (Labels: Ctrl+Z paints undo): bound
#: to this dock only (Qt) and to the viewer keymap (napari asks the layer first).
_LOCAL_KEYS = frozenset({"undo", "redo"})


def keys_legend() -> str:
    keys = " · ".join(f"{seq} {text}" for seq, _, text in KEYS.values())
    return keys + " · Space toggles a class"


class ReviewWidget(QWidget):
    """Review and correct the labels of a review session, one image at a time."""

    #: emitted with the session once it is open and shown
    session_opened = Signal(object)
    #: emitted with the queue (list of ids) once a new order / filter is in place
    queue_changed = Signal(object)
    #: emitted with the export counts (dict) once the files are written
    exported = Signal(object)
    #: emitted with the id whose image (or missing-images message) is now on screen
    image_shown = Signal(str)
    _image_ready = Signal(str)  # from the prefetch pool to the GUI thread

    def __init__(self, napari_viewer, *, prefetch: int = 2, cache_size: int = 6):
        super().__init__()
        self.viewer = napari_viewer
        self.session: ReviewSession | None = None
        #: how many images ahead are prefetched (one behind as well when > 0)
        self.prefetch = int(prefetch)
        self.cache_size = max(int(cache_size), 3)
        self.shown_image_id: str | None = None
        self.shown_message: str | None = None
        #: milliseconds from the last navigation to its image being in the layers
        self.last_show_ms: float | None = None
        #: of which, milliseconds the session took to commit the new position (an fsync)
        self.last_store_ms: float | None = None
        self._cache = PrefetchCache(workers=2)
        self._wanted: str | None = None
        self._nav_t0 = time.perf_counter()
        self._layers: list = []
        self._worker = None
        self._flags: dict[int, str | None] = {}
        self._viewer_keys: list[str] = []
        self._image_ready.connect(self._on_image_ready)
        # Prefetch starts a moment after an image is shown, so the reads do not compete with
        # drawing it (and a key held down does not start a read for every image passed).
        self._prefetch_timer = QTimer(self)
        self._prefetch_timer.setSingleShot(True)
        self._prefetch_timer.setInterval(PREFETCH_DELAY_MS)
        self._prefetch_timer.timeout.connect(self._prefetch)
        self._build_ui()
        self._bind_keys()
        self._refresh()

    # ------------------------------------------------------------------ UI

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)

        row = QHBoxLayout()
        self.open_button = QPushButton("Open session…")
        self.open_button.clicked.connect(self._choose_session)
        self.create_button = QPushButton("New session…")
        self.create_button.setToolTip("Import an images folder, a labels CSV (Id,Target) and "
                                      "optionally a probabilities CSV into a new session file")
        self.create_button.clicked.connect(self._choose_create)
        row.addWidget(self.open_button)
        row.addWidget(self.create_button)
        layout.addLayout(row)
        self.session_label = QLabel("No session open.")
        self.session_label.setWordWrap(True)
        layout.addWidget(self.session_label)

        self.error_label = ErrorLabel()
        layout.addWidget(self.error_label)

        queue_box = QGroupBox("Queue")
        grid = QGridLayout(queue_box)
        self.order_combo = QComboBox()
        for key, text in ORDERS.items():
            self.order_combo.addItem(text, key)
        self.order_combo.activated.connect(
            lambda i: self.set_order(self.order_combo.itemData(i)))
        grid.addWidget(QLabel("order"), 0, 0)
        grid.addWidget(self.order_combo, 0, 1, 1, 2)
        self.filter_combo = QComboBox()
        self.filter_combo.addItem(ALL_CLASSES, None)
        for c in CLASSES:
            self.filter_combo.addItem(f"{c.index} {c.name}", c.index)
        self.filter_combo.activated.connect(
            lambda i: self.set_class_filter(self.filter_combo.itemData(i)))
        grid.addWidget(QLabel("class filter"), 1, 0)
        grid.addWidget(self.filter_combo, 1, 1, 1, 2)
        self.jump_edit = QLineEdit()
        self.jump_edit.setPlaceholderText(f"image id ({KEYS['jump'][0]})")
        self.jump_edit.returnPressed.connect(lambda: self.jump(self.jump_edit.text().strip()))
        jump_button = QPushButton("Go")
        jump_button.clicked.connect(lambda: self.jump(self.jump_edit.text().strip()))
        grid.addWidget(QLabel("jump to"), 2, 0)
        grid.addWidget(self.jump_edit, 2, 1)
        grid.addWidget(jump_button, 2, 2)
        self.queue_status = QLabel()
        grid.addWidget(self.queue_status, 3, 0, 1, 3)
        layout.addWidget(queue_box)

        nav = QHBoxLayout()
        self.prev_button = QPushButton("◀")
        self.prev_button.setToolTip(f"previous image ({KEYS['previous'][0]})")
        self.prev_button.clicked.connect(self.previous)
        self.next_button = QPushButton("▶")
        self.next_button.setToolTip(f"next image ({KEYS['next'][0]})")
        self.next_button.clicked.connect(self.next)
        self.id_label = QLabel("–")
        font = self.id_label.font()
        font.setBold(True)
        self.id_label.setFont(font)
        self.id_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.position_label = QLabel()
        nav.addWidget(self.prev_button)
        nav.addWidget(self.id_label, 1)
        nav.addWidget(self.position_label)
        nav.addWidget(self.next_button)
        layout.addLayout(nav)

        self.image_message = QLabel()
        self.image_message.setWordWrap(True)
        self.image_message.setStyleSheet(MESSAGE_STYLE)
        self.image_message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.image_message.hide()
        layout.addWidget(self.image_message)

        actions = QHBoxLayout()
        self.accept_button = QPushButton("Accept model")
        self.accept_button.setToolTip(f"set the labels to the model's predicted set "
                                      f"({KEYS['accept'][0]})")
        self.accept_button.clicked.connect(self.accept_predicted)
        self.reviewed_check = QCheckBox("reviewed")
        self.reviewed_check.setToolTip(f"{KEYS['reviewed'][0]}")
        self.reviewed_check.clicked.connect(self.set_reviewed)
        self.undo_button = QPushButton("Undo")
        self.undo_button.setToolTip(KEYS["undo"][0])
        self.undo_button.clicked.connect(self.undo)
        self.redo_button = QPushButton("Redo")
        self.redo_button.setToolTip(KEYS["redo"][0])
        self.redo_button.clicked.connect(self.redo)
        for w in (self.accept_button, self.reviewed_check, self.undo_button, self.redo_button):
            actions.addWidget(w)
        layout.addLayout(actions)

        self.predicted_label = QLabel()
        self.predicted_label.setWordWrap(True)
        layout.addWidget(self.predicted_label)

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
        self.class_checks: dict[int, QCheckBox] = {}
        self.prob_labels: dict[int, QLabel] = {}
        for comp in COMPARTMENTS:
            box = QGroupBox(comp)
            g = QGridLayout(box)
            g.setVerticalSpacing(1)
            for r, c in enumerate(x for x in CLASSES if x.compartment == comp):
                check = QCheckBox(f"{c.index} {c.name}")
                check.clicked.connect(lambda _=False, k=c.index: self.toggle_class(k))
                prob = QLabel("")
                prob.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                prob.setMinimumWidth(40)
                g.addWidget(check, r, 0)
                g.addWidget(prob, r, 1)
                self.class_checks[c.index] = check
                self.prob_labels[c.index] = prob
            cl.addWidget(box)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(classes)
        layout.addWidget(scroll, 1)

        note_row = QHBoxLayout()
        self.note_edit = QLineEdit()
        self.note_edit.setPlaceholderText(f"note ({KEYS['note'][0]}; Enter saves)")
        self.note_edit.returnPressed.connect(self._commit_note)
        self.note_edit.editingFinished.connect(self._commit_note)
        note_row.addWidget(QLabel("note"))
        note_row.addWidget(self.note_edit, 1)
        layout.addLayout(note_row)

        export_box = QGroupBox("Export")
        ex = QHBoxLayout(export_box)
        self.changed_only_check = QCheckBox("changed only")
        self.audit_check = QCheckBox("audit CSV")
        self.audit_check.setToolTip("also write every label edit to <name>_audit.csv beside it")
        self.export_button = QPushButton("Export…")
        self.export_button.clicked.connect(self._choose_export)
        ex.addWidget(self.changed_only_check)
        ex.addWidget(self.audit_check)
        ex.addWidget(self.export_button)
        layout.addWidget(export_box)

        self.keys_label = QLabel("Keys: " + keys_legend())
        self.keys_label.setWordWrap(True)
        self.keys_label.setStyleSheet("color: gray;")
        layout.addWidget(self.keys_label)

    def _bind_keys(self) -> None:
        handlers = {
            "next": self.next, "previous": self.previous, "accept": self.accept_predicted,
            "reviewed": self.toggle_reviewed, "undo": self.undo, "redo": self.redo,
            "jump": lambda: self._focus(self.jump_edit),
            "note": lambda: self._focus(self.note_edit),
        }
        self.shortcuts: dict[str, QShortcut] = {}
        for action, (seq, napari_key, _) in KEYS.items():
            sc = QShortcut(QKeySequence(seq), self)
            sc.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut if action in _LOCAL_KEYS
                          else Qt.ShortcutContext.WindowShortcut)
            sc.activated.connect(handlers[action])
            self.shortcuts[action] = sc
            if napari_key is not None:
                handler = handlers[action]
                self.viewer.bind_key(napari_key, lambda viewer, h=handler: h(), overwrite=True)
                self._viewer_keys.append(napari_key)

    def unbind_keys(self) -> None:
        """Remove this widget's bindings from the viewer keymap."""
        for key in self._viewer_keys:
            try:
                self.viewer.bind_key(key, None)
            except Exception:  # already unbound
                pass
        self._viewer_keys = []

    def _focus(self, edit: QLineEdit) -> None:
        edit.setFocus()
        edit.selectAll()

    # ------------------------------------------------------------------ sessions

    def _choose_session(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Review session", "",
                                              "Review sessions (*.hpa);;All files (*)")
        if path:
            self.open_session(path)

    def _choose_create(self) -> None:
        images = QFileDialog.getExistingDirectory(self, "Folder of image sets")
        if not images:
            return
        labels, _ = QFileDialog.getOpenFileName(self, "Labels CSV (Id,Target)", images,
                                                "CSV (*.csv)")
        if not labels:
            return
        probs, _ = QFileDialog.getOpenFileNames(
            self, "Probabilities CSV (optional: cancel for none; one file per fold for K folds)",
            images, "CSV (*.csv)")
        path, _ = QFileDialog.getSaveFileName(self, "New review session", images,
                                              "Review sessions (*.hpa)")
        if not path:
            return
        if not path.endswith(".hpa"):
            path += ".hpa"
        self.create_session(path, images, labels, probs or None, overwrite=True)

    def open_session(self, path: str | Path) -> bool:
        """Open a session file and show its current image (fast: loads only the id list)."""
        self._clear_error()
        try:
            session = ReviewSession.open(path)
        except HPAError as exc:
            self._show_error(str(exc))
            return False
        self._set_session(session)
        return True

    def create_session(self, path: str | Path, images_dir: str | Path | None,
                       labels_csv: str | Path,
                       probs_csv: str | Path | Sequence[str | Path] | None = None, *,
                       overwrite: bool = False) -> None:
        """Import into a new session file off the GUI thread; :attr:`session_opened` follows."""
        if self.busy:
            return
        self._clear_error()
        self._run(lambda: ReviewSession.create(path, images_dir, labels_csv, probs_csv,
                                               overwrite=overwrite),
                  self._set_session, f"Importing {Path(labels_csv).name}…")

    def close_session(self) -> None:
        """Close the session file and remove its image layers."""
        if self.session is not None:
            self._commit_note()
            self.session.close()
        self.session = None
        self._reset_cache()
        self._remove_layers()
        self.shown_image_id = self._wanted = None
        self._refresh()

    def _set_session(self, session: ReviewSession) -> None:
        if self.session is not None and self.session is not session:
            self._commit_note()
            self.session.close()
        self.session = session
        self._reset_cache()
        self.shown_image_id = self._wanted = None
        s = session.summary()
        probs = "with model probabilities" if s["probabilities"] else "no model probabilities"
        self.session_label.setText(
            f"{session.path.name}: {s['images']} images, {probs}; {s['changed']} changed, "
            f"{s['reviewed']} reviewed")
        self.session_label.setToolTip(str(session.path))
        model = self.order_combo.model()
        for i in range(self.order_combo.count()):
            needs = self.order_combo.itemData(i) in NEEDS_PROBABILITIES
            model.item(i).setEnabled(session.has_probabilities or not needs)
        self._nav_t0 = time.perf_counter()
        self._refresh()
        self.session_opened.emit(session)

    # ------------------------------------------------------------------ workers

    @property
    def busy(self) -> bool:
        return self._worker is not None

    def _run(self, func, on_result, status: str) -> None:
        from napari.qt.threading import create_worker

        self._worker = create_worker(
            func,
            _start_thread=False,
            _connect={"returned": on_result, "errored": self._on_failure,
                      "finished": self._on_finished},
        )
        self.queue_status.setText(status)
        for w in (self.order_combo, self.filter_combo, self.create_button, self.open_button,
                  self.export_button):
            w.setEnabled(False)
        self._worker.start()

    def _on_finished(self) -> None:
        self._worker = None
        for w in (self.order_combo, self.filter_combo, self.create_button, self.open_button,
                  self.export_button):
            w.setEnabled(True)
        self._refresh()

    def _on_failure(self, exc: Exception) -> None:
        self._show_error(str(exc) if isinstance(exc, HPAError) else f"{type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ queue

    def set_order(self, order: str) -> None:
        """Build the queue in ``order`` (a key of :data:`ORDERS`) off the GUI thread."""
        if self.session is not None:
            self._rebuild_queue(order, self.session.class_filter)

    def set_class_filter(self, cls: int | None) -> None:
        """Keep only images labelled with class ``cls`` (``None``: all) in the queue."""
        if self.session is not None:
            self._rebuild_queue(self.session.queue_order, None if cls is None else [int(cls)])

    def _rebuild_queue(self, order, class_filter) -> None:
        if self.busy:
            return
        self._commit_note()
        self._clear_error()
        session = self.session
        self._run(lambda: session.set_queue(order, class_filter), self._on_queue,
                  f"Building the queue ({ORDERS.get(order, order)})…")

    def _on_queue(self, ids) -> None:
        self._reset_cache()
        self._nav_t0 = time.perf_counter()
        self._refresh()
        self._prefetch_timer.start()
        self.queue_changed.emit(ids)

    # ------------------------------------------------------------------ navigation

    @property
    def current_id(self) -> str | None:
        return None if self.session is None else self.session.current_id

    def _navigate(self, move) -> None:
        if self.session is None:
            return
        self._commit_note()
        self._clear_error()
        self._nav_t0 = time.perf_counter()
        try:
            move(self.session)
        except (HPAError, ValueError) as exc:
            self._show_error(str(exc))
        self.last_store_ms = (time.perf_counter() - self._nav_t0) * 1000
        self._refresh()

    def next(self) -> None:
        self._navigate(lambda s: s.next())

    def previous(self) -> None:
        self._navigate(lambda s: s.previous())

    def jump(self, image_id: str) -> None:
        """Make ``image_id`` current (it must be in the current queue)."""
        if image_id:
            self._navigate(lambda s: s.jump(image_id))

    # ------------------------------------------------------------------ edits

    def _edit(self, action) -> None:
        """Run one session edit (committed before it returns), then redraw from the store."""
        if self.session is None or self.current_id is None:
            return
        self._clear_error()
        try:
            action(self.session, self.current_id)
        except (HPAError, ValueError) as exc:
            self._show_error(str(exc))
        self._refresh()

    def toggle_class(self, cls: int) -> None:
        self._edit(lambda s, i: s.toggle(i, cls))

    def accept_predicted(self) -> None:
        self._edit(lambda s, i: s.accept_predicted(i))

    def set_reviewed(self, reviewed: bool = True) -> None:
        self._edit(lambda s, i: s.mark_reviewed(i, bool(reviewed)))

    def toggle_reviewed(self) -> None:
        self._edit(lambda s, i: s.mark_reviewed(i, not s.is_reviewed(i)))

    def set_note(self, text: str) -> None:
        self._edit(lambda s, i: s.set_note(i, text))

    def _commit_note(self) -> None:
        if self.session is not None and self.note_edit.isModified():
            self.note_edit.setModified(False)
            self.set_note(self.note_edit.text())

    def _undo_redo(self, which: str) -> None:
        if self.session is None:
            return
        self._commit_note()
        self._clear_error()
        try:
            edit = self.session.undo() if which == "undo" else self.session.redo()
        except HPAError as exc:
            self._show_error(str(exc))
            edit = None
        if edit is not None and edit.id != self.current_id and edit.id in self.session.queue_ids:
            self._nav_t0 = time.perf_counter()
            self.session.jump(edit.id)  # show the image whose edit was undone
        self._refresh()
        if edit is None:
            self.queue_status.setText(f"nothing to {which}")

    def undo(self) -> None:
        self._undo_redo("undo")

    def redo(self) -> None:
        self._undo_redo("redo")

    # ------------------------------------------------------------------ export

    def _choose_export(self) -> None:
        if self.session is None:
            return
        start = str(self.session.path.with_name(self.session.path.stem + "_corrected.csv"))
        path, _ = QFileDialog.getSaveFileName(self, "Export corrected labels", start, "CSV (*.csv)")
        if path:
            audit = (str(Path(path).with_name(Path(path).stem + "_audit.csv"))
                     if self.audit_check.isChecked() else None)
            self.export(path, changed_only=self.changed_only_check.isChecked(), audit=audit)

    def export(self, path: str | Path, *, changed_only: bool = False,
               audit: str | Path | None = None) -> None:
        """Export the session's labels (atomically, through the store) off the GUI thread;
        :attr:`exported` follows with the counts."""
        if self.session is None or self.busy:
            return
        self._commit_note()
        self._clear_error()
        session = self.session

        def done(counts):
            self.queue_status.setText(
                f"Exported {counts['written']} rows ({counts['changed']} changed) "
                f"to {Path(path).name}"
                + (f"; audit: {counts['audit_edits']} edits" if audit else ""))
            self.exported.emit(counts)

        self._run(lambda: session.export(path, changed_only=changed_only, audit=audit), done,
                  f"Exporting to {Path(path).name}…")

    # ------------------------------------------------------------------ drawing (from the store)

    def _refresh(self) -> None:
        s = self.session
        view = None if s is None else review_view(s)
        for w in [*self.class_checks.values(), self.accept_button, self.reviewed_check,
                  self.undo_button, self.redo_button, self.note_edit, self.prev_button,
                  self.next_button, self.jump_edit]:
            w.setEnabled(view is not None)
        if view is None:
            self.id_label.setText("–" if s is None else "the queue is empty")
            self._remove_layers()
            self.shown_image_id = self._wanted = None
            self.position_label.clear()
            self.predicted_label.clear()
            if s is None:
                self.session_label.setText("No session open.")
            return
        self.id_label.setText(view.id)
        self.position_label.setText(f"{view.position + 1} / {view.queue_length}")
        if not self.busy:
            self.queue_status.setText(view.queue_text)
        self._set_combo(self.order_combo, view.order)
        self._set_combo(self.filter_combo, view.class_filter[0] if view.class_filter else None)

        thresholds = view.thresholds
        labels = set(view.labels)
        self._flags = {}
        for k in range(NUM_CLASSES):
            check = self.class_checks[k]
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
        self.predicted_label.setText(view.labels_text)
        self.accept_button.setEnabled(view.predicted is not None)
        self.reviewed_check.setChecked(view.reviewed)
        if not self.note_edit.isModified() or self.note_edit.text() == view.note:
            self.note_edit.setText(view.note)
            self.note_edit.setModified(False)
        self.undo_button.setEnabled(view.can_undo)
        self.redo_button.setEnabled(view.can_redo)
        if view.id != self._wanted:
            self._request_image(view.id)

    @staticmethod
    def _set_combo(combo: QComboBox, data) -> None:
        i = combo.findData(data)
        if i >= 0 and combo.currentIndex() != i:
            combo.blockSignals(True)
            combo.setCurrentIndex(i)
            combo.blockSignals(False)

    def class_flags(self) -> dict[int, str | None]:
        """Per class, the highlight on screen: ``'labelled_improbable'``,
        ``'probable_unlabelled'`` or ``None`` (for tests and scripts)."""
        return dict(self._flags)

    def shown_labels(self) -> tuple[int, ...]:
        """The classes whose check boxes are ticked."""
        return tuple(k for k, c in self.class_checks.items() if c.isChecked())

    # ------------------------------------------------------------------ images

    def clear_cache(self) -> None:
        """Forget the image sets read so far (the next image is read afresh)."""
        self._reset_cache()

    def _reset_cache(self) -> None:
        self._cache.clear()

    def _request_image(self, image_id: str) -> None:
        self._wanted = image_id
        fut = self._cache.request(self.session, image_id)
        if fut.done():
            self._display(fut.result())
        else:
            self.image_message.setText(f"loading {image_id}…")
            self.image_message.show()
            fut.add_done_callback(lambda f, i=image_id: self._image_ready.emit(i))
        self._prefetch_timer.start()

    def _prefetch(self) -> None:
        s = self.session
        if s is None or self.prefetch <= 0:
            return
        self._cache.prefetch(s, s.queue_ids, s.position, self.prefetch, self.cache_size)

    def _on_image_ready(self, image_id: str) -> None:
        if image_id != self._wanted or self.shown_image_id == image_id:
            return
        fut = self._cache.get(image_id)
        if fut is not None and fut.done() and not fut.cancelled():
            self._display(fut.result())

    def _display(self, loaded: LoadedSet) -> None:
        if loaded.image_set is not None:
            self._show_set(loaded.image_set)
            self.shown_message = None
            self.image_message.clear()
            self.image_message.hide()
        else:
            self._remove_layers()
            self.shown_message = loaded.message
            self.image_message.setText(loaded.message)
            self.image_message.show()
        self.shown_image_id = loaded.id
        self.last_show_ms = (time.perf_counter() - self._nav_t0) * 1000
        self.image_shown.emit(loaded.id)

    def _show_set(self, image_set: ImageSet) -> None:
        """Replace the previous set's four layers (in place when shape and dtype match)."""
        meta = {"hpa_review_session": str(self.session.path) if self.session else ""}
        tuples = image_set_layers(image_set, meta)
        layers = [l for l in self._layers if l in self.viewer.layers]
        if len(layers) == len(tuples) and all(
            l.data.shape == d.shape and l.data.dtype == d.dtype
            for l, (d, _, _) in zip(layers, tuples)
        ):
            # Same shapes: the viewer's dims need recomputing once, not after each layer.
            relayout = getattr(self.viewer, "_on_layers_change", None)
            for n, (layer, (data, kwargs, _)) in enumerate(zip(layers, tuples)):
                last = n == len(layers) - 1
                with (nullcontext() if last or relayout is None
                      else layer.events.data.blocker(relayout)):
                    layer.data = data
                layer.metadata = kwargs["metadata"]
                layer.name = kwargs["name"]
            return
        self._remove_layers()
        self._layers = [self.viewer.add_image(data, **kwargs) for data, kwargs, _ in tuples]

    def _remove_layers(self) -> None:
        for layer in self._layers:
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self._layers = []

    @property
    def image_layers(self) -> list:
        """The four layers of the image set on screen (empty when its images are missing)."""
        return [l for l in self._layers if l in self.viewer.layers]

    # ------------------------------------------------------------------ messages

    def _show_error(self, message: str) -> None:
        self.error_label.show_error(message)

    def _clear_error(self) -> None:
        self.error_label.clear_error()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt)
        self.unbind_keys()
        self._cache.shutdown()
        super().closeEvent(event)
