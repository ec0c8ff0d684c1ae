"""The ONNX model contract (version 1): what a member model must look like.

Input ``image``: float32 ``[N, 4, S, S]``, RGBY in [0, 1] (normalisation is
inside the graph).  Outputs: ``logits [N, 28]`` (required), ``attention
[N, 28, h, w]`` in [0, 1] and ``embedding [N, D]`` L2-normalised (optional).
Metadata: ``hpa_contract=1``, ``classes`` (JSON list of the 28 names),
``input_size``, ``arch``, ``trained_on``, optional ``thresholds`` (JSON list
of 28 floats).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..classes import CLASS_NAMES, NUM_CLASSES
from ..errors import FileError

CONTRACT_VERSION = 1
REQUIRED_METADATA = ("hpa_contract", "classes", "input_size", "arch", "trained_on")
#: the input sizes a member may ask for: a field is resized to S x S float32 per view
MIN_INPUT_SIZE, MAX_INPUT_SIZE = 16, 4096


class ModelContractError(FileError):
    """A model that breaks the contract; the message names the file and what is wrong."""


@dataclass(frozen=True)
class ModelInfo:
    """What the contract says about one model file."""

    input_size: int
    arch: str
    trained_on: str
    thresholds: tuple[float, ...] | None
    attention_shape: tuple[int, int] | None  # (h, w), None when the model has no attention
    embedding_dim: int | None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def has_attention(self) -> bool:
        return self.attention_shape is not None

    @property
    def has_embedding(self) -> bool:
        return self.embedding_dim is not None


def _dim(d) -> int | None:
    return d if isinstance(d, int) and d > 0 else None


def check_contract(session, path: str | Path | None = None) -> ModelInfo:
    """Validate an onnxruntime session's inputs, outputs and metadata; return what they say."""

    def fail(problem: str):
        raise ModelContractError(problem, path)

    meta = dict(session.get_modelmeta().custom_metadata_map)
    version = meta.get("hpa_contract")
    if version is None:
        fail(
            "no 'hpa_contract' metadata: not a napari-hpa model "
            f"(metadata_props needs {', '.join(REQUIRED_METADATA)})"
        )
    if version.strip() != str(CONTRACT_VERSION):
        fail(f"made for model contract version {version}, this napari-hpa reads version 1")
    missing = [k for k in REQUIRED_METADATA if k not in meta]
    if missing:
        fail(f"metadata is missing {', '.join(missing)}")
    try:
        classes = json.loads(meta["classes"])
    except json.JSONDecodeError as exc:
        fail(f"metadata 'classes' is not JSON ({exc})")
    if not isinstance(classes, list):
        fail(f"metadata 'classes' must be a JSON list of the {NUM_CLASSES} class names, got {meta['classes'][:80]!r}")
    if list(classes) != list(CLASS_NAMES):
        fail(
            f"metadata 'classes' must list the {NUM_CLASSES} HPA classes in index order "
            f"(got {len(classes)} names, first differing: "
            f"{next((c for c, e in zip(classes, CLASS_NAMES) if c != e), classes[NUM_CLASSES:])!r})"
        )
    try:
        size = int(meta["input_size"])
    except ValueError:
        fail(f"metadata 'input_size' is {meta['input_size']!r}, not an integer")
    if not MIN_INPUT_SIZE <= size <= MAX_INPUT_SIZE:
        fail(f"metadata 'input_size' is {size}; napari-hpa reads sizes from {MIN_INPUT_SIZE} to "
             f"{MAX_INPUT_SIZE} pixels")
    thresholds = None
    if "thresholds" in meta:
        try:
            thresholds = tuple(float(t) for t in json.loads(meta["thresholds"]))
        except (json.JSONDecodeError, TypeError, ValueError):
            fail(f"metadata 'thresholds' is not a JSON list of numbers: {meta['thresholds'][:80]!r}")
        if len(thresholds) != NUM_CLASSES or not all(0 <= t <= 1 for t in thresholds):
            fail(f"metadata 'thresholds' must be {NUM_CLASSES} numbers in [0, 1]")

    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].name != "image":
        fail(
            "the contract needs exactly one input named 'image', found "
            + ", ".join(f"{i.name!r}" for i in inputs)
        )
    inp = inputs[0]
    if inp.type != "tensor(float)":
        fail(f"input 'image' has type {inp.type}, the contract needs tensor(float) (float32)")
    if len(inp.shape) != 4:
        fail(f"input 'image' has rank {len(inp.shape)} {inp.shape}, the contract needs [N, 4, S, S]")
    if _dim(inp.shape[1]) != 4:
        fail(f"input has {inp.shape[1]} channels, the contract needs 4 (RGBY)")
    for d in inp.shape[2:]:
        if _dim(d) is not None and d != size:
            fail(f"input 'image' is {inp.shape[2]}x{inp.shape[3]}, but metadata input_size is {size}")

    outputs = {o.name: o for o in session.get_outputs()}
    if "logits" not in outputs:
        fail(f"no output named 'logits' (outputs: {', '.join(outputs) or 'none'})")
    logits = outputs["logits"]
    if len(logits.shape) != 2 or _dim(logits.shape[1]) not in (None, NUM_CLASSES):
        fail(f"output 'logits' has shape {logits.shape}, the contract needs [N, {NUM_CLASSES}]")
    if _dim(logits.shape[1]) is None:
        fail(f"output 'logits' has shape {logits.shape}: the class dimension must be {NUM_CLASSES}")
    attention_shape = None
    if "attention" in outputs:
        att = outputs["attention"]
        if len(att.shape) != 4 or _dim(att.shape[1]) != NUM_CLASSES:
            fail(f"output 'attention' has shape {att.shape}, the contract needs [N, 28, h, w]")
        attention_shape = (_dim(att.shape[2]) or 0, _dim(att.shape[3]) or 0)
    embedding_dim = None
    if "embedding" in outputs:
        emb = outputs["embedding"]
        if len(emb.shape) != 2 or _dim(emb.shape[1]) is None:
            fail(f"output 'embedding' has shape {emb.shape}, the contract needs [N, D]")
        embedding_dim = int(emb.shape[1])
    return ModelInfo(
        input_size=size,
        arch=meta["arch"],
        trained_on=meta["trained_on"],
        thresholds=thresholds,
        attention_shape=attention_shape,
        embedding_dim=embedding_dim,
        metadata=meta,
    )


def contract_metadata(
    *, input_size: int, arch: str, trained_on: str, thresholds=None, **extra: str
) -> dict[str, str]:
    """The ``metadata_props`` a model needs (for exporters, and for tests' toy models)."""
    meta = {
        "hpa_contract": str(CONTRACT_VERSION),
        "classes": json.dumps(list(CLASS_NAMES)),
        "input_size": str(int(input_size)),
        "arch": arch,
        "trained_on": trained_on,
    }
    if thresholds is not None:
        meta["thresholds"] = json.dumps([float(t) for t in thresholds])
    meta.update({k: str(v) for k, v in extra.items()})
    return meta
