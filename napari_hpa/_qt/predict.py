"""The HPA batch prediction dock: ``napari-hpa predict FOLDER`` from napari.

A magicgui form (folder, ensemble, TTA, outputs, output folder, resume) over
:func:`napari_hpa.folder.predict_folder`, the core function that runs the engine path of
``predict`` and writes its files under fixed names (:data:`napari_hpa.folder.OUTPUT_NAMES`).
The run goes in a napari worker thread; its progress is a ``napari.utils.progress`` bar
(in napari's activity dock) and a line here; *Cancel* stops it between batches and leaves
the ``.partial`` files, which a run with *resume* finishes.  When done, the folder dock
(:mod:`.folder`) lists the folder with the predicted labels and domain verdicts.
"""

from __future__ import annotations

import threading
from pathlib import Path

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, PushButton
from qtpy.QtCore import QObject, Signal

from ..bundled import default_ensemble_path
from ..engine.tta import TTA_MODES
from ..errors import HPAError
from ..folder import default_output, predict_folder
from ._common import ERROR_STYLE, path_value

ENSEMBLE_TTA = "ensemble's own"


class _Bridge(QObject):
    """Carries the worker thread's progress to the GUI thread (a queued signal)."""

    progressed = Signal(int, int)


class PredictWidget(Container):
    """Predict every image set of a folder with an ensemble, off the GUI thread."""

    def __init__(self, napari_viewer, folder: str | Path | None = None):
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.folder_edit = FileEdit(label="folder", mode="d")
        self.models_edit = FileEdit(label="ensemble", mode="r",
                                    filter="Ensembles (*.json *.onnx)",
                                    value=str(default_ensemble_path()))
        self.tta_combo = ComboBox(label="TTA", choices=[ENSEMBLE_TTA, *TTA_MODES],
                                  value=ENSEMBLE_TTA)
        self.probs_check = CheckBox(text="write probabilities", value=True)
        self.attention_check = CheckBox(text="write attention maps", value=False)
        self.embeddings_check = CheckBox(text="write embeddings", value=False)
        self.domain_check = CheckBox(text="write domain verdicts", value=True)
        self.out_edit = FileEdit(label="output folder", mode="d")
        self.resume_check = CheckBox(text="resume: keep the sets already predicted",
                                     value=False)
        self.run_button = PushButton(text="Predict")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.status = Label(label="", value="")
        self.extend([self.folder_edit, self.models_edit, self.tta_combo, self.probs_check,
                     self.attention_check, self.embeddings_check, self.domain_check,
                     self.out_edit, self.resume_check,
                     Container(layout="horizontal", labels=False,
                               widgets=[self.run_button, self.cancel_button]),
                     self.status])
        self.status.native.setWordWrap(True)
        self.out_edit.tooltip = "default: a 'predictions' folder inside the image folder"
        self.models_edit.tooltip = "ensemble.json or .onnx (default: the bundled ensemble)"
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.folder_edit.changed.connect(self._folder_changed)
        self._bridge = _Bridge()
        self._bridge.progressed.connect(self._on_progress)
        self._stop = threading.Event()
        self._worker = None
        self._pbar = None
        self._default_out: Path | None = None
        #: (done, total) as the worker reported them; the last run's summary or error
        self.progress_log: list[tuple[int, int]] = []
        self.summary = None
        self.error: BaseException | None = None
        self.cancelled = False
        self.output_folder: Path | None = None
        # First imports hold the GIL for a few hundred ms: take them now, not in the worker
        # (where they would stall the viewer), as the classifier widget does.
        import onnxruntime  # noqa: F401
        from skimage.transform import resize  # noqa: F401  (skimage loads it lazily)

        from ..engine import ensemble, providers, stream  # noqa: F401
        from ..engine.providers import ProviderRequest, create_session  # noqa: F401

        folder = folder or self._viewer_folder()
        if folder:
            self.folder_edit.value = str(folder)

    def _viewer_folder(self) -> str | None:
        folders = [l.metadata.get("folder") for l in self.viewer.layers if l.metadata.get("folder")]
        return folders[-1] if folders else None

    def _folder_changed(self, value) -> None:
        folder = path_value(value)
        if folder is None:
            return
        out = path_value(self.out_edit.value)
        if out is None or out == self._default_out:
            self._default_out = default_output(folder)
            self.out_edit.value = str(self._default_out)

    @property
    def busy(self) -> bool:
        return self._worker is not None

    # ------------------------------------------------------------------ running

    def run(self) -> None:
        """Start predicting (a second call while a run is going does nothing)."""
        if self.busy:
            return
        folder = path_value(self.folder_edit.value)
        if folder is None:
            self._say("choose the folder of image sets first", error=True)
            return
        out = path_value(self.out_edit.value) or default_output(folder)
        tta = None if self.tta_combo.value == ENSEMBLE_TTA else self.tta_combo.value
        from napari.qt.threading import create_worker
        from napari.utils import progress

        self._stop.clear()
        self.progress_log = []
        self.summary = self.error = None
        self.cancelled = False
        self.output_folder = out
        self._pbar = progress(total=None, desc=f"Predicting {folder.name}")
        worker = create_worker(
            predict_folder, folder, out, models=path_value(self.models_edit.value), tta=tta,
            probs=self.probs_check.value, attention=self.attention_check.value,
            embeddings=self.embeddings_check.value, domain=self.domain_check.value,
            resume=self.resume_check.value, progress=self._bridge.progressed.emit,
            should_stop=self._stop.is_set, _start_thread=False,
            _connect={"returned": self._on_done, "errored": self._on_error,
                      "finished": self._on_finished},
        )
        self._worker = worker
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        self._say(f"loading the ensemble, then predicting {folder} …")
        worker.start()

    def cancel(self) -> None:
        """Stop after the batch under way; the outputs written so far stay for resume."""
        if self.busy:
            self._stop.set()
            self.cancel_button.enabled = False
            self._say("stopping after the current batch …")

    def _on_progress(self, done: int, total: int) -> None:
        self.progress_log.append((done, total))
        if self._pbar is not None:
            if self._pbar.total != total:
                self._pbar.total = total
            self._pbar.update(done - self._pbar.n)
        if not self._stop.is_set():
            self._say(f"{done} / {total} image sets")

    def _on_done(self, summary) -> None:
        self.summary = summary
        self._say(f"{summary}\nwrote {self.output_folder}")
        self._show_results()

    def _on_error(self, exc: BaseException) -> None:
        from ..engine.batch import PredictCancelled

        if isinstance(exc, PredictCancelled):
            self.cancelled = True
            self.resume_check.value = True
            self._say(f"{exc}: the finished sets are kept in {self.output_folder} "
                      "(.partial files); Predict again (resume is ticked) to finish", error=False)
            return
        self.error = exc
        text = str(exc) if isinstance(exc, HPAError) else f"{type(exc).__name__}: {exc}"
        self._say(f"prediction failed: {text}", error=True)

    def _on_finished(self) -> None:
        self._worker = None
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.run_button.enabled = True
        self.cancel_button.enabled = False

    def _show_results(self) -> None:
        from .folder import show_folder

        show_folder(self.viewer, path_value(self.folder_edit.value), predictions=self.output_folder)

    def _say(self, text: str, error: bool = False) -> None:
        self.status.value = text
        self.status.native.setStyleSheet(ERROR_STYLE if error else "")
