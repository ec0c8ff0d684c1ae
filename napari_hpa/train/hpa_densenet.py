"""The Kaggle HPA 2018 1st-place DenseNet121 as published by CellProfiling/hpa_densenet.

Its PyTorch checkpoint (``bestfitting_default_model.pth``) is a dict whose
``"state_dict"`` holds the weights of :class:`BestfittingDensenet`: torchvision's
``densenet121()`` as ``backbone`` (first convolution taking 4 channels), the
same modules again under the aliases ``conv1`` and ``encoder2`` .. ``encoder5``
(so each backbone weight is stored twice), and the head ``bn1 -> fc1 -> bn2 ->
logit``.  The model normalises RGBY input in [0, 1] with the challenge's
channel statistics.

:func:`load_checkpoint` reads such a file with ``torch.load(weights_only=True)``:
a checkpoint that would unpickle code is refused, never run; keys must match
exactly (the unused ImageNet ``backbone.classifier`` may be present or not).
:func:`export_checkpoint` exports it through :mod:`napari_hpa.train.export` to a
contract-1 member (``logits``, L2-normalised ``embedding`` of the 1024-d feature)
and checks it against torch.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..classes import NUM_CLASSES
from ..engine.foreign import ImportModelError

MEAN = (0.074598, 0.050630, 0.050891, 0.076287)
STD = (0.122813, 0.085745, 0.129882, 0.119411)
UNUSED_PREFIX = "backbone.classifier."  # torchvision's ImageNet head, not used in forward
PARITY_TOL = 1e-3


class BestfittingDensenet(nn.Module):
    """The hpa_densenet module (eval mode is what inference uses)."""

    outputs = ("logits", "embedding")

    def __init__(self, num_classes: int = NUM_CLASSES, large: bool = False):
        super().__init__()
        from torchvision.models import densenet121

        self.large = large
        self.backbone = densenet121()
        self.backbone.features.conv0 = nn.Conv2d(4, 64, kernel_size=7, stride=2, padding=3, bias=False)
        f = self.backbone.features
        self.conv1 = nn.Sequential(f.conv0, f.norm0, f.relu0, f.pool0)
        self.encoder2 = nn.Sequential(f.denseblock1)
        self.encoder3 = nn.Sequential(f.transition1, f.denseblock2)
        self.encoder4 = nn.Sequential(f.transition2, f.denseblock3)
        self.encoder5 = nn.Sequential(f.transition3, f.denseblock4, f.norm5)
        self.maxpool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.bn1 = nn.BatchNorm1d(2048)
        self.fc1 = nn.Linear(2048, 1024)
        self.bn2 = nn.BatchNorm1d(1024)
        self.logit = nn.Linear(1024, num_classes)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 4, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 4, 1, 1), persistent=False)

    def feature_and_logits(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (image - self.mean) / self.std
        x = self.conv1(x)
        if self.large:
            x = self.maxpool(x)
        x = self.encoder5(self.encoder4(self.encoder3(self.encoder2(x))))
        x = F.relu(x)
        x = torch.cat([F.adaptive_avg_pool2d(x, 1), F.adaptive_max_pool2d(x, 1)], dim=1).flatten(1)
        x = F.dropout(self.bn1(x), p=0.5, training=self.training)
        x = F.relu(self.fc1(x))
        feature = F.dropout(self.bn2(x), p=0.5, training=self.training)
        return feature, self.logit(feature)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        feature, logits = self.feature_and_logits(image)
        return {"logits": logits, "embedding": F.normalize(feature, dim=1)}


def _first(keys, n: int = 4) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (f" (and {len(keys) - n} more)" if len(keys) > n else "")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, loaded without running any code from it."""
    path = Path(path)
    if not path.is_file():
        raise ImportModelError("no such file", path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImportModelError(
            "the checkpoint holds pickled code or objects that a weights-only load refuses; "
            f"napari-hpa never runs code from a model file ({first[:160]})", path,
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImportModelError(f"not a readable PyTorch checkpoint ({first[:160]})", path) from None
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ImportModelError(
            "expected a dict of tensors, or a dict whose 'state_dict' is one", path
        )
    if all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def is_hpa_densenet(state: dict[str, torch.Tensor]) -> bool:
    """Whether the tensors look like the hpa_densenet module (its aliases and head)."""
    return all(k in state for k in ("encoder5.2.weight", "conv1.0.weight", "bn1.weight", "logit.weight"))


def load_checkpoint(path: str | Path, *, large: bool = False) -> BestfittingDensenet:
    """The hpa_densenet module with the checkpoint's weights, in eval mode; every key must match."""
    state = read_state_dict(path)
    if not is_hpa_densenet(state):
        raise ImportModelError(
            "not the hpa_densenet DenseNet121 checkpoint (no conv1 / encoder5 / bn1 / logit "
            "weights); export other PyTorch models to ONNX and import the .onnx", path)
    model = BestfittingDensenet(large=large)
    own = model.state_dict()
    conv = state.get("backbone.features.conv0.weight", state.get("conv1.0.weight"))
    if conv is not None and conv.ndim == 4 and conv.shape[1] != 4:
        raise ImportModelError(
            f"the first convolution takes {conv.shape[1]} channels; napari-hpa needs a 4-channel "
            "RGBY model (red microtubules, green protein, blue nucleus, yellow ER)", path,
        )
    used = {k for k in state if not k.startswith(UNUSED_PREFIX)}
    expected = {k for k in own if not k.startswith(UNUSED_PREFIX)}
    missing = expected - used
    unexpected = used - expected
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys: {_first(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys: {_first(unexpected)}")
        raise ImportModelError(
            "the weights do not match the hpa_densenet DenseNet121 (" + "; ".join(parts) + ")", path
        )
    wrong = [f"{k} {list(state[k].shape)} (model {list(own[k].shape)})"
             for k in sorted(expected) if state[k].shape != own[k].shape]
    if wrong:
        raise ImportModelError(f"{len(wrong)} tensors have the wrong shape: {', '.join(wrong[:3])}", path)
    for a, b in (("conv1.0.weight", "backbone.features.conv0.weight"),
                 ("encoder5.2.weight", "backbone.features.norm5.weight")):
        if not torch.equal(state[a], state[b]):
            raise ImportModelError(f"{a} and {b} should be one tensor under two names, but differ", path)
    model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)
    return model.eval()


def export_checkpoint(
    path: str | Path, out: str | Path, *, input_size: int, metadata: dict[str, str],
    check_images: np.ndarray, large: bool = False, log=print,
) -> float:
    """Export the checkpoint to a contract member at ``out``; returns the parity with torch.

    ``check_images``: float32 ``[n, 4, S, S]`` fields the ONNX file is compared on
    (max abs logit difference must stay below 1e-3).
    """
    from ..engine.contract import check_contract
    from .export import _session, export_model

    model = load_checkpoint(path, large=large)
    export_model(model, input_size, out, metadata)
    sess = _session(Path(out))
    check_contract(sess, out)
    with torch.no_grad():
        ref = model(torch.from_numpy(check_images))["logits"].numpy()
    got = sess.run(["logits"], {"image": check_images})[0]
    diff = float(np.abs(ref - got).max())
    log(f"parity (ONNX vs torch, {len(check_images)} fields at {input_size} px): "
        f"max abs logit difference {diff:.2e}")
    if not diff < PARITY_TOL:
        raise ImportModelError(f"the ONNX export differs from torch (max abs logit difference {diff:.2e})", path)
    return diff
