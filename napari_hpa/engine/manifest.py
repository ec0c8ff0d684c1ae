"""The ensemble manifest (``ensemble.json``): its schema, reading and writing.

See :mod:`napari_hpa.engine.ensemble` for the format and what the engine does with it.
Every file a manifest names lies in its folder; :func:`write_manifest` links (or copies) a
member from elsewhere into it, :func:`read_manifest` refuses a name that climbs out.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..classes import NUM_CLASSES
from ..errors import FileError, file_errors

MANIFEST_VERSION = 1


class EnsembleError(FileError):
    """A manifest that cannot be used; the message names the file and the field."""


# --------------------------------------------------------------------------- manifest


@dataclass
class MemberSpec:
    name: str
    path: Path  # absolute, resolved against the manifest's folder
    weight: float = 1.0


@dataclass
class Stacking:
    """Per-class logistic combination of the members' logits (see the module docstring)."""

    bias: np.ndarray  # [28]
    weights: np.ndarray  # [members, 28], in member order

    def apply(self, member_probs: np.ndarray) -> np.ndarray:
        """``[members, N, 28]`` member probabilities -> ``[N, 28]`` ensemble probabilities."""
        from ..thresholds import logit, sigmoid

        z = self.bias + np.einsum("mc,mnc->nc", self.weights, logit(member_probs))
        return sigmoid(z)

    def to_json(self, names: Sequence[str]) -> dict:
        return {
            "bias": [round(float(b), 6) for b in self.bias],
            "weights": {n: [round(float(w), 6) for w in row] for n, row in zip(names, self.weights)},
        }


@dataclass(frozen=True)
class Calibration:
    """How the ensemble's probabilities are calibrated.  Every field's logits are divided by
    ``temperature`` (fitted on the validation fields: calibration within the domain).  A field
    out of the domain is also pulled towards ``prior`` (each class's frequency on the
    validation fields, or half its threshold when lower): ``logit(prior) + (z - logit(prior)) /
    (out_of_domain * max(1, domain score))``, so that a field unlike the training data is never
    answered with the confidence of one like it, and what the models cannot judge falls back
    below the thresholds rather than to p 0.5 (``out_of_domain`` None: not for those fields
    either)."""

    temperature: float = 1.0
    out_of_domain: float | None = None
    prior: tuple[float, ...] | None = None  # [28] where to pull towards; None: p 0.5

    def ood_factors(self, verdicts) -> np.ndarray:
        """How much each field's logits are pulled towards the prior (1: not at all)."""
        f = np.ones(len(verdicts), dtype=np.float64)
        if self.out_of_domain is not None:
            for i, v in enumerate(verdicts):
                if v.in_domain is False:
                    f[i] = self.out_of_domain * max(1.0, v.score if np.isfinite(v.score) else 1.0)
        return f

    def apply(self, probs: np.ndarray, verdicts) -> np.ndarray:
        from ..thresholds import shrink

        return shrink(probs, self.temperature, self.ood_factors(verdicts), self.prior)

    @property
    def words(self) -> str:
        beyond = ("" if self.out_of_domain is None else
                  f"; fields out of the domain pulled towards the class frequencies by "
                  f"{self.out_of_domain:.3f} x max(1, domain score)")
        return f"temperature {self.temperature:.3f}{beyond}"

    def to_json(self) -> dict:
        return {"temperature": round(self.temperature, 6),
                "out_of_domain": None if self.out_of_domain is None else round(self.out_of_domain, 6),
                "prior": None if self.prior is None else [round(float(v), 6) for v in self.prior]}


@dataclass
class EnsembleSpec:
    members: list[MemberSpec]
    tta: str = "none"
    combine: str = "mean"
    thresholds: tuple[float, ...] | None = None
    min_one_label: bool = True
    embedding_member: str | None = None
    name: str = "ensemble"
    path: Path | None = None  # the manifest file, when read from one
    stacking: Stacking | None = None
    trained_on: str | None = None  # in words; None: from the members' metadata
    domain: Path | None = None  # the domain record (absolute), None when there is none
    calibration: Calibration | None = None

    def to_json(self, folder: Path) -> dict:
        return {
            "hpa_ensemble": MANIFEST_VERSION,
            "name": self.name,
            "members": [
                {"name": m.name, "path": _relative(m.path, folder), "weight": m.weight}
                for m in self.members
            ],
            "tta": self.tta,
            "combine": self.combine,
            "thresholds": None if self.thresholds is None else [round(t, 6) for t in self.thresholds],
            "min_one_label": self.min_one_label,
            "embedding_member": self.embedding_member,
            "stacking": None if self.stacking is None else self.stacking.to_json([m.name for m in self.members]),
            "trained_on": self.trained_on,
            "domain": None if self.domain is None else _relative(self.domain, folder),
            "calibration": None if self.calibration is None else self.calibration.to_json(),
        }


def _relative(path: Path, folder: Path) -> str:
    """``path`` relative to the manifest's folder (absolute if on another drive)."""
    try:
        return Path(os.path.relpath(Path(path).resolve(), folder.resolve())).as_posix()
    except ValueError:
        return str(path)


def write_manifest(spec: EnsembleSpec, path: str | Path) -> Path:
    """Write ``spec`` as ``path``; a member file outside the manifest's folder is first linked
    (or copied) into it, so that an ensemble folder holds everything it names."""
    from ..fileio import atomic_write_text

    path = Path(path)
    with file_errors(path, writing=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        for member in spec.members:
            member.path = _bring_inside(Path(member.path), path.parent)
    return atomic_write_text(path, json.dumps(spec.to_json(path.parent), indent=2) + "\n")


def _bring_inside(member: Path, folder: Path) -> Path:
    folder = folder.resolve()
    if folder in member.resolve().parents:
        return member
    target, k = folder / member.name, 2
    while target.exists() and not (target.stat().st_size == member.stat().st_size
                                   and target.read_bytes() == member.read_bytes()):
        target, k = folder / f"{member.stem}-{k}{member.suffix}", k + 1
    if not target.exists():
        try:
            os.link(member, target)
        except OSError:  # another file system, or links not allowed
            shutil.copy2(member, target)
    return target


class _MemberSchema(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    name: str | None = None
    path: str = Field(min_length=1)
    weight: float = Field(default=1.0, ge=0, allow_inf_nan=False)


class _CalibrationSchema(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    temperature: float = Field(default=1.0, gt=0, le=100, allow_inf_nan=False)
    out_of_domain: float | None = Field(default=None, ge=1, le=100, allow_inf_nan=False)
    prior: list[Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]] | None = Field(
        default=None, min_length=NUM_CLASSES, max_length=NUM_CLASSES)


class _ManifestSchema(BaseModel):
    """The types and ranges of ``ensemble.json`` (cross-field rules are checked after it)."""

    model_config = ConfigDict(extra="allow", strict=True)

    hpa_ensemble: Literal[1]
    name: str | None = None
    members: list[_MemberSchema] = Field(min_length=1)
    tta: Literal["none", "flip", "d4"] = "none"
    combine: Literal["mean", "max"] = "mean"
    thresholds: list[Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]] | None = Field(
        default=None, min_length=NUM_CLASSES, max_length=NUM_CLASSES)
    min_one_label: bool = True
    embedding_member: str | None = None
    stacking: dict | None = None
    trained_on: str | None = None
    domain: str | None = Field(default=None, min_length=1)
    calibration: _CalibrationSchema | None = None


def schema_problem(error: ValidationError) -> str:
    """The first problem pydantic found, as ``field.path: what (got value)``."""
    e = error.errors()[0]
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in e["loc"]).lstrip(".")
    got = "" if e["type"] == "missing" else f" (got {e.get('input')!r:.80})"
    return f"'{where}': {e['msg'][0].lower()}{e['msg'][1:]}{got}" if where else f"{e['msg']}{got}"


def read_manifest(path: str | Path) -> EnsembleSpec:
    path = Path(path)

    def fail(problem: str):
        raise EnsembleError(problem, path)

    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        fail("file not found")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot be read ({exc})")
    except json.JSONDecodeError as exc:
        fail(f"is not valid JSON ({exc})")
    if not isinstance(raw, dict):
        fail("must hold a JSON object")
    version = raw.get("hpa_ensemble")
    if version != MANIFEST_VERSION:
        fail(f"'hpa_ensemble' is {version!r}; this napari-hpa reads version {MANIFEST_VERSION}")
    try:
        m = _ManifestSchema.model_validate(raw)
    except ValidationError as exc:
        fail(schema_problem(exc))
    members = []
    for i, member in enumerate(m.members):
        member_path = _inside(path, member.path, f"members[{i}].path", fail)
        if not member_path.is_file():
            fail(f"members[{i}].path {member.path!r}: no such file {member_path}")
        members.append(MemberSpec(member.name or Path(member.path).stem, member_path, float(member.weight)))
    if not any(mb.weight > 0 for mb in members):
        fail("at least one member needs a weight > 0 (a weight of 0 keeps a member for its "
             "embeddings or attention maps only)")
    names = [mb.name for mb in members]
    if len(set(names)) != len(names):
        fail(f"member names must be unique, got {names}")
    if m.embedding_member is not None and m.embedding_member not in names:
        fail(f"'embedding_member' {m.embedding_member!r} is not a member ({', '.join(names)})")
    stacking = None if m.stacking is None else _read_stacking(m.stacking, names, fail)
    domain = None
    if m.domain is not None:
        domain = _inside(path, m.domain, "'domain'", fail)
        if not domain.is_file():
            fail(f"'domain' {m.domain!r}: no such file {domain}")
    return EnsembleSpec(
        members=members,
        tta=m.tta,
        combine=m.combine,
        thresholds=None if m.thresholds is None else tuple(float(t) for t in m.thresholds),
        min_one_label=m.min_one_label,
        embedding_member=m.embedding_member,
        name=m.name or path.parent.name,
        path=path,
        stacking=stacking,
        trained_on=m.trained_on,
        domain=domain,
        calibration=None if m.calibration is None else Calibration(
            float(m.calibration.temperature),
            None if m.calibration.out_of_domain is None else float(m.calibration.out_of_domain),
            None if m.calibration.prior is None else tuple(float(v) for v in m.calibration.prior)),
    )


def _inside(manifest: Path, name: str, what: str, fail) -> Path:
    """``name`` resolved against the manifest's folder; it must name a file inside that folder.

    Checked on the names (absolute paths and ``..`` that climb out are refused); a link
    placed inside the folder on purpose is followed.
    """
    folder = Path(os.path.abspath(manifest.parent))
    target = Path(os.path.normpath(folder / name))
    if Path(name).is_absolute() or folder not in target.parents:
        fail(f"{what} {name!r} points outside the ensemble's folder {folder}; an ensemble folder "
             "holds every file it names (write_manifest and 'ensemble build' put them there)")
    return target


def _numbers(value, n: int) -> np.ndarray | None:
    """``value`` as ``n`` finite floats, or None."""
    if not isinstance(value, list) or len(value) != n:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return None
    arr = np.asarray(value, dtype=np.float64)
    return arr if np.isfinite(arr).all() else None


def _read_stacking(raw, names: list[str], fail) -> Stacking:
    if not isinstance(raw, dict):
        fail("'stacking' must be an object with 'bias' and 'weights'")
    bias = _numbers(raw.get("bias"), NUM_CLASSES)
    if bias is None:
        fail(f"'stacking.bias' must be a list of {NUM_CLASSES} finite numbers")
    weights = raw.get("weights")
    if not isinstance(weights, dict) or set(weights) != set(names):
        got = sorted(weights) if isinstance(weights, dict) else weights
        fail(f"'stacking.weights' must give one list per member ({', '.join(names)}), got {got!r}")
    rows = []
    for n in names:
        row = _numbers(weights[n], NUM_CLASSES)
        if row is None:
            fail(f"'stacking.weights.{n}' must be a list of {NUM_CLASSES} finite numbers")
        rows.append(row)
    return Stacking(bias, np.stack(rows))
