"""Losses for multi-label classification, attention maps and ArcFace.

* :func:`focal_loss` -- focal loss (gamma 2) on sigmoid outputs, mean over elements;
* :func:`lovasz_hinge` -- Lovasz hinge per class over the batch (Berman et al. 2018);
  :func:`symmetric_lovasz` averages it with the hinge of the negated problem;
* :func:`hard_negative_bce` -- BCE on every positive plus the ``ratio x #positives``
  hardest negatives of the batch;
* ``combo`` (default) -- focal + symmetric Lovasz + hard-negative BCE, the Kaggle 2018
  1st place combination;
* :func:`weighted_bce` -- BCE with per-class positive weights (``(N - pos) / pos`` of
  the training labels, clipped to [1, 50]).

:func:`make_criterion` puts together what an architecture trains with:
classification loss, ``+ 5 x`` attention-map BCE for ``dual-resnet34`` (targets from
:func:`attention_targets`), and for ``arcface-resnet`` the mean of the ArcFace and
plain cross-entropies on antibody identity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import LOSSES, MAP_WEIGHT


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = torch.exp(-bce)
    return ((1 - p_t) ** gamma * bce).mean()


def _lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    if len(gt_sorted) > 1:
        jaccard = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
    return jaccard


def lovasz_hinge_flat(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Lovasz hinge of one binary problem (1-D logits and 0/1 labels)."""
    if logits.numel() == 0:
        return logits.sum() * 0.0
    signs = 2.0 * labels - 1.0
    errors = 1.0 - logits * signs
    errors_sorted, perm = torch.sort(errors, descending=True)
    grad = _lovasz_grad(labels[perm])
    return torch.dot(F.relu(errors_sorted), grad)


def lovasz_hinge(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over classes of the Lovasz hinge of each class (the batch's images are its samples)."""
    return torch.stack([lovasz_hinge_flat(logits[:, c], targets[:, c]) for c in range(logits.shape[1])]).mean()


def symmetric_lovasz(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return 0.5 * (lovasz_hinge(logits, targets) + lovasz_hinge(-logits, 1.0 - targets))


def hard_negative_bce(logits: torch.Tensor, targets: torch.Tensor, ratio: float = 3.0) -> torch.Tensor:
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").flatten()
    pos = targets.flatten() > 0.5
    n_pos = int(pos.sum())
    neg_losses = bce[~pos]
    k = min(neg_losses.numel(), max(1, int(round(ratio * max(n_pos, 1)))))
    hard = torch.topk(neg_losses, k).values if k else neg_losses[:0]
    return torch.cat([bce[pos], hard]).mean()


def weighted_bce(logits: torch.Tensor, targets: torch.Tensor, pos_weight: torch.Tensor | None = None):
    return F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight)


def combo_loss(logits, targets):
    return focal_loss(logits, targets) + symmetric_lovasz(logits, targets) + hard_negative_bce(logits, targets)


def pos_weights(targets: torch.Tensor, lo: float = 1.0, hi: float = 50.0) -> torch.Tensor:
    """``(N - pos) / pos`` per class from an ``[N, C]`` 0/1 matrix, clipped to ``[lo, hi]``."""
    pos = targets.sum(0)
    return ((targets.shape[0] - pos) / pos.clamp(min=1)).clamp(lo, hi)


def classification_loss(name: str, pos_weight: torch.Tensor | None = None):
    if name == "combo":
        return combo_loss
    if name == "focal":
        return focal_loss
    if name == "lovasz":
        return symmetric_lovasz
    if name == "hardneg":
        return hard_negative_bce
    if name == "bce":
        return lambda logits, targets: F.binary_cross_entropy_with_logits(logits, targets)
    if name == "wbce":
        return lambda logits, targets: weighted_bce(
            logits, targets, None if pos_weight is None else pos_weight.to(logits.device)
        )
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")


def attention_targets(
    images: torch.Tensor, targets: torch.Tensor, map_size: tuple[int, int], rel_threshold: float = 0.2,
    cell_fraction: float = 0.05,
) -> torch.Tensor:
    """Attention-map targets ``[N, C, h, w]`` from the green channel.

    Green (``images[:, 1]``, in [0, 1]) thresholded at ``rel_threshold`` of the
    image's maximum, downsampled to the map size (a cell is on when at least
    ``cell_fraction`` of its pixels are), dilated by one cell, and copied into the
    channels of the labels present (zero elsewhere).
    """
    green = images[:, 1:2]
    peak = green.amax(dim=(2, 3), keepdim=True)
    on = ((green >= rel_threshold * peak) & (peak > 0.02)).float()
    cells = (F.adaptive_avg_pool2d(on, map_size) >= cell_fraction).float()
    cells = F.max_pool2d(cells, 3, stride=1, padding=1)
    return cells * targets[:, :, None, None]


def make_criterion(arch: str, loss: str = "combo", pos_weight: torch.Tensor | None = None, model=None,
                   map_weight: float = MAP_WEIGHT):
    """``criterion(outputs, batch) -> (loss, parts)`` for an architecture.

    ``batch`` holds ``image`` ``[N, 4, S, S]`` in [0, 1], ``target`` ``[N, 28]`` and,
    for ArcFace, ``antibody`` ``[N]`` (integer ids).  ``map_weight`` scales the
    attention-map BCE (the 4th place used 5).
    """
    cls_loss = classification_loss(loss, pos_weight)

    def criterion(outputs: dict, batch: dict):
        logits = outputs["logits"]
        targets = batch["target"].to(logits.dtype)
        total = cls_loss(logits, targets)
        parts = {"cls": float(total.detach())}
        if "attention" in outputs:
            att = outputs["attention"]
            t = attention_targets(batch["image"], targets, tuple(att.shape[-2:]))
            map_loss = F.binary_cross_entropy(att.clamp(1e-6, 1 - 1e-6), t)
            total = total + map_weight * map_loss
            parts["map"] = float(map_loss.detach())
        if "raw_embedding" in outputs and model is not None and "antibody" in batch:
            margin, plain = model.arc(outputs["raw_embedding"], batch["antibody"])
            arc = 0.5 * (F.cross_entropy(margin, batch["antibody"]) + F.cross_entropy(plain, batch["antibody"]))
            total = total + arc
            parts["arcface"] = float(arc.detach())
        return total, parts

    return criterion
