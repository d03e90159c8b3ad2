"""The logitnorm loss (Wei et al. 2022): its value, the property it exists for, and its wiring into training."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from imgclf.config import TrainConfig, check_task_settings
from imgclf.errors import ImgclfError
from imgclf.train.module import ImageClassifierModule, logitnorm_loss


def test_logitnorm_matches_a_hand_computed_value():
    logits = torch.tensor([[3.0, 4.0, 0.0]])  # length 5
    target = torch.tensor([1])
    tau = 0.1
    z = [3.0 / 5 / tau, 4.0 / 5 / tau, 0.0]  # 6, 8, 0
    expected = -(z[1] - math.log(sum(math.exp(v) for v in z)))
    assert logitnorm_loss(logits, target, tau).item() == pytest.approx(expected, rel=1e-6)


def test_logitnorm_cannot_be_lowered_by_growing_the_logits():
    # what it is for: cross-entropy falls as the logits grow, so training makes them large everywhere
    logits = torch.randn(16, 5, generator=torch.Generator().manual_seed(0))
    target = torch.arange(16) % 5
    assert logitnorm_loss(10 * logits, target, 0.04).item() == pytest.approx(
        logitnorm_loss(logits, target, 0.04).item(), rel=1e-5)
    assert F.cross_entropy(10 * logits, target).item() != pytest.approx(F.cross_entropy(logits, target).item())


def test_the_training_module_trains_on_the_chosen_loss():
    settings = {"data": "unused", "loss": "logitnorm", "logitnorm_temperature": 0.5}
    module = ImageClassifierModule(nn.Linear(4, 3), settings, mean=[0.0], std=[1.0])
    logits = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    target = torch.arange(8) % 3
    assert module.loss_fn(logits, target).item() == pytest.approx(logitnorm_loss(logits, target, 0.5).item())
    plain = ImageClassifierModule(nn.Linear(4, 3), {"data": "unused"}, mean=[0.0], std=[1.0])
    assert plain.loss_fn(logits, target).item() == pytest.approx(F.cross_entropy(logits, target).item())


def test_logitnorm_is_refused_for_multi_label_data_and_a_bad_temperature():
    with pytest.raises(ImgclfError, match="loss.*logitnorm"):
        check_task_settings(TrainConfig(data="x", loss="logitnorm"), "multilabel")
    with pytest.raises(Exception, match="logitnorm_temperature"):
        TrainConfig(data="x", logitnorm_temperature=0)
