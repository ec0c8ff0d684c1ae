"""Foreign ONNX classifiers made into contract-1 members, with onnx's own graph tools.

A model made elsewhere rarely meets the contract as it is: its input has
another name, it may give probabilities instead of logits, raw features
instead of an L2-normalised embedding, no metadata, another class order, and
it may expect normalised input.  :func:`inspect_onnx` reads what can be read
from the graph (input name, channels and size, outputs and their shapes, the
operator that makes each output) and recognises known published models;
:func:`wrap_onnx` edits the graph: the input renamed ``image`` (with a
normalisation in front when asked), the class output turned into ``logits``
(``log(p) - log(1 - p)`` of clipped probabilities; reordered with a
``Gather`` when the class order differs), the feature output into an
L2-normalised ``embedding`` (``LpNormalization``), other outputs dropped, and
the contract's metadata written.  The original operators are not touched.

Known models (recognised by their interface, no options needed):

* ``hpa-densenet121``: the Kaggle HPA 2018 1st-place DenseNet121 as released in
  ONNX by CellProfiling (one 4-channel input, outputs sigmoid probabilities
  ``[N, 28]`` then features ``[N, 1024]``; normalisation inside the graph; its
  client reads every field at 1024 x 1024).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..classes import NUM_CLASSES
from ..errors import FileError

OUTPUT_KINDS = ("probabilities", "logits", "features", "ignore")
PROB_EPS = 1e-7


class ImportModelError(FileError):
    """A model that cannot be imported; the message names the file and what is wrong."""


@dataclass(frozen=True)
class KnownModel:
    key: str
    title: str
    input_size: int
    outputs: tuple[str, ...]
    feature_dim: int
    trained_on: str
    threshold_note: str
    citation: str


HPA_DENSENET = KnownModel(
    key="hpa-densenet121",
    title="Kaggle HPA 2018 1st place DenseNet121 (bestfitting), CellProfiling release",
    input_size=1024,
    outputs=("probabilities", "features"),
    feature_dim=1024,
    trained_on=(
        "real HPA immunofluorescence fields: the Kaggle HPA 2018 training set plus external "
        "HPA v18 images (1st-place solution, 5-fold, fold 0), RGBY 8-bit, read at 1024 x 1024"
    ),
    threshold_note="the published client predicts a class at probability 0.5",
    citation="CellProfiling/densenet (release v0.1.0) and CellProfiling/hpa_densenet",
)
KNOWN_MODELS = {HPA_DENSENET.key: HPA_DENSENET}


@dataclass
class OutputInfo:
    name: str
    shape: tuple  # ints, or strings for symbolic dims
    producer: str  # op type of the node that makes it ('' if none)


@dataclass
class OnnxInterface:
    """What the graph says about itself."""

    path: Path
    sha256: str
    input_name: str
    input_shape: tuple
    input_channels: int | None
    input_size: int | None  # a static square size, if the graph has one
    outputs: list[OutputInfo]
    opset: int
    known: KnownModel | None = None
    notes: list[str] = field(default_factory=list)


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _need_onnx():
    try:
        import onnx
    except ImportError:  # pragma: no cover - onnx is a dependency
        raise ImportModelError("importing ONNX models needs the 'onnx' package: pip install onnx") from None
    return onnx


def _dims(value_info) -> tuple:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return ()
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim)


def _load(path: Path):
    onnx = _need_onnx()
    if not path.is_file():
        raise ImportModelError("no such file", path)
    try:
        return onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - any decoding failure is bad input
        raise ImportModelError(f"not a readable ONNX model ({type(exc).__name__}: {exc})", path) from None


def inspect_onnx(path: str | Path) -> OnnxInterface:
    """Read the interface of an ONNX classifier; refuse what can never be a member."""
    path = Path(path)
    model = _load(path)
    g = model.graph
    inits = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1:
        raise ImportModelError(
            f"the model has {len(inputs)} inputs ({', '.join(i.name for i in inputs) or 'none'}); "
            "napari-hpa imports models with one image input", path,
        )
    inp = inputs[0]
    elem = inp.type.tensor_type.elem_type
    if elem != 1:  # TensorProto.FLOAT
        raise ImportModelError(f"input {inp.name!r} is not float32 (ONNX element type {elem})", path)
    shape = _dims(inp)
    if len(shape) != 4:
        raise ImportModelError(
            f"input {inp.name!r} has shape {list(shape)}; an image classifier takes [N, C, H, W]", path
        )
    channels = shape[1] if isinstance(shape[1], int) and shape[1] > 0 else None
    if channels is not None and channels != 4:
        raise ImportModelError(
            f"input {inp.name!r} has {channels} channels; napari-hpa needs a 4-channel RGBY model "
            "(red microtubules, green protein, blue nucleus, yellow ER)", path,
        )
    h, w = shape[2], shape[3]
    size = h if isinstance(h, int) and h > 0 and h == w else None
    if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0 and h != w:
        raise ImportModelError(f"input {inp.name!r} is {h}x{w}; napari-hpa feeds square fields", path)
    producers = {o: n.op_type for n in g.node for o in n.output}
    outputs = [OutputInfo(o.name, _dims(o), producers.get(o.name, "")) for o in g.output]
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    info = OnnxInterface(path, sha256(path), inp.name, shape, channels, size, outputs, opset)
    info.known = _recognise(info)
    return info


def _recognise(info: OnnxInterface) -> KnownModel | None:
    shapes = [o.shape for o in info.outputs]
    if (
        len(shapes) == 2 and all(len(s) == 2 for s in shapes)
        and shapes[0][1] == NUM_CLASSES and shapes[1][1] == HPA_DENSENET.feature_dim
        and info.input_size in (None, HPA_DENSENET.input_size)
    ):
        return HPA_DENSENET
    return None


def detect_outputs(info: OnnxInterface, sample: dict[str, np.ndarray] | None = None) -> list[str]:
    """One kind per output, from shapes, producers and (when given) one trial run's values.

    The first ``[N, 28]`` output is the classifier: ``probabilities`` when a Sigmoid makes
    it or every trial value lies in [0, 1], else ``logits``; the first other ``[N, D]``
    output gives ``features``; the rest is ignored.
    """
    if info.known is not None:
        return list(info.known.outputs)
    kinds = []
    have_class = have_features = False
    for o in info.outputs:
        shape = sample[o.name].shape if sample is not None else o.shape
        rank2 = len(shape) == 2
        if rank2 and shape[1] == NUM_CLASSES and not have_class:
            if o.producer in ("Sigmoid", "Softmax"):
                kinds.append("probabilities")
            elif sample is not None:
                v = sample[o.name]
                kinds.append("probabilities" if np.all((v >= 0) & (v <= 1)) else "logits")
            else:
                kinds.append("logits")
            have_class = True
        elif rank2 and isinstance(shape[1], int) and shape[1] > 0 and not have_features:
            kinds.append("features")
            have_features = True
        else:
            kinds.append("ignore")
    if not have_class:
        raise ImportModelError(
            "no output of shape [N, 28] (one score per HPA class); outputs: "
            + ", ".join(f"{o.name} {list(o.shape)}" for o in info.outputs),
            info.path,
        )
    return kinds


def check_output_kinds(info: OnnxInterface, kinds: list[str]) -> None:
    if len(kinds) != len(info.outputs):
        raise ImportModelError(
            f"--outputs gives {len(kinds)} kinds but the model has {len(info.outputs)} outputs "
            f"({', '.join(o.name for o in info.outputs)})", info.path,
        )
    bad = [k for k in kinds if k not in OUTPUT_KINDS]
    if bad:
        raise ImportModelError(f"unknown output kind {bad[0]!r}; choose from {', '.join(OUTPUT_KINDS)}")
    if sum(k in ("probabilities", "logits") for k in kinds) != 1:
        raise ImportModelError("exactly one output must be 'probabilities' or 'logits'", info.path)
    if kinds.count("features") > 1:
        raise ImportModelError("at most one output can be 'features'", info.path)


def _rename(graph, old: str, new: str) -> None:
    """Rename tensor ``old`` to ``new`` everywhere in ``graph`` (not in subgraphs)."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
    for coll in (graph.input, graph.output, graph.value_info):
        for vi in coll:
            if vi.name == old:
                vi.name = new


def wrap_onnx(
    info: OnnxInterface,
    out: str | Path,
    *,
    kinds: list[str],
    input_size: int,
    metadata: dict[str, str],
    normalize: tuple[list[float], list[float]] | None = None,
    class_order: list[int] | None = None,
) -> Path:
    """Write ``out``: the graph of ``info.path`` meeting the contract (see the module docstring)."""
    onnx = _need_onnx()
    from onnx import TensorProto, helper, numpy_helper

    check_output_kinds(info, kinds)
    model = _load(info.path)
    g = model.graph
    uid = "__hpa_"
    # every original output and the input get private names, so "image", "logits" and
    # "embedding" are free whatever the model called its tensors
    originals = [o.name for o in g.output]
    for i, name in enumerate(originals):
        _rename(g, name, f"{uid}out{i}")
    _rename(g, info.input_name, f"{uid}input")
    for vi in list(g.input):
        if vi.name == f"{uid}input":
            g.input.remove(vi)
    side = input_size if info.input_size else "S"
    g.input.insert(0, helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 4, side, side]))
    head, nodes, inits = [], [], []  # nodes before the original graph, and after it

    def const(name: str, value) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), f"{uid}{name}"))
        return f"{uid}{name}"

    if normalize is not None:
        mean, std = (np.asarray(v, np.float32).reshape(1, 4, 1, 1) for v in normalize)
        head.append(helper.make_node("Sub", ["image", const("mean", mean)], [f"{uid}centred"]))
        head.append(helper.make_node("Div", [f"{uid}centred", const("std", std)], [f"{uid}input"]))
    else:
        head.append(helper.make_node("Identity", ["image"], [f"{uid}input"]))

    new_outputs = []
    for i, kind in enumerate(kinds):
        src = f"{uid}out{i}"
        if kind in ("probabilities", "logits"):
            if class_order is not None:
                index = np.argsort(np.asarray(class_order)).astype(np.int64)
                inits.append(numpy_helper.from_array(index, f"{uid}class_index"))
                nodes.append(helper.make_node("Gather", [src, f"{uid}class_index"], [f"{uid}ordered"], axis=1))
                src = f"{uid}ordered"
            if kind == "probabilities":
                lo, hi = const("lo", PROB_EPS), const("hi", 1 - PROB_EPS)
                if info.opset >= 11:
                    nodes.append(helper.make_node("Clip", [src, lo, hi], [f"{uid}p"]))
                else:
                    nodes.append(helper.make_node("Clip", [src], [f"{uid}p"], min=PROB_EPS, max=1 - PROB_EPS))
                nodes += [
                    helper.make_node("Log", [f"{uid}p"], [f"{uid}logp"]),
                    helper.make_node("Sub", [const("one", 1.0), f"{uid}p"], [f"{uid}q"]),
                    helper.make_node("Log", [f"{uid}q"], [f"{uid}logq"]),
                    helper.make_node("Sub", [f"{uid}logp", f"{uid}logq"], ["logits"]),
                ]
            else:
                nodes.append(helper.make_node("Identity", [src], ["logits"]))
            new_outputs.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", NUM_CLASSES]))
        elif kind == "features":
            nodes.append(helper.make_node("LpNormalization", [src], ["embedding"], axis=1, p=2))
            dim = info.outputs[i].shape[1] if isinstance(info.outputs[i].shape[1], int) else "D"
            new_outputs.append(helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", dim]))
    body = list(g.node)  # kept topologically sorted: input chain, the model, the new outputs
    del g.node[:]
    g.node.extend(head + body + nodes)
    g.initializer.extend(inits)
    del g.output[:]
    g.output.extend(new_outputs)
    del model.metadata_props[:]
    for k, v in metadata.items():
        model.metadata_props.add(key=k, value=str(v))
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001
        raise ImportModelError(f"the wrapped graph does not check ({exc})", info.path) from None
    out = Path(out)
    onnx.save(model, str(out))
    return out
