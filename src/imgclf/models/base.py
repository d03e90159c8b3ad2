"""Shared pieces of the reference CNNs: Keras-style L2 marks and the common model interface."""

from __future__ import annotations

import torch
from torch import nn


def with_l2(module: nn.Module, coefficient: float) -> nn.Module:
    """Mark a layer's weight for a Keras kernel_regularizer=L2(coefficient): loss += c * sum(w**2)."""
    module.l2_penalty = float(coefficient)  # type: ignore[attr-defined]
    return module


def keras_l2_penalty(model: nn.Module) -> torch.Tensor | None:
    """The sum of c * sum(w**2) over the marked layers, frozen ones included: their term is constant and carries
    no gradient, but leaving it out made loss and val_loss jump when a backbone unfroze, so that the epoch kept
    (restore_best) leaned towards the head-only epochs. None where no layer is marked."""
    total = None
    for module in model.modules():
        c = getattr(module, "l2_penalty", 0.0)
        if c and getattr(module, "weight", None) is not None:
            term = c * module.weight.pow(2).sum()
            total = term if total is None else total + term
    return total


def set_l2(model: nn.Module, conv: float | None = None, dense: float | None = None) -> None:
    """Override L2 marks on every conv / dense layer (config `l2: {conv:, dense:}`)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and conv is not None:
            with_l2(module, conv)
        elif isinstance(module, nn.Linear) and dense is not None:
            with_l2(module, dense)


class FeaturesHeadNet(nn.Module):
    """features -> head, with timm's interface: forward_features, forward_head, reset_classifier."""

    def __init__(self, features: nn.Module, head: nn.Sequential):
        super().__init__()
        self.features = features
        self.head = head

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head[:-1](x) if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Linear:
        return self.head[-1]

    def reset_classifier(self, num_classes: int) -> None:
        old = self.head[-1]
        self.head[-1] = nn.Linear(old.in_features, num_classes)


def conv_out_features(features: nn.Module, in_chans: int, img_size: int) -> int:
    with torch.no_grad():
        return int(features(torch.zeros(1, in_chans, img_size, img_size)).flatten(1).shape[1])
