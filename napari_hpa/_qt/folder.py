"""The HPA folder dock: the image sets of a folder, walked through in one viewer.

A thin view over :class:`napari_hpa.folder.FolderWalk`: a table of the folder's sets with
their predicted labels and domain verdict (from a ``predict`` run's files and from the
classifier's ``hpa_classification`` layer metadata), PageDown / PageUp (window-wide; napari
0.9 binds neither) or a click to move, and the four layers of the current set swapped in
place (:class:`.review_layers.SetLayers`: the user's contrast limits, gamma and visibility
stay).  Sets are read in a two-thread pool that prefetches the next two and the previous
one (:class:`napari_hpa.prefetch.PrefetchCache`).
"""

from __future__ import annotations

import time
from pathlib import Path

from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtGui import QColor, QKeySequence
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QShortcut,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..classes import CHANNELS
from ..errors import HPAError
from ..folder import FolderRow, FolderWalk, read_predictions
from ..layers import CLASSIFICATION_KEY, ID_KEY, is_attention_layer, layer_channel
from ..prefetch import LoadedSet, PrefetchCache
from ._common import AwaitsImage, ErrorLabel
from .review_layers import SetLayers

#: action -> (Qt key sequence, what it does); napari 0.9 binds neither key
KEYS = {"next": ("PgDown", "next set"), "previous": ("PgUp", "previous set")}
PREFETCH_DELAY_MS = 60
OUT_OF_DOMAIN = QColor(200, 40, 40)


def _same_folder(a: str | Path | None, b: str | Path) -> bool:
    try:
        return a is not None and Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


class FolderWidget(AwaitsImage, QWidget):
    """Walk through the image sets of a folder (``napari_viewer``'s current folder, or
    ``folder``)."""

    image_shown = Signal(str)
    _image_ready = Signal(str)  # from the prefetch pool to the GUI thread

    def __init__(self, napari_viewer, folder: str | Path | None = None, *, prefetch: int = 2,
                 cache_size: int = 6):
        super().__init__()
        self.viewer = napari_viewer
        self.prefetch = int(prefetch)
        self.cache_size = int(cache_size)
        self.walk: FolderWalk | None = None
        self.shown_image_id: str | None = None
        self.shown_message: str | None = None
        self.last_show_ms: float | None = None
        self._wanted: str | None = None
        self._nav_t0 = time.perf_counter()
        self._cache = PrefetchCache(workers=2, thread_name_prefix="hpa-folder-read")
        self._set_layers = SetLayers(napari_viewer)
        self._classifiers: set[int] = set()
        self._image_ready.connect(self._on_image_ready)
        self._prefetch_timer = QTimer(self)
        self._prefetch_timer.setSingleShot(True)
        self._prefetch_timer.setInterval(PREFETCH_DELAY_MS)
        self._prefetch_timer.timeout.connect(self._prefetch)
        self._build()
        folder = folder or self._folder_from_layers()
        if folder is not None:
            self.open_folder(folder)

    # ------------------------------------------------------------------ view

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.folder_label = QLabel("no folder open")
        self.folder_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.folder_label.setWordWrap(True)
        layout.addWidget(self.folder_label)
        row = QHBoxLayout()
        self.open_button = QPushButton("Open folder…")
        self.open_button.clicked.connect(self._choose_folder)
        self.predictions_button = QPushButton("Predictions…")
        self.predictions_button.setToolTip(
            "Show the labels of a predict run: its output folder, submission CSV or domain CSV")
        self.predictions_button.clicked.connect(self._choose_predictions)
        row.addWidget(self.open_button)
        row.addWidget(self.predictions_button)
        layout.addLayout(row)
        nav = QHBoxLayout()
        self.previous_button = QPushButton(f"◀ {KEYS['previous'][0]}")
        self.previous_button.clicked.connect(self.previous)
        self.position_label = QLabel("")
        self.position_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.next_button = QPushButton(f"{KEYS['next'][0]} ▶")
        self.next_button.clicked.connect(self.next)
        nav.addWidget(self.previous_button)
        nav.addWidget(self.position_label, 1)
        nav.addWidget(self.next_button)
        layout.addLayout(nav)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Id", "Labels", "Domain"])
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setMinimumHeight(220)  # about ten rows, also beside other docks
        self.table.cellClicked.connect(lambda r, _c: self.go(r))
        layout.addWidget(self.table, 1)
        self.image_message = QLabel("")
        self.image_message.setWordWrap(True)
        self.image_message.hide()
        layout.addWidget(self.image_message)
        self.error_label = ErrorLabel()
        layout.addWidget(self.error_label)
        legend = QLabel(" · ".join(f"{k} {t}" for k, t in KEYS.values()) + " · click a row")
        legend.setStyleSheet("color: gray;")
        layout.addWidget(legend)
        self.shortcuts = {}
        for action, handler in (("next", self.next), ("previous", self.previous)):
            sc = QShortcut(QKeySequence(KEYS[action][0]), self)
            sc.setContext(Qt.ShortcutContext.WindowShortcut)
            sc.activated.connect(handler)
            self.shortcuts[action] = sc

    def _fill_table(self) -> None:
        walk = self.walk
        self.table.setRowCount(0 if walk is None else len(walk))
        if walk is None:
            return
        for n, row in enumerate(walk.rows()):
            self._fill_row(n, row)
        self._show_position()

    def _fill_row(self, n: int, row: FolderRow) -> None:
        texts = [row.id, row.labels_text, row.verdict_text]
        tips = [row.id, row.error or row.labels_text or "not predicted yet",
                row.reason or row.verdict_text]
        if row.origin:
            tips[1] += f"\n({'classified in the viewer' if row.origin == 'viewer' else 'predict run'})"
        for c, (text, tip) in enumerate(zip(texts, tips)):
            item = QTableWidgetItem(text)
            item.setToolTip(tip)
            if row.in_domain is False and c == 2 or row.error and c == 1:
                item.setForeground(OUT_OF_DOMAIN)
            self.table.setItem(n, c, item)

    def _show_position(self) -> None:
        walk = self.walk
        if walk is None:
            return
        self.position_label.setText(f"{walk.position + 1} / {len(walk)}")
        self.folder_label.setText(walk.summary())
        self.folder_label.setToolTip(str(walk.folder))
        self.table.blockSignals(True)
        self.table.selectRow(walk.position)
        self.table.blockSignals(False)
        self.table.scrollToItem(self.table.item(walk.position, 0))
        self.previous_button.setEnabled(walk.position > 0)
        self.next_button.setEnabled(walk.position < len(walk) - 1)

    # ------------------------------------------------------------------ folder

    def _folder_from_layers(self) -> str | None:
        folders = [l.metadata.get("folder") for l in self.viewer.layers
                   if l.metadata.get("folder")]
        return folders[-1] if folders else None

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of image sets")
        if folder:
            self.open_folder(folder)

    def _choose_predictions(self) -> None:
        start = str(self.walk.folder) if self.walk else ""
        path, _ = QFileDialog.getOpenFileName(self, "Predictions (submission or domain CSV)",
                                              start, "CSV (*.csv)")
        if path:
            self.load_predictions(path)

    def open_folder(self, folder: str | Path) -> bool:
        """List ``folder``'s sets; its set already in the viewer (opened by the reader)
        is taken over, else the first is read.  False (and the error shown) on failure."""
        if self.walk is not None and _same_folder(self.walk.folder, folder):
            return True
        try:
            walk = FolderWalk(folder)
        except HPAError as exc:
            self.error_label.show_error(str(exc))
            return False
        self.error_label.clear_error()
        self._harvest()
        self.walk = walk
        self._cache.clear()
        adopted = self._adopt_layers(walk)
        try:
            walk.find_predictions()
        except HPAError as exc:
            self.error_label.show_error(str(exc), notify=False)
        self._fill_table()
        if adopted is None:
            self._request_image(walk.current_id)
        return True

    def _adopt_layers(self, walk: FolderWalk) -> str | None:
        """Take over the four layers of one of ``walk``'s sets opened from its folder."""
        groups: dict[str, dict[str, object]] = {}
        for layer in self.viewer.layers:
            found = layer_channel(layer.name, layer.metadata)
            if found and _same_folder(layer.metadata.get("folder"), walk.folder):
                groups.setdefault(found[0], {})[found[1]] = layer
        for image_id, chans in groups.items():
            n = walk.index(image_id)
            if n is not None and set(chans) == set(CHANNELS):
                self._set_layers.adopt([chans[c] for c in CHANNELS])
                walk.go(n)
                self.shown_image_id = self._wanted = image_id
                self._prefetch_timer.start()
                return image_id
        return None

    def load_predictions(self, path: str | Path) -> bool:
        """Show the labels and verdicts of a ``predict`` run (folder or CSV)."""
        if self.walk is None:
            self.error_label.show_error("open a folder first")
            return False
        try:
            self.walk.set_predictions(read_predictions(path))
        except HPAError as exc:
            self.error_label.show_error(str(exc))
            return False
        self.error_label.clear_error()
        self._fill_table()
        return True

    # ------------------------------------------------------------------ moving

    def next(self) -> None:
        self.step(1)

    def previous(self) -> None:
        self.step(-1)

    def step(self, delta: int) -> None:
        if self.walk is not None:
            self.go(self.walk.position + delta)

    def go(self, position: int) -> None:
        """Show the set at ``position`` of the list."""
        walk = self.walk
        if walk is None:
            return
        self._nav_t0 = time.perf_counter()
        walk.go(position)
        self._show_position()
        if walk.current_id != self._wanted:
            self._request_image(walk.current_id)

    def show_id(self, image_id: str) -> bool:
        """Show the set ``image_id`` (False when the folder has no set of that id)."""
        n = None if self.walk is None else self.walk.index(image_id)
        if n is not None:
            self.go(n)
        return n is not None

    @property
    def rows(self) -> list[FolderRow]:
        return self.walk.rows() if self.walk else []

    # ------------------------------------------------------------------ classifications

    def _harvest(self) -> None:
        """Note what the classifier stored on the layers on screen (and listen to it)."""
        self._connect_classifiers()
        layers = self._set_layers.layers
        if self.walk is None or not layers:
            return
        image_id = layers[0].metadata.get(ID_KEY)
        meta = next((l.metadata.get(CLASSIFICATION_KEY) for l in layers
                     if l.metadata.get(CLASSIFICATION_KEY)), None)
        if image_id and self.walk.note_classification(image_id, meta):
            n = self.walk.index(image_id)
            self._fill_row(n, self.walk.row(n))
            self.folder_label.setText(self.walk.summary())

    def _connect_classifiers(self) -> None:
        try:
            docks = list(self.viewer.window.dock_widgets.values())
        except Exception:  # a viewer without a window (scripts)
            return
        for widget in docks:
            signal = getattr(widget, "classified", None)
            if signal is not None and hasattr(signal, "connect") and id(widget) not in self._classifiers:
                self._classifiers.add(id(widget))
                signal.connect(lambda _result: self._harvest())

    # ------------------------------------------------------------------ images

    def _request_image(self, image_id: str) -> None:
        self._show_when_read(image_id, self._cache.request_id(image_id, self.walk.load))

    def _prefetch(self) -> None:
        walk = self.walk
        if walk is None or self.prefetch <= 0:
            return
        self._cache.prefetch_ids(walk.ids, walk.position, self.prefetch, self.cache_size,
                                 walk.load)

    def _display(self, loaded: LoadedSet) -> None:
        self._harvest()
        old = self.shown_image_id
        if loaded.image_set is not None:
            walk = self.walk
            meta = {"folder": str(walk.folder), "sets_in_folder": len(walk)}
            self._set_layers.show(loaded.image_set, meta)
            known = walk.classified.get(loaded.id)
            if known is not None:  # what the classifier found when this set was last shown
                for layer in self._set_layers.layers:
                    layer.metadata[CLASSIFICATION_KEY] = known
            self.shown_message = None
            self.image_message.clear()
            self.image_message.hide()
        else:
            self._set_layers.remove()
            self.shown_message = loaded.message
            self.image_message.setText(loaded.message)
            self.image_message.show()
        if old and old != loaded.id:
            self._remove_attention(old)
        self.shown_image_id = loaded.id
        self.last_show_ms = (time.perf_counter() - self._nav_t0) * 1000
        self.image_shown.emit(loaded.id)

    def _remove_attention(self, image_id: str) -> None:
        """The previous set's attention maps would lie over the new set: remove them."""
        for layer in list(self.viewer.layers):
            if layer.metadata.get(ID_KEY) == image_id and is_attention_layer(layer.name, layer.metadata):
                self.viewer.layers.remove(layer)

    @property
    def image_layers(self) -> list:
        """The four layers of the set on screen (empty when its images are missing)."""
        return self._set_layers.layers

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt)
        self._cache.shutdown()
        super().closeEvent(event)


def show_folder(viewer, folder: str | Path, predictions: str | Path | None = None) -> FolderWidget:
    """The viewer's folder dock (docked now if there is none) showing ``folder`` and, when
    given, the predictions in ``predictions``."""
    widget = next((w for w in viewer.window.dock_widgets.values() if isinstance(w, FolderWidget)),
                  None)
    if widget is None:
        widget = FolderWidget(viewer, folder)
        viewer.window.add_dock_widget(widget, name="HPA folder", area="right")
    widget.open_folder(folder)
    if predictions is not None:
        widget.load_predictions(predictions)
    return widget
