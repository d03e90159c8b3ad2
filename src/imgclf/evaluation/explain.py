"""Grad-CAM explanations with the maintained `grad-cam` library (pytorch_grad_cam), not hand-written hooks: of a
run's test images for its report (`explain_run`), and of any images a user gives (`explain_images`, `imgclf explain`).

The target layer is found the same way for every architecture: the last Conv2d that runs inside
`model.forward_features` (reference CNNs and timm backbones alike), preferring one whose output is still a
spatial map (a 1x1 map would paint the whole image one colour).
"""

from __future__ import annotations

import copy
import numbers
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..data.tensors import channel_stats, to_unit_nchw
from ..errors import invalid, path_argument
from ..topk import top_indices

if TYPE_CHECKING:
    from ..inference import Classifier
    from ..prediction import Prediction
    from ..inputs import ImageInput


def find_target_layer(model: nn.Module, example: torch.Tensor) -> tuple[str, nn.Module]:
    """(name, module) of the last Conv2d executed by model.forward_features(example) with an output > 1x1, lifted
    to the outermost block around it (any module but a plain nn.Sequential, below the model) whose output has the
    same shape. A residual block adds its input to that convolution's output: read at the convolution, evidence
    that travels the skip connection was invisible, and fast_resnet's maps of confident, right predictions read
    "no positive evidence" or lit up beside the feature. The block's output is what the next layer reads.

    The execution order is recorded with one throw-away forward pass, so layers defined in one order and
    called in another (or modules defined but unused, such as timm's VGG pre-logits convs) are handled.
    """
    names = {m: n for n, m in model.named_modules() if m is not model}
    shapes: dict[nn.Module, tuple[int, ...]] = {}
    executed: list[tuple[nn.Module, tuple[int, ...]]] = []

    def seen(module: nn.Module, _inputs: object, out: object) -> None:
        if isinstance(out, torch.Tensor):
            shapes[module] = tuple(out.shape[1:])
            if isinstance(module, nn.Conv2d):
                executed.append((module, tuple(out.shape[-2:])))

    handles = [m.register_forward_hook(seen) for m in names]
    forward = getattr(model, "forward_features", model)
    try:
        with torch.no_grad():
            forward(example)
    finally:
        for h in handles:
            h.remove()
    transformer = _transformer_blocks(model)
    if transformer is not None:  # its only convolution is the patch embedding: the input, cut into patches
        return transformer[0], transformer[1]
    if not executed:
        raise invalid("model", type(model).__name__, "a network with an nn.Conv2d in forward_features: Grad-CAM "
                      "needs a convolutional layer", note="no nn.Conv2d runs there")
    spatial = [m for m, shape in executed if int(np.prod(shape)) > 1]
    layer = (spatial or [m for m, _ in executed])[-1]
    by_name = {n: m for m, n in names.items()}
    parts = names[layer].split(".")
    for depth in range(1, len(parts)):  # outermost first
        block = by_name.get(".".join(parts[:depth]))
        if block is not None and type(block) is not nn.Sequential and shapes.get(block) == shapes[layer]:
            return names[block], block
    return names[layer], layer


def _transformer_blocks(model: nn.Module) -> tuple[str, nn.Module, tuple[int, int], int] | None:
    """A vision transformer in `model`, laid out as timm's (`patch_embed` with its `grid_size`, `blocks`,
    `num_prefix_tokens`): (name, module) of its last block's first norm, the patch grid and the tokens before the
    patches (class, register). Grad-CAM reads it there (pytorch-grad-cam's recipe for ViT): the last block's
    output of the patch tokens is not read by a head that reads the class token, and the network's one
    convolution, which the search for the last one found, embeds the input's patches: maps of the input's own
    contrast, not of what the decision used. None for any other network."""
    for name, module in model.named_modules():
        grid = getattr(getattr(module, "patch_embed", None), "grid_size", None)
        blocks = getattr(module, "blocks", None)
        if grid is not None and isinstance(blocks, (nn.Sequential, nn.ModuleList)) and len(blocks) \
                and isinstance(getattr(blocks[-1], "norm1", None), nn.Module):
            prefix = f"{name}." if name else ""
            return (f"{prefix}blocks.{len(blocks) - 1}.norm1", blocks[-1].norm1, tuple(grid),
                    int(getattr(module, "num_prefix_tokens", 1)))
    return None


def _tokens_as_map(model: nn.Module, layer: nn.Module) -> Any:
    """pytorch-grad-cam's `reshape_transform` where `layer` is a vision transformer's (`_transformer_blocks`):
    (N, prefix + h*w, C) tokens -> (N, C, h, w), the patches in their places; None for a convolution's output."""
    transformer = _transformer_blocks(model)
    if transformer is None or transformer[1] is not layer:
        return None
    (h, w), prefix = transformer[2], transformer[3]

    def as_map(tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, prefix:, :]
        rows, cols = (h, w) if patches.shape[1] == h * w else (int(round(patches.shape[1] ** 0.5)),) * 2
        return patches.reshape(tokens.shape[0], rows, cols, tokens.shape[2]).permute(0, 3, 1, 2)

    return as_map


GRADCAM_MISSING = "Install the explain extra (pip install 'imgclf[explain]') for Grad-CAM heatmaps."


def gradcam_heatmaps(model: nn.Module, pixels: np.ndarray, mean: list[float], std: list[float],
                     layer: nn.Module | None = None, classes: list[int] | None = None) -> tuple[np.ndarray, str]:
    """uint8 (N, H, W, C) images -> Grad-CAM maps (N, H, W) in [0, 1] for each image's top predicted class, or for
    `classes` (one index per image: the label a caption names, whatever this network's own top is)."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    given = next((n for n, m in model.named_modules() if m is layer), None) if layer is not None else None
    model = _without_inplace_activations(model).eval()
    if given is not None:  # the same layer of the copy
        layer = dict(model.named_modules())[given]
    device = next(model.parameters()).device
    x = (to_unit_nchw(pixels, device) - channel_stats(mean, device)) / channel_stats(std, device)
    name = ""
    if layer is None:
        name, layer = find_target_layer(model, x[:1])
    with torch.enable_grad(), GradCAM(model=model, target_layers=[layer],
                                      reshape_transform=_tokens_as_map(model, layer)) as cam:
        targets = None if classes is None else [ClassifierOutputTarget(int(c)) for c in classes]
        maps = cam(input_tensor=x, targets=targets)  # None = each image's top class (STACK.md trap 9)
    return np.nan_to_num(np.asarray(maps, dtype=np.float32)), name


def _without_inplace_activations(model: nn.Module) -> nn.Module:
    """A copy of `model` whose activations write new tensors. pytorch-grad-cam keeps the target layer's output
    (detached: on a CPU the same memory), and an in-place ReLU right after the layer overwrote it, so the maps of
    model_s, the FER networks and VGG were the ReLU's output times the layer's gradients: Grad-CAM of no layer."""
    if not any(getattr(m, "inplace", False) is True for m in model.modules()):
        return model
    model = copy.deepcopy(model)
    for module in model.modules():
        if getattr(module, "inplace", False) is True:
            module.inplace = False
    return model


def explain_run(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, n_correct: int = 6,
                n_wrong: int = 6, seed: int = 0) -> dict[str, Any] | None:
    """Grad-CAM over a seeded sample of correct and wrong test images of a run -> plots/gradcam.png.

    Returns {"path", "layer", "correct", "wrong", "unknown", "unknown_wrong"} (counts: right and wrong by the top class,
    as accuracy counts them; of them, those scored unknown), or None when no stored prediction is readable any more.
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
    # the class each caption names, as stored: this network's own top may differ (bf16 then, fp32 now, near a tie)
    maps, layer = gradcam_heatmaps(model, pixels, card.mean, card.std,
                                   classes=[int(interp.y_pred[i]) for i, _ in keep])
    samples = [dict(interp.describe(i), image=img, heatmap=m) for (i, img), m in zip(keep, maps)]
    path = Path(out) if out is not None else run_dir / "plots" / "gradcam.png"
    plot_gradcam_grid(samples, path, layer=layer, classes=card.classes)
    return {"path": path, "layer": layer, "correct": sum(bool(s["correct"]) for s in samples),
            "wrong": sum(not s["correct"] for s in samples), "unknown": sum(bool(s["unknown"]) for s in samples),
            "unknown_wrong": sum(bool(s["unknown"]) and not s["correct"] for s in samples)}


def figure_path(argument: str, path: str | os.PathLike) -> Path:
    """`path` as the PNG an explanation figure is written to, checked before any work."""
    from ..io import writable_file

    if path_argument(argument, path, "a .png file to write (str or os.PathLike)").suffix.lower() != ".png":
        raise invalid(argument, str(path), "a file name ending in .png (the figure is a PNG image)")
    return writable_file(argument, path)


# Grad-CAM keeps every image's activations and gradients of the target layer at once: batches bound that memory.
_EXPLAIN_BATCH = 32


@dataclass
class Explanation:
    """One image explained: its `prediction` (as `Classifier.predict` gives it), the class whose evidence the
    `heatmap` shows (`explained`: the prediction's closest known class unless another was asked for), the
    heatmap, (H, W) float32 in [0, 1] over `image`, the uint8 (H, W, C) pixels the network read (the run's size
    and colour mode). An unreadable image has the prediction's `error` and None for the rest."""

    path: str
    prediction: "Prediction"
    explained: str | None = None
    heatmap: np.ndarray | None = None
    image: np.ndarray | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the prediction as `predict --format json` gives it, the class explained, the heatmap as
        rows of numbers (4 decimals) and the size of the image the network read (its pixels left out)."""
        return {"path": self.path, "prediction": self.prediction.as_dict(), "explained": self.explained,
                "heatmap": None if self.heatmap is None else np.round(self.heatmap.astype(float), 4).tolist(),
                "image_shape": None if self.image is None else list(self.image.shape)}

    def __repr__(self) -> str:  # a notebook's line, not two arrays of numbers
        p = self.prediction
        if p.error:
            return f"Explanation(path={self.path!r}, error={p.error!r})"
        size = "x".join(map(str, self.heatmap.shape)) if self.heatmap is not None else None
        return (f"Explanation(path={self.path!r}, label={p.label!r}, probability={p.probability:.4f}, "
                f"explained={self.explained!r}, heatmap={size})")


def explain_images(clf: "Classifier", images: "Sequence[ImageInput] | ImageInput", label: str | None = None,
                   unknown: bool = True) -> list[Explanation]:
    """Files, folders, PIL images or arrays (as `Classifier.predict` takes them) -> one Explanation each, in order.

    label: the class to explain on every image (None: each image's predicted class, its closest known class
    when it is unknown). Load the classifier with `fold_batch_norm=False`: Grad-CAM reads the last convolution's
    own output, which folding changes."""
    from ..inputs import gather_inputs

    if isinstance(label, numbers.Integral) and not isinstance(label, bool) and str(int(label)) in clf.classes:
        label = str(int(label))  # a class folder named 3, as fit(classes=[0, 1]) takes numbers for folder names
    if label is not None and label not in clf.classes:
        raise invalid("label", label, clf.classes)
    names, sources = gather_inputs(images, grey=clf.card.color == "grayscale")
    decoded = [clf._try_decode(item) for item in enumerate(sources)]
    readable = [(i, pixels) for i, pixels, _ in decoded if pixels is not None]
    by_index: dict[int, Explanation] = {}
    if readable:
        pixels = np.stack([p for _, p in readable])
        predictions = _predicting(clf).predict(pixels, unknown=unknown)
        explained = [label or p.best_label for p in predictions]
        index = {name: k for k, name in enumerate(clf.classes)}
        maps = _heatmaps_in_batches(clf, pixels, [index[name] for name in explained])
        for (i, image), prediction, name, heatmap in zip(readable, predictions, explained, maps):
            by_index[i] = Explanation(names[i], replace(prediction, path=names[i]), name, heatmap, image)
    from ..prediction import Prediction

    return [by_index.get(i) or Explanation(names[i], Prediction(names[i], None, None, [], error, unknown=None))
            for i, _, error in decoded]


def _predicting(clf: "Classifier") -> "Classifier":
    """The classifier `imgclf.load` gives (batch norms folded) beside the unfolded one Grad-CAM reads: under bf16
    the two round differently, and an image near the unknown threshold could be labelled otherwise by explain
    than by predict (0.78889 against 0.78850 for one image)."""
    from ..inference import Classifier, for_prediction

    return Classifier(for_prediction(clf.model), clf.card, clf.device, run_dir=clf.run_dir, head=clf.head,
                      precision=clf.precision)


def _heatmaps_in_batches(clf: "Classifier", pixels: np.ndarray, classes: list[int]) -> list[np.ndarray]:
    model = clf.model.to(memory_format=torch.contiguous_format)  # as explain_run: the layer's map as grad-cam reads it
    # copied once for every batch (each call would copy a network with in-place activations again)
    model = _without_inplace_activations(model)
    try:
        x = to_unit_nchw(pixels[:1], clf.device)
        _, layer = find_target_layer(model, (x - clf.mean) / clf.std)
        maps: list[np.ndarray] = []
        for start in range(0, len(pixels), _EXPLAIN_BATCH):
            found, _ = gradcam_heatmaps(model, pixels[start:start + _EXPLAIN_BATCH], clf.card.mean, clf.card.std,
                                        layer=layer, classes=classes[start:start + _EXPLAIN_BATCH])
            maps.extend(found)
        return maps
    finally:  # the caller's classifier predicts as before
        clf.model.to(memory_format=torch.channels_last)


# A figure shows at most this many: sixteen rows of three image pairs (captions long enough to leave three columns)
# stay within a tall figure's pixel cap (plotting.MAX_TALL_PIXELS) at full size; a thousand would not.
FIGURE_IMAGES = 48
CLASS_CHARS = 16  # a class name in a caption (cut where it differs from the run's other classes): "unknown (closest
# NAME 0.50)" then keeps to 40 characters, what a cell holds at the fewest columns (3 of FULL_WIDTH_PX)


def _file_names(paths: Iterable[str]) -> list[str]:
    """Captions that tell the images apart: each file's name, with as many of its folders as it takes where two
    share a name (cross/000.png and triangle/000.png both read 000.png; x/br/000.png and y/br/000.png both read
    br/000.png), cut where they differ (four IMG_20240101_12xx00.png all read IMG_20240…00.png) and as long as
    a grid of that many images leaves room for (a lone image's name was cut to 16 characters in a 700 px
    figure)."""
    from collections import Counter

    from ..plotting import FULL_WIDTH_PX, distinct_short

    parts = [Path(str(p)).parts for p in paths]
    depth = [1] * len(parts)
    for _ in range(max((len(p) for p in parts), default=1)):
        names = ["/".join(p[-d:]) for p, d in zip(parts, depth)]
        counts = Counter(names)
        longer = [i for i, n in enumerate(names) if counts[n] > 1 and depth[i] < len(parts[i])]
        if not longer:
            break
        for i in longer:
            depth[i] += 1
    names = ["/".join(p[-d:]) for p, d in zip(parts, depth)]
    columns = min(max(len(names), 1), 6)
    return distinct_short(names, min(40, max(16, int(FULL_WIDTH_PX / columns / 7.5))))


def _label_set_lines(names: list[str], shown: int = 6, width: int = 24) -> str:
    """A carried label set as caption lines of at most `width` characters, a line per few labels: on one line,
    eight labels overwrote the neighbouring captions and ran off the figure's edges. The first `shown`, then how
    many more."""
    if not names:
        return "no label"
    units = names[:shown] + ([f"{len(names) - shown} more"] if len(names) > shown else [])
    lines = [units[0]]
    for unit in units[1:]:
        if len(lines[-1]) + 3 + len(unit) > width:
            lines[-1] += " +"
            lines.append(unit)
        else:
            lines[-1] += f" + {unit}"
    return "\n".join(lines)


def plot_explanations(explanations: Sequence[Explanation], path: str | os.PathLike, label: str | None = None,
                      multilabel: bool = False, classes: Sequence[str] = ()) -> Path:
    """The first FIGURE_IMAGES readable explanations as a grid: each image above its Grad-CAM overlay, captioned
    with its name and prediction (and the class shown where it is not the prediction). multilabel: the caption
    gives the predicted label set (or none), and the map is of the most probable label, carried or not.
    classes: the run's, which a class name is cut to tell apart (10 characters alone made species_110_xx,
    species_119_xx and a wrong species_74_xx each read "specie…_xx")."""
    from ..plotting import distinct_short, warn_of_undrawn_names
    from .plots import plot_gradcam_grid

    samples = []
    shown_explanations = [e for e in explanations if e.heatmap is not None][:FIGURE_IMAGES]
    named = {e.prediction.best_label for e in shown_explanations} | {e.explained for e in shown_explanations} | {
        n for e in shown_explanations for n, _ in e.prediction.labels or []}
    every = sorted((named | set(classes)) - {None})
    cut = dict(zip(every, distinct_short(every, CLASS_CHARS)))
    files = _file_names(e.path for e in shown_explanations)
    # as train and report say it: the figure drew boxes for an emoji in a class or file name without a word
    warn_of_undrawn_names(sorted(named - {None}) + files, "imgclf explain", "class or file name")
    for e, name in zip(shown_explanations, files):
        p = e.prediction
        said = f"{cut[p.best_label]} {p.probability:.2f}"
        if multilabel:
            carried = _label_set_lines([cut[name] for name, _ in p.labels or []])
            # the label mapped, with its probability: "map: red" did not say whether red was carried
            probs = {**dict(p.top or []), **dict(p.labels or [])}
            shown = said if e.explained == p.best_label else \
                cut[e.explained] + (f" {probs[e.explained]:.2f}" if e.explained in probs else "")
            caption = f"{name}\n{carried}\nmap: {shown}"
        else:
            caption = f"{name}\n" + (f"unknown (closest {said})" if p.unknown else said)
            if e.explained != p.best_label:
                caption += f"\nmap of {cut[e.explained]}"
        samples.append({"image": e.image, "heatmap": e.heatmap, "caption": caption})
    target = f"the {'label' if multilabel else 'class'} {label!r}" if label is not None else \
        "its most probable label" if multilabel else "the class it predicted"
    return plot_gradcam_grid(samples, path, target=target)
