"""Evaluation and ensemble building (core: onnxruntime via the engine, no torch).

* :func:`collect` runs an :class:`~napari_hpa.engine.Ensemble` over a labelled data
  folder (``labels.csv``; ``masks/{id}.npz`` from the synthetic generator when
  present) and gathers probabilities (ensemble and per member), the pointing-game
  hits of the attention maps against the masks, and embeddings.
* :func:`evaluate` -> :class:`EvalReport`: macro and per-class F1 (with the
  ensemble's thresholds and top-class-forced rule), per-member macro F1, the
  pointing game, and top-1 same-antibody retrieval of the embeddings (Antibody
  column).  The model card uses the same report.
* :func:`build_ensemble` runs members on a validation folder, fits per-class
  thresholds (``f1`` or ``ratio``) on the ensemble's probabilities and writes the
  manifest; :func:`calibrate_ensemble` calibrates an existing ensemble (temperatures
  within and beyond its domain, :class:`~napari_hpa.engine.manifest.Calibration`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .classes import CLASS_NAMES
from .engine.domain import MIN_IMAGES
from .errors import TrainingError, file_errors
from .metrics import (
    apply_thresholds,
    f1_per_class,
    fit_out_of_domain_temperature,
    fit_stacking,
    fit_temperature,
    fit_thresholds,
    macro_f1,
    pointing_hits,
    retrieval_top1,
)


@dataclass
class Collected:
    ids: list[str]
    y_true: np.ndarray | None  # [N, 28] bool; None for an unlabelled folder
    probs: np.ndarray  # [N, 28]
    member_probs: dict[str, np.ndarray]
    antibodies: list[str]
    pointing: tuple[int, int] | None = None  # (hits, pairs) when attention and masks exist
    pointing_per_class: np.ndarray | None = None  # [28, 2] (hits, pairs) of each class, with ``pointing``
    pointing_note: str | None = None  # why there is no pointing game, when there is none
    embeddings: np.ndarray | None = None
    inputs: np.ndarray | None = None  # [N, 58] the domain record's input views of each field (input_features)
    features: np.ndarray | None = None  # [N, d]
    verdicts: list = field(default_factory=list)  # the domain verdict of each field


def collect(
    ensemble,
    folder: str | Path,
    labels: str | Path | None = None,
    *,
    tta: str | None = None,
    batch_size: int = 16,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    labelled: bool = True,
    cache_dir: str | Path | None = None,
) -> Collected:
    """Run ``ensemble`` over a folder; ``labelled=False`` takes every set of an unlabelled one.

    ``cache_dir``: keep the members' outputs there (:mod:`.engine.member_cache`) and take
    those already kept instead of running the members again."""
    from .dataset import MASKS, load_labelled, load_masks, mask_path
    from .engine.stream import iter_predictions
    from .imageset import find_sets

    folder = Path(folder)
    if labelled:
        data = load_labelled(folder, labels)
        ids = data.ids[:limit] if limit else data.ids
        sources = [data.sources[k] for k in ids]
        y = data.targets[: len(ids)].astype(bool)
        targets, antibodies = data.table.targets, data.antibodies[: len(ids)]
    else:
        if not folder.is_dir():
            raise TrainingError(f"image folder {folder}: no such folder")
        sources = find_sets(folder)[:limit] if limit else find_sets(folder)
        if not sources:
            raise TrainingError(f"image folder {folder} holds no image sets")
        ids, y, targets = [s.id for s in sources], None, {}
        antibodies = [""] * len(ids)
    want_att = labelled and ensemble.has_attention and (folder / MASKS).is_dir()
    want_emb = ensemble.embedding_member is not None
    if cache_dir is not None:
        from .engine.member_cache import MemberCache

        ensemble.member_cache = MemberCache(cache_dir, sources)
    try:
        probs, members, embs, inputs, features, verdicts = [], {}, [], [], [], []
        per_class = np.zeros((len(CLASS_NAMES), 2), np.int64)  # hits, pairs
        for item in iter_predictions(ensemble, sources, tta=tta, batch_size=batch_size,
                                     need_attention=want_att, need_embeddings=want_emb):
            for _source, exc in item.failed:
                raise exc  # every field of a labelled folder counts: the first unreadable one stops
            pred = item.prediction
            if pred.failures:
                i, message = next(iter(pred.failures.items()))
                raise TrainingError(f"image set {pred.ids[i]!r} in {folder}: {message}")
            probs.append(pred.probs)
            inputs.append(pred.domain_inputs)
            verdicts += pred.verdicts
            features.append(pred.domain_features)
            for name, p in pred.member_probs.items():
                members.setdefault(name, []).append(p)
            if want_att and pred.attention is not None:
                for j, source in enumerate(item.sources):
                    mpath = mask_path(folder, source.id)
                    if mpath.is_file():
                        masks = load_masks(mpath)
                        for c in targets[source.id]:
                            per_class[c] += pointing_hits(pred.attention[j], masks, [c])
            if want_emb and pred.embeddings is not None:
                embs.append(pred.embeddings)
            if progress is not None:
                progress(item.done, item.total)
    finally:
        if ensemble.member_cache is not None:
            ensemble.member_cache.save()  # what was computed counts, even after an interruption
            ensemble.member_cache = None
    hits, pairs = (int(v) for v in per_class.sum(0))
    return Collected(
        ids=list(ids),
        y_true=y,
        probs=np.concatenate(probs),
        member_probs={k: np.concatenate(v) for k, v in members.items()},
        antibodies=antibodies,
        pointing=(hits, pairs) if pairs else None,
        pointing_per_class=per_class if pairs else None,
        pointing_note=None if pairs else _no_pointing_note(ensemble, folder, labelled),
        embeddings=np.concatenate(embs) if embs else None,
        inputs=np.concatenate(inputs),
        features=np.concatenate(features),
        verdicts=verdicts,
    )


def _no_pointing_note(ensemble, folder: Path, labelled: bool) -> str:
    from .dataset import MASKS

    if not labelled:
        return "the folder is not labelled"
    if not ensemble.has_attention:
        return "no member of the ensemble gives attention maps"
    if not (folder / MASKS).is_dir():
        return f"{folder / MASKS} does not exist: the pointing game needs each class's ground-truth mask"
    return f"no image had a mask in {folder / MASKS} for one of its true classes"


def fit_domain(ensemble, col: Collected, description: str):
    """The domain record of ``ensemble`` from the fields of ``col`` (see :mod:`engine.domain`)."""
    from .engine.domain import DomainModel

    return DomainModel.fit(
        col.inputs, col.features, description=description,
        features_from=ensemble.domain_features_from, input_size=min(ensemble.input_sizes),
    )


def write_with_domain(spec, manifest: Path, domain) -> Path:
    """Write ``manifest`` and, when ``domain`` is a record, ``domain.npz`` beside it first."""
    from .engine import write_manifest

    if domain is not None:
        with file_errors(manifest, writing=True):
            manifest.parent.mkdir(parents=True, exist_ok=True)
        spec.domain = domain.save(manifest.parent / DOMAIN_FILE)
    return write_manifest(spec, manifest)


@dataclass
class EvalReport:
    n_images: int
    macro_f1: float
    per_class_f1: list[float]
    member_macro_f1: dict[str, float] = field(default_factory=dict)
    pointing_game: float | None = None
    pointing_pairs: int = 0
    retrieval_top1: float | None = None
    retrieval_n: int = 0
    thresholds: list[float] | None = None
    providers: list[str] = field(default_factory=list)  # onnxruntime providers the members ran on

    def to_json(self) -> dict:
        def clean(v):
            return None if isinstance(v, float) and math.isnan(v) else v

        d = dict(self.__dict__)
        d["per_class_f1"] = {CLASS_NAMES[i]: clean(round(f, 4)) for i, f in enumerate(self.per_class_f1)}
        return {k: clean(v) for k, v in d.items()}

    def format(self) -> str:
        lines = [f"{self.n_images} images: ensemble macro F1 {self.macro_f1:.4f}"]
        if self.providers:
            lines.append(f"  run on {', '.join(self.providers)}")
        for name, f in self.member_macro_f1.items():
            lines.append(f"  member {name}: macro F1 {f:.4f}")
        if self.pointing_game is not None:
            lines.append(f"attention pointing game: {self.pointing_game:.4f} ({self.pointing_pairs} image-class pairs)")
        if self.retrieval_top1 is not None:
            lines.append(f"embedding top-1 same-antibody retrieval: {self.retrieval_top1:.4f} ({self.retrieval_n} images)")
        lines.append("per-class F1:")
        for i, f in enumerate(self.per_class_f1):
            lines.append(f"  {i:2d} {CLASS_NAMES[i]:<32s} {'n/a' if math.isnan(f) else f'{f:.4f}'}")
        return "\n".join(lines)


def report_from(col: Collected, thresholds, min_one_label: bool = True, member_thresholds=None,
                providers: Sequence[str] = ()) -> EvalReport:
    thresholds = np.asarray(thresholds, np.float32)
    pred = apply_thresholds(col.probs, thresholds, min_one_label)
    member_f1 = {}
    for name, p in col.member_probs.items():
        t = thresholds if member_thresholds is None else member_thresholds[name]
        member_f1[name] = macro_f1(col.y_true, apply_thresholds(p, t, min_one_label))
    rep = EvalReport(
        n_images=len(col.ids),
        macro_f1=macro_f1(col.y_true, pred),
        per_class_f1=[float(f) for f in f1_per_class(col.y_true, pred)],
        member_macro_f1=member_f1,
        thresholds=[round(float(t), 4) for t in thresholds],
        providers=list(providers),
    )
    if col.pointing:
        rep.pointing_game = col.pointing[0] / col.pointing[1]
        rep.pointing_pairs = col.pointing[1]
    if col.embeddings is not None and any(col.antibodies):
        groups = [a or f"__{i}" for i, a in enumerate(col.antibodies)]
        rep.retrieval_top1, rep.retrieval_n = retrieval_top1(col.embeddings, groups)
        if rep.retrieval_n == 0:
            rep.retrieval_top1 = None
    return rep


@dataclass
class Evaluation:
    """An :class:`EvalReport` with what it was computed from (for :mod:`.report`'s plots)."""

    report: EvalReport
    collected: Collected
    thresholds: np.ndarray  # [28] the ensemble's, which the members are scored with too
    min_one_label: bool
    models: str  # what was loaded (manifest or ONNX file)
    name: str  # the ensemble's name
    members: list[str]
    tta: str  # the TTA the members ran with
    data: str  # the labelled folder


def run_evaluation(models: str | Path, data: str | Path, labels=None, *, tta=None, batch_size=16,
                   limit=None, request=None, progress=None) -> Evaluation:
    """:func:`evaluate`, keeping the collected arrays."""
    from .engine import Ensemble, ProviderRequest

    ens = Ensemble.load(models, request or ProviderRequest())
    col = collect(ens, data, labels, tta=tta, batch_size=batch_size, limit=limit, progress=progress)
    rep = report_from(col, ens.thresholds, ens.spec.min_one_label, providers=ens.providers_in_use)
    return Evaluation(rep, col, np.asarray(ens.thresholds, np.float32), ens.spec.min_one_label,
                      str(Path(models).resolve()), ens.name, [m.name for m in ens.members],
                      tta or ens.spec.tta, str(Path(data).resolve()))


def evaluate(models: str | Path, data: str | Path, labels=None, *, tta=None, batch_size=16,
             limit=None, request=None, progress=None) -> EvalReport:
    """Score ``models`` on the labelled folder ``data``; ``request``: a ``ProviderRequest``."""
    return run_evaluation(models, data, labels, tta=tta, batch_size=batch_size, limit=limit,
                          request=request, progress=progress).report


DOMAIN_FILE = "domain.npz"


def class_ratios(labels_csv: str | Path) -> np.ndarray:
    """Each class's share of the images of a labels CSV (the 1st place's threshold targets)."""
    from .labels import multi_hot, read_labels

    return multi_hot(read_labels(labels_csv).targets.values()).mean(0)


def build_ensemble(
    members: Sequence[str | Path],
    val: str | Path,
    out: str | Path,
    *,
    thresholds: str = "f1",
    tta: str = "none",
    combine: str = "mean",
    weights: Sequence[float] | None = None,
    embedding_member: str | None = None,
    ratios_from: str | Path | None = None,
    name: str | None = None,
    labels: str | Path | None = None,
    batch_size: int = 16,
    stack: bool = False,
    stack_c: float = 1.0,
    request=None,
    progress=None,
    cache_dir: str | Path | None = None,
    calibrate: bool = False,
    ood_fields: str | Path | None = None,
) -> tuple[Path, EvalReport]:
    """Fit thresholds on ``val`` and write ``out`` (the manifest); returns (path, report on val).

    ``calibrate``: first fit the temperature of the ensemble's probabilities on ``val``
    (:func:`~napari_hpa.metrics.fit_temperature`), then the thresholds on the calibrated ones.
    ``ood_fields``: a folder of fields unlike the domain; of those the domain record calls out
    of the domain, the most confident answers are tempered down to p 0.9 at most
    (:func:`~napari_hpa.metrics.fit_out_of_domain_temperature`; needs the domain record, so at
    least 40 validation fields).

    ``stack``: also fit the per-class logistic combination of the members (``stacking`` in
    the manifest; L2 strength ``1 / stack_c``) on ``val`` and the thresholds on its output.
    ``request``: the ``ProviderRequest`` the members run under (default: auto, all cores).
    ``cache_dir``: where the members' outputs on ``val`` are kept, so that building again
    with other weights, thresholds or stacking does not rerun them (None: not kept).
    """
    from .engine import Ensemble, EnsembleSpec, MemberSpec, ProviderRequest
    from .engine.ensemble import Stacking
    from .engine.manifest import Calibration
    from .thresholds import temper
    from .engine.ensemble import load_member

    if not members:
        raise TrainingError("ensemble build needs at least one member .onnx")
    if thresholds not in ("f1", "ratio"):
        raise TrainingError(f"--thresholds must be f1 or ratio, not {thresholds!r}")
    if weights is not None and len(weights) != len(members):
        raise TrainingError(f"--weights has {len(weights)} numbers for {len(members)} members")
    if weights is not None and (min(weights) < 0 or not max(weights) > 0):
        raise TrainingError(f"--weights must be >= 0 with at least one > 0 (0 keeps a member for its "
                            f"embeddings or attention maps only), got {weights}")
    if stack and not stack_c > 0:
        raise TrainingError(f"--stack-c must be positive, not {stack_c}")
    paths = [Path(m) for m in members]
    for p in paths:
        if not p.is_file():
            raise TrainingError(f"member {p}: no such file")
    names, seen = [], set()
    for p in paths:
        n, k = p.stem, 2
        while n in seen:
            n, k = f"{p.stem}-{k}", k + 1
        seen.add(n)
        names.append(n)
    if embedding_member is not None and embedding_member not in names:
        raise TrainingError(f"--embedding-member {embedding_member!r} is not a member ({', '.join(names)})")
    out = Path(out)
    spec = EnsembleSpec(
        members=[MemberSpec(n, p.resolve(), float(w)) for n, p, w in zip(names, paths, weights or [1.0] * len(paths))],
        tta=tta, combine=combine, thresholds=None, min_one_label=True,
        embedding_member=embedding_member, name=name or out.parent.name or "ensemble",
    )
    request = request or ProviderRequest()
    ens = Ensemble(spec, [load_member(m, request) for m in spec.members])
    col = collect(ens, val, labels, tta=tta, batch_size=batch_size, progress=progress,
                  cache_dir=cache_dir)
    ratios = class_ratios(ratios_from) if ratios_from else None
    if stack:
        member_stack = np.stack(list(col.member_probs.values()))
        spec.stacking = Stacking(*fit_stacking(member_stack, col.y_true, [m.weight for m in spec.members], stack_c))
        col.probs = spec.stacking.apply(member_stack).astype(np.float32)
    if calibrate:
        spec.calibration = Calibration(fit_temperature(col.probs, col.y_true))
        col.probs = temper(col.probs, spec.calibration.temperature)
    thr = fit_thresholds(thresholds, col.probs, col.y_true, ratios)
    member_thr = {n: fit_thresholds(thresholds, p, col.y_true, ratios) for n, p in col.member_probs.items()}
    spec.thresholds = tuple(float(t) for t in thr)
    domain = None
    if len(col.ids) >= MIN_IMAGES:
        domain = fit_domain(ens, col, f"{len(col.ids)} validation fields of {Path(val).resolve()}")
    if ood_fields is not None and domain is None:
        raise TrainingError(f"--ood-fields needs the domain record, which needs at least {MIN_IMAGES} "
                            f"validation fields ({len(col.ids)} given)")
    path = write_with_domain(spec, out, domain)
    if ood_fields is not None:
        temperature = spec.calibration.temperature if spec.calibration else 1.0
        path = _calibrate_beyond(spec, path, col, temperature, ood_fields, batch_size, request, domain)
    return path, report_from(col, thr, True, member_thr, providers=ens.providers_in_use)


def calibrate_ensemble(
    manifest: str | Path,
    val: str | Path,
    out: str | Path,
    *,
    labels: str | Path | None = None,
    ood_fields: str | Path | None = None,
    batch_size: int = 16,
    request=None,
    progress=None,
    cache_dir: str | Path | None = None,
):
    """Calibrate the ensemble at ``manifest`` on the labelled fields of ``val`` (its members,
    weights, TTA and domain record kept) and write it as ``out``; returns (path, calibration).

    The temperature is fitted as with ``build_ensemble(calibrate=True)``, and the thresholds
    are carried over to the calibrated scale (``sigmoid(logit(t) / T)``), so that the labels
    of fields in the domain do not change.  ``ood_fields``: as in :func:`build_ensemble`.
    """
    import shutil

    from .engine import Ensemble, ProviderRequest, read_manifest
    from .engine.ensemble import load_member
    from .engine.manifest import Calibration
    from .thresholds import logit, sigmoid

    spec = read_manifest(manifest)
    spec.calibration = None
    request = request or ProviderRequest()
    ens = Ensemble(spec, [load_member(m, request) for m in spec.members])
    if ood_fields is not None and ens.domain is None:
        raise TrainingError(f"--ood-fields needs the ensemble's domain record; {manifest} has none "
                            "(record one with 'napari-hpa models domain')")
    col = collect(ens, val, labels, tta=spec.tta, batch_size=batch_size, progress=progress,
                  cache_dir=cache_dir)
    temperature = fit_temperature(col.probs, col.y_true)
    thresholds = np.asarray(ens.thresholds, dtype=np.float64)
    spec.thresholds = tuple(float(t) for t in sigmoid(logit(thresholds) / temperature))
    spec.calibration = Calibration(temperature, None, _prior(col, spec.thresholds))
    out = Path(out)
    if spec.domain is not None and spec.domain.parent.resolve() != out.parent.resolve():
        with file_errors(out, writing=True):  # an ensemble folder holds every file it names
            out.parent.mkdir(parents=True, exist_ok=True)
            spec.domain = Path(shutil.copy2(spec.domain, out.parent / DOMAIN_FILE))
    path = write_with_domain(spec, out, None)
    if ood_fields is not None:
        path = _calibrate_beyond(spec, path, col, temperature, ood_fields, batch_size, request, None)
    return path, spec.calibration


def _prior(col: Collected, thresholds) -> tuple[float, ...]:
    """What fields out of the domain are pulled towards: each class's frequency on the
    validation fields, or half its threshold when that is lower (so that a field the models
    cannot judge gets no label but its top class), kept within 0.001-0.5."""
    freq = col.y_true.mean(axis=0)
    return tuple(float(v) for v in np.clip(np.minimum(freq, np.asarray(thresholds) / 2), 1e-3, 0.5))


def _calibrate_beyond(spec, path: Path, col: Collected, temperature: float, ood_fields,
                      batch_size, request, domain) -> Path:
    """Fit the out-of-domain calibration on ``ood_fields`` and write the manifest again."""
    from .engine.manifest import Calibration

    prior = _prior(col, spec.thresholds)
    spec.calibration = Calibration(temperature, _out_of_domain_temperature(
        path, ood_fields, prior, spec.tta, batch_size, request), prior)
    return write_with_domain(spec, path, domain)


def _out_of_domain_temperature(manifest: Path, folder, prior, tta, batch_size, request) -> float:
    """The out-of-domain temperature fitted on the fields of ``folder`` that the ensemble at
    ``manifest`` (calibrated within the domain, not yet beyond it) calls out of its domain."""
    from .engine import Ensemble

    ens = Ensemble.load(manifest, request)
    col = collect(ens, folder, tta=tta, batch_size=batch_size, labelled=False)
    out = [i for i, v in enumerate(col.verdicts) if v.in_domain is False]
    if not out:
        raise TrainingError(f"--ood-fields {folder}: the domain record calls none of its "
                            f"{len(col.ids)} fields out of the domain; give fields unlike the validation ones")
    return fit_out_of_domain_temperature(col.probs[out], [col.verdicts[i].score for i in out], prior)
