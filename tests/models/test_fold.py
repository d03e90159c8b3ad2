"""Batch norms folded into the convolutions before them: the same predictions, no batch norm left after a
convolution, the trained network untouched where it must stay trainable or explainable."""

import numpy as np
import pytest
import torch
from torch import nn

import imgclf
from imgclf.errors import ImgclfError
from imgclf.inference import for_prediction
from imgclf.models import create_model
from imgclf.models.fold import fold_batch_norms


def _trained_like(model: nn.Module) -> nn.Module:
    """Batch norms with running statistics and affine parameters far from their initial values, as after
    training, so that leaving one out or folding it wrongly changes the output."""
    generator = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=generator))
            m.running_var.copy_(torch.rand(n, generator=generator) * 3 + 0.2)
            with torch.no_grad():
                m.weight.copy_(torch.randn(n, generator=generator))
                m.bias.copy_(torch.randn(n, generator=generator))
    return model.eval()


def _norms_after_convolutions(model: nn.Module) -> int:
    return sum(isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d)
               for seq in model.modules() if isinstance(seq, nn.Sequential)
               for a, b in zip(seq, list(seq)[1:]))


@pytest.mark.parametrize(("name", "expected"), [("fast_resnet", 8), ("simple_cnn", 5)])
def test_folding_keeps_the_function_and_removes_the_norms(name, expected):
    model = _trained_like(create_model(name, 10, 1, 28, width=8))
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = model(x)
        assert fold_batch_norms(model) == expected
        after = model(x)
    assert _norms_after_convolutions(model) == 0
    assert torch.allclose(before, after, atol=1e-4, rtol=1e-4)


def test_a_training_model_is_refused_and_a_folded_one_cannot_train():
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norms(create_model("fast_resnet", 10, 1, 28, width=8).train())
    model = _trained_like(create_model("fast_resnet", 10, 1, 28, width=8))
    fold_batch_norms(model)
    model.train()
    for forward in (model, model.forward_features):  # the features alone too, as the audit and the detectors read
        with pytest.raises(ImgclfError, match=r"fold_batch_norm=False"):
            forward(torch.zeros(2, 1, 28, 28))


def test_a_norm_that_also_activates_is_left_alone():
    """timm's BatchNormAct2d is a BatchNorm2d that applies an activation after it (densenet's stem): folding it
    as a plain one would drop that activation."""
    from timm.layers import BatchNormAct2d

    model = _trained_like(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), BatchNormAct2d(8),
                                        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)))
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        before = model(x)
        assert fold_batch_norms(model) == 1
        assert isinstance(model[1], BatchNormAct2d) and isinstance(model[3], nn.Identity)
        assert torch.allclose(before, model(x), atol=1e-4, rtol=1e-4)


def test_a_convolution_that_makes_its_weights_in_forward_is_left_alone():
    """timm's StdConv2d standardises its weights in every forward and a weight-normed convolution rebuilds them:
    a batch norm folded into either would be undone (or fail to fold); the plain convolution beside them folds."""
    from timm.layers import StdConv2d

    model = _trained_like(nn.Sequential(StdConv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8),
                                        nn.utils.parametrizations.weight_norm(nn.Conv2d(8, 8, 3, padding=1)),
                                        nn.BatchNorm2d(8), nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)))
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        before = model(x)
        assert fold_batch_norms(model) == 1
        assert isinstance(model[1], nn.BatchNorm2d) and isinstance(model[3], nn.BatchNorm2d)
        assert isinstance(model[5], nn.Identity)
        assert torch.allclose(before, model(x), atol=1e-4, rtol=1e-4)


def test_load_folds_and_predicts_the_same(tiny_run):
    """tiny_run is simple_cnn: its batch norms are folded on load, the predictions of fp32 stay those of the
    network as trained; fold_batch_norm=False returns the trained network itself."""
    folded = imgclf.load(tiny_run, precision="32")
    kept = imgclf.load(tiny_run, precision="32", fold_batch_norm=False)
    assert _norms_after_convolutions(folded.model) == 0 < _norms_after_convolutions(kept.model)
    pixels = np.random.default_rng(0).integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    a, b = folded.infer_pixels(pixels), kept.infer_pixels(pixels)
    assert np.abs(a.probabilities - b.probabilities).max() < 1e-5
    assert np.allclose(a.scores, b.scores, rtol=1e-4, atol=1e-4)


def test_fits_see_the_folded_network_and_leave_the_trained_one_alone(tiny_run):
    trained = imgclf.load(tiny_run, fold_batch_norm=False).model.train()
    norms = _norms_after_convolutions(trained)
    predicting = for_prediction(trained)
    assert _norms_after_convolutions(predicting) == 0 and not predicting.training
    assert _norms_after_convolutions(trained) == norms and trained.training
