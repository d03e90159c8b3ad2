"""Grids of images: sample predictions, top losses, Grad-CAM overlays, and one sample image per class."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...plotting import (
    FULL_WIDTH_PX,
    GREY,
    MIN_FONT_PT,
    RIGHT_COLOR,
    WHOLE_SPLIT_KEY,
    WRONG_COLOR,
    distinct_short,
    save_figure,
    style,
)
from .layout import CAPTION_PT, TITLE_PT, cell_axes, frame, show_image, text_px


def _labels(samples: Sequence[Mapping[str, Any]], limit: int = 13,
            classes: Sequence[str] = ()) -> dict[str, str]:
    """The class names of a grid's captions, each cut where it differs from the others (a wrong answer must not
    read as the right one, nor one tile's class as its neighbour's); with `classes` (all of the run's), where it
    differs from every class, so that a cut name names one class and reads the same in every figure."""
    names = sorted({s[key] for s in samples if "caption" not in s for key in ("true", "pred")} | set(classes))
    return dict(zip(names, distinct_short(names, limit)))


def _caption(s: Mapping[str, Any], show_loss: bool = False, labels: Mapping[str, str] | None = None) -> str:
    if "caption" in s:  # images without a true label (`imgclf explain`) say what they are themselves
        return s["caption"]
    labels = labels if labels is not None else _labels([s])
    # "Top" where the label shown is the most probable one, not necessarily predicted (a multi-label Grad-CAM)
    shown = f"unknown, closest {labels[s['pred']]}" if s.get("unknown") else labels[s["pred"]]
    text = f"True: {labels[s['true']]}\n{s.get('pred_word', 'Pred')}: {shown} ({s['prob']:.2f})"
    return text + (f"\nloss {s['loss']:.2f}" if show_loss else "")


def _columns_for(captions: Sequence[str], max_cols: int, fewest: int = 3) -> int:
    """The most columns, up to `max_cols`, whose cells are as wide as the widest caption line: long class names
    ran into the neighbouring captions at 6 columns ("Pred: a_very_l…iant (0.31)" is 162 pixels, a cell 132)."""
    from ...plotting import DPI, FULL_WIDTH_PX

    widest = max((text_px(line, CAPTION_PT) for c in captions for line in c.splitlines()), default=0.0)
    pad = 0.14 * DPI  # cell_axes' padding
    for cols in range(max_cols, fewest, -1):
        if (FULL_WIDTH_PX - pad) / cols - pad >= widest:
            return cols
    return min(fewest, max_cols)


def _is_wrong(s: Mapping[str, Any]) -> bool:
    """The top class is not the true one, as accuracy and the confusion matrix count it, scored unknown or not: a
    top-losses grid of 4 misclassified images, all scored unknown, said "0 wrong" under a 97.8 % accuracy."""
    return not (s["correct"] if "correct" in s else s["true"] == s["pred"])


def _ink(s: Mapping[str, Any], judged: bool = True) -> str:
    """Red for a wrong top class (its caption may say unknown), grey for a right one scored unknown or an image of
    no known class, green for the rest."""
    if judged and _is_wrong(s):
        return WRONG_COLOR
    return NEUTRAL_INK if s.get("unknown") or not judged else RIGHT_COLOR


def _tally(samples: Sequence[Mapping[str, Any]]) -> str:
    """"2 wrong (red frame) and 5 right", and how many of each were scored unknown (predict's answer for them)."""
    wrong = [s for s in samples if _is_wrong(s)]
    text = f"{len(wrong)} wrong (red frame) and {len(samples) - len(wrong)} right"
    unknown = sum(1 for s in samples if s.get("unknown"))
    if unknown:
        of_wrong = sum(1 for s in wrong if s.get("unknown"))
        text += f"; scored unknown: {of_wrong} of the wrong, {unknown - of_wrong} of the right"
    return text


def plot_prediction_grid(samples: Sequence[Mapping[str, Any]], path: str | os.PathLike,
                         title: str = "Sample predictions", show_loss: bool = False, max_cols: int = 6,
                         classes: Sequence[str] = (), whole_split: str | None = None) -> Path:
    """Images captioned "True: x / Pred: y (p)"; wrong predictions get a red caption and a red frame.

    Each sample: {"image": uint8 HWC, "true", "pred", "prob", "loss" (if show_loss), "correct"}. classes: all of
    the run's, which a shortened name must tell apart (`_labels`). whole_split: the split's name where the samples
    are every image of it (a split of 12 images or fewer), whose share of red is then its error rate.
    """
    # The sample mixes right and wrong on purpose: say so, or the share of red reads as the error rate.
    drawn = "" if show_loss or whole_split else ", mixed on purpose (not the error rate)"
    if whole_split:
        title = f"All {len(samples)} {whole_split} images"
    heading = f"{title}: {_tally(samples)}{drawn}"
    labels = _labels(samples, classes=classes)
    captions = [_caption(s, show_loss, labels) for s in samples]
    cols = _columns_for(captions, max_cols)
    with style():
        fig, cells = cell_axes(max(len(samples), 1), cols, caption_in=0.62 if show_loss else 0.5, title=heading)
        for (ax,), s, caption in zip(cells, samples, captions):
            show_image(ax, s["image"])
            wrong = _is_wrong(s)
            ax.set_title(caption, fontsize=CAPTION_PT, color=_ink(s), fontweight="bold" if wrong else "normal", pad=4)
            frame(ax, WRONG_COLOR if wrong else "#d1d5db", 3.0 if wrong else 0.8)
        if not samples:
            cells[0][0].axis("off")
            cells[0][0].text(0.5, 0.5, "no readable images", ha="center", va="center", color=GREY)
        fig.suptitle(heading, fontweight="bold", fontsize=TITLE_PT, y=1 - 0.1 / fig.get_figheight())
        return save_figure(fig, path, notes={WHOLE_SPLIT_KEY: str(len(samples))} if whole_split else None)


def plot_top_losses(samples: Sequence[Mapping[str, Any]], path: str | os.PathLike, classes: Sequence[str] = ()) -> Path:
    """The images the model got most confidently wrong (highest loss first)."""
    return plot_prediction_grid(samples, path, title="Top losses", show_loss=True, classes=classes)


def plot_gradcam_grid(samples: Sequence[Mapping[str, Any]], path: str | os.PathLike, layer: str = "",
                      max_cols: int = 6, target: str = "its predicted class", classes: Sequence[str] = ()) -> Path:
    """Each sample as the input image above its Grad-CAM overlay; wrong predictions marked red.

    Each sample: {"image": uint8 HWC, "heatmap": float (H, W) in [0, 1], "true", "pred", "prob", "correct"}, or
    a "caption" of its own in place of "true", "pred" and "prob".
    `target`: what the maps explain, for the heading. classes: as `plot_prediction_grid` takes them.
    """
    heading = f"Grad-CAM: where the model looked for {target}"
    where = "its last transformer block" if layer.endswith("norm1") else "its last convolution"
    heading += f" (at {where}, {layer})" if layer else ""
    labels = _labels(samples, classes=classes)
    captions = [_caption(s, labels=labels) for s in samples]
    lines = max((c.count("\n") + 1 for c in captions), default=3)
    cols = _columns_for(captions, max_cols)
    with style():
        fig, cells = cell_axes(max(len(samples), 1), cols, images_per_cell=2,
                               caption_in=max(0.62, 0.17 * lines + 0.11), title=heading,
                               footer_in=GRADCAM_SCALE_IN if samples else 0.0,
                               footer=GRADCAM_SCALE_TITLE if samples else "")
        for (top, bottom), s, caption in zip(cells, samples, captions):
            # an image of no known class (`imgclf explain`: a caption of its own, no "correct") is neither right
            # nor wrong: its caption was green, the colour of a right answer, wrong answers and unknowns included
            judged = "caption" not in s or "correct" in s
            wrong = judged and _is_wrong(s)
            show_image(top, s["image"])
            flat = float(np.max(s["heatmap"])) < 1e-6  # Grad-CAM found no positive evidence for the class
            top.set_title(caption + ("\n(no positive evidence)" if flat else ""), fontsize=CAPTION_PT,
                          color=_ink(s, judged),
                          fontweight="bold" if wrong else "normal", pad=4)
            # under the map, the image in grey: on a red or blue picture the map's red ("most") and blue ("least")
            # were the picture's own colour (the colour image is the one above)
            show_image(bottom, _grey(s["image"]))
            h, w = s["image"].shape[:2]
            bottom.imshow(s["heatmap"], cmap=GRADCAM_CMAP, alpha=GRADCAM_ALPHA, vmin=0, vmax=1,
                          extent=(-0.5, w - 0.5, h - 0.5, -0.5),
                          interpolation="bilinear")
            for ax in (top, bottom):
                frame(ax, WRONG_COLOR if wrong else "#d1d5db", 3.0 if wrong else 0.8)
        if not samples:
            for ax in cells[0]:
                ax.axis("off")
        else:
            _gradcam_scale(fig)
        fig.suptitle(heading, fontweight="bold", fontsize=TITLE_PT, y=1 - 0.1 / fig.get_figheight())
        # read by scrolling: 48 images at the 4 columns a long caption leaves are 12 rows, which the longest-side
        # cap shrank to 466 px wide with 6 px text
        return save_figure(fig, path, tall=True)


def _grey(image: np.ndarray) -> np.ndarray:
    """An HxWx3 uint8 image as its luminance (ITU-R 601, as Pillow's convert("L")), still HxWx3; grey stays."""
    if image.ndim == 3 and image.shape[2] == 3:
        luma = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        return np.repeat(np.clip(luma + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    return image


NEUTRAL_INK = "#1f2937"  # a caption that judges nothing: near-black, as the figures' other text
GRADCAM_SCALE_IN = 0.75  # below the grid: the colour bar, its ticks and its label
GRADCAM_CMAP, GRADCAM_ALPHA = "jet", 0.45  # the overlay's, which the bar shows as drawn over a mid grey
# the maps lie on the images in grey (`_grey`): over white, the bar's colours were paler than any map's
GRADCAM_BAR_UNDER = "#808080"


def _gradcam_scale(fig) -> None:
    """The overlay's colour scale under the grid. Each map is scaled to its own range (pytorch-grad-cam's
    min-max), so the bar reads "the least and the most of this image's evidence", never an amount to compare
    between images: its ends say so."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    width, height = fig.get_figwidth(), fig.get_figheight()
    bar_w = min(3.6, 0.7 * width)
    ax = fig.add_axes(((width - bar_w) / 2 / width, 0.42 / height, bar_w / width, 0.13 / height))
    ax.set_facecolor(GRADCAM_BAR_UNDER)
    bar = fig.colorbar(ScalarMappable(Normalize(0, 1), GRADCAM_CMAP), cax=ax, orientation="horizontal",
                       alpha=GRADCAM_ALPHA)
    bar.set_ticks([0, 1], labels=["least", "most"], fontsize=CAPTION_PT)
    bar.outline.set_linewidth(0.6)
    ax.set_title(GRADCAM_SCALE_TITLE, fontsize=CAPTION_PT, pad=3)


def _names_that_fit(names: list[str], width_px: float) -> list[str]:
    """The names shortened (told apart, `distinct_short`) to the most characters whose widest drawn caption fits
    `width_px`: measured, since a count of "m"-wide characters let 14 CJK ones (171 px) run into the next cell's."""
    each: list[str | None] = [None] * len(names)  # each name at the most characters that fit its own cell
    uniform = None
    for chars in range(40, 2, -1):
        short = distinct_short(names, chars)
        fits = [text_px(name, CAPTION_PT) <= width_px for name in short]
        each = [kept or (name if fit else None) for kept, name, fit in zip(each, short, fits)]
        if all(fits) and uniform is None:
            uniform = short
        if all(name is not None for name in each):
            break
    chosen = [name if name is not None else short[i] for i, name in enumerate(each)]
    # a long Latin name kept long beside CJK ones cut short, unless two of them then read alike
    return chosen if len(set(chosen)) == len(chosen) else uniform or short


GRADCAM_SCALE_TITLE = "Grad-CAM evidence, each map scaled to its own image's range (not comparable between images)"


def plot_class_samples(paths: Mapping[str, str], path: str | os.PathLike, max_side: int = 160,
                       per: str = "class") -> Path:
    """One example image per class ({class: image path}), at its own aspect ratio; unreadable ones are marked."""
    from PIL import Image

    from ...data.decode import DecodeError, open_image

    names = list(paths)
    n = max(len(names), 1)
    cols = math.ceil(n / math.ceil(n / 10))  # rows of at most 10, as even as possible
    width_px = min(FULL_WIDTH_PX, cols * 175 + 15)  # images up to 160 pixels
    cell_px = (width_px - 15) / cols
    labels = dict(zip(names, _names_that_fit(names, cell_px * 0.95)))
    with style():
        fig, cells = cell_axes(n, cols, caption_in=0.3, width_px=width_px, title=f"One sample image per {per}")
        if not names:
            cells[0][0].axis("off")
        for (ax,), name in zip(cells, names):
            try:
                arr = open_image(paths[name], None, "rgb")
                img = Image.fromarray(arr)
                img.thumbnail((max_side, max_side))
                show_image(ax, np.asarray(img))
                frame(ax, "#d1d5db", 0.8)
            except DecodeError as exc:
                ax.axis("off")
                ax.text(0.5, 0.5, f"unreadable:\n{exc}", ha="center", va="center", fontsize=MIN_FONT_PT,
                        color=WRONG_COLOR, wrap=True)
            ax.set_title(labels[name], fontsize=CAPTION_PT, pad=4)
        fig.suptitle(f"One sample image per {per}", fontweight="bold", fontsize=TITLE_PT,
                     y=1 - 0.1 / fig.get_figheight())
        return save_figure(fig, path)
