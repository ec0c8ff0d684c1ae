"""Architectures: the registry, output shapes, 3- to 4-channel weight adaptation."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from napari_hpa.errors import TrainingError  # noqa: E402
from napari_hpa.train.models import adapt_conv_weight, build_model, check_arch  # noqa: E402


def test_adapt_conv_weight_yellow_from_red():
    w = torch.randn(8, 3, 3, 3)
    a = adapt_conv_weight(w)
    assert a.shape == (8, 4, 3, 3)
    assert torch.equal(a[:, :3], w) and torch.equal(a[:, 3], w[:, 0])
    with pytest.raises(ValueError):
        adapt_conv_weight(torch.randn(8, 4, 3, 3))


def test_pretrained_three_channel_weights_are_adapted(tmp_path):
    import timm

    src = timm.create_model("resnet18", in_chans=3, num_classes=0)
    path = tmp_path / "rgb.pt"
    torch.save(src.state_dict(), path)
    model = build_model("timm:resnet18", pretrained=str(path))
    w3 = src.conv1.weight
    w4 = model.backbone.conv1.weight
    assert torch.equal(w4[:, :3], w3) and torch.equal(w4[:, 3], w3[:, 0])
    assert torch.equal(model.backbone.layer1[0].conv1.weight, src.layer1[0].conv1.weight)


def test_pretrained_from_a_whole_model_checkpoint(tmp_path):
    """A run's last.pt (the backbone under ``backbone.``, inside ``model``) starts another run."""
    src = build_model("timm:resnet18")
    path = tmp_path / "last.pt"
    torch.save({"model": src.state_dict(), "epoch": 3}, path)
    model = build_model("dual-resnet34", backbone="resnet18", pretrained=str(path))
    assert torch.equal(model.backbone.layer3[1].conv2.weight, src.backbone.layer3[1].conv2.weight)
    assert torch.equal(model.backbone.conv1.weight, src.backbone.conv1.weight)


def test_pretrained_weights_that_fit_nothing_are_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"encoder.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(TrainingError, match="none of its 1 tensors fit the backbone"):
        build_model("timm:resnet18", pretrained=str(path))


@pytest.mark.parametrize(
    "arch, kw, outputs",
    [
        ("densenet121", {}, {"logits": (2, 28)}),
        ("dual-resnet34", {}, {"logits": (2, 28), "attention": (2, 28, 4, 4)}),
        ("gapnet", {}, {"logits": (2, 28)}),
        ("arcface-resnet", {"num_ids": 5}, {"logits": (2, 28), "embedding": (2, 512)}),
        ("timm:resnet18", {}, {"logits": (2, 28)}),
    ],
)
def test_build_model_outputs(arch, kw, outputs):
    model = build_model(arch, **kw).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 4, 64, 64))
    assert {k: tuple(out[k].shape) for k in model.outputs} == outputs
    if "attention" in out:
        assert float(out["attention"].min()) >= 0 and float(out["attention"].max()) <= 1
    if "embedding" in out:
        assert torch.allclose(out["embedding"].norm(dim=1), torch.ones(2), atol=1e-5)


def test_dual_net_map_is_stride_16():
    model = build_model("dual-resnet34", backbone="resnet18").eval()
    with torch.no_grad():
        assert model(torch.rand(1, 4, 128, 128))["attention"].shape == (1, 28, 8, 8)


@pytest.mark.parametrize("arch", ["resnet9000", "timm:no_such_net", "timm:"])
def test_unknown_arch_is_a_clear_error(arch):
    with pytest.raises(TrainingError, match="unknown architecture|timm does not know"):
        check_arch(arch)
    with pytest.raises(TrainingError):
        build_model(arch)
