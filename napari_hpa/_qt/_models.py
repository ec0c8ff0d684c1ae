"""Dialogs about models: importing a foreign model file, and an ensemble's model card."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTextBrowser,
    QVBoxLayout,
)


class ImportDialog(QDialog):
    """What cannot be read from a foreign model file: where to put it, its size, its outputs."""

    def __init__(self, source: Path, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"Import {source.name}")
        form = QFormLayout(self)
        form.addRow(QLabel(
            "The model is made into a napari-hpa ensemble folder. The published HPA 2018 "
            "1st-place DenseNet121 needs no options; leave the others empty to detect them."))
        self.out_edit = QLineEdit(str(source.parent / f"{source.stem.split('.')[0]}-napari-hpa"))
        form.addRow("new folder", self.out_edit)
        self.size_spin = QSpinBox()
        self.size_spin.setRange(0, 4096)
        self.size_spin.setSpecialValueText("detect")
        form.addRow("input size (px)", self.size_spin)
        self.outputs_edit = QLineEdit()
        self.outputs_edit.setPlaceholderText("detect (e.g. probabilities,features)")
        form.addRow("outputs", self.outputs_edit)
        self.calib_edit = QLineEdit()
        self.calib_edit.setPlaceholderText("optional: 40+ fields like the model's, for its domain")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_calib)
        row = QHBoxLayout()
        row.addWidget(self.calib_edit, 1)
        row.addWidget(browse)
        form.addRow("calibration fields", row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _browse_calib(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Calibration fields")
        if folder:
            self.calib_edit.setText(folder)

    def choices(self):
        """``(out, ImportOptions)`` as filled in."""
        from ..importer import ImportOptions

        outputs = [k.strip() for k in self.outputs_edit.text().split(",") if k.strip()]
        calib = self.calib_edit.text().strip()
        return Path(self.out_edit.text().strip()), ImportOptions(
            input_size=self.size_spin.value() or None, outputs=outputs or None,
            calib=Path(calib) if calib else None,
        )


def model_card_dialog(card: Path, parent=None) -> QDialog:
    """A window showing the Markdown model card ``card`` (shown, and returned)."""
    dialog = QDialog(parent)
    dialog.setWindowTitle(f"Model card: {card.parent.name}")
    browser = QTextBrowser(dialog)
    browser.setMarkdown(card.read_text(encoding="utf-8"))
    QVBoxLayout(dialog).addWidget(browser)
    dialog.resize(820, 700)
    dialog.show()
    return dialog
