"""The ensemble: members, manifest (``ensemble.json``), and prediction.

A manifest sits beside its members::

    {
      "hpa_ensemble": 1,
      "name": "default",
      "members": [{"name": "densenet121", "path": "densenet121.onnx", "weight": 1.0}, ...],
      "tta": "d4",            # none | flip | d4
      "combine": "max",       # how TTA views are combined: mean | max
      "thresholds": [0.5, ...] or null,   # 28 per-class thresholds
      "min_one_label": true,  # the top class is always predicted
      "embedding_member": "arcface" or null,
      "trained_on": "what the members learnt from, in words" (optional),
      "domain": "domain.npz" or null,   # the domain record (engine.domain), beside the manifest
      "stacking": null or {"bias": [28 numbers],
                           "weights": {"densenet121": [28 numbers], ...}},  # one per member
      "calibration": null or {"temperature": 1.3, "out_of_domain": 2.0 or null,
                              "prior": [28 class frequencies] or null}
    }

Member probabilities are ``sigmoid(logits)`` combined over the TTA views
(attention maps are brought back onto the untransformed image first), then
averaged across members with the manifest weights.  With ``stacking`` (fitted
by ``ensemble build --stack``) they are combined per class instead:
``p_c = sigmoid(bias_c + sum_m weights[m][c] * logit(p_mc))``, so each class
leans on the members that see it best; the member weights then only weigh the
attention maps.  Attention maps of the
members that have them are averaged on the grid of the first such member;
cell ``(i, j)`` of an ``h x w`` grid covers rows ``[i H/h, (i+1) H/h)`` and
columns ``[j W/w, (j+1) W/w)`` of the ``H x W`` field of view.  Embeddings
come from ``embedding_member`` (or the first member that has one), averaged
over the views and L2-normalised again.

Every field also gets a domain verdict (:mod:`napari_hpa.engine.domain`):
scored against the ensemble's domain record when it has one; a field with an
empty or saturated channel is out of the domain in any case.  With ``calibration``
(fitted by ``ensemble build --calibrate`` and ``--ood-fields``) the ensemble's logits are
divided by ``temperature``, and those of a field out of the domain are also pulled towards
the classes' prior by ``out_of_domain * max(1, domain score)``
(:class:`~napari_hpa.engine.manifest.Calibration`); the labels are taken from these
probabilities.  The members' own probabilities are left as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..classes import CLASS_NAMES, DEFAULT_THRESHOLD, NUM_CLASSES
from ..thresholds import apply_thresholds, logit, sigmoid  # noqa: F401 (importable from here too)
from ..errors import HPAError
from ..imageset import check_values, to_model_input
from . import tta as tta_mod
from .contract import ModelInfo, check_contract
from .domain import DomainError, DomainModel, Verdict, input_features, input_problems, verdicts_without_record
# the manifest's types, reading and writing live in .manifest; they are named here too
from .manifest import (  # noqa: F401
    MANIFEST_VERSION,
    EnsembleError,
    EnsembleSpec,
    MemberSpec,
    Stacking,
    read_manifest,
    schema_problem,
    write_manifest,
)
from .providers import ProviderRequest, create_session

# --------------------------------------------------------------------------- members


@dataclass
class Member:
    spec: MemberSpec
    session: object
    info: ModelInfo
    provider_note: str | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Raw outputs for a float32 ``[N, 4, S, S]`` batch."""
        names = ["logits"]
        if self.info.has_attention:
            names.append("attention")
        if self.info.has_embedding:
            names.append("embedding")
        out = self.session.run(names, {"image": np.ascontiguousarray(x, dtype=np.float32)})
        return dict(zip(names, out))


def load_member(spec: MemberSpec, request: ProviderRequest = ProviderRequest()) -> Member:
    if not Path(spec.path).is_file():
        raise EnsembleError("no such model file", spec.path)
    try:
        session, note = create_session(spec.path, request)
    except HPAError:
        raise
    except Exception as exc:
        raise EnsembleError(f"onnxruntime cannot load the model ({exc})", spec.path) from None
    return Member(spec, session, check_contract(session, spec.path), note)


# --------------------------------------------------------------------------- prediction


@dataclass
class MemberOutput:
    """One member's answer for a batch, its TTA views combined (what a cache keeps)."""

    probs: np.ndarray  # [N, 28]
    plain_logits: np.ndarray  # [N, 28] of the untransformed view, for the domain
    nonfinite: np.ndarray  # [N] bool: some output of some view was NaN or infinite
    attention: np.ndarray | None = None  # [N, 28, h, w] on the untransformed field
    embedding: np.ndarray | None = None  # [N, D] mean over the views, L2-normalised
    plain_embedding: np.ndarray | None = None  # [N, D] the untransformed view's (members with one)


@dataclass
class Prediction:
    """What the ensemble says about a batch of image sets."""

    probs: np.ndarray  # [N, 28] ensemble probabilities
    member_probs: dict[str, np.ndarray]  # name -> [N, 28]
    thresholds: np.ndarray  # [28]
    labels: np.ndarray  # [N, 28] bool
    attention: np.ndarray | None = None  # [N, 28, h, w] in [0, 1]
    embeddings: np.ndarray | None = None  # [N, D], L2-normalised
    ids: list[str] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)  # the domain verdict of each field
    #: index -> why the field got no answer (a member gave NaN or infinite outputs); its
    #: probabilities are NaN and it has no label
    failures: dict[int, str] = field(default_factory=dict)
    domain_inputs: np.ndarray | None = None  # [N, 58] what the domain record's input views see
    domain_features: np.ndarray | None = None  # [N, d]

    def label_indices(self, i: int) -> tuple[int, ...]:
        return tuple(int(c) for c in np.flatnonzero(self.labels[i]))

    def label_names(self, i: int) -> list[str]:
        return [CLASS_NAMES[c] for c in self.label_indices(i)]


def _resize_maps(maps: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if maps.shape[-2:] == tuple(shape):
        return maps
    from skimage.transform import resize

    return resize(maps, (*maps.shape[:-2], *shape), order=1, preserve_range=True).astype(np.float32)


class Ensemble:
    """Members plus the rules that combine them."""

    def __init__(self, spec: EnsembleSpec, members: list[Member]):
        self.spec = spec
        self.members = members
        if spec.thresholds is not None:
            thresholds = spec.thresholds
        elif len(members) == 1 and members[0].info.thresholds is not None:
            thresholds = members[0].info.thresholds
        else:
            thresholds = (DEFAULT_THRESHOLD,) * NUM_CLASSES
        self.thresholds = np.asarray(thresholds, dtype=np.float32)
        self.embedding_member = self._pick_embedding_member()
        self.domain = self._load_domain()
        #: outputs kept per member and image id (:class:`.member_cache.MemberCache`), or None
        self.member_cache = None

    @classmethod
    def load(
        cls, path: str | Path, request: ProviderRequest = ProviderRequest()
    ) -> Ensemble:
        """From an ``ensemble.json`` manifest (or a folder holding one), or one ONNX file."""
        path = Path(path)
        if path.is_dir():
            path = path / "ensemble.json"
        if path.suffix.lower() == ".onnx":
            spec = EnsembleSpec([MemberSpec(path.stem, path)], name=path.stem)
        else:
            spec = read_manifest(path)
        return cls(spec, [load_member(m, request) for m in spec.members])

    def _pick_embedding_member(self) -> Member | None:
        if self.spec.embedding_member is not None:
            member = next(m for m in self.members if m.name == self.spec.embedding_member)
            if not member.info.has_embedding:
                raise EnsembleError(
                    f"'embedding_member' {member.name!r} has no 'embedding' output", self.spec.path
                )
            return member
        return next((m for m in self.members if m.info.has_embedding), None)

    def _load_domain(self) -> DomainModel | None:
        if self.spec.domain is None:
            return None
        try:
            domain = DomainModel.load(self.spec.domain)
        except DomainError as exc:
            raise EnsembleError(str(exc), self.spec.path) from None
        expected = (self.domain_features_from, min(self.input_sizes))
        if (domain.features_from, domain.input_size) != expected:
            raise EnsembleError(
                f"the domain record {self.spec.domain.name} was computed from the "
                f"{domain.features_from} at {domain.input_size} px, but this ensemble gives the "
                f"{expected[0]} at {expected[1]} px: compute it again with "
                "'napari-hpa models domain'", self.spec.path,
            )
        return domain

    # ------------------------------------------------------------------ facts

    @property
    def domain_features_from(self) -> str:
        """What the domain record's ``features`` view is made of, for this ensemble."""
        m = self.embedding_member
        if m is not None:
            return f"embedding of {m.name} ({m.info.embedding_dim}-d)"
        return "logits of " + ", ".join(m.name for m in self.members)

    @property
    def trained_on(self) -> str:
        """What the members learnt from, in words."""
        if self.spec.trained_on:
            return self.spec.trained_on
        return "; ".join(dict.fromkeys(m.info.trained_on for m in self.members))

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def has_attention(self) -> bool:
        return any(m.info.has_attention for m in self.members)

    @property
    def providers(self) -> dict[str, list[str]]:
        """Member name -> the providers its session actually uses."""
        return {m.name: m.providers for m in self.members}

    @property
    def providers_in_use(self) -> list[str]:
        """Every provider some member's session uses, sorted."""
        return sorted({p for ps in self.providers.values() for p in ps})

    @property
    def provider_notes(self) -> list[str]:
        return sorted({m.provider_note for m in self.members if m.provider_note})

    # ------------------------------------------------------------------ predict

    @property
    def input_sizes(self) -> list[int]:
        return sorted({m.info.input_size for m in self.members})

    def prepare(self, image: np.ndarray, set_id: str | None = None) -> dict[int, np.ndarray]:
        """One image set as float32 ``(4, S, S)`` model input for each member input size.

        Separate from :meth:`predict_prepared` so decoding threads can do it
        while onnxruntime runs the previous batch.  NaN or infinite values, and
        float channels outside [0, 1], are refused (:func:`imageset.check_values`).
        """
        image = np.asarray(image)
        check_values(image, set_id)
        return {size: to_model_input(image, size) for size in self.input_sizes}

    def predict(
        self,
        images: Sequence[np.ndarray],
        *,
        tta: str | None = None,
        ids: Sequence[str] | None = None,
        need_attention: bool = True,
        need_embeddings: bool = True,
    ) -> Prediction:
        """Predict for ``(4, H, W)`` image sets of any size and dtype."""
        names = list(ids) if ids is not None else [None] * len(images)
        return self.predict_prepared(
            [self.prepare(im, i) for im, i in zip(images, names)],
            tta=tta,
            ids=ids,
            need_attention=need_attention,
            need_embeddings=need_embeddings,
        )

    def predict_prepared(
        self,
        prepared: Sequence[dict[int, np.ndarray]],
        *,
        tta: str | None = None,
        ids: Sequence[str] | None = None,
        need_attention: bool = True,
        need_embeddings: bool = True,
    ) -> Prediction:
        """Predict for the output of :meth:`prepare`, one dict per image set.

        With a :attr:`member_cache` (``ensemble build``), a member whose outputs for these
        ids are cached is not run again."""
        tta = tta or self.spec.tta
        if tta not in tta_mod.TTA_MODES:
            raise ValueError(f"unknown TTA {tta!r}; choose one of {', '.join(tta_mod.TTA_MODES)}")
        inputs = {size: np.stack([p[size] for p in prepared]) for size in self.input_sizes}
        cache = self.member_cache if ids is not None else None
        outputs: dict[str, MemberOutput] = {}
        for member in self.members:
            want_att = need_attention and member.info.has_attention
            want_emb = need_embeddings and member is self.embedding_member
            out = (cache.get(member, ids, tta, self.spec.combine, want_att, want_emb)
                   if cache is not None else None)
            if out is None:
                out = self.run_member(member, inputs[member.info.input_size], tta, want_att, want_emb)
                if cache is not None:
                    cache.put(member, ids, tta, self.spec.combine, out)
            outputs[member.name] = out
        return self.combine(outputs, inputs[min(self.input_sizes)], ids)

    def run_member(self, member: Member, x: np.ndarray, tta: str, want_attention: bool,
                   want_embedding: bool) -> MemberOutput:
        """One member's outputs for a ``[N, 4, S, S]`` batch, combined over the TTA views."""
        n = len(x)
        probs_t, att_t, emb_t = [], [], []
        nonfinite = np.zeros(n, dtype=bool)
        plain_logits = plain_embedding = embedding = attention = None
        for t in tta_mod.TTA_MODES[tta]:
            out = member.run(np.ascontiguousarray(tta_mod.apply(x, t)))
            nonfinite |= ~np.all([np.isfinite(v.reshape(n, -1)).all(1) for v in out.values()], 0)
            if t == tta_mod.IDENTITY:
                plain_logits = out["logits"]
                plain_embedding = out.get("embedding")
            probs_t.append(sigmoid(out["logits"].astype(np.float32)))
            if want_attention:
                att_t.append(tta_mod.invert(out["attention"], t))
            if want_embedding:
                emb_t.append(out["embedding"])
        if want_attention:
            attention = tta_mod.combine(np.stack(att_t), self.spec.combine)
        if want_embedding:
            e = np.mean(emb_t, axis=0)
            embedding = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        return MemberOutput(tta_mod.combine(np.stack(probs_t), self.spec.combine), plain_logits,
                            nonfinite, attention, embedding, plain_embedding)

    def combine(self, outputs: dict[str, MemberOutput], small: np.ndarray,
                ids: Sequence[str] | None = None) -> Prediction:
        """The ensemble's answer from its members' (``outputs``, in member order) and the
        batch at the smallest input size (``small``, for the domain verdicts)."""
        n = len(small)
        failures: dict[int, str] = {}
        maps, map_weights = [], []
        embeddings = None
        for member in self.members:
            out = outputs[member.name]
            for i in np.flatnonzero(out.nonfinite):
                failures.setdefault(int(i), f"the model {member.name!r} gave NaN or infinite outputs for "
                                            "this field: it is not answered")
            if out.attention is not None:
                maps.append(out.attention)
                map_weights.append(member.spec.weight)
            if out.embedding is not None:
                embeddings = out.embedding
        member_probs = {name: out.probs for name, out in outputs.items()}
        stacked = np.stack(list(member_probs.values()))
        if self.spec.stacking is not None:
            probs = self.spec.stacking.apply(stacked)
        else:
            weights = np.array([m.spec.weight for m in self.members], dtype=np.float32)
            probs = np.tensordot(weights / weights.sum(), stacked, axes=1)
        attention = None
        if maps:
            grid = maps[0].shape[-2:]
            stack = np.stack([_resize_maps(m, grid) for m in maps])
            w = np.asarray(map_weights, dtype=np.float32)
            if not w.sum() > 0:  # attention members that do not vote on the classes
                w = np.ones_like(w)
            attention = np.tensordot(w / w.sum(), stack, axes=1).astype(np.float32)
        inputs = np.stack([input_features(x) for x in small])
        plain_embedding = (outputs[self.embedding_member.name].plain_embedding
                           if self.embedding_member is not None else None)
        features = (plain_embedding if plain_embedding is not None
                    else np.concatenate([o.plain_logits for o in outputs.values()], axis=1)).astype(np.float64)
        problems = [input_problems(x) for x in small]
        for i, message in failures.items():
            features[i] = np.nan
            problems[i] = [*problems[i], message]
        if self.domain is not None:
            verdicts = self.domain.verdicts(inputs, features, problems)
        else:
            verdicts = verdicts_without_record(problems)
        if self.spec.calibration is not None:  # the labels come from the calibrated probabilities
            probs = self.spec.calibration.apply(probs, verdicts)
        labels = apply_thresholds(probs, self.thresholds, self.spec.min_one_label)
        if embeddings is not None and failures:
            embeddings = embeddings.copy()  # a cached member's rows stay as they were
        for i in failures:
            probs[i] = np.nan
            labels[i] = False
            if attention is not None:
                attention[i] = np.nan
            if embeddings is not None:
                embeddings[i] = np.nan
        return Prediction(
            probs=probs.astype(np.float32),
            member_probs=member_probs,
            thresholds=self.thresholds,
            labels=labels,
            attention=attention,
            embeddings=embeddings,
            ids=list(ids) if ids is not None else [str(i) for i in range(n)],
            verdicts=verdicts,
            domain_inputs=inputs,
            domain_features=features,
            failures=failures,
        )


def attention_layer_geometry(image_shape: tuple[int, int], grid: tuple[int, int]):
    """``(scale, translate)`` that lay an ``h x w`` attention grid over an ``H x W`` image.

    napari puts pixel centres at integer coordinates, so image pixel ``0``
    spans ``[-0.5, 0.5)``; grid cell ``0`` spans the first ``H/h`` pixels and
    its centre sits at ``(H/h - 1) / 2``.
    """
    scale = tuple(s / g for s, g in zip(image_shape, grid))
    translate = tuple((f - 1) / 2 for f in scale)
    return scale, translate

