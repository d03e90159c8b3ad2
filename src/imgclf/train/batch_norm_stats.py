"""BatchNorm statistics recomputed for the weights training ends with ("precise BN": Wu and Johnson, Rethinking
"Batch" in BatchNorm, 2021).

During training a BatchNorm layer keeps an exponential average of its batches' statistics (momentum 0.1: about
the last 10 steps), taken while the weights moved. Evaluation reads that average. Where the weights move fast
relative to it (a short run, a small data set, a learning rate that never decays), it describes earlier weights:
simple_cnn trained 8 epochs (64 steps) on 240 digits scored 99 % on its training batches with their own statistics
and 17 % on validation with the running ones, 100 % after one pass recomputing them.

So after training each BatchNorm layer that trained (its count of normalised batches grew) gets the mean of its
statistics over a pass of un-augmented training images through the final weights, in float32, on the training
device (`features_only` runs: the stored features, through the head; of several processes, skipped). Layers that
stayed frozen (`--freeze-bn`, a frozen backbone's) keep theirs. torch's `swa_utils.update_bn` does the same pass
but resets every BatchNorm layer of the model, the frozen ones too."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

MAX_IMAGES = 8192  # Wu and Johnson: a few thousand images estimate the population statistics closely
MIN_IMAGES = 1024
COST_SHARE = 0.15  # of the images training stepped through: a forward pass is about a third of a step, so ~5 %


def norm_counts(model: nn.Module) -> dict[nn.Module, int]:
    """Each BatchNorm layer that keeps running statistics, with the count of batches it has normalised in
    training mode (`num_batches_tracked`); read before and after training to see which layers trained."""
    return {m: int(m.num_batches_tracked) for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
            and m.num_batches_tracked is not None}


def images_for(train_images: int, images_stepped: int) -> int:
    """How many training images the pass reads: all of a small split, else a share of the images training
    stepped through (at least MIN_IMAGES, at most MAX_IMAGES), so that the pass costs a few percent of training."""
    return min(train_images, MAX_IMAGES, max(MIN_IMAGES, math.ceil(COST_SHARE * images_stepped)))


@torch.no_grad()
def recompute_batch_norm(model: nn.Module, before: dict[nn.Module, int], batches: Iterable[torch.Tensor],
                         limit: int) -> int:
    """Recompute the running statistics of the layers of `before` whose count grew since, from `batches` (network
    inputs, up to `limit` images; a batch, or the last slice, of fewer than 2 images is skipped): each layer's mean
    and variance become the means over the images read of its batches' statistics. The model's modes and the
    layers' momenta are restored. Returns the images read (0: no layer trained, or no batch came, and nothing is
    changed)."""
    layers = [m for m, count in before.items() if int(m.num_batches_tracked) > count]
    if not layers or limit <= 0:
        return 0
    modes = {m: m.training for m in model.modules()}
    momenta = {m: m.momentum for m in layers}
    model.eval()  # dropout and every other layer as in evaluation; only the chosen layers collect statistics
    for layer in layers:
        layer.train()
    seen = 0
    try:
        for x in batches:
            x = x[: limit - seen]
            if len(x) < 2:  # a batch of one has no spread (and a 1x1 map refuses it in training mode)
                continue
            for layer in layers:  # weighted by images: the first batch (momentum 1) replaces training's average
                layer.momentum = len(x) / (seen + len(x))
            model(x.float())
            seen += len(x)
            if seen >= limit:
                break
    finally:
        for layer, momentum in momenta.items():
            layer.momentum = momentum
        for module, training in modes.items():
            module.train(training)
    return seen
