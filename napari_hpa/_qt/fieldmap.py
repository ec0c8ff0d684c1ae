"""The HPA map dock: a whole folder at once, as a napari Points layer.

A magicgui form over :func:`napari_hpa.fieldmap.load_field_map`: the embeddings of a
``predict`` run (or a map CSV from ``napari-hpa map``; or, with none, the image folder is
predicted first with the chosen ensemble, :func:`napari_hpa.folder.predict_folder`), the
image folder, an optional labels CSV and the colouring.  The map is computed in a worker thread (progress in napari's activity
dock and here) and shown as one Points layer, ``HPA map``, placed left of the image (the
image sets start at the origin), so field and map sit side by side.  Each point carries the
field's id, predicted and labelled classes, domain verdict, review state, disagreement and
outlier score as features: hovering shows them (status bar and tooltip).  Clicking one point
opens its field through the folder dock (:mod:`.folder`); *Select* picks the strongest
outliers or label/neighbour disagreements, and *Review selection* makes the selected fields
the queue of the review dock's session (:meth:`.review.ReviewWidget.review_selection`).
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, Label, PushButton, SpinBox
from qtpy.QtCore import QObject, Signal

from ..bundled import default_ensemble_path
from ..errors import HPAError
from ..fieldmap import COLOUR_BY, FieldMap, load_field_map
from ..folder import OUTPUT_NAMES, PREDICTIONS_FOLDER, default_output, predict_folder
from ._common import ERROR_STYLE, path_value

LAYER_NAME = "HPA map"
LEGEND_COLUMNS = 2
#: the map's side in world units when no image is open, and its gap to the image
DEFAULT_SIDE, GAP = 512.0, 0.08


class _Bridge(QObject):
    said = Signal(str)


def _short(name: str, width: int = 18) -> str:
    return name if len(name) <= width else name[: width - 1].rstrip() + "\u2026"


class MapWidget(Container):
    """Map the fields of a ``predict`` run; hover, click, select, send to review."""

    def __init__(self, napari_viewer, source: str | Path | None = None):
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.source_edit = FileEdit(label="embeddings", mode="r",
                                    filter="Embeddings or map (*.npz *.csv)")
        self.source_edit.tooltip = ("embeddings.npz of a predict run (--embeddings), or a map CSV "
                                    "written by 'napari-hpa map'; the run's predictions are "
                                    "read from the same folder")
        self.images_edit = FileEdit(label="images", mode="d")
        self.images_edit.tooltip = "the folder of image sets (clicking a point opens its field)"
        self.models_edit = FileEdit(label="ensemble", mode="r", filter="Ensembles (*.json *.onnx)",
                                    value=str(default_ensemble_path()))
        self.models_edit.tooltip = ("with an image folder and no embeddings: the ensemble that "
                                    "predicts the folder first (into its 'predictions' folder)")
        self.labels_edit = FileEdit(label="labels", mode="r", filter="CSV (*.csv)")
        self.labels_edit.tooltip = "optional labels CSV (Id,Target); an open review session wins"
        self.colour_combo = ComboBox(label="colour by",
                                     choices=[(text, key) for key, (text, _) in COLOUR_BY.items()])
        self.map_button = PushButton(text="Map")
        self.select_combo = ComboBox(choices=[("outliers", "outlier"),
                                              ("disagreements", "disagreement")])
        self.count_spin = SpinBox(value=50, min=1, max=100_000)
        self.select_button = PushButton(text="Select")
        self.review_button = PushButton(text="Review selection")
        self.legend = Label(value="")
        self.status = Label(value="")
        self.extend([
            self.source_edit, self.images_edit, self.models_edit, self.labels_edit,
            Container(layout="horizontal", labels=False, widgets=[self.colour_combo, self.map_button]),
            Container(layout="horizontal", labels=False,
                      widgets=[self.select_button, self.count_spin, self.select_combo]),
            self.review_button,
            Container(labels=False, widgets=[self.legend, self.status]),
        ])
        self.status.native.setWordWrap(True)
        self.select_button.tooltip = "select the fields scoring highest (shift-click adds points)"
        self.review_button.tooltip = "make the selected fields the queue of the HPA label review"
        self.map_button.changed.connect(self.compute)
        self.colour_combo.changed.connect(lambda _v: self.recolour())
        self.select_button.changed.connect(self.select_top)
        self.review_button.changed.connect(self.send_to_review)
        self.source_edit.changed.connect(self._source_changed)
        self._bridge = _Bridge()
        self._bridge.said.connect(self._say)
        self._worker = None
        self._pbar = None
        self.field_map: FieldMap | None = None
        self.layer = None
        self.error: BaseException | None = None
        self.opened: list[str] = []  # ids opened by clicking, latest last
        # First imports hold the GIL for up to seconds: take them now, not in the worker,
        # where they would freeze the viewer (as the other docks do).
        import onnxruntime  # noqa: F401  (predicting a folder first)
        from sklearn.decomposition import PCA  # noqa: F401

        from ..review import QueueFilter  # noqa: F401

        try:
            import umap  # noqa: F401  (optional: umap-learn)
        except ImportError:
            pass
        source = source or self._guess_source()
        if source:
            self.source_edit.value = str(source)

    # ------------------------------------------------------------------ inputs

    def _guess_source(self) -> Path | None:
        for layer in reversed(list(self.viewer.layers)):
            folder = layer.metadata.get("folder")
            if folder:
                emb = Path(folder) / PREDICTIONS_FOLDER / OUTPUT_NAMES["embeddings"]
                if emb.is_file():
                    return emb
        return None

    def _source_changed(self, value) -> None:
        source = path_value(value)
        if source is None or path_value(self.images_edit.value) is not None:
            return
        run = source if source.is_dir() else source.parent
        for folder in (run.parent, run):  # predict's default run folder sits in the image folder
            try:
                from ..imageset import find_sets

                if find_sets(folder):
                    self.images_edit.value = str(folder)
                    return
            except HPAError:
                continue

    def _session(self):
        from .review import ReviewWidget

        for w in self.viewer.window.dock_widgets.values():
            if isinstance(w, ReviewWidget) and w.session is not None:
                return w
        return None

    @property
    def busy(self) -> bool:
        return self._worker is not None

    # ------------------------------------------------------------------ computing

    def compute(self) -> None:
        """Read or lay out the map in a worker thread, then show it."""
        if self.busy:
            return
        source, images = path_value(self.source_edit.value), path_value(self.images_edit.value)
        if source is None and images is None:
            self._say("choose the embeddings (a predict run's embeddings.npz), a map CSV, or the "
                      "image folder to predict first", error=True)
            return
        from napari.qt.threading import create_worker
        from napari.utils import progress

        review = self._session()
        session = None if review is None else review.session
        self.error = None
        self._pbar = progress(total=0, desc=f"Mapping {(source or images).name}")
        labels, models = path_value(self.labels_edit.value), path_value(self.models_edit.value)
        say = self._bridge.said.emit

        def work() -> FieldMap:  # the colourings too, so that showing only hands arrays over
            run = source
            if run is None:  # a folder and an ensemble: predict it first, with embeddings
                out = default_output(images)
                predict_folder(images, out, models=models, embeddings=True,
                               progress=lambda done, total: say(f"predicting {done} / {total} sets"))
                run = out / OUTPUT_NAMES["embeddings"]
            return load_field_map(run, labels=labels, session=session, progress=say).prepare()

        self._worker = create_worker(
            work, _start_thread=False,
            _connect={"returned": self.show_map, "errored": self._on_error,
                      "finished": self._on_finished},
        )
        self.map_button.enabled = False
        self._worker.start()

    def _on_error(self, exc: BaseException) -> None:
        self.error = exc
        text = str(exc) if isinstance(exc, HPAError) else f"{type(exc).__name__}: {exc}"
        self._say(f"mapping failed: {text}", error=True)

    def _on_finished(self) -> None:
        self._worker = None
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.map_button.enabled = True

    # ------------------------------------------------------------------ showing

    def _placement(self) -> tuple[float, np.ndarray]:
        """The map's side and its top-left corner (world units), left of any image."""
        heights = [layer.extent.world[1][-2] - layer.extent.world[0][-2]
                   for layer in self.viewer.layers if layer.name != LAYER_NAME
                   and getattr(layer, "ndim", 0) >= 2 and layer.extent.world.shape[1] >= 2]
        side = max(heights, default=DEFAULT_SIDE) or DEFAULT_SIDE
        return side, np.array([0.0, -side * (1 + GAP)])

    def show_map(self, field_map: FieldMap) -> None:
        """Show ``field_map`` as the ``HPA map`` Points layer (replacing an earlier one)."""
        self.field_map = field_map
        xy = field_map.map.xy.astype(np.float64)
        span = np.maximum(xy.max(0) - xy.min(0), 1e-9)
        side, corner = self._placement()
        unit = (xy - xy.min(0)) / span.max()  # keep the map's aspect
        data = np.column_stack([1.0 - unit[:, 1], unit[:, 0]]) * side + corner  # y up
        by = self.colour_combo.value
        features, colours = field_map.features(), field_map.colours(by)
        layer = self.layer
        if layer is not None and layer in self.viewer.layers:
            # a new map in the same layer: no new visual for napari to build and compile
            layer.selected_data = set()
            layer.data = data
            layer.features = features
            layer.face_color = colours
            if not np.allclose(layer.size, side / 70):  # each setting redraws every point
                layer.size = side / 70
        else:
            # antialiasing 0: hard-edged discs, about half the drawing time of 20,000 points
            self.layer = self.viewer.add_points(
                data, features=features, face_color=colours, border_width=0, size=side / 70,
                antialiasing=0, name=LAYER_NAME)
            self.layer.selected_data.events.items_changed.connect(self._on_selection)
        self.layer.mode = "select"
        self.viewer.reset_view()  # field and map both in view
        self.viewer.tooltip.visible = True
        self._show_legend(by)
        read = ", ".join(field_map.sources)
        self._say(f"{len(field_map):,} fields ({field_map.map.method.upper()}; from {read}). "
                  "Hover for details, click a point to open its field.")

    def recolour(self) -> None:
        if self.field_map is None or self.layer is None:
            return
        by = self.colour_combo.value
        self.layer.face_color = self.field_map.colours(by)
        self._show_legend(by)

    def _show_legend(self, by: str) -> None:
        """The colours in use and how many fields each, two to a row (at most five rows)."""
        entries = self.field_map.legend(by, limit=LEGEND_COLUMNS * 5)
        cells = [f'<td><span style="color: rgb({int(r * 255)},{int(g * 255)},{int(b * 255)})">'
                 f"&#9679;</span> {html.escape(_short(name))} ({count:,})</td>"
                 for name, (r, g, b), count in entries]
        rows = ["<tr>" + "".join(cells[i:i + LEGEND_COLUMNS]) + "</tr>"
                for i in range(0, len(cells), LEGEND_COLUMNS)]
        self.legend.value = f'<table cellspacing="2">{"".join(rows)}</table>'
        self.legend.native.setMinimumWidth(self.legend.native.sizeHint().width())  # widen the dock, never cut it
        self.native.setMinimumHeight(self.native.sizeHint().height())  # the dock shows it all

    # ------------------------------------------------------------------ clicking, selecting

    def _on_selection(self, _event=None) -> None:
        chosen = sorted(self.layer.selected_data)
        if len(chosen) == 1:
            self.open_field(self.field_map.ids[chosen[0]])
        elif chosen:
            self._say(f"{len(chosen):,} fields selected")

    def open_field(self, image_id: str) -> bool:
        """Show field ``image_id`` in the viewer through the folder dock."""
        from .folder import show_folder

        images = path_value(self.images_edit.value)
        if images is None:
            self._say(f"{image_id}: choose the image folder to open fields", error=True)
            return False
        dock = show_folder(self.viewer, images)
        if not dock.show_id(image_id):
            self._say(f"{image_id} is not an image set of {images}", error=True)
            return False
        self.opened.append(image_id)
        self._say(f"opened {image_id}")
        return True

    def select_top(self) -> None:
        """Select the fields scoring highest as outliers or disagreements."""
        if self.field_map is None:
            self._say("map a folder first", error=True)
            return
        by = self.select_combo.value
        chosen = self.field_map.top(by, int(self.count_spin.value))
        if not chosen:
            self._say(f"no field has a {by} score (disagreement needs labels or predictions)",
                      error=True)
            return
        self.layer.selected_data = set(chosen)
        self._say(f"selected the {len(chosen):,} strongest {self.select_combo.current_choice}")

    @property
    def selected_ids(self) -> list[str]:
        """The selected fields, strongest first when chosen by *Select*, else in map order."""
        if self.field_map is None or self.layer is None:
            return []
        chosen = set(self.layer.selected_data)
        by = self.select_combo.value
        ranked = [i for i in self.field_map.top(by, len(self.field_map)) if i in chosen]
        rest = sorted(chosen - set(ranked))
        return [self.field_map.ids[i] for i in ranked + rest]

    def send_to_review(self) -> None:
        """Make the selected fields (those in the session) the review queue."""
        review = self._session()
        if review is None:
            self._say("open a review session in the HPA label review dock first", error=True)
            return
        ids = self.selected_ids
        if not ids:
            self._say("select fields first (click, shift-click, or Select)", error=True)
            return
        known = [i for i in ids if i in review.session]
        if not known:
            self._say(f"none of the {len(ids):,} selected fields is in the review session",
                      error=True)
            return
        review.review_selection(known)
        missing = len(ids) - len(known)
        self._say(f"{len(known):,} fields sent to the review queue"
                  + (f" ({missing:,} not in the session left out)" if missing else ""))

    def _say(self, text: str, error: bool = False) -> None:
        self.status.value = text
        self.status.native.setStyleSheet(ERROR_STYLE if error else "")
        if self._pbar is not None and not error:
            self._pbar.set_description(text)
