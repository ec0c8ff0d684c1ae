"""Architectures, one small registry in the timm style.

``build_model(arch, in_chans=4, num_classes=28, pretrained=None, **kw)``, where
``arch`` is one of

* ``densenet121`` -- the Kaggle 2018 1st place: timm DenseNet121 backbone and the
  head concat(GAP, GMP) -> BN -> dropout -> FC 1024 -> ReLU -> BN -> dropout -> FC 28;
* ``dual-resnet34`` -- the 4th place dual-loss net: ResNet34, a 1x1 conv on the
  stride-16 feature map gives 28 sigmoid attention maps (32 x 32 for a 512 input);
  the classification head sits on the stride-32 map (kw ``backbone``: e.g. ``resnet18``);
* ``gapnet`` -- GAP taps from every stage of a backbone (default ``resnet18``), each
  after a squeeze-and-excitation block, concatenated -> dense 256 -> 28;
* ``arcface-resnet`` -- a ResNet (default ``resnet34``; ``resnet50`` as the 1st place)
  giving a 512-d L2-normalised embedding, plus an ArcFace head (s=30, m=0.5) used in
  training only, and a small multi-label head (dropout -> FC 28 on the pooled
  features) trained jointly so that the exported model has the contract's ``logits``;
* ``timm:NAME`` -- any timm backbone with the 1st-place head.

Every model takes float32 ``[N, 4, S, S]`` RGBY in [0, 1] and normalises it itself
(per-channel mean/std buffers, ImageNet values with yellow = red), so the exported
graph holds the normalisation.  ``forward`` returns a dict with ``logits`` and,
where the architecture has them, ``attention`` and ``embedding``.

``pretrained``: ``None`` (train from scratch), a path to a state dict of the
backbone or of a whole model holding it, such as a napari-hpa run's ``last.pt``
(3- or 4-channel; 3-channel first-layer filters are adapted by
:func:`adapt_conv_weight`: yellow initialised from red), or ``"timm"`` for timm's
own hub weights (needs internet).  Weights of which nothing fits are an error.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import TrainingError
from . import FIXED_ARCHS

MEAN = (0.485, 0.456, 0.406, 0.485)
STD = (0.229, 0.224, 0.225, 0.229)


# --------------------------------------------------------------------------- pretrained weights


def adapt_conv_weight(weight: torch.Tensor, in_chans: int = 4) -> torch.Tensor:
    """A 3-channel (RGB) conv weight ``[O, 3, k, k]`` made ``[O, in_chans, k, k]``.

    Channels 0-2 keep the RGB filters; channel 3 (yellow) and any further ones are
    initialised from red, as the Kaggle 2018 1st place did.
    """
    if weight.ndim != 4 or weight.shape[1] != 3:
        raise ValueError(f"expected a [O, 3, kh, kw] conv weight, got {tuple(weight.shape)}")
    out = weight.new_empty((weight.shape[0], in_chans, *weight.shape[2:]))
    out[:, : min(3, in_chans)] = weight[:, : min(3, in_chans)]
    for c in range(3, in_chans):
        out[:, c] = weight[:, 0]
    return out


def load_pretrained(module: nn.Module, pretrained, timm_name: str | None = None) -> tuple[int, int]:
    """Load backbone weights into ``module`` (non-strict); returns (loaded, skipped) counts."""
    if pretrained is None:
        return 0, 0
    if str(pretrained) == "timm":
        import timm

        if timm_name is None:
            raise TrainingError("pretrained='timm' needs a timm backbone name")
        state = timm.create_model(timm_name, pretrained=True).state_dict()
    else:
        path = Path(pretrained)
        if not path.is_file():
            raise TrainingError(f"pretrained weights {path}: no such file")
        state = torch.load(path, map_location="cpu", weights_only=True)
        for key in ("state_dict", "model"):
            if isinstance(state, dict) and key in state and isinstance(state[key], dict):
                state = state[key]
    own = module.state_dict()
    # a whole model's state (a napari-hpa run's last.pt, a wrapped model) holds the backbone
    # under a prefix: take the prefix under which most tensors fit
    prefix = max(("", "backbone.", "module.", "model.", "module.backbone."),
                 key=lambda p: sum(k.startswith(p) and k[len(p):] in own for k in state))
    state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    new, skipped = {}, 0
    for k, v in state.items():
        if k not in own:
            skipped += 1
            continue
        if v.ndim == 4 and v.shape[1] == 3 and own[k].ndim == 4 and own[k].shape[1] != 3:
            v = adapt_conv_weight(v, own[k].shape[1])
        if v.shape != own[k].shape:
            skipped += 1
            continue
        new[k] = v
    if not new:
        raise TrainingError(
            f"pretrained weights {pretrained}: none of its {len(state)} tensors fit the backbone "
            f"({len(own)} tensors; names or shapes differ)"
        )
    module.load_state_dict(new, strict=False)
    return len(new), skipped


# --------------------------------------------------------------------------- building blocks


class Normalize(nn.Module):
    def __init__(self, in_chans: int = 4):
        super().__init__()
        mean = [MEAN[i % 4] for i in range(in_chans)]
        std = [STD[i % 4] for i in range(in_chans)]
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class OnePlaceHead(nn.Module):
    """concat(GAP, GMP) -> BN -> dropout -> FC hidden -> ReLU -> BN -> dropout -> FC classes."""

    def __init__(self, in_features: int, num_classes: int = 28, hidden: int = 1024, dropout: float = 0.5):
        super().__init__()
        self.bn1 = nn.BatchNorm1d(2 * in_features)
        self.drop1 = nn.Dropout(dropout)
        self.fc1 = nn.Linear(2 * in_features, hidden)
        self.bn2 = nn.BatchNorm1d(hidden)
        self.drop2 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, f):
        z = torch.cat([F.adaptive_avg_pool2d(f, 1).flatten(1), F.adaptive_max_pool2d(f, 1).flatten(1)], 1)
        z = self.drop1(self.bn1(z))
        z = F.relu(self.fc1(z))
        return self.fc2(self.drop2(self.bn2(z)))


class SEBlock(nn.Module):
    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        mid = max(4, channels // reduction)
        self.fc1 = nn.Conv2d(channels, mid, 1)
        self.fc2 = nn.Conv2d(mid, channels, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


class ArcMarginProduct(nn.Module):
    """ArcFace: ``s * cos(theta + m)`` for the target class, ``s * cos(theta)`` elsewhere."""

    def __init__(self, in_features: int, num_ids: int, s: float = 30.0, m: float = 0.5):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_ids, in_features))
        nn.init.xavier_uniform_(self.weight)
        self.s, self.m = s, m
        self.cos_m, self.sin_m = math.cos(m), math.sin(m)
        self.th = math.cos(math.pi - m)
        self.mm = math.sin(math.pi - m) * m

    def forward(self, embedding: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(margin logits, plain logits), both scaled by ``s``."""
        cosine = F.linear(F.normalize(embedding), F.normalize(self.weight)).clamp(-1 + 1e-7, 1 - 1e-7)
        sine = torch.sqrt(1.0 - cosine * cosine)
        phi = cosine * self.cos_m - sine * self.sin_m
        phi = torch.where(cosine > self.th, phi, cosine - self.mm)
        onehot = F.one_hot(ids, cosine.shape[1]).to(cosine.dtype)
        return self.s * (onehot * phi + (1 - onehot) * cosine), self.s * cosine


def _timm_backbone(name: str, in_chans: int, **kw):
    import timm

    return timm.create_model(name, pretrained=False, in_chans=in_chans, **kw)


def _to_nchw(f: torch.Tensor, channels: int) -> torch.Tensor:
    if f.ndim == 3:  # [N, tokens, C] (vision transformers): tokens as a 1-wide map
        return f.transpose(1, 2).unsqueeze(-1)
    if f.ndim == 4 and f.shape[1] != channels and f.shape[-1] == channels:  # NHWC (swin, ...)
        return f.permute(0, 3, 1, 2)
    return f


# --------------------------------------------------------------------------- architectures


class HPAModel(nn.Module):
    """Base: ``arch`` name, the keyword arguments it was built with, and the outputs it has."""

    arch = ""
    outputs: tuple[str, ...] = ("logits",)

    def __init__(self, in_chans: int = 4):
        super().__init__()
        self.norm = Normalize(in_chans)
        self.build_kwargs: dict = {}


class ClassifierNet(HPAModel):
    """A timm backbone + the 1st-place head (``densenet121`` and ``timm:NAME``)."""

    def __init__(self, backbone: str, in_chans=4, num_classes=28, hidden=1024, dropout=0.5, pretrained=None):
        super().__init__(in_chans)
        self.backbone = _timm_backbone(backbone, in_chans, num_classes=0, global_pool="")
        load_pretrained(self.backbone, pretrained, backbone)
        self.channels = self.backbone.num_features
        self.head = OnePlaceHead(self.channels, num_classes, hidden, dropout)

    def forward(self, x):
        f = _to_nchw(self.backbone.forward_features(self.norm(x)), self.channels)
        return {"logits": self.head(f)}


class DualNet(HPAModel):
    """ResNet + 28 sigmoid attention maps from a 1x1 conv on the stride-16 map."""

    outputs = ("logits", "attention")

    def __init__(self, backbone="resnet34", in_chans=4, num_classes=28, hidden=512, dropout=0.5, pretrained=None):
        super().__init__(in_chans)
        probe = _timm_backbone(backbone, in_chans, features_only=True)
        red = probe.feature_info.reduction()
        if 16 not in red or 32 not in red:
            raise TrainingError(f"dual net backbone {backbone!r} has no stride-16 and stride-32 stages")
        idx = (red.index(16), red.index(32))
        self.backbone = _timm_backbone(backbone, in_chans, features_only=True, out_indices=idx)
        load_pretrained(self.backbone, pretrained, backbone)
        c16, c32 = self.backbone.feature_info.channels()
        self.att = nn.Conv2d(c16, num_classes, 1)
        self.head = OnePlaceHead(c32, num_classes, hidden, dropout)

    def forward(self, x):
        f16, f32 = self.backbone(self.norm(x))
        return {"logits": self.head(f32), "attention": torch.sigmoid(self.att(f16))}

    def attention_logits(self, x):  # pragma: no cover - convenience
        return self.att(self.backbone(self.norm(x))[0])


class GapNet(HPAModel):
    """GAP taps from every backbone stage, each after an SE block, -> dense 256 -> classes."""

    def __init__(self, backbone="resnet18", in_chans=4, num_classes=28, hidden=256, dropout=0.3, pretrained=None):
        super().__init__(in_chans)
        self.backbone = _timm_backbone(backbone, in_chans, features_only=True)
        load_pretrained(self.backbone, pretrained, backbone)
        chans = self.backbone.feature_info.channels()
        self.se = nn.ModuleList(SEBlock(c) for c in chans)
        self.drop = nn.Dropout(dropout)
        self.fc1 = nn.Linear(sum(chans), hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x):
        taps = [F.adaptive_avg_pool2d(se(f), 1).flatten(1) for se, f in zip(self.se, self.backbone(self.norm(x)))]
        z = self.drop(torch.cat(taps, 1))
        return {"logits": self.fc2(self.drop(F.relu(self.fc1(z))))}


class ArcFaceNet(HPAModel):
    """ResNet -> 512-d L2-normalised embedding (+ ArcFace head for training, + multi-label head)."""

    outputs = ("logits", "embedding")

    def __init__(
        self, backbone="resnet34", in_chans=4, num_classes=28, emb_dim=512, num_ids=1,
        s=30.0, m=0.5, dropout=0.3, pretrained=None,
    ):
        super().__init__(in_chans)
        self.backbone = _timm_backbone(backbone, in_chans, num_classes=0, global_pool="")
        load_pretrained(self.backbone, pretrained, backbone)
        c = self.backbone.num_features
        self.neck = nn.Sequential(nn.Linear(2 * c, emb_dim), nn.BatchNorm1d(emb_dim))
        self.cls = nn.Sequential(nn.BatchNorm1d(2 * c), nn.Dropout(dropout), nn.Linear(2 * c, num_classes))
        self.arc = ArcMarginProduct(emb_dim, max(1, int(num_ids)), s, m)

    def features(self, x):
        f = self.backbone.forward_features(self.norm(x))
        return torch.cat([F.adaptive_avg_pool2d(f, 1).flatten(1), F.adaptive_max_pool2d(f, 1).flatten(1)], 1)

    def forward(self, x):
        z = self.features(x)
        e = self.neck(z)
        return {"logits": self.cls(z), "embedding": F.normalize(e, dim=1), "raw_embedding": e}


# --------------------------------------------------------------------------- registry


def _timm_name(arch: str) -> str:
    name = arch[len("timm:"):]
    try:
        import timm
    except ImportError as exc:  # pragma: no cover
        raise TrainingError(f"timm is not installed ({exc}); pip install 'napari-hpa[train]'") from None
    if not name or not timm.is_model(name):
        close = timm.list_models(f"*{name}*")[:8] if name else []
        hint = f" (similar: {', '.join(close)})" if close else ""
        raise TrainingError(f"timm does not know a model named {name!r}{hint}")
    return name


def check_arch(arch: str) -> str:
    """Validate an architecture name (cheap: builds nothing); returns it."""
    if arch in FIXED_ARCHS:
        return arch
    if arch.startswith("timm:"):
        _timm_name(arch)
        return arch
    raise TrainingError(
        f"unknown architecture {arch!r}; choose one of {', '.join(FIXED_ARCHS)} or timm:NAME"
    )


def build_model(arch: str, in_chans: int = 4, num_classes: int = 28, pretrained=None, **kw) -> HPAModel:
    """Build an architecture by name (see the module docstring); ``kw`` go to its constructor."""
    check_arch(arch)
    common = dict(in_chans=in_chans, num_classes=num_classes, pretrained=pretrained)
    try:
        if arch == "densenet121":
            model = ClassifierNet("densenet121", **common, **kw)
        elif arch == "dual-resnet34":
            model = DualNet(**common, **kw)
        elif arch == "gapnet":
            model = GapNet(**common, **kw)
        elif arch == "arcface-resnet":
            model = ArcFaceNet(**common, **kw)
        else:
            model = ClassifierNet(_timm_name(arch), **common, **kw)
    except TypeError as exc:
        raise TrainingError(f"architecture {arch!r}: bad option ({exc})") from None
    except RuntimeError as exc:
        if "Unknown model" in str(exc) or "Invalid model" in str(exc):
            raise TrainingError(f"architecture {arch!r}: {exc}") from None
        raise
    model.arch = arch
    model.build_kwargs = dict(kw)
    return model
