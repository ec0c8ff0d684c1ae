"""Small ONNX models built with onnx.helper, whose outputs the tests compute in numpy.

``logits[c] = sum(x * K[c])`` (a convolution as large as the image, so the
model is not symmetric and every TTA view gives other logits);
``attention = sigmoid(a * avgpool(x[green]) + b)`` on an ``h x w`` grid (a
pooling that commutes with the D4 group, so views mapped back agree);
``embedding = normalize(mean(x, HW) @ E)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from napari_hpa.engine.contract import contract_metadata

OPSET = 17
IR_VERSION = 9  # what current onnxruntime releases accept


@dataclass
class Toy:
    path: Path
    size: int
    K: np.ndarray  # [28, C, S, S]
    a: np.ndarray  # [28]
    b: np.ndarray  # [28]
    grid: int
    E: np.ndarray | None  # [C, D]

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Expected logits for float32 [N, C, S, S] input."""
        return np.einsum("nchw,kchw->nk", x, self.K)

    def attention(self, x: np.ndarray) -> np.ndarray:
        n, _, s, _ = x.shape
        f = s // self.grid
        pooled = x[:, 1].reshape(n, self.grid, f, self.grid, f).mean(axis=(2, 4))
        z = self.a[None, :, None, None] * pooled[:, None] + self.b[None, :, None, None]
        return 1 / (1 + np.exp(-z))

    def embedding(self, x: np.ndarray) -> np.ndarray:
        e = x.mean(axis=(2, 3)) @ self.E
        return e / np.linalg.norm(e, axis=1, keepdims=True)


def make_toy(
    path: str | Path,
    *,
    size: int = 16,
    grid: int = 4,
    emb_dim: int | None = 8,
    attention: bool = True,
    seed: int = 0,
    channels: int = 4,
    n_classes: int = 28,
    input_name: str = "image",
    logits_name: str = "logits",
    metadata: dict | None = None,
    drop_metadata: tuple[str, ...] = (),
    scale: float = 4.0,
) -> Toy:
    rng = np.random.default_rng(seed)
    K = (rng.normal(size=(n_classes, channels, size, size)) * scale / size).astype(np.float32)
    a = rng.uniform(2, 6, size=28).astype(np.float32)
    b = rng.uniform(-3, -1, size=28).astype(np.float32)
    E = rng.normal(size=(channels, emb_dim)).astype(np.float32) if emb_dim else None

    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", channels, size, size])
    outputs = [helper.make_tensor_value_info(logits_name, TensorProto.FLOAT, ["N", n_classes])]
    inits = [numpy_helper.from_array(K, "K")]
    nodes = [
        helper.make_node("Conv", [input_name, "K"], ["k1"]),
        helper.make_node("Flatten", ["k1"], [logits_name]),
    ]
    if attention:
        f = size // grid
        inits += [
            numpy_helper.from_array(np.array([1], np.int64), "green_lo"),
            numpy_helper.from_array(np.array([2], np.int64), "green_hi"),
            numpy_helper.from_array(np.array([1], np.int64), "chan_axis"),
            numpy_helper.from_array(a.reshape(1, 28, 1, 1), "att_a"),
            numpy_helper.from_array(b.reshape(1, 28, 1, 1), "att_b"),
        ]
        nodes += [
            helper.make_node("Slice", [input_name, "green_lo", "green_hi", "chan_axis"], ["green"]),
            helper.make_node("AveragePool", ["green"], ["pooled"], kernel_shape=[f, f], strides=[f, f]),
            helper.make_node("Mul", ["pooled", "att_a"], ["att_m"]),
            helper.make_node("Add", ["att_m", "att_b"], ["att_z"]),
            helper.make_node("Sigmoid", ["att_z"], ["attention"]),
        ]
        outputs.append(
            helper.make_tensor_value_info("attention", TensorProto.FLOAT, ["N", 28, grid, grid])
        )
    if emb_dim:
        inits.append(numpy_helper.from_array(E, "E"))
        nodes += [
            helper.make_node("GlobalAveragePool", [input_name], ["gap"]),
            helper.make_node("Flatten", ["gap"], ["gapf"]),
            helper.make_node("MatMul", ["gapf", "E"], ["emb_raw"]),
            helper.make_node("LpNormalization", ["emb_raw"], ["embedding"], axis=1, p=2),
        ]
        outputs.append(helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", emb_dim]))
    graph = helper.make_graph(nodes, "toy", [x], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    meta = contract_metadata(input_size=size, arch="toy", trained_on="nothing (test model)")
    meta.update(metadata or {})
    for key in drop_metadata:
        meta.pop(key, None)
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, path)
    return Toy(path, size, K, a, b, grid, E)
