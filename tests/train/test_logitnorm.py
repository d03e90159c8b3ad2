"""The logitnorm loss (Wei et al. 2022): its value, the property it exists for, and its wiring into training."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from imgclf.config import TrainConfig
from imgclf.errors import ImgclfError
from imgclf.task_settings import check_task_settings
from imgclf.train.module import ImageClassifierModule, logitnorm_loss


def test_logitnorm_matches_a_hand_computed_value():
    logits = torch.tensor([[3.0, 4.0, 0.0]])  # length 5
    target = torch.tensor([1])
    tau = 0.1
    z = [3.0 / 5 / tau, 4.0 / 5 / tau, 0.0]  # 6, 8, 0
    expected = -(z[1] - math.log(sum(math.exp(v) for v in z)))
    assert logitnorm_loss(logits, target, tau).item() == pytest.approx(expected, rel=1e-6)


def test_logitnorm_matches_pytorch_ood():
    # the reference implementation (a test dependency, as for the unknown scores); ours adds class weights and
    # label smoothing, which the training module passes to every single-label loss
    from pytorch_ood.loss import LogitNorm

    logits = torch.randn(32, 6, generator=torch.Generator().manual_seed(4)) * 3
    target = torch.arange(32) % 6
    for tau in (0.04, 0.5):
        assert logitnorm_loss(logits, target, tau).item() == pytest.approx(
            LogitNorm(t=tau)(logits, target).item(), rel=1e-5)


def test_logitnorm_cannot_be_lowered_by_growing_the_logits():
    # what it is for: cross-entropy falls as the logits grow, so training makes them large everywhere
    logits = torch.randn(16, 5, generator=torch.Generator().manual_seed(0))
    target = torch.arange(16) % 5
    assert logitnorm_loss(10 * logits, target, 0.04).item() == pytest.approx(
        logitnorm_loss(logits, target, 0.04).item(), rel=1e-5)
    assert F.cross_entropy(10 * logits, target).item() != pytest.approx(F.cross_entropy(logits, target).item())


def test_the_training_module_trains_on_the_chosen_loss_with_its_weights_and_smoothing():
    settings = {"data": "unused", "loss": "logitnorm", "logitnorm_temperature": 0.5, "label_smoothing": 0.1}
    weights = [1.0, 2.0, 0.5]
    module = ImageClassifierModule(nn.Linear(4, 3), settings, mean=[0.0], std=[1.0], class_weights=weights)
    logits = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    target = torch.arange(8) % 3
    expected = logitnorm_loss(logits, target, 0.5, torch.tensor(weights), label_smoothing=0.1)
    assert module.loss_fn(logits, target).item() == pytest.approx(expected.item())
    assert expected.item() != pytest.approx(logitnorm_loss(logits, target, 0.5).item())
    plain = ImageClassifierModule(nn.Linear(4, 3), {"data": "unused"}, mean=[0.0], std=[1.0])
    assert plain.loss_fn(logits, target).item() == pytest.approx(F.cross_entropy(logits, target).item())


def test_bf16_logits_give_a_float32_loss():
    logits = torch.randn(8, 3, generator=torch.Generator().manual_seed(2))
    target = torch.arange(8) % 3
    loss = logitnorm_loss(logits.bfloat16(), target, 0.04)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(logitnorm_loss(logits.bfloat16().float(), target, 0.04).item())


def test_validation_reports_the_logitnorm_loss_not_the_raw_logits_cross_entropy():
    # best epoch, early stopping and the plateau schedule read val_loss: under logitnorm it must not move with the
    # logits' length, which that loss leaves free
    module = ImageClassifierModule(nn.Linear(4, 3), {"data": "unused", "loss": "logitnorm"}, mean=[0.0],
                                   std=[1.0], class_weights=[1.0, 2.0, 0.5])
    logits = torch.randn(8, 3, generator=torch.Generator().manual_seed(3))
    target = torch.arange(8) % 3
    assert module.val_loss_fn(logits, target).item() == pytest.approx(module.val_loss_fn(7 * logits, target).item())
    assert module.val_loss_fn(logits, target).item() == pytest.approx(logitnorm_loss(logits, target, 0.04).item())


def test_logitnorm_is_refused_for_multi_label_data_and_a_bad_temperature():
    with pytest.raises(ImgclfError, match="loss.*logitnorm"):
        check_task_settings(TrainConfig(data="x", loss="logitnorm"), "multilabel")
    with pytest.raises(ImgclfError, match=r"logitnorm_temperature must be greater than 0 and at most 1"):
        TrainConfig(data="x", logitnorm_temperature=0)
