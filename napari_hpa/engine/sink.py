"""Where predictions go: the output files of ``predict``, written so nothing is lost.

Results stream to ``*.partial`` files beside the outputs and are merged, sorted
by id, into the final files atomically at the end, so an interrupted run leaves
the previous outputs intact and ``resume`` picks up where it stopped.  A set
that cannot be read is reported, counted and listed in the errors file; the run
goes on.  :class:`Run` is what a local run (:mod:`.batch`) and a Dask run
(:mod:`.cluster`) share: the sink, the work left and the tally.
"""

from __future__ import annotations

import csv
import io
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..classes import CLASS_NAMES
from ..errors import FileError, file_errors
from ..fileio import atomic_save_npz, atomic_write_group
from ..imageset import SetSource
from ..labels import format_target, parse_target
from .ensemble import Prediction

ErrorCallback = Callable[[str, str, str], None]  # id, path, message
ProgressCallback = Callable[[int, int], None]  # done, total


@dataclass
class PredictOutputs:
    """Where predictions go; every path but ``submission`` is optional."""

    submission: Path
    probs: Path | None = None
    attention_dir: Path | None = None
    embeddings: Path | None = None
    errors: Path | None = None
    domain: Path | None = None  # Id,domain_score,in_domain,reason


@dataclass
class PredictSummary:
    total: int = 0  # sets found
    skipped: int = 0  # already in the outputs (resume)
    predicted: int = 0
    failed: int = 0
    seconds: float = 0.0
    wait_seconds: float = 0.0  # inference loop waiting for decoded sets
    errors: list[tuple[str, str, str]] = field(default_factory=list)
    out_of_domain: list[tuple[str, str]] = field(default_factory=list)  # (id, reason) of this run
    domain_unknown: int = 0  # fields of this run that the ensemble's domain record could not judge

    @property
    def images_per_second(self) -> float:
        return self.predicted / self.seconds if self.seconds else 0.0

    @property
    def wait_fraction(self) -> float:
        return self.wait_seconds / self.seconds if self.seconds else 0.0

    def __str__(self) -> str:
        text = (
            f"{self.predicted} predicted, {self.skipped} skipped (already done), "
            f"{self.failed} failed, of {self.total} image sets in {self.seconds:.1f} s "
            f"({self.images_per_second:.2f} images/s; waiting for data "
            f"{100 * self.wait_fraction:.1f}% of the time)"
        )
        if self.out_of_domain:
            text += (f"\n{len(self.out_of_domain)} of {self.predicted} fields are OUT of the "
                     "ensemble's domain: their labels are guesses")
        if self.domain_unknown:
            text += (f"\n{self.domain_unknown} of {self.predicted} fields could not be checked "
                     "against a domain: the ensemble records none")
        return text


# --------------------------------------------------------------------------- outputs


def _partial(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def _read_rows(path: Path) -> dict[str, list[str]]:
    """Rows of a CSV we wrote (header skipped), keyed by id; a torn last line is dropped."""
    rows: dict[str, list[str]] = {}
    if not path.is_file():
        return rows
    with file_errors(path, writing=False):
        try:
            text = path.read_text()
        except UnicodeDecodeError as exc:
            raise FileError(f"cannot be read ({exc})", path) from None
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # an interrupted write
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    for row in reader:
        if header and len(row) == len(header) and row[0]:
            rows[row[0]] = row
    return rows


class ResultSink:
    """Streams predictions to partial files; merges them into the outputs at the end."""

    PROB_HEADER = ["Id", *CLASS_NAMES]
    DOMAIN_HEADER = ["Id", "domain_score", "in_domain", "reason"]

    def __init__(self, outputs: PredictOutputs, resume: bool):
        self.outputs = outputs
        self.previous_sub: dict[str, list[str]] = {}
        self.previous_probs: dict[str, list[str]] = {}
        self.previous_domain: dict[str, list[str]] = {}
        self.previous_emb: dict[str, np.ndarray] = {}
        partials = [outputs.submission, outputs.probs, outputs.domain]
        if resume:
            self.previous_sub = _previous_rows(outputs.submission)
            self.previous_probs = _previous_rows(outputs.probs)
            self.previous_domain = _previous_rows(outputs.domain)
            if outputs.embeddings is not None:
                self.previous_emb = _read_embeddings(outputs.embeddings)
                self.previous_emb.update(_read_embedding_partial(outputs.embeddings))
        self.done = set(self.previous_sub)
        if outputs.probs is not None:
            self.done &= set(self.previous_probs)
        if outputs.domain is not None:
            self.done &= set(self.previous_domain)
        if outputs.embeddings is not None:
            self.done &= set(self.previous_emb)
        for final in partials:
            if final is not None:
                with file_errors(final, writing=True):
                    final.parent.mkdir(parents=True, exist_ok=True)
        self._sub = self._open_partial(outputs.submission, ["Id", "Predicted"])
        self._probs = (
            self._open_partial(outputs.probs, self.PROB_HEADER) if outputs.probs else None
        )
        self._domain = (
            self._open_partial(outputs.domain, self.DOMAIN_HEADER) if outputs.domain else None
        )
        self._emb_ids = self._emb_vec = None
        if outputs.embeddings is not None:
            with file_errors(outputs.embeddings, writing=True):
                outputs.embeddings.parent.mkdir(parents=True, exist_ok=True)
                self._emb_ids = open(_partial(outputs.embeddings).with_suffix(".ids"), "w")
                self._emb_vec = open(_partial(outputs.embeddings).with_suffix(".f32"), "wb")
        if outputs.attention_dir is not None:
            with file_errors(outputs.attention_dir, writing=True):
                outputs.attention_dir.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _open_partial(path: Path, header: list[str]):
        with file_errors(path, writing=True):
            fh = open(_partial(path), "w", newline="")
        csv.writer(fh, lineterminator="\n").writerow(header)
        return fh

    def write(self, pred: Prediction) -> None:
        sub = csv.writer(self._sub, lineterminator="\n")
        for i, image_id in enumerate(pred.ids):
            if i in pred.failures:
                continue  # an error row instead (_Run.write)
            sub.writerow([image_id, format_target(pred.label_indices(i))])
            if self._probs is not None:
                csv.writer(self._probs, lineterminator="\n").writerow(
                    [image_id, *(f"{p:.6f}" for p in pred.probs[i])]
                )
            if self._domain is not None:
                v = pred.verdicts[i]
                csv.writer(self._domain, lineterminator="\n").writerow([
                    image_id, "" if np.isnan(v.score) else f"{v.score:.4f}",
                    {True: "true", False: "false", None: ""}[v.in_domain], v.reason,
                ])
            if self.outputs.attention_dir is not None and pred.attention is not None:
                atomic_save_npz(
                    self.outputs.attention_dir / f"{image_id}.npz",
                    attention=pred.attention[i].astype(np.float16),
                    classes=np.array(CLASS_NAMES),
                )
        if self._emb_vec is not None and pred.embeddings is not None:
            keep = [i for i in range(len(pred.ids)) if i not in pred.failures]
            self._emb_ids.write("".join(f"{pred.ids[i]}\n" for i in keep))
            self._emb_vec.write(np.ascontiguousarray(pred.embeddings[keep], dtype=np.float32).tobytes())
        for fh in self._handles():
            fh.flush()

    def finish(self, errors: Sequence[tuple[str, str, str]]) -> None:
        """Merge previous and new rows, sorted by id, into the final files: all of them replace
        their targets together, or (when one cannot be written) none does."""
        self.close()
        outs = self.outputs
        files = {outs.submission: self._merged_csv(outs.submission, ["Id", "Predicted"], self.previous_sub)}
        if outs.probs is not None:
            files[outs.probs] = self._merged_csv(outs.probs, self.PROB_HEADER, self.previous_probs)
        if outs.domain is not None:
            files[outs.domain] = self._merged_csv(outs.domain, self.DOMAIN_HEADER, self.previous_domain)
        if outs.embeddings is not None:
            emb = dict(self.previous_emb)
            emb.update(_read_embedding_partial(outs.embeddings))
            ids = sorted(emb)
            dim = len(next(iter(emb.values()))) if emb else 0
            array = np.stack([emb[i] for i in ids]) if ids else np.zeros((0, dim), np.float32)
            buf = io.BytesIO()
            np.savez_compressed(buf, ids=np.array(ids), embeddings=array.astype(np.float32))
            files[outs.embeddings] = buf.getvalue()
        if outs.errors is not None:
            text = io.StringIO()
            w = csv.writer(text, lineterminator="\n")
            w.writerow(["Id", "Path", "Error"])
            w.writerows(errors)
            files[outs.errors] = text.getvalue().encode("utf-8")
        atomic_write_group(files)
        for final in (outs.submission, outs.probs, outs.domain):
            if final is not None:
                _partial(final).unlink(missing_ok=True)
        if outs.embeddings is not None:
            for suffix in (".ids", ".f32"):
                _partial(outs.embeddings).with_suffix(suffix).unlink(missing_ok=True)

    def _merged_csv(self, path: Path, header: list[str], previous: dict[str, list[str]]) -> bytes:
        rows = dict(previous)
        rows.update(_read_rows(_partial(path)))
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        for image_id in sorted(rows):
            w.writerow(rows[image_id])
        return buf.getvalue().encode("utf-8")

    def _handles(self):
        return [fh for fh in (self._sub, self._probs, self._domain, self._emb_ids, self._emb_vec)
                if fh is not None and not fh.closed]

    def close(self) -> None:
        for fh in self._handles():
            fh.close()


def _previous_rows(final: Path | None) -> dict[str, list[str]]:
    """The rows of an output and its partial file (``--resume``), keyed by id."""
    if final is None:
        return {}
    rows = _read_rows(final)
    rows.update(_read_rows(_partial(final)))
    return rows


def _read_embeddings(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    try:
        with np.load(path) as z:
            return dict(zip((str(i) for i in z["ids"]), z["embeddings"]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise FileError(f"is not an embeddings file to resume ({type(exc).__name__}: {exc})", path) from None


def _read_embedding_partial(path: Path) -> dict[str, np.ndarray]:
    ids_path = _partial(path).with_suffix(".ids")
    vec_path = _partial(path).with_suffix(".f32")
    if not ids_path.is_file() or not vec_path.is_file():
        return {}
    with file_errors(ids_path, writing=False):
        ids = ids_path.read_text().splitlines()
        raw = np.fromfile(vec_path, dtype=np.float32)
    if not ids or raw.size == 0:
        return {}
    dim = raw.size // len(ids) if raw.size % len(ids) == 0 else 0
    if dim == 0:  # torn write: keep what is whole
        return {}
    return dict(zip(ids, raw.reshape(len(ids), dim)))


def read_submission(path: str | Path) -> dict[str, tuple[int, ...]]:
    """``Id,Predicted`` rows as {id: labels} (for tests and scripts)."""
    return {row[0]: parse_target(row[1]) for row in _read_rows(Path(path)).values()}


# --------------------------------------------------------------------------- runs


@dataclass
class Run:
    """What a local and a Dask run share: the sink, the work left, the tally."""

    sink: ResultSink
    todo: list[SetSource]
    summary: PredictSummary
    errors: list[tuple[str, str, str]]
    on_error: ErrorCallback | None
    need_attention: bool
    need_embeddings: bool
    start: float = field(default_factory=time.perf_counter)

    @classmethod
    def begin(cls, sources, outputs: PredictOutputs, resume: bool, problems, on_error) -> Run:
        sink = ResultSink(outputs, resume)
        todo = [s for s in sources if s.id not in sink.done]
        run = cls(
            sink=sink,
            todo=todo,
            summary=PredictSummary(total=len(sources), skipped=len(sources) - len(todo)),
            errors=[],
            on_error=on_error,
            need_attention=outputs.attention_dir is not None,
            need_embeddings=outputs.embeddings is not None,
        )
        for problem in problems:
            run.failed(*problem)
        return run

    def failed(self, set_id: str, path: str, message: str) -> None:
        self.errors.append((set_id, path, message))
        if self.on_error:
            self.on_error(set_id, path, message)

    def write(self, pred: Prediction) -> None:
        self.sink.write(pred)
        self.summary.predicted += len(pred.ids) - len(pred.failures)
        for i, message in pred.failures.items():
            image_id = pred.ids[i]
            self.failed(image_id, "", f"image set {image_id!r}: {message}")
        for i, (image_id, v) in enumerate(zip(pred.ids, pred.verdicts)):
            if i in pred.failures:
                continue
            if v.in_domain is False:
                self.summary.out_of_domain.append((image_id, v.reason))
            elif v.in_domain is None:
                self.summary.domain_unknown += 1

    def finish(self) -> PredictSummary:
        self.summary.seconds = time.perf_counter() - self.start
        self.summary.errors = self.errors
        self.summary.failed = len(self.errors)
        self.sink.finish(self.errors)
        return self.summary
