"""Losses: known values on tiny tensors, and gradients flow."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from napari_hpa.train import losses  # noqa: E402


def test_focal_known_values():
    logits = torch.zeros(1, 1)
    target = torch.ones(1, 1)
    # p_t = 0.5: (1 - 0.5)^2 * log 2
    assert float(losses.focal_loss(logits, target)) == pytest.approx(0.25 * math.log(2))
    x = torch.tensor([[2.0, -1.0], [0.3, 0.7]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert float(losses.focal_loss(x, y, gamma=0)) == pytest.approx(
        float(F.binary_cross_entropy_with_logits(x, y))
    )


def test_lovasz_known_values():
    y = torch.tensor([[1.0], [0.0], [1.0]])
    # all logits 0: every hinge error is 1 and the Lovasz extension of the Jaccard loss sums to 1
    assert float(losses.lovasz_hinge(torch.zeros(3, 1), y)) == pytest.approx(1.0)
    # separated with a margin >= 1: no loss, in both directions
    sep = torch.tensor([[2.0], [-2.0], [3.0]])
    assert float(losses.symmetric_lovasz(sep, y)) == pytest.approx(0.0)
    # one positive predicted at -1 (error 2) among correct ones
    x = torch.tensor([[-1.0], [-2.0], [3.0]])
    # errors sorted: 2 (pos), -1, -2 -> relu(2) * jaccard step of losing one of two positives = 2 * 0.5
    assert float(losses.lovasz_hinge(x, y)) == pytest.approx(1.0)


def test_hard_negative_bce_keeps_hardest():
    logits = torch.tensor([[0.0, 5.0, -5.0, 1.0, -1.0, 2.0, -3.0]])
    y = torch.tensor([[1.0, 0, 0, 0, 0, 0, 0]])
    bce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")[0]
    # one positive + the 3 hardest negatives (logits 5, 2, 1)
    expected = (bce[0] + bce[1] + bce[5] + bce[3]) / 4
    assert float(losses.hard_negative_bce(logits, y)) == pytest.approx(float(expected))


def test_weighted_bce_and_pos_weights():
    y = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    pw = losses.pos_weights(y)
    assert pw.tolist() == pytest.approx([3.0, 1.0])
    x = torch.zeros(4, 2)
    manual = (-(pw * y * F.logsigmoid(x) + (1 - y) * F.logsigmoid(-x))).mean()
    assert float(losses.weighted_bce(x, y, pw)) == pytest.approx(float(manual))


@pytest.mark.parametrize("name", ["combo", "focal", "lovasz", "hardneg", "bce", "wbce"])
def test_gradients_flow(name):
    torch.manual_seed(0)
    x = torch.randn(6, 28, requires_grad=True)
    y = (torch.rand(6, 28) < 0.2).float()
    loss = losses.classification_loss(name, losses.pos_weights(y))(x, y)
    loss.backward()
    assert torch.isfinite(loss) and x.grad is not None and float(x.grad.abs().sum()) > 0


def test_attention_targets_follow_green_and_labels():
    images = torch.zeros(2, 4, 32, 32)
    images[:, 1, 0:8, 0:8] = 1.0  # green top-left
    targets = torch.zeros(2, 28)
    targets[0, 3] = 1
    t = losses.attention_targets(images, targets, (4, 4))
    assert t.shape == (2, 28, 4, 4)
    assert t[1].sum() == 0  # no labels: zero everywhere
    assert t[0, 3, 0, 0] == 1 and t[0, 3, 1, 1] == 1  # the green cell, dilated by one
    assert t[0, 3, 3, 3] == 0 and t[0, 4].sum() == 0


def test_criterion_dual_adds_map_loss():
    from napari_hpa.train.models import build_model

    model = build_model("dual-resnet34", backbone="resnet18").eval()
    batch = {"image": torch.rand(2, 4, 64, 64), "target": torch.zeros(2, 28)}
    batch["target"][:, 0] = 1
    out = model(batch["image"])
    loss, parts = losses.make_criterion("dual-resnet34", "bce")(out, batch)
    assert float(loss.detach()) == pytest.approx(parts["cls"] + 5 * parts["map"], rel=1e-5)
    for w in (0.0, 1.5):  # --map-weight
        loss, parts = losses.make_criterion("dual-resnet34", "bce", map_weight=w)(out, batch)
        assert parts["map"] > 0
        assert float(loss.detach()) == pytest.approx(parts["cls"] + w * parts["map"], rel=1e-5)
