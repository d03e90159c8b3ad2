"""Grad-CAM through the grad-cam library: target layer choice for reference CNNs and timm backbones, maps, figure."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from imgclf.errors import ImgclfError
from imgclf.evaluation.explain import explain_run, find_target_layer, gradcam_heatmaps
from imgclf.models import create_model

pytest.importorskip("pytorch_grad_cam")


def test_target_layer_is_the_last_conv_of_forward_features_for_reference_cnns():
    model = create_model("simple_cnn", 3, 3, 16, width=8).eval()
    name, layer = find_target_layer(model, torch.zeros(1, 3, 16, 16))
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert name == convs[-1] and name.startswith("features.")
    model = create_model("model_s", 10, 3, 32).eval()
    assert find_target_layer(model, torch.zeros(1, 3, 32, 32))[0] == [n for n, m in model.named_modules()
                                                                     if isinstance(m, nn.Conv2d)][-1]


def test_target_layer_for_a_timm_backbone():
    timm = pytest.importorskip("timm")
    resnet = timm.create_model("resnet18", pretrained=False, num_classes=3).eval()
    assert find_target_layer(resnet, torch.zeros(1, 3, 64, 64))[0] == "layer4.1.conv2"


def test_target_layer_ignores_convs_that_run_after_forward_features():
    # Like timm's VGG, whose pre_logits convs run in forward_head (a real VGG is 130 M parameters: too slow here).
    class VggLike(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
            self.pre_logits = nn.Conv2d(4, 8, 4)
            self.fc = nn.Linear(8, 2)

        def forward_features(self, x):
            return self.features(x)

        def forward(self, x):
            return self.fc(self.pre_logits(self.forward_features(x)).mean((2, 3)))

    assert find_target_layer(VggLike(), torch.zeros(1, 3, 8, 8))[0] == "features.2"


def test_target_layer_prefers_a_spatial_map_and_rejects_models_without_convs():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 8), nn.Flatten(), nn.Linear(4, 2))
    name, _ = find_target_layer(model, torch.zeros(1, 3, 8, 8))  # the 8x8 kernel leaves a 1x1 map
    assert name == "0"
    with pytest.raises(ImgclfError, match="needs a convolutional layer"):
        find_target_layer(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), torch.zeros(1, 3, 2, 2))


def test_heatmaps_follow_the_evidence():
    # A model whose only evidence for class 1 is the top-left quadrant: Grad-CAM must light up there.
    conv = nn.Conv2d(1, 1, 1, bias=False)
    nn.init.ones_(conv.weight)

    class TopLeft(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(conv)

        def forward_features(self, x):
            return self.features(x)

        def forward(self, x):
            f = self.forward_features(x)
            return torch.stack([f[:, 0, 8:, 8:].mean((1, 2)), f[:, 0, :8, :8].mean((1, 2))], 1)

    pixels = np.full((2, 16, 16, 1), 40, dtype=np.uint8)
    pixels[:, :8, :8] = 250
    maps, name = gradcam_heatmaps(TopLeft(), pixels, [0.0], [1.0])
    assert maps.shape == (2, 16, 16) and name == "features.0"
    assert 0.0 <= maps.min() and maps.max() <= 1.0
    assert maps[:, :8, :8].mean() > 0.9 and maps[:, 8:, 8:].mean() < 0.1


def test_heatmaps_explain_the_class_asked_for():
    """A caption's label (multi-label reports: the most probable by the stored probabilities) may not be this
    network's top class: the map is of the class asked for."""
    conv = nn.Conv2d(1, 2, 1)  # channel 0: the pixels; channel 1: their negative (bright where the image is dark)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
        conv.bias.copy_(torch.tensor([0.0, 1.0]))

    class TwoQuadrants(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(conv)

        def forward(self, x):
            f = self.features(x)  # class 0: dark bottom-right (channel 1); class 1: bright top-left (channel 0)
            return torch.stack([f[:, 1, 8:, 8:].mean((1, 2)), 2 * f[:, 0, :8, :8].mean((1, 2))], 1)

    pixels = np.full((1, 16, 16, 1), 20, dtype=np.uint8)
    pixels[:, :8, :8] = 250
    top, _ = gradcam_heatmaps(TwoQuadrants(), pixels, [0.0], [1.0])  # class 1 is the top
    asked, _ = gradcam_heatmaps(TwoQuadrants(), pixels, [0.0], [1.0], classes=[0])
    assert top[:, :8, :8].mean() > top[:, 8:, 8:].mean()
    assert asked[:, 8:, 8:].mean() > asked[:, :8, :8].mean()


def test_explain_run_writes_the_gradcam_figure(tiny_run, tmp_path):
    out = tmp_path / "gradcam.png"
    result = explain_run(tiny_run, out=out, n_correct=3, n_wrong=3)
    assert result["path"] == out and result["correct"] + result["wrong"] == 6
    assert result["layer"].startswith("features.")
    with Image.open(out) as img:
        assert img.format == "PNG" and min(img.size) > 300
