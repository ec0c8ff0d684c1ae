"""Walking through the image sets of a folder (no Qt): what the folder dock lists and shows.

:class:`FolderWalk` holds a folder's sets (:func:`napari_hpa.imageset.find_sets`), the
current position, and what is known of each set: the predictions of a ``predict`` run
(:func:`read_predictions`: its submission, domain and errors CSVs, or the folder that holds
them) and the classifications made in the viewer (the classifier stores them in the channel
layers' ``hpa_classification`` metadata; :meth:`FolderWalk.note_classification`).  A
classification made in the viewer is newer than a batch run's and wins.  :meth:`FolderWalk.load`
reads one set for the prefetch pool (:mod:`napari_hpa.prefetch`).

Batch prediction from napari writes the files of ``napari-hpa predict`` under fixed names in
one output folder (:data:`OUTPUT_NAMES`, default :func:`default_output`):
:func:`predict_outputs` names them and :func:`predict_command` gives the equivalent command.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from .classes import CLASS_NAMES, CLASSES
from .engine.sink import PredictOutputs, ResultSink
from .errors import FileError, ImageSetError, LabelsCSVError, file_errors
from .imageset import SetSource, find_sets
from .labels import read_labels
from .prefetch import LoadedSet, read_source

#: where the classifier widget stores its numbers in a channel layer's metadata
#: the folder a batch run from napari writes into by default, inside the image folder
PREDICTIONS_FOLDER = "predictions"
#: the files of a batch run in its output folder (``predict``'s options in brackets)
OUTPUT_NAMES = {
    "submission": "submission.csv",  # --out
    "probs": "probs.csv",  # --probs
    "attention": "attention",  # --attention (a folder)
    "embeddings": "embeddings.npz",  # --embeddings
    "domain": "domain.csv",  # --domain
    "errors": "errors.csv",  # --errors
}
ERRORS_HEADER = ["Id", "Path", "Error"]


def default_output(folder: str | Path) -> Path:
    return Path(folder) / PREDICTIONS_FOLDER


def predict_outputs(out_dir: str | Path, *, probs: bool = True, attention: bool = False,
                    embeddings: bool = False, domain: bool = True) -> PredictOutputs:
    """The outputs of a batch run into ``out_dir`` (the submission and errors always)."""
    out = Path(out_dir)
    return PredictOutputs(
        submission=out / OUTPUT_NAMES["submission"],
        probs=out / OUTPUT_NAMES["probs"] if probs else None,
        attention_dir=out / OUTPUT_NAMES["attention"] if attention else None,
        embeddings=out / OUTPUT_NAMES["embeddings"] if embeddings else None,
        errors=out / OUTPUT_NAMES["errors"],
        domain=out / OUTPUT_NAMES["domain"] if domain else None,
    )


def predict_command(folder: str | Path, outputs: PredictOutputs, *, models: str | Path | None = None,
                    tta: str | None = None, resume: bool = False) -> list[str]:
    """The ``napari-hpa predict`` arguments that write the same files."""
    args = ["predict", str(folder), "--out", str(outputs.submission)]
    for option, path in (("--probs", outputs.probs), ("--attention", outputs.attention_dir),
                         ("--embeddings", outputs.embeddings), ("--domain", outputs.domain),
                         ("--errors", outputs.errors)):
        if path is not None:
            args += [option, str(path)]
    if models is not None:
        args += ["--models", str(models)]
    if tta is not None:
        args += ["--tta", tta]
    if resume:
        args.append("--resume")
    return args


def predict_folder(folder: str | Path, out_dir: str | Path, *, models: str | Path | None = None,
                   tta: str | None = None, probs: bool = True, attention: bool = False,
                   embeddings: bool = False, domain: bool = True, resume: bool = False,
                   progress=None, should_stop=None, request=None):
    """``napari-hpa predict FOLDER`` into ``out_dir`` (:func:`predict_outputs`), on the same
    engine path (:func:`napari_hpa.engine.batch.predict_sources`); returns the
    :class:`~napari_hpa.engine.sink.PredictSummary`.  ``should_stop`` stops it between
    batches (:class:`~napari_hpa.engine.batch.PredictCancelled`, the partial files kept for
    ``resume``)."""
    from .bundled import resolve_models
    from .engine.batch import collect_sources, predict_sources
    from .engine.ensemble import Ensemble
    from .engine.providers import ProviderRequest
    from .errors import HPAError
    from .fileio import check_outputs

    folder = Path(folder)
    if not folder.is_dir():
        raise FileError("is not a folder", folder)
    outputs = predict_outputs(out_dir, probs=probs, attention=attention,
                              embeddings=embeddings, domain=domain)
    check_outputs(
        [("the submission", outputs.submission), ("the probabilities", outputs.probs),
         ("the embeddings", outputs.embeddings), ("the errors", outputs.errors),
         ("the domain verdicts", outputs.domain)],
        [("the attention maps", outputs.attention_dir)],
        [("the image folder", folder)],
    )
    sources, problems = collect_sources([folder])
    if not sources:
        raise HPAError(problems[0][2] if problems else f"{folder}: holds no image sets")
    ensemble = Ensemble.load(resolve_models(models), request or ProviderRequest())
    return predict_sources(ensemble, sources, outputs, tta=tta, resume=resume,
                           problems=problems, progress=progress, should_stop=should_stop)


# --------------------------------------------------------------------------- predictions


@dataclass
class FolderPredictions:
    """What the files of a ``predict`` run say about each set."""

    labels: dict[str, tuple[int, ...]] = field(default_factory=dict)
    domain: dict[str, tuple[bool | None, float | None, str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def update(self, other: FolderPredictions) -> None:
        self.labels.update(other.labels)
        self.domain.update(other.domain)
        self.errors.update(other.errors)
        self.files += [f for f in other.files if f not in self.files]


def _header(path: Path) -> list[str]:
    with file_errors(path, writing=False):
        with open(path, newline="", encoding="utf-8") as fh:
            return [h.strip() for h in next(csv.reader(fh), [])]


def _read_domain(path: Path) -> dict[str, tuple[bool | None, float | None, str]]:
    out = {}
    with file_errors(path, writing=False):
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != 4:
            raise LabelsCSVError(f"expected 4 fields (Id,domain_score,in_domain,reason), got "
                                 f"{len(row)}", path=path, line=line)
        image_id, score, verdict, reason = row
        if verdict not in ("true", "false", ""):
            raise LabelsCSVError(f"in_domain must be true, false or empty, got {verdict!r}",
                                 path=path, line=line)
        try:
            value = float(score) if score else None
        except ValueError:
            raise LabelsCSVError(f"domain_score {score!r} is not a number", path=path,
                                 line=line) from None
        out[image_id] = ({"true": True, "false": False, "": None}[verdict], value, reason)
    return out


def _read_errors(path: Path) -> dict[str, str]:
    with file_errors(path, writing=False):
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    return {row[0]: row[2] for row in rows[1:] if len(row) == 3 and row[0]}


def read_predictions(path: str | Path) -> FolderPredictions:
    """The predictions in a ``predict`` output folder (the files of :data:`OUTPUT_NAMES`
    that exist) or in one CSV: a submission (``Id,Predicted``), a domain CSV or an errors
    CSV, told apart by the header."""
    path = Path(path)
    if path.is_dir():
        names = [OUTPUT_NAMES[k] for k in ("submission", "domain", "errors")]
        files = [path / n for n in names if (path / n).is_file()]
        if not files:
            raise FileError(f"holds no predictions (none of {', '.join(names)})", path)
        out = FolderPredictions()
        for f in files:
            out.update(read_predictions(f))
        return out
    if not path.is_file():
        raise FileError("no such file or folder", path)
    header = _header(path)
    out = FolderPredictions(files=[path])
    if header == ResultSink.DOMAIN_HEADER:
        out.domain = _read_domain(path)
    elif header == ERRORS_HEADER:
        out.errors = _read_errors(path)
    elif "Predicted" in header or "Target" in header:
        out.labels = dict(read_labels(path).targets)
    elif header[1:] and all(h in CLASS_NAMES for h in header[1:]):
        raise FileError("is a probabilities CSV; choose the submission (Id,Predicted), the "
                        "domain CSV or the folder that holds them", path)
    else:
        raise FileError(f"is not a predictions CSV (header {','.join(header)!r}; expected "
                        "Id,Predicted or Id,domain_score,in_domain,reason)", path)
    return out


# --------------------------------------------------------------------------- the walk


@dataclass(frozen=True)
class FolderRow:
    """One set of the folder as the list shows it."""

    id: str
    labels: tuple[int, ...] | None = None  # None: not predicted yet
    in_domain: bool | None = None
    domain_score: float | None = None
    reason: str = ""
    error: str | None = None
    origin: str = ""  # "viewer" (classified here), "predict" (a batch run) or ""

    @property
    def labels_text(self) -> str:
        if self.error:
            return "error"
        if self.labels is None:
            return ""
        return ", ".join(CLASSES[c].name for c in self.labels) or "(none)"

    @property
    def verdict_text(self) -> str:
        if self.error or self.labels is None and self.in_domain is None:
            return ""
        if self.in_domain is None:
            return "unknown" if self.origin else ""
        score = "" if self.domain_score is None else f" ({self.domain_score:.2f})"
        return ("in domain" if self.in_domain else "OUT of domain") + score


class FolderWalk:
    """The sets of ``folder``, the current one, and what is known of each."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.sources: list[SetSource] = find_sets(self.folder)
        if not self.sources:
            raise ImageSetError("holds no image sets", path=self.folder)
        self.ids = [s.id for s in self.sources]
        self._index = {i: n for n, i in enumerate(self.ids)}
        self.position = 0
        self.predictions = FolderPredictions()
        self.classified: dict[str, dict] = {}

    def __len__(self) -> int:
        return len(self.sources)

    @property
    def current_id(self) -> str:
        return self.ids[self.position]

    def index(self, image_id: str) -> int | None:
        return self._index.get(image_id)

    def go(self, position: int) -> bool:
        """Move to ``position`` (clamped to the list); true when it changed."""
        position = max(0, min(len(self.ids) - 1, int(position)))
        changed = position != self.position
        self.position = position
        return changed

    def step(self, delta: int) -> bool:
        return self.go(self.position + delta)

    # ---------------------------------------------------------------- what is known

    def set_predictions(self, predictions: FolderPredictions) -> None:
        self.predictions = predictions

    def find_predictions(self) -> FolderPredictions | None:
        """The predictions in :func:`default_output`, if a batch run wrote any there."""
        out = default_output(self.folder)
        if not (out / OUTPUT_NAMES["submission"]).is_file():
            return None
        self.predictions = read_predictions(out)
        return self.predictions

    def note_classification(self, image_id: str, metadata: dict | None) -> bool:
        """Remember what the classifier found for ``image_id`` (its ``hpa_classification``
        metadata); true when the row changed."""
        if not metadata or image_id not in self._index or self.classified.get(image_id) == metadata:
            return False
        self.classified[image_id] = metadata
        return True

    def row(self, position: int) -> FolderRow:
        image_id = self.ids[position]
        meta = self.classified.get(image_id)
        if meta is not None:
            dom = meta.get("domain") or {}
            return FolderRow(image_id, tuple(meta.get("labels", ())), dom.get("in_domain"),
                             dom.get("score"), dom.get("reason", ""), None, "viewer")
        p = self.predictions
        if image_id in p.labels:
            in_domain, score, reason = p.domain.get(image_id, (None, None, ""))
            return FolderRow(image_id, p.labels[image_id], in_domain, score, reason, None,
                             "predict")
        if image_id in p.errors:
            return FolderRow(image_id, error=p.errors[image_id], origin="predict")
        return FolderRow(image_id)

    def rows(self) -> list[FolderRow]:
        return [self.row(n) for n in range(len(self.ids))]

    def summary(self) -> str:
        rows = self.rows()
        known = sum(r.labels is not None for r in rows)
        out = sum(r.in_domain is False for r in rows)
        text = f"{len(rows)} image sets in {self.folder.name}"
        if known:
            text += f"; {known} predicted"
            if out:
                text += f", {out} out of domain"
        return text

    # ---------------------------------------------------------------- reading

    def load(self, image_id: str) -> LoadedSet:
        """Read ``image_id``'s set; never raises (runs in the prefetch pool)."""
        n = self._index.get(image_id)
        return read_source(
            image_id, lambda: None if n is None else self.sources[n],
            lambda: f"{image_id} is not an image set of {self.folder}",
        )
