"""Grad-CAM explanations with the maintained `grad-cam` library (pytorch_grad_cam), not hand-written hooks.

The target layer is found the same way for every architecture: the last Conv2d that runs inside
`model.forward_features` (reference CNNs and timm backbones alike), preferring one whose output is still a
spatial map (a 1x1 map would paint the whole image one colour).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.tensors import channel_stats, to_unit_nchw
from ..errors import invalid
from ..topk import top_indices


def find_target_layer(model: nn.Module, example: torch.Tensor) -> tuple[str, nn.Module]:
    """(name, module) of the last Conv2d executed by model.forward_features(example) with an output > 1x1.

    The execution order is recorded with one throw-away forward pass, so layers defined in one order and
    called in another (or modules defined but unused, such as timm's VGG pre-logits convs) are handled.
    """
    names = {m: n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    executed: list[tuple[nn.Module, tuple[int, ...]]] = []
    handles = [m.register_forward_hook(lambda mod, _inp, out: executed.append((mod, tuple(out.shape[-2:]))))
               for m in names]
    forward = getattr(model, "forward_features", model)
    try:
        with torch.no_grad():
            forward(example)
    finally:
        for h in handles:
            h.remove()
    if not executed:
        raise invalid("model", type(model).__name__, "a network with an nn.Conv2d in forward_features: Grad-CAM "
                      "needs a convolutional layer", note="no nn.Conv2d runs there")
    spatial = [m for m, shape in executed if int(np.prod(shape)) > 1]
    layer = (spatial or [m for m, _ in executed])[-1]
    return names[layer], layer


GRADCAM_MISSING = "Install the explain extra (pip install 'imgclf[explain]') for Grad-CAM heatmaps."


def gradcam_heatmaps(model: nn.Module, pixels: np.ndarray, mean: list[float], std: list[float],
                     layer: nn.Module | None = None, classes: list[int] | None = None) -> tuple[np.ndarray, str]:
    """uint8 (N, H, W, C) images -> Grad-CAM maps (N, H, W) in [0, 1] for each image's top predicted class, or for
    `classes` (one index per image: the label a caption names, whatever this network's own top is)."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = model.eval()
    device = next(model.parameters()).device
    x = (to_unit_nchw(pixels, device) - channel_stats(mean, device)) / channel_stats(std, device)
    name = ""
    if layer is None:
        name, layer = find_target_layer(model, x[:1])
    with torch.enable_grad(), GradCAM(model=model, target_layers=[layer]) as cam:
        targets = None if classes is None else [ClassifierOutputTarget(int(c)) for c in classes]
        maps = cam(input_tensor=x, targets=targets)  # None = each image's top class (STACK.md trap 9)
    return np.nan_to_num(np.asarray(maps, dtype=np.float32)), name


def explain_run(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, n_correct: int = 6,
                n_wrong: int = 6, seed: int = 0) -> dict[str, Any] | None:
    """Grad-CAM over a seeded sample of correct and wrong test images of a run -> plots/gradcam.png.

    Returns {"path", "layer", "correct", "wrong"}, or None when no stored prediction is readable any more.
    """
    from ..inference import Classifier
    from .interpret import Interpretation, decode_for_display
    from .plots import plot_gradcam_grid

    run_dir = Path(run_dir)
    clf = Classifier.load(run_dir, fold_batch_norm=False)  # Grad-CAM reads the last convolution's own output
    card = clf.card
    interp = Interpretation.from_run(run_dir)
    rng = np.random.default_rng(seed)
    wrong = np.flatnonzero(interp.y_pred != interp.y_true)
    right = np.flatnonzero(interp.y_pred == interp.y_true)
    # Wrong first (they are what people want explained), highest loss first; then a random sample of right ones.
    wrong = wrong[top_indices(interp.losses[wrong], n_wrong)]
    right = rng.choice(right, min(len(right), n_correct + max(0, n_wrong - len(wrong))), replace=False)
    picked = [int(i) for i in np.concatenate([wrong, right])]
    images = decode_for_display([interp.paths[i] for i in picked], card.img_size, card.color, card.interpolation)
    keep = [(picked[j], images[j]) for j in range(len(picked)) if j in images]
    if not keep:
        return None
    pixels = np.stack([img for _, img in keep])
    model = clf.model.to(memory_format=torch.contiguous_format)
    maps, layer = gradcam_heatmaps(model, pixels, card.mean, card.std)
    samples = [dict(interp.describe(i), image=img, heatmap=m) for (i, img), m in zip(keep, maps)]
    path = Path(out) if out is not None else run_dir / "plots" / "gradcam.png"
    plot_gradcam_grid(samples, path, layer=layer)
    return {"path": path, "layer": layer, "correct": sum(s["correct"] for s in samples),
            "wrong": sum(not s["correct"] for s in samples)}
