"""Keras' kernel_regularizer=L2 in the losses a run records: what early stopping, the plateau schedule and the
epoch kept read, as in the Keras references."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from imgclf.models.base import with_l2
from imgclf.train.module import ImageClassifierModule


def test_losses_include_the_keras_l2_penalty_as_keras_reports_them():
    """S3's EarlyStopping and S5's ReduceLROnPlateau watched Keras' val_loss, which adds the kernel regularisers'
    penalty (fer_cnn: about 12.8 at initialisation against a cross-entropy of about 1.8); ours was the
    cross-entropy alone, so early stopping and the epoch kept followed another curve. The training loss that
    history.csv records includes it too, as Keras' `loss` does, so the two curves stay comparable."""
    conv = with_l2(nn.Conv2d(1, 3, 3), 0.5)
    model = nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    module = ImageClassifierModule(model, {"data": "unused"}, mean=[0.0], std=[1.0])
    logged = {}
    module.log = lambda name, value, **kwargs: logged.__setitem__(name, float(value))
    pixels = torch.randint(0, 256, (6, 8, 8, 1), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    target = torch.arange(6) % 3
    with torch.no_grad():
        cross_entropy = torch.nn.functional.cross_entropy(model(module.prepare(pixels, train=False)), target)
    penalty = 0.5 * float(conv.weight.detach().pow(2).sum())
    with torch.no_grad():  # as Lightning validates
        module.validation_step((pixels, target), 0)
    module._trainer = SimpleNamespace(loggers=[], current_epoch=0, global_rank=0)  # all training_step asks of one
    assert logged["val_loss"] == pytest.approx(float(cross_entropy) + penalty, rel=1e-5)
    module.training_step((pixels, target), 0)
    loss_sum, _, seen = module.epoch_sums.tolist()
    assert loss_sum / seen == pytest.approx(float(cross_entropy) + penalty, rel=1e-5)  # no dropout, no augmentation
