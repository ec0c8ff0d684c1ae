"""Surrogates of the two published forms of the Kaggle HPA 2018 1st-place DenseNet121,
written here from their published description (not from napari_hpa's own rebuild),
with random weights and BatchNorm statistics away from their defaults.

* :func:`save_onnx_release`: like CellProfiling/densenet's release file: one input
  float32 ``[N, 4, H, W]`` RGBY in [0, 1], normalisation inside the graph, outputs in
  this order: sigmoid probabilities ``[N, 28]`` and features ``[N, 1024]``; names are
  not part of the interface (here ``input``, ``probability``, ``feature``).
* :func:`save_checkpoint`: like CellProfiling/hpa_densenet's
  ``bestfitting_default_model.pth``: ``{"state_dict": ...}`` of the module below,
  every backbone weight under its ``backbone.`` name and its alias.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import densenet121

MEAN = (0.074598, 0.050630, 0.050891, 0.076287)
STD = (0.122813, 0.085745, 0.129882, 0.119411)


class Surrogate(nn.Module):
    def __init__(self, in_channels: int = 4):
        super().__init__()
        self.backbone = densenet121()
        self.backbone.features.conv0 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        f = self.backbone.features
        self.conv1 = nn.Sequential(f.conv0, f.norm0, f.relu0, f.pool0)
        self.encoder2 = nn.Sequential(f.denseblock1)
        self.encoder3 = nn.Sequential(f.transition1, f.denseblock2)
        self.encoder4 = nn.Sequential(f.transition2, f.denseblock3)
        self.encoder5 = nn.Sequential(f.transition3, f.denseblock4, f.norm5)
        self.maxpool = nn.MaxPool2d(2, 2)
        self.bn1 = nn.BatchNorm1d(2048)
        self.fc1 = nn.Linear(2048, 1024)
        self.bn2 = nn.BatchNorm1d(1024)
        self.logit = nn.Linear(1024, 28)
        self.in_channels = in_channels

    def forward(self, x):
        mean = torch.tensor(MEAN[: self.in_channels]).view(1, -1, 1, 1)
        std = torch.tensor(STD[: self.in_channels]).view(1, -1, 1, 1)
        x = (x - mean) / std
        x = self.conv1(x)
        e = self.encoder5(self.encoder4(self.encoder3(self.encoder2(x))))
        e = F.relu(e)
        x = torch.cat([F.adaptive_avg_pool2d(e, 1), F.adaptive_max_pool2d(e, 1)], 1).flatten(1)
        x = self.bn1(x)
        x = F.dropout(x, 0.5, self.training)
        x = F.relu(self.fc1(x))
        feature = F.dropout(self.bn2(x), 0.5, self.training)
        return feature, self.logit(feature)


def make_surrogate(seed: int = 0, in_channels: int = 4) -> Surrogate:
    """Random weights; every BatchNorm with random running statistics and affine terms."""
    torch.manual_seed(seed)
    model = Surrogate(in_channels)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        model.logit.bias.uniform_(-2.0, 0.5)
    return model.eval()


class _Release(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        feature, logits = self.model(x)
        return torch.sigmoid(logits), feature


def save_onnx_release(model: Surrogate, path: Path, trace_size: int = 64) -> Path:
    """The release form; height and width left dynamic, as its client feeds 1024 x 1024."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Release(model).eval(), (torch.rand(1, model.in_channels, trace_size, trace_size),), str(path),
            input_names=["input"], output_names=["probability", "feature"],
            dynamic_axes={"input": {0: "N", 2: "H", 3: "W"}, "probability": {0: "N"}, "feature": {0: "N"}},
            opset_version=17, dynamo=False,
        )
    return path


def save_checkpoint(model: Surrogate, path: Path, **extra) -> Path:
    torch.save({"state_dict": model.state_dict(), "epoch": 30, **extra}, path)
    return path


def reference_probabilities(model: Surrogate, x) -> "torch.Tensor":
    """What hpa_densenet's torch inference gives: sigmoid of the logits, in eval mode."""
    with torch.no_grad():
        return torch.sigmoid(model(torch.as_tensor(x))[1]).numpy()
