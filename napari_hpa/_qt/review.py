"""The **HPA label review** dock widget: a thin Qt view over a
:class:`~napari_hpa.review.ReviewSession`.

Every action calls the session first (the edit is committed to the SQLite file
before the call returns) and the screen is then redrawn from what the session
reads back -- never from the widget's own state.  Importing a session, building
a queue (cleanlab takes seconds on 31k ids) and exporting run in napari worker
threads; image sets are read in a small background pool that prefetches the
neighbours of the current image, so moving on shows an image already in memory.

Its parts: the queue box and the class panel (:mod:`.review_panels`), the keys (:mod:`.review_keys`, which
lists them) and the image set's layers (:mod:`.review_layers`); what it shows is read by
:func:`~napari_hpa.review.view.review_view` and the image sets by
:mod:`napari_hpa.review.prefetch`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QTabWidget,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ..errors import HPAError
from ..review import ORDERS, ReviewSession
from ..review.ordering import SELECTION
from ..review.prefetch import PrefetchCache
from ..review.decisions import class_for
from ..review.view import review_view
from ._common import ErrorLabel
from .review_keys import KEYS, STRIP_KEYS, bind_keys, keys_legend, unbind_keys
from .review_files import SessionFiles
from .review_images import ImageDisplay
from .review_layers import SetLayers
from .review_panels import ClassPanel, QueuePanel
from .review_strip import DecisionStrip

MESSAGE_STYLE = "color: #ffb347; font-weight: bold;"
PREFETCH_DELAY_MS = 60


class ReviewWidget(SessionFiles, ImageDisplay, QWidget):
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
        self._set_layers = SetLayers(napari_viewer)
        self._worker = None
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

        self.queue_panel = QueuePanel()
        self.queue_panel.order_chosen.connect(self.set_order)
        self.queue_panel.filter_chosen.connect(self.set_class_filter)
        self.queue_panel.filters_chosen.connect(self.set_filters)
        self.queue_panel.jump_requested.connect(self.jump)
        self.order_combo = self.queue_panel.order_combo
        self.filter_combo = self.queue_panel.filter_combo
        self.jump_edit = self.queue_panel.jump_edit
        self.queue_status = self.queue_panel.status

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
        self.progress_label = QLabel()  # "12 of 60 reviewed, 5 changed"
        nav.addWidget(self.prev_button)
        nav.addWidget(self.id_label, 1)
        nav.addWidget(self.position_label)
        nav.addWidget(self.next_button)
        layout.addLayout(nav)
        layout.addWidget(self.progress_label)

        self.image_message = QLabel()  # one line that keeps its place: the layout does not jump
        self.image_message.setStyleSheet(MESSAGE_STYLE)
        self.image_message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        policy = QSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        policy.setRetainSizeWhenHidden(True)
        self.image_message.setSizePolicy(policy)
        self.image_message.hide()
        layout.addWidget(self.image_message)

        self.strip = DecisionStrip()
        self.strip.item_chosen.connect(self.act_on_item)
        self.strip.accept_all.connect(self.accept_proposals)
        self.accept_button = self.strip.accept_button
        layout.addWidget(self.strip)

        actions = QHBoxLayout()
        self.reviewed_check = QCheckBox("reviewed")
        self.reviewed_check.setToolTip(f"{KEYS['reviewed'][0]}")
        self.reviewed_check.clicked.connect(self.set_reviewed)
        self.unsure_check = QCheckBox("unsure")
        self.unsure_check.setToolTip(f"{KEYS['unsure'][0]}: exported in the review CSV")
        self.unsure_check.clicked.connect(self.set_unsure)
        self.review_on_edit_check = QCheckBox("edit marks reviewed")
        self.review_on_edit_check.setToolTip("a label edit also marks the image reviewed "
                                             "(undone with it)")
        self.review_on_edit_check.setChecked(True)
        self.review_on_edit_check.toggled.connect(self._set_review_on_edit)
        self.undo_button = QPushButton("Undo")
        self.undo_button.setToolTip(KEYS["undo"][0])
        self.undo_button.clicked.connect(self.undo)
        self.redo_button = QPushButton("Redo")
        self.redo_button.setToolTip(KEYS["redo"][0])
        self.redo_button.clicked.connect(self.redo)
        for w in (self.reviewed_check, self.unsure_check, self.review_on_edit_check,
                  self.undo_button, self.redo_button):
            actions.addWidget(w)
        layout.addLayout(actions)

        type_row = QHBoxLayout()
        self.type_edit = QLineEdit()
        self.type_edit.setPlaceholderText(f"class number or name ({KEYS['type'][0]}; "
                                          "Enter toggles)")
        self.type_edit.returnPressed.connect(self._toggle_typed)
        type_row.addWidget(QLabel("toggle"))
        type_row.addWidget(self.type_edit, 1)
        layout.addLayout(type_row)

        self.class_panel = ClassPanel()
        self.class_panel.class_clicked.connect(self.toggle_class)
        self.class_checks = self.class_panel.checks
        self.prob_labels = self.class_panel.prob_labels
        layout.addWidget(self.class_panel, 1)

        note_row = QHBoxLayout()
        self.note_edit = QLineEdit()
        self.note_edit.setPlaceholderText(f"note ({KEYS['note'][0]}; Enter saves)")
        self.note_edit.returnPressed.connect(self._commit_note)
        self.note_edit.editingFinished.connect(self._commit_note)
        note_row.addWidget(QLabel("note"))
        note_row.addWidget(self.note_edit, 1)
        self.reviewer_edit = QLineEdit()
        self.reviewer_edit.setPlaceholderText("reviewer")
        self.reviewer_edit.setToolTip("who signs the edits (remembered in the session)")
        self.reviewer_edit.setMaximumWidth(140)
        self.reviewer_edit.editingFinished.connect(self._commit_reviewer)
        note_row.addWidget(self.reviewer_edit)
        layout.addLayout(note_row)

        # the queue, the export and the keys share one tabbed box, so the class grid keeps
        # the height (the dock fits 1400 x 900)
        self.tools = QTabWidget()
        self.tools.setDocumentMode(True)
        self.tools.addTab(self.queue_panel, "Queue")
        export_box = QWidget()
        ex = QHBoxLayout(export_box)
        self.changed_only_check = QCheckBox("changed only")
        self.audit_check = QCheckBox("audit CSV")
        self.audit_check.setToolTip("also write every edit (labels, marks, notes) to "
                                    "<name>_audit.csv beside it")
        self.review_check = QCheckBox("review CSV")
        self.review_check.setChecked(True)
        self.review_check.setToolTip("also write each image's review and unsure marks, note, "
                                     "reviewer and time to <name>_review.csv beside it")
        self.export_button = QPushButton("Export…")
        self.export_button.clicked.connect(self._choose_export)
        ex.addWidget(self.changed_only_check)
        ex.addWidget(self.audit_check)
        ex.addWidget(self.review_check)
        ex.addWidget(self.export_button)
        ex.addStretch(1)
        export_page = QWidget()
        ev = QVBoxLayout(export_page)
        ev.addWidget(export_box)
        ev.addStretch(1)
        self.tools.addTab(export_page, "Export")

        self.keys_label = QLabel(keys_legend())
        self.keys_label.setWordWrap(True)
        self.keys_label.setStyleSheet("color: gray;")
        self.keys_label.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.tools.addTab(self.keys_label, "Keys")
        self.tools.setTabToolTip(2, keys_legend())
        layout.addWidget(self.tools)

    def _bind_keys(self) -> None:
        handlers = {
            **{f"item{n}": (lambda i=n - 1: self.act_on_item(i))
               for n in range(1, STRIP_KEYS + 1)},
            "next": self.next, "previous": self.previous, "accept": self.accept_proposals,
            "reviewed": self.toggle_reviewed, "undo": self.undo, "redo": self.redo,
            "unsure": self.toggle_unsure, "type": lambda: self._focus(self.type_edit),
            "jump": lambda: self._focus(self.jump_edit),
            "note": lambda: self._focus(self.note_edit),
        }
        self.shortcuts = bind_keys(self, self.viewer, handlers)

    def unbind_keys(self) -> None:
        """The napari actions no longer reach this widget."""
        unbind_keys(self.viewer)

    def _focus(self, edit: QLineEdit) -> None:
        edit.setFocus()
        edit.selectAll()

    # ------------------------------------------------------------------ sessions

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
        session.review_on_edit = self.review_on_edit_check.isChecked()
        if session.saved_reviewer:
            session.reviewer = session.saved_reviewer
        self.reviewer_edit.setText(session.reviewer)
        self._reset_cache()
        self.shown_image_id = self._wanted = None
        probs = ("with model probabilities" if session.has_probabilities
                 else "no model probabilities")
        self.session_label.setText(f"{session.path.name}: {len(session)} images, {probs}")
        self.session_label.setToolTip(str(session.path))
        self.queue_panel.allow_orders(session.has_probabilities)
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
        self._enable_file_controls(False)
        self._worker.start()

    def _on_finished(self) -> None:
        self._worker = None
        self._enable_file_controls(True)
        self._refresh()

    def _enable_file_controls(self, enabled: bool) -> None:
        """The queue and file controls, disabled while a worker runs."""
        for w in (*self.queue_panel.filter_controls, self.create_button, self.open_button,
                  self.export_button):
            w.setEnabled(enabled)

    def _on_failure(self, exc: Exception) -> None:
        self._show_error(str(exc) if isinstance(exc, HPAError) else f"{type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ queue

    def set_order(self, order: str) -> None:
        """Build the queue in ``order`` (a key of :data:`ORDERS`) off the GUI thread."""
        if self.session is not None:
            self._rebuild_queue(order, self.session.class_filter, self.session.queue_filters)

    def set_class_filter(self, cls: int | None) -> None:
        """Keep only images labelled with class ``cls`` (``None``: all) in the queue."""
        if self.session is not None:
            self._rebuild_queue(self.session.queue_order, None if cls is None else [int(cls)],
                                self.session.queue_filters)

    def set_filters(self, filters) -> None:
        """Keep only the images :class:`~napari_hpa.review.queue.QueueFilter` ``filters``
        keeps (predicted class, changed, noted, unsure, not yet reviewed), in the same order."""
        if self.session is not None:
            self._rebuild_queue(self.session.queue_order, self.session.class_filter, filters)

    def review_selection(self, ids) -> None:
        """Make ``ids`` (in that order; all in the session) the queue: the ``selection``
        order, e.g. fields chosen on the HPA map."""
        if self.session is not None:
            self._rebuild_queue(SELECTION, None, None, list(ids))

    def _rebuild_queue(self, order, class_filter, filters=None, selection=None) -> None:
        if self.busy:
            return
        self._commit_note()
        self._clear_error()
        session = self.session
        self._run(lambda: session.set_queue(order, class_filter, filters, selection),
                  self._on_queue, f"Building the queue ({ORDERS.get(order, order)})…")

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
        """Replace the labels by the model's predicted set (weak calls included)."""
        self._edit(lambda s, i: s.accept_predicted(i))

    def accept_proposals(self) -> None:
        """Apply the strong proposals of the decision strip in one edit."""
        self._edit(lambda s, i: s.accept_proposals(i))

    def act_on_item(self, index: int) -> None:
        """Apply the decision strip's item ``index`` (0-based): add or drop its class."""
        props = self.strip.proposals
        if 0 <= index < len(props):
            self.toggle_class(props[index].cls)

    def set_reviewed(self, reviewed: bool = True) -> None:
        self._edit(lambda s, i: s.mark_reviewed(i, bool(reviewed)))

    def set_unsure(self, unsure: bool = True) -> None:
        self._edit(lambda s, i: s.mark_unsure(i, bool(unsure)))

    def toggle_unsure(self) -> None:
        self._edit(lambda s, i: s.mark_unsure(i, not s.record(i).unsure))

    def toggle_typed(self, text: str) -> None:
        """Toggle the class that ``text`` names (its number or the start of its name)."""
        try:
            cls = class_for(text)
        except ValueError as exc:
            self._show_error(str(exc))
            return
        self.toggle_class(cls)

    def _toggle_typed(self) -> None:
        self.toggle_typed(self.type_edit.text())
        if not self.error_label.isVisible():
            self.type_edit.clear()

    def _set_review_on_edit(self, on: bool) -> None:
        if self.session is not None:
            self.session.review_on_edit = bool(on)

    def _commit_reviewer(self) -> None:
        name = self.reviewer_edit.text().strip()
        if self.session is not None and name and name != self.session.reviewer:
            try:
                self.session.remember_reviewer(name)
            except HPAError as exc:
                self._show_error(str(exc))

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

    # ------------------------------------------------------------------ drawing (from the store)

    def _refresh(self) -> None:
        s = self.session
        view = None if s is None else review_view(s)
        for w in [*self.class_checks.values(), self.accept_button, self.reviewed_check,
                  self.unsure_check, self.type_edit,
                  self.undo_button, self.redo_button, self.note_edit, self.prev_button,
                  self.next_button, self.jump_edit]:
            w.setEnabled(view is not None)
        if view is None:
            self.id_label.setText("–" if s is None else "the queue is empty")
            self._remove_layers()
            self.shown_image_id = self._wanted = None
            self.position_label.clear()
            self.progress_label.clear()
            self.strip.show_view(None)
            if s is None:
                self.session_label.setText("No session open.")
            return
        self.id_label.setText(view.id)
        self.position_label.setText(f"{view.position + 1} / {view.queue_length}")
        self.queue_panel.show_view(view, status=not self.busy)

        self.class_panel.show_view(view)
        self.strip.show_view(view)
        self.reviewed_check.setChecked(view.reviewed)
        self.unsure_check.setChecked(view.unsure)
        self.progress_label.setText(view.progress_text)
        if not self.note_edit.isModified() or self.note_edit.text() == view.note:
            self.note_edit.setText(view.note)
            self.note_edit.setModified(False)
        self.undo_button.setEnabled(view.can_undo)
        self.redo_button.setEnabled(view.can_redo)
        if view.id != self._wanted:
            self._request_image(view.id)

    def class_flags(self) -> dict[int, str | None]:
        """Per class, the highlight on screen: ``'labelled_improbable'``,
        ``'probable_unlabelled'`` or ``None`` (for tests and scripts)."""
        return self.class_panel.flags()

    def shown_labels(self) -> tuple[int, ...]:
        """The classes whose check boxes are ticked."""
        return self.class_panel.checked()

    # ------------------------------------------------------------------ messages

    def _show_error(self, message: str) -> None:
        self.error_label.show_error(message)

    def _clear_error(self) -> None:
        self.error_label.clear_error()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt)
        self.unbind_keys()
        self._cache.shutdown()
        super().closeEvent(event)
