"""Per-label reliability of a multi-label run: one small panel per label, the share of images carrying the label
against the mean predicted probability in each probability bin, beside the diagonal, with the label's ECE.

A single overlaid diagram would hide which label is over- or under-confident; small multiples with shared axes
let the eye compare labels directly. Bins with fewer than MIN_BIN_IMAGES images are left out of the line (their
share is noise) and drawn as hollow markers, so the panel still shows where probabilities fall."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..plotting import FULL_WIDTH_PX, GREY, MIN_FONT_PT, TRAIN_COLOR, inches, new_figure, save_figure, short, style
from .multilabel import binary_calibration_error

BINS = 10
MIN_BIN_IMAGES = 20
COLUMNS = 4
PANEL_HEIGHT_PX = 210


def reliability_bins(targets: np.ndarray, probs: np.ndarray, bins: int = BINS) -> tuple[np.ndarray, ...]:
    """(mean probability, share of positives, count) per equal-width bin of one label; empty bins are NaN, 0."""
    y, p = np.asarray(targets, dtype=np.float64), np.asarray(probs, dtype=np.float64)
    which = np.minimum((p * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(which, weights=p, minlength=bins) / counts
        share = np.bincount(which, weights=y, minlength=bins) / counts
    return mean_p, share, counts


def plot_label_reliability(targets: np.ndarray, probs: np.ndarray, classes: Sequence[str],
                           path: str | os.PathLike) -> Path:
    """targets (N, K) multi-hot, probs (N, K) sigmoid probabilities; one panel per label."""
    k = len(classes)
    columns = min(COLUMNS, max(k, 1))
    rows = max(1, math.ceil(k / columns))
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
            ax.set_title(f"{short(classes[i], 16)}: ECE {ece:.3f}", fontsize=MIN_FONT_PT + 1)
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
