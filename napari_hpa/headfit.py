"""Refit the last layer of a contract-1 ONNX model on labelled fields (core: onnx, onnxruntime
and scikit-learn; no torch).

A classifier's ``logits`` are a linear map of a feature vector: a ``Gemm``, or a ``MatMul``
and an ``Add``, possibly followed by the quantize and dequantize nodes of an int8 model.
Refitting that layer alone is how a model trained elsewhere, or on synthetic fields, learns
from a few hundred labelled fields of one's own, in minutes on a CPU and without torch:

1. :func:`find_head` finds the layer and the feature tensor it reads;
2. :func:`extract` runs the model over labelled folders, once per view of a test-time
   augmentation mode, and keeps each view's features, with the layer's present weights as
   the graph computes them (int8 ones dequantized);
3. :func:`fit_head` fits one L2-regularised logistic regression per class (scikit-learn;
   balanced class weights, standardised features) for each class with positive and negative
   fields in the data; every other class keeps its present row;
4. :func:`write_model` writes a new ONNX file: the same graph, with the layer (and the nodes
   after it) replaced by one float ``Gemm`` that makes ``logits``.  The other outputs
   (attention maps, embeddings) are untouched; the metadata says what the head was fitted on
   and drops thresholds that belonged to the old head.

:func:`refit_head` does all four.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .classes import CLASS_NAMES, NUM_CLASSES
from .engine.contract import ModelContractError
from .errors import TrainingError

#: nodes that may stand between the linear layer and ``logits``
PASS_THROUGH = ("QuantizeLinear", "DequantizeLinear", "Identity")
DEFAULT_STRENGTH = 0.01  # the inverse L2 strength C of each class's logistic regression
HEAD_OUTPUT = "logits"


@dataclass(frozen=True)
class Head:
    """Where a model's linear output layer is: ``logits = features @ W.T + b`` after it."""

    features: str  # the tensor the layer reads, [N, D]
    weight: str  # its weight tensor
    bias: str | None  # its bias tensor (None: no bias)
    transposed: bool  # the weight is stored [28, D] (Gemm transB=1) rather than [D, 28]
    alpha: float
    beta: float
    nodes: tuple[str, ...]  # the nodes from the layer to ``logits`` (replaced by the new head)


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def find_head(model, path: str | Path | None = None) -> Head:
    """The linear layer that makes ``logits`` in ``model`` (an ``onnx.ModelProto``)."""
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}

    def fail(found: str):
        raise ModelContractError(
            f"its '{HEAD_OUTPUT}' output does not come from a linear layer ({found}): only a model "
            "whose logits are a Gemm, or a MatMul and an Add, of a feature vector can have its head refitted",
            path)

    if HEAD_OUTPUT not in {o.name for o in graph.output}:
        fail(f"it has no output named '{HEAD_OUTPUT}'")
    chain, name = [], HEAD_OUTPUT
    while True:
        node = producer.get(name)
        if node is None:
            fail(f"'{name}' is an input or a constant")
        chain.append(node)
        if node.op_type in PASS_THROUGH:
            name = node.input[0]
            continue
        if node.op_type == "Gemm":
            a = _attrs(node)
            if a.get("transA", 0):
                fail("a Gemm with transA")
            return Head(node.input[0], node.input[1], node.input[2] if len(node.input) > 2 and node.input[2] else None,
                        bool(a.get("transB", 0)), float(a.get("alpha", 1.0)), float(a.get("beta", 1.0)),
                        tuple(n.name or n.output[0] for n in chain))
        if node.op_type == "Add":
            made = [producer.get(i) for i in node.input]
            k = next((i for i, n in enumerate(made) if n is not None and n.op_type == "MatMul"), None)
            if k is None:
                fail("an Add of no MatMul")
            mm = made[k]
            chain.append(mm)
            return Head(mm.input[0], mm.input[1], node.input[1 - k], False, 1.0, 1.0,
                        tuple(n.name or n.output[0] for n in chain))
        if node.op_type == "MatMul":
            return Head(node.input[0], node.input[1], None, False, 1.0, 1.0,
                        tuple(n.name or n.output[0] for n in chain))
        fail(f"a {node.op_type} node")


@dataclass
class Extracted:
    """Features of labelled fields, one row per field and view."""

    features: np.ndarray  # [M, D] float32
    targets: np.ndarray  # [M, 28] bool
    weights: np.ndarray  # [M] sample weight (a field's views share its weight)
    field: np.ndarray  # [M] index of the field each row comes from
    weight: np.ndarray  # [28, D] the present head: logits = features @ weight.T + bias
    bias: np.ndarray  # [28]
    n_fields: int
    sources: list[str] = field(default_factory=list)  # one line per folder


def _session_with(model, extra: Sequence[str]):
    import onnx
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for name in extra:
        if name not in have:
            m.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _constant(model, session, name: str, x: np.ndarray) -> np.ndarray:
    """The value of a constant tensor of the graph (an initializer, or computed from one)."""
    from onnx import numpy_helper

    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init).astype(np.float64)
    return session.run([name], {"image": x})[0].astype(np.float64)


def extract(
    model_path: str | Path,
    folders: Sequence[tuple[str | Path, float]],
    *,
    tta: str = "d4",
    batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> Extracted:
    """Run the model over labelled ``folders`` (``(folder, weight per field)``; each holds a
    labels.csv) in every view of ``tta`` and keep the features its head reads."""
    import onnx

    from .dataset import load_labelled
    from .engine.contract import check_contract
    from .engine.tta import TTA_MODES, apply
    from .imageset import read_set, to_model_input

    if tta not in TTA_MODES:
        raise TrainingError(f"unknown test-time augmentation {tta!r}; choose {', '.join(TTA_MODES)}")
    model_path = Path(model_path)
    model = onnx.load(str(model_path))
    head = find_head(model, model_path)
    inits = {i.name for i in model.graph.initializer}
    session = _session_with(model, [head.features] + [t for t in (head.weight, head.bias) if t and t not in inits])
    info = check_contract(session, model_path)
    probe = np.zeros((1, 4, info.input_size, info.input_size), np.float32)
    weight = _constant(model, session, head.weight, probe)
    weight = head.alpha * (weight if head.transposed else weight.T)
    bias = (np.zeros(NUM_CLASSES) if head.bias is None
            else np.broadcast_to(head.beta * _constant(model, session, head.bias, probe).ravel(), (NUM_CLASSES,)))
    data = []
    for folder, w in folders:
        if not (np.isfinite(w) and w > 0):
            raise TrainingError(f"data folder {folder}: its weight must be a positive number, not {w}")
        data.append((load_labelled(folder), float(w)))  # every folder checked before the long work
    total = sum(len(d) for d, _ in data)
    views = TTA_MODES[tta]
    feats, targets, weights, fields, sources = [], [], [], [], []
    done, base = 0, 0
    for d, w in data:
        sources.append(f"{len(d)} fields of {d.folder} (weight {w:g})")
        for start in range(0, len(d), batch_size):
            ids = d.ids[start:start + batch_size]
            x = np.stack([to_model_input(read_set(d.sources[i]).data, info.input_size) for i in ids])
            for t in views:
                f = session.run([head.features], {"image": np.ascontiguousarray(apply(x, t))})[0]
                if f.ndim != 2:
                    raise ModelContractError(f"the features its head reads ({head.features}) have shape "
                                             f"{f.shape}, not [N, D]", model_path)
                feats.append(f.astype(np.float32))
                targets.append(d.targets[start:start + len(ids)].astype(bool))
                weights.append(np.full(len(ids), w / len(views)))
                fields.append(base + start + np.arange(len(ids)))
            done += len(ids)
            if progress is not None:
                progress(done, total)
        base += len(d)
    return Extracted(np.concatenate(feats), np.concatenate(targets), np.concatenate(weights),
                     np.concatenate(fields), weight, np.array(bias, dtype=np.float64), total, sources)


def _check_strength(strength: float) -> None:
    if not (np.isfinite(strength) and strength > 0):
        raise TrainingError(f"the regularisation strength C must be a positive number, not {strength}")


@dataclass
class FittedHead:
    weight: np.ndarray  # [28, D]
    bias: np.ndarray  # [28]
    refitted: np.ndarray  # [28] bool: the classes whose row was fitted


def _check_classes(classes: Sequence[int] | None) -> np.ndarray:
    """The class mask ``classes`` asks for (all classes when None)."""
    if classes is None:
        return np.ones(NUM_CLASSES, bool)
    wanted = np.zeros(NUM_CLASSES, bool)
    for c in classes:
        if not (isinstance(c, (int, np.integer)) and 0 <= c < NUM_CLASSES):
            raise TrainingError(f"class {c!r} to refit is not a class index 0-{NUM_CLASSES - 1}")
        wanted[c] = True
    if not wanted.any():
        raise TrainingError("no class to refit was named")
    return wanted


def fit_head(ex: Extracted, strength: float = DEFAULT_STRENGTH,
             rows: np.ndarray | None = None, classes: Sequence[int] | None = None) -> FittedHead:
    """One logistic regression per class of ``classes`` (default all) with both positive and
    negative fields among the rows ``rows`` of ``ex`` (default all); the other classes keep
    their present row."""
    from sklearn.linear_model import LogisticRegression

    _check_strength(strength)
    wanted = _check_classes(classes)
    rows = np.arange(len(ex.features)) if rows is None else np.asarray(rows)
    x = ex.features[rows].astype(np.float64)
    y, w = ex.targets[rows], ex.weights[rows]
    mean, scale = x.mean(0), x.std(0)
    scale[scale < 1e-8] = 1.0
    z = (x - mean) / scale
    weight, bias = ex.weight.copy(), ex.bias.copy()
    refitted = np.zeros(NUM_CLASSES, bool)
    for c in range(NUM_CLASSES):
        if wanted[c] and 0 < y[:, c].sum() < len(y):
            lr = LogisticRegression(C=strength, class_weight="balanced", max_iter=2000)
            lr.fit(z, y[:, c], sample_weight=w)
            weight[c] = lr.coef_[0] / scale
            bias[c] = lr.intercept_[0] - weight[c] @ mean
            refitted[c] = True
    return FittedHead(weight, bias, refitted)


def write_model(model_path: str | Path, out: str | Path, fitted: FittedHead, note: str) -> None:
    """``model_path`` with its head replaced by ``fitted``, to the new file ``out``."""
    import onnx
    from onnx import helper, numpy_helper

    from .engine.onnx_tools import MAX_IR_VERSION
    from .fileio import atomic_write_bytes

    model = onnx.load(str(model_path))
    head = find_head(model, model_path)
    graph = model.graph
    drop = set(head.nodes)
    kept = [n for n in graph.node if (n.name or n.output[0]) not in drop]
    used = {i for n in kept for i in n.input}
    leaving = {o for n in graph.node if (n.name or n.output[0]) in drop for o in n.output} - {HEAD_OUTPUT}
    if used & leaving:
        raise ModelContractError(f"a tensor of its head ({sorted(used & leaving)[0]}) is also read "
                                 "elsewhere in the graph; its head cannot be replaced alone", model_path)
    taken = ({i.name for i in graph.initializer} | {n.name for n in graph.node}
             | {t for n in graph.node for t in (*n.input, *n.output)})

    def new_name(base: str) -> str:  # a model refitted before holds the names already
        k = 0
        while (name := base if k == 0 else f"{base}_{k}") in taken:
            k += 1
        return name

    w_name, b_name = new_name("refit_head_weight"), new_name("refit_head_bias")
    kept.append(helper.make_node("Gemm", [head.features, w_name, b_name], [HEAD_OUTPUT],
                                 name=new_name("refit_head"), transB=1))
    # drop what only the old head read: nodes whose outputs nobody reads, then unused constants
    outputs = {o.name for o in graph.output}
    while True:
        used = {i for n in kept for i in n.input} | outputs
        live = [n for n in kept if any(o in used for o in n.output)]
        if len(live) == len(kept):
            break
        kept = live
    del graph.node[:]
    graph.node.extend(kept)
    inits = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    graph.initializer.extend([numpy_helper.from_array(fitted.weight.astype(np.float32), w_name),
                              numpy_helper.from_array(fitted.bias.astype(np.float32), b_name)])
    produced = {o for n in kept for o in n.output}
    vi = [v for v in graph.value_info if v.name in produced]
    del graph.value_info[:]
    graph.value_info.extend(vi)
    meta = {p.key: p.value for p in model.metadata_props}
    meta.pop("thresholds", None)  # they belonged to the old head
    meta["trained_on"] = f"{meta.get('trained_on', 'unknown')}; head refitted on {note}"
    meta["head_refit"] = json.dumps({"on": note, "classes": [CLASS_NAMES[c] for c in np.flatnonzero(fitted.refitted)]})
    del model.metadata_props[:]
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    model.ir_version = min(model.ir_version, MAX_IR_VERSION)
    onnx.checker.check_model(model)
    atomic_write_bytes(out, model.SerializeToString())


def _mean_ap(scores: np.ndarray, y: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    present = np.flatnonzero(y.any(0) & ~y.all(0))
    return float(np.mean([average_precision_score(y[:, c], scores[:, c]) for c in present])) if len(present) else float("nan")


def field_scores(ex: Extracted, weight: np.ndarray, bias: np.ndarray, rows: np.ndarray | None = None):
    """Per field (mean logit over its views) scores and targets of the rows ``rows``."""
    rows = np.arange(len(ex.features)) if rows is None else np.asarray(rows)
    z = ex.features[rows].astype(np.float64) @ weight.T + bias
    fields, inverse = np.unique(ex.field[rows], return_inverse=True)
    s = np.zeros((len(fields), NUM_CLASSES))
    np.add.at(s, inverse, z)
    s /= np.bincount(inverse)[:, None]
    y = np.zeros((len(fields), NUM_CLASSES), bool)
    y[inverse] = ex.targets[rows]
    return s, y


def _kept(mask: np.ndarray, why: str) -> str:
    names = ", ".join(CLASS_NAMES[c] for c in np.flatnonzero(mask))
    return f"; kept, {why}: {names}" if names else ""


def refit_head(
    model_path: str | Path,
    out: str | Path,
    folders: Sequence[tuple[str | Path, float]],
    *,
    strength: float = DEFAULT_STRENGTH,
    tta: str = "d4",
    batch_size: int = 16,
    classes: Sequence[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> str:
    """Refit the head of ``model_path`` on ``folders`` and write ``out``; returns a report.
    ``classes`` (default all) limits the refit to those class indices; the others keep their
    present row."""
    from .fileio import check_outputs

    model_path, out = Path(model_path), Path(out)
    check_outputs([("--out", out)], inputs=[("the model", model_path)], make_folders=False)
    if out.exists():
        raise TrainingError(f"{out} exists; name a new file for the refitted model")
    _check_strength(strength)
    wanted = _check_classes(classes)
    ex = extract(model_path, folders, tta=tta, batch_size=batch_size, progress=progress)
    fitted = fit_head(ex, strength, classes=classes)
    if not fitted.refitted.any():
        raise TrainingError(f"no {'class' if classes is None else 'class named by --classes'} has both "
                            "positive and negative fields in the data: nothing to fit")
    note = f"{ex.n_fields} labelled fields ({'; '.join(ex.sources)}), views {tta}, C {strength:g}"
    if not wanted.all():
        note += f", classes {','.join(str(c) for c in np.flatnonzero(wanted))} only"
    write_model(model_path, out, fitted, note)
    before, y = field_scores(ex, ex.weight, ex.bias)
    after, _ = field_scores(ex, fitted.weight, fitted.bias)
    lines = [f"wrote {out}: {model_path.name} with its head refitted on {note}",
             f"classes refitted: {int(fitted.refitted.sum())} of {NUM_CLASSES}"
             + _kept(wanted & ~fitted.refitted, "without both positive and negative fields")
             + _kept(~wanted, "not named by --classes"),
             f"mean average precision on these same fields (not a held-out figure): "
             f"{_mean_ap(before, y):.3f} before, {_mean_ap(after, y):.3f} after"]
    return "\n".join(lines)


__all__ = ["DEFAULT_STRENGTH", "Extracted", "FittedHead", "Head", "extract", "field_scores", "find_head",
           "fit_head", "refit_head", "write_model"]
