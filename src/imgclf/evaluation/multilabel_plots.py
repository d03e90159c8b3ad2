"""The figures only a multi-label run has.

- Per-label reliability: one small panel per label, the share of images carrying the label against the mean
  predicted probability in each probability bin, beside the diagonal, with the label's ECE. A single overlaid
  diagram would hide which label is over- or under-confident; small multiples with shared axes let the eye
  compare labels. Bins with fewer than MIN_BIN_IMAGES images are left out of the line (their share is noise)
  and drawn as hollow markers, so the panel still shows where probabilities fall.
- Label-set grid: sample images captioned with their whole true and predicted label sets, wrapped rather than
  cut (a set of four labels does not fit the single-label caption), each predicted label with its probability.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..plotting import (FULL_WIDTH_PX, GREY, MIN_FONT_PT, RIGHT_COLOR, TRAIN_COLOR, WRONG_COLOR, distinct_short,
                        inches, new_figure, save_figure, style)
from .multilabel import binary_calibration_error
from .plots.layout import CAPTION_PT, TITLE_PT, cell_axes, frame, show_image, text_px

BINS = 10
MIN_BIN_IMAGES = 20
COLUMNS = 4
PANEL_HEIGHT_PX = 210
PANEL_TEXT_PX = 150  # a panel's width for its title (square axes, four to a row), as text_px measures


def reliability_bins(targets: np.ndarray, probs: np.ndarray, bins: int = BINS) -> tuple[np.ndarray, ...]:
    """(mean probability, share of positives, count) per equal-width bin of one label; empty bins are NaN, 0."""
    y, p = np.asarray(targets, dtype=np.float64), np.asarray(probs, dtype=np.float64)
    which = np.minimum((p * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(which, weights=p, minlength=bins) / counts
        share = np.bincount(which, weights=y, minlength=bins) / counts
    return mean_p, share, counts


def _panel_titles(classes: Sequence[str]) -> list[str]:
    """The labels cut (distinct still) to fit the width of a reliability panel."""
    for chars in range(16, 5, -1):
        titles = distinct_short(classes, chars)
        if all(text_px(t, MIN_FONT_PT + 1, "bold") <= PANEL_TEXT_PX for t in titles):
            break
    return titles


def plot_label_reliability(targets: np.ndarray, probs: np.ndarray, classes: Sequence[str],
                           path: str | os.PathLike) -> Path:
    """targets (N, K) multi-hot, probs (N, K) sigmoid probabilities; one panel per label."""
    k = len(classes)
    columns = min(COLUMNS, max(k, 1))
    rows = max(1, math.ceil(k / columns))
    titles = _panel_titles(classes)
    with style():
        fig = new_figure(inches(FULL_WIDTH_PX), inches(PANEL_HEIGHT_PX * rows + 60))
        axes = np.atleast_1d(fig.subplots(rows, columns, sharex=True, sharey=True)).ravel()
        for i, ax in enumerate(axes):
            if i >= k:
                ax.set_visible(False)
                continue
            mean_p, share, counts = reliability_bins(targets[:, i], probs[:, i])
            enough = counts >= MIN_BIN_IMAGES
            ax.plot([0, 1], [0, 1], color=GREY, linestyle="--", linewidth=0.8)
            ax.plot(mean_p[enough], share[enough], color=TRAIN_COLOR, marker="o", markersize=3.5, linewidth=1.3)
            few = ~enough & (counts > 0)
            if few.any():
                ax.plot(mean_p[few], share[few], linestyle="none", marker="o", markersize=3.5,
                        markerfacecolor="none", markeredgecolor=TRAIN_COLOR, alpha=0.6)
            ece = binary_calibration_error(targets[:, i], probs[:, i])
            title = f"{titles[i]}: ECE {ece:.3f}"
            if text_px(title, MIN_FONT_PT + 1, "bold") > PANEL_TEXT_PX:  # centred over its panel, it was cut
                title = f"{titles[i]}\nECE {ece:.3f}"
            ax.set_title(title, fontsize=MIN_FONT_PT + 1)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_aspect("equal")
            ax.tick_params(labelsize=MIN_FONT_PT)
            if i % columns == 0:
                ax.set_ylabel("share with label", fontsize=MIN_FONT_PT + 0.5)
            if i >= k - columns:
                ax.set_xlabel("mean probability", fontsize=MIN_FONT_PT + 0.5)
                ax.xaxis.set_tick_params(labelbottom=True)
        return save_figure(fig, path)


SET_COLUMNS = 4
CAPTION_CHARS = 30  # characters per caption line in a cell of a four-column grid (215 pixels at CAPTION_PT)
LINE_IN = 0.17  # one caption line, inches


def label_set_caption(true: Sequence[str], pred: Sequence[tuple[str, float]], width: int = CAPTION_CHARS,
                      labels: Mapping[str, str] | None = None) -> str:
    """ "True: a + b" and "Pred: a 0.97 + c 0.61", each wrapped to `width` characters, never inside a label
    (no break at its hyphens) nor between a label and its probability (a no-break space joins them: textwrap
    breaks at ASCII whitespace only). `labels`: each label as shown, cut where it differs from the grid's
    others (`caption_labels`); by default, cut alone."""
    def wrapped(head: str, items: list[str]) -> list[str]:
        return textwrap.wrap(head + (" + ".join(items) or "none"), width=width, break_long_words=False,
                             break_on_hyphens=False, subsequent_indent="  ")

    labels = labels if labels is not None else caption_labels([{"true": true, "pred": pred}], width)
    return "\n".join(wrapped("True: ", [labels[t] for t in true])
                     + wrapped("Pred: ", [f"{labels[n]}\u00a0{p:.2f}" for n, p in pred]))


def caption_labels(samples: Sequence[Mapping], width: int = CAPTION_CHARS) -> dict[str, str]:
    """Every label of the grid's captions, as shown: one longer than a line is shortened, never split, and cut
    where it differs from the others, so that two labels never read alike."""
    names = sorted({t for s in samples for t in s["true"]} | {n for s in samples for n, _ in s["pred"]})
    return dict(zip(names, distinct_short(names, max(8, width - 10))))


def plot_label_set_grid(samples: Sequence[Mapping], path: str | os.PathLike, title: str = "Label sets",
                        split: str = "test") -> Path:
    """samples: {"image": uint8 HWC, "true": [labels], "pred": [(label, probability)], "correct": bool}; wrong
    sets get a red caption and frame."""
    labels = caption_labels(samples)
    captions = [label_set_caption(s["true"], s["pred"], labels=labels) for s in samples]
    lines = max((c.count("\n") + 1 for c in captions), default=2)
    n_wrong = sum(1 for s in samples if not s["correct"])
    heading = f"{title}: a seeded random sample of {len(samples)} {split} images, {n_wrong} wrong (red frame)"
    with style():
        fig, cells = cell_axes(max(len(samples), 1), SET_COLUMNS, caption_in=LINE_IN * lines + 0.1, title=heading)
        for (ax,), s, caption in zip(cells, samples, captions):
            show_image(ax, s["image"])
            ax.set_title(caption, fontsize=CAPTION_PT, color=RIGHT_COLOR if s["correct"] else WRONG_COLOR, loc="left",
                         fontweight="normal" if s["correct"] else "bold", pad=4, linespacing=1.15)
            frame(ax, "#d1d5db" if s["correct"] else WRONG_COLOR, 0.8 if s["correct"] else 3.0)
        if not samples:
            cells[0][0].axis("off")
            cells[0][0].text(0.5, 0.5, "no readable images", ha="center", va="center", color=GREY)
        fig.suptitle(heading, fontweight="bold", fontsize=TITLE_PT, y=1 - 0.1 / fig.get_figheight())
        return save_figure(fig, path)
