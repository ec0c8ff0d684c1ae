"""The **HPA classifier** dock widget: a thin Qt view over :mod:`napari_hpa.classify`.

Loading the ensemble and classifying run in a worker thread; the widget only
collects the user's choices, shows results, and turns them into layers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QColor, QFont
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ._attention import AttentionView
from ._common import ElidedLabel, ErrorLabel
from ._models import ImportDialog, model_card_dialog
from ._table import BarDelegate, NumberItem
from ..classes import CHANNEL_STAINS, CHANNELS, CLASS_NAMES, NUM_CLASSES
from ..classify import Classification, LayerSelectionError, channel_groups, classify, stack_channels, verdict_text
from ..engine.providers import PROVIDER_CHOICES, ProviderRequest
from ..errors import HPAError
from ..layers import (
    CLASSIFICATION_KEY,
    ID_KEY,
    is_attention_layer,
)
from ..similar import DEFAULT_SIMILARITY, ReferenceIndex, suggest_labels

BY_HAND = "pick layers by hand…"
MODEL_CARD = "MODEL_CARD.md"
VERDICT_STYLE = {
    True: "color: #7bd88f;",
    False: "color: #ffffff; background: #a8322d; padding: 4px;",
    None: "color: #c8c8c8;",
}


class ClassifierWidget(QWidget):
    """Pick an ensemble and a field of view, classify it, show probabilities and attention."""

    #: emitted with the classification once it is on screen
    classified = Signal(object)
    #: emitted with the suggested labels (tuple of class indices) of the nearest reference image
    labels_suggested = Signal(object)

    def __init__(self, napari_viewer, models: str | Path | None = None):
        super().__init__()
        self.viewer = napari_viewer
        self.models: Path | None = Path(models) if models else None
        self.result: Classification | None = None
        self.index: ReferenceIndex | None = None
        self._ensemble = None
        self._ensemble_key = None
        self._worker = None
        self._watched: set[int] = set()  # layers whose renaming refreshes the field list
        self._by_hand = False  # the user chose to pick the layers by hand
        self._build_ui()
        self.viewer.layers.events.inserted.connect(self._refresh_fields)
        self.viewer.layers.events.removed.connect(self._refresh_fields)
        self.attention_view = AttentionView(self.viewer)
        self.viewer.dims.events.current_step.connect(self.attention_view.on_step)
        self._refresh_fields()
        self._show_models()
        # A first import holds the GIL (onnxruntime's C library, scikit-image's resize with
        # scipy: together a few hundred ms): do them while the widget opens, not in the
        # worker, where they would freeze the viewer during the first Classify.
        import onnxruntime  # noqa: F401
        from skimage.transform import resize  # noqa: F401  (skimage loads it lazily: name it)

    # ------------------------------------------------------------------ UI

    def _build_ui(self) -> None:
        # one scroll area (the class table's); every other line is one line, elided with the
        # whole text as tooltip, so the dock fits 1400 x 900 without clipping
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        self.setMinimumWidth(420)

        model_box = QGroupBox("Ensemble")
        form = QFormLayout(model_box)
        form.setVerticalSpacing(3)
        self.model_label = ElidedLabel()
        choose = QPushButton("Choose…")
        choose.setToolTip("an ensemble.json, a napari-hpa .onnx, or a foreign .onnx / .pth to import")
        choose.clicked.connect(self._choose_models)
        self.card_button = QPushButton("Model card")
        self.card_button.clicked.connect(self.show_model_card)
        row = QHBoxLayout()
        row.addWidget(self.model_label, 1)
        row.addWidget(choose)
        row.addWidget(self.card_button)
        form.addRow("models", row)
        self.trained_label = ElidedLabel(mode=Qt.TextElideMode.ElideRight)
        form.addRow("trained on", self.trained_label)
        self.provider_combo = QComboBox()
        self.provider_combo.addItems(PROVIDER_CHOICES)
        self.provider_combo.currentTextChanged.connect(self._forget_ensemble)
        self.tta_combo = QComboBox()
        self.tta_combo.addItems(["ensemble's", "none", "flip", "d4"])
        self.tta_combo.setToolTip("test-time augmentation: the ensemble's own setting, or none / flip / d4")
        row = QHBoxLayout()
        row.addWidget(self.provider_combo, 1)
        row.addWidget(QLabel("TTA"))
        row.addWidget(self.tta_combo, 1)
        form.addRow("provider", row)
        self.running_label = ElidedLabel("not loaded yet", mode=Qt.TextElideMode.ElideRight)
        form.addRow("running on", self.running_label)
        layout.addWidget(model_box)

        field_box = QGroupBox("Field of view")
        form = QFormLayout(field_box)
        form.setVerticalSpacing(3)
        self.field_combo = QComboBox()
        self.field_combo.currentTextChanged.connect(self._on_field_choice)
        self.field_combo.textActivated.connect(lambda text: setattr(self, "_by_hand", text == BY_HAND))
        self.classify_button = QPushButton("Classify")
        self.classify_button.clicked.connect(self.run)
        row = QHBoxLayout()
        row.addWidget(self.field_combo, 1)
        row.addWidget(self.classify_button)
        form.addRow("image", row)
        self.channel_combos: dict[str, QComboBox] = {}
        self._channel_labels: dict[str, QLabel] = {}
        for ch in CHANNELS:
            combo = QComboBox()
            self.channel_combos[ch] = combo
            self._channel_labels[ch] = QLabel(f"{ch} ({CHANNEL_STAINS[ch]})")
            form.addRow(self._channel_labels[ch], combo)
        layout.addWidget(field_box)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(6)
        layout.addWidget(self.progress)

        self.error_label = ErrorLabel()
        layout.addWidget(self.error_label)

        # one line: the predicted classes are also the highlighted rows of the table below
        self.summary_label = ElidedLabel("Not classified yet.", mode=Qt.TextElideMode.ElideRight)
        font = self.summary_label.font()
        font.setBold(True)
        self.summary_label.setFont(font)
        layout.addWidget(self.summary_label)

        self.domain_label = QLabel()
        self.domain_label.setWordWrap(True)
        self.domain_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = self.domain_label.font()
        font.setPointSizeF(font.pointSizeF() * 0.9)
        self.domain_label.setFont(font)
        self.domain_label.hide()
        layout.addWidget(self.domain_label)

        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["class", "probability", "threshold"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setSortIndicator(1, Qt.SortOrder.DescendingOrder)
        self.table.itemSelectionChanged.connect(self._on_table_selection)
        self._bar = BarDelegate(self.table)
        rows = self.table.verticalHeader()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(self.fontMetrics().height() + 4)  # compact: 28 rows in view
        self.table.setMinimumHeight(200)
        layout.addWidget(self.table, 1)

        v = QVBoxLayout()
        row = QHBoxLayout()
        self.index_label = ElidedLabel("similar images: no reference index")
        load_index = QPushButton("Load index…")
        load_index.clicked.connect(self._choose_index)
        self.members_check = QCheckBox("each member")
        self.members_check.setToolTip("a probability column per member of the ensemble")
        self.members_check.toggled.connect(self._fill_table)
        row.addWidget(self.members_check)
        row.addWidget(self.index_label, 1)
        row.addWidget(load_index)
        v.addLayout(row)
        self.neighbours = QListWidget()
        self.neighbours.setMaximumHeight(110)
        self.neighbours.itemDoubleClicked.connect(self._open_neighbour)
        self.neighbours.hide()  # until there is something to list
        v.addWidget(self.neighbours)
        self.suggestion_label = QLabel()
        self.suggestion_label.setWordWrap(True)
        self.suggestion_label.hide()
        v.addWidget(self.suggestion_label)
        layout.addLayout(v)

    # ------------------------------------------------------------------ ensemble

    def _show_models(self) -> None:
        from ..bundled import default_ensemble_path
        from ..engine import EnsembleError, read_manifest

        self.model_label.setText(str(self.models) if self.models else f"default ({default_ensemble_path()})")
        manifest = self._manifest_path()
        trained_on = ""
        if manifest is not None and manifest.suffix == ".json":
            try:
                trained_on = read_manifest(manifest).trained_on or ""
            except EnsembleError:
                pass
        self._show_trained_on(trained_on)
        self.card_button.setEnabled(self.model_card_path() is not None)

    def _show_trained_on(self, text: str) -> None:
        """The first sentence (the whole text as tooltip): the dock stays compact."""
        self.trained_label.setText(text.split(". ")[0].rstrip(".") + "." if text else
                                   "shown after the first Classify")
        self.trained_label.setToolTip(text)

    def _manifest_path(self) -> Path | None:
        from ..bundled import resolve_models

        try:
            return resolve_models(self.models)
        except HPAError:
            return None

    def model_card_path(self) -> Path | None:
        """The ``MODEL_CARD.md`` beside the ensemble, if there is one."""
        manifest = self._manifest_path()
        card = manifest.parent / MODEL_CARD if manifest is not None else None
        return card if card is not None and card.is_file() else None

    def show_model_card(self) -> QDialog | None:
        """Open the ensemble's model card in a window (returned, for tests)."""
        card = self.model_card_path()
        if card is None:
            self._show_error("this ensemble has no MODEL_CARD.md beside it")
            return None
        return model_card_dialog(card, self)

    def _choose_models(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Ensemble or model", "", "Ensembles and models (*.json *.onnx *.pth *.pt)"
        )
        if path:
            self.set_models(path)

    def set_models(self, path: str | Path | None) -> None:
        """Use another ensemble manifest or ONNX model (loaded at the next Classify); a
        foreign model (not made for napari-hpa) is imported first, after a short dialog."""
        from ..importer import needs_import

        if path and needs_import(path):
            dialog = ImportDialog(Path(path), self)
            if dialog.exec() == QDialog.DialogCode.Accepted:
                self.import_model(path, *dialog.choices())
            return
        self.models = Path(path) if path else None
        self._forget_ensemble()
        self._show_models()

    def import_model(self, source: str | Path, out: str | Path, options=None) -> None:
        """Import a foreign model into the new folder ``out`` off the GUI thread, then use it."""
        if self.busy:
            return
        from napari.qt.threading import create_worker

        from ..importer import import_model

        self._clear_error()

        def done(report):
            self.set_models(report.folder)
            self.summary_label.setText(f"Imported {Path(source).name}: {report.threshold_rule}. "
                                       f"{report.domain}.")

        self._start(create_worker(
            import_model, source, out, options, log=lambda m: None, _start_thread=False,
            _connect={"returned": done, "errored": self._on_failure, "finished": self._on_finished},
        ), "Importing…")

    def _forget_ensemble(self, *_):
        self._ensemble = None
        self._ensemble_key = None
        self.running_label.setText("not loaded yet")

    def _ensemble_for(self, models: Path | None, provider: str):
        """Load (in the worker thread) or reuse the ensemble."""
        from ..bundled import resolve_models
        from ..engine import Ensemble

        path = resolve_models(models)
        key = (str(path), provider)
        if self._ensemble_key != key:
            self._ensemble = Ensemble.load(path, ProviderRequest(provider))
            self._ensemble_key = key
        return self._ensemble

    # ------------------------------------------------------------------ fields

    def _image_layers(self):
        from napari.layers import Image

        return [layer for layer in self.viewer.layers if isinstance(layer, Image)
                and not is_attention_layer(layer.name, layer.metadata)]

    def _groups(self):
        return channel_groups((l.name, l.metadata, l) for l in self._image_layers())

    def _refresh_fields(self, *_):
        for layer in self._image_layers():  # a set swapped in place renames its layers
            if id(layer) not in self._watched:
                self._watched.add(id(layer))
                layer.events.name.connect(self._refresh_fields)
        current = self.field_combo.currentText()
        ids = sorted(self._groups())
        if self.result is not None and self.result.image_id not in ids and not self.busy:
            self._clear_result()  # its field is no longer on screen
        self.field_combo.blockSignals(True)
        self.field_combo.clear()
        self.field_combo.addItems([*ids, BY_HAND])
        if current in ids or (current == BY_HAND and self._by_hand):
            self.field_combo.setCurrentText(current)
        self.field_combo.blockSignals(False)
        names = [layer.name for layer in self._image_layers()]
        for combo in self.channel_combos.values():
            keep = combo.currentText()
            combo.clear()
            combo.addItems(names)
            if keep in names:
                combo.setCurrentText(keep)
        self._on_field_choice(self.field_combo.currentText())

    def _clear_result(self) -> None:
        """Forget the shown result (its field left the viewer, or another set took its place)."""
        self.result = None
        self.summary_label.setText("Not classified yet.")
        self.domain_label.hide()
        self.table.setRowCount(0)
        self.neighbours.clear()
        self.neighbours.hide()
        self.suggestion_label.hide()

    def _on_field_choice(self, text: str) -> None:
        by_hand = text == BY_HAND
        group = self._groups().get(text, {})
        for ch, combo in self.channel_combos.items():
            combo.setVisible(by_hand)
            self._channel_labels[ch].setVisible(by_hand)
            if ch in group:
                combo.setCurrentText(group[ch].name)

    def selected_field(self) -> tuple[str, np.ndarray, list]:
        """``(id, (4, H, W) array, layers)`` of the field chosen; LayerSelectionError if none."""
        choice = self.field_combo.currentText()
        if not self._image_layers():
            raise LayerSelectionError("there are no image layers: open a field of view first")
        if choice == BY_HAND:
            names = [self.channel_combos[ch].currentText() for ch in CHANNELS]
            if len(set(names)) != 4:
                raise LayerSelectionError("pick four different layers, one for each channel")
            layers = [self.viewer.layers[n] for n in names]
            image_id = layers[0].metadata.get(ID_KEY) or layers[0].name
        else:
            group = self._groups().get(choice)
            if group is None:
                raise LayerSelectionError(
                    "no complete set of four channel layers: pick the layers by hand"
                )
            layers = [group[ch] for ch in CHANNELS]
            image_id = choice
        data = stack_channels([np.asarray(l.data) for l in layers], [l.name for l in layers])
        return image_id, data, layers

    # ------------------------------------------------------------------ classify

    @property
    def busy(self) -> bool:
        return self._worker is not None

    def run(self) -> None:
        """Classify the chosen field of view off the GUI thread (a second call while busy is ignored)."""
        if self.busy:
            return
        self._clear_error()
        try:
            image_id, data, layers = self.selected_field()
        except HPAError as exc:
            self._show_error(str(exc))
            return
        from napari.qt.threading import create_worker

        models, provider = self.models, self.provider_combo.currentText()
        tta = None if self.tta_combo.currentIndex() == 0 else self.tta_combo.currentText()

        def work():
            ensemble = self._ensemble_for(models, provider)
            return ensemble, classify(ensemble, image_id, data, tta)

        self._start(create_worker(
            work,
            _start_thread=False,
            _connect={
                "returned": lambda out: self._on_result(out, layers),
                "errored": self._on_failure,
                "finished": self._on_finished,
            },
        ), "Classifying…")

    def _start(self, worker, what: str) -> None:
        self._worker = worker
        self.classify_button.setEnabled(False)
        self.classify_button.setText(what)
        self.progress.setRange(0, 0)  # busy indicator
        worker.start()

    def _on_finished(self) -> None:
        self._worker = None
        self.classify_button.setEnabled(True)
        self.classify_button.setText("Classify")
        self.progress.setRange(0, 1)

    def _on_failure(self, exc: Exception) -> None:
        self._show_error(str(exc) if isinstance(exc, HPAError) else f"{type(exc).__name__}: {exc}")

    def _on_result(self, out, layers) -> None:
        ensemble, result = out
        self.result = result
        notes = "; ".join(ensemble.provider_notes)
        short = ", ".join(p.removesuffix("ExecutionProvider") for p in result.providers)
        self.running_label.setText(short + (" (GPU not in use: hover for why)" if notes else ""))
        self.running_label.setToolTip(notes)
        names = ", ".join(result.label_names) or "no class above its threshold"
        self.summary_label.setText(f"{result.image_id}: {names}")
        self.domain_label.setText(verdict_text(result))
        self.domain_label.setStyleSheet(VERDICT_STYLE[result.verdict.in_domain])
        self.domain_label.show()
        self._show_trained_on(result.trained_on)
        for layer in layers:
            layer.metadata[CLASSIFICATION_KEY] = result.as_metadata()
        self._fill_table()
        if result.attention is not None:
            self._show_attention(result)
        self._show_neighbours(result.embedding)
        self.classified.emit(result)

    # ------------------------------------------------------------------ results

    def _fill_table(self, *_):
        result = self.result
        if result is None:
            return
        members = list(result.member_probs) if self.members_check.isChecked() else []
        self.table.setSortingEnabled(False)
        self.table.clearContents()
        self.table.setColumnCount(3 + len(members))
        self.table.setHorizontalHeaderLabels(["class", "probability", "threshold", *members])
        for col in range(1, 3 + len(members)):
            self.table.setItemDelegateForColumn(col, self._bar if col != 2 else None)
        self.table.setRowCount(NUM_CLASSES)
        bold = QFont()
        bold.setBold(True)
        for row, c in enumerate(result.ranked()):
            predicted = c in result.labels
            name = QTableWidgetItem(f"{c}  {CLASS_NAMES[c]}")
            name.setToolTip(f"{c} {CLASS_NAMES[c]}: p = {result.probs[c]:.3f}, threshold "
                            f"{result.thresholds[c]:.3f}{' (predicted)' if predicted else ''}")
            name.setData(Qt.ItemDataRole.UserRole + 1, c)
            cells = [name, self._number(result.probs[c], bar=True),
                     self._number(result.thresholds[c], bar=False)]
            cells += [self._number(result.member_probs[m][c], bar=True) for m in members]
            for col, item in enumerate(cells):
                if predicted:
                    item.setFont(bold)
                    item.setBackground(QColor(40, 90, 60))
                self.table.setItem(row, col, item)
        self.table.setSortingEnabled(True)

    @staticmethod
    def _number(value: float, bar: bool) -> QTableWidgetItem:
        item = NumberItem("" if bar else f"{float(value):.3f}")
        item.setData(Qt.ItemDataRole.UserRole, float(value))
        return item

    def table_rows(self) -> list[tuple[int, float, float, bool]]:
        """(class, probability, threshold, predicted) per row as shown (for tests and scripts)."""
        rows = []
        for r in range(self.table.rowCount()):
            c = self.table.item(r, 0).data(Qt.ItemDataRole.UserRole + 1)
            rows.append((
                int(c),
                float(self.table.item(r, 1).data(Qt.ItemDataRole.UserRole)),
                float(self.table.item(r, 2).data(Qt.ItemDataRole.UserRole)),
                self.table.item(r, 0).font().bold(),
            ))
        return rows

    def _show_attention(self, result: Classification) -> None:
        self.attention_view.show(result)

    def show_class(self, c: int) -> None:
        """Move the class slider to class ``c`` (the overlay then names it, and the contours
        follow)."""
        self.attention_view.show_class(c)

    def _on_table_selection(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            c = self.table.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole + 1)
            self.show_class(int(c))

    # ------------------------------------------------------------------ similar images

    def _choose_index(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Reference index", "", "Index (*.npz)")
        if path:
            self.set_index(path)

    def set_index(self, path: str | Path) -> None:
        try:
            self.index = ReferenceIndex.load(path)
        except HPAError as exc:
            self._show_error(str(exc))
            return
        self.index_label.setText(f"similar images: {Path(path).name}, {len(self.index)} reference images")
        self.index_label.setToolTip(str(path))

    def _show_neighbours(self, embedding) -> None:
        self.neighbours.clear()
        self.suggestion_label.clear()
        shown = self.index is not None and embedding is not None
        self.neighbours.setVisible(shown)
        self.suggestion_label.setVisible(shown)
        if not shown:
            return
        try:
            found = self.index.query(embedding, k=5, exclude=self.result.image_id)
        except HPAError as exc:
            self._show_error(str(exc))
            return
        for n in found:
            item = QListWidgetItem(f"{n.similarity:.3f}  {n.id}: {', '.join(n.label_names)}")
            item.setData(Qt.ItemDataRole.UserRole, n.path)
            self.neighbours.addItem(item)
        suggestion = suggest_labels(found, DEFAULT_SIMILARITY)
        if suggestion is not None:
            names = ", ".join(CLASS_NAMES[i] for i in suggestion)
            self.suggestion_label.setText(
                f"Suggested labels (nearest image, similarity {found[0].similarity:.2f} > "
                f"{DEFAULT_SIMILARITY}): {names}"
            )
            self.labels_suggested.emit(suggestion)
        else:
            self.suggestion_label.setText(
                f"No suggestion: no reference image is more similar than {DEFAULT_SIMILARITY}."
            )

    def _open_neighbour(self, item: QListWidgetItem) -> None:
        try:
            self.viewer.open(item.data(Qt.ItemDataRole.UserRole), plugin="napari-hpa")
        except Exception as exc:  # napari wraps reader errors in its own types
            self._show_error(str(exc))

    # ------------------------------------------------------------------ messages

    def _show_error(self, message: str) -> None:
        self.error_label.show_error(message)

    def _clear_error(self) -> None:
        self.error_label.clear_error()

