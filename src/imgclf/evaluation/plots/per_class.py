"""Figures with one row or bar per class: the confusion matrix, precision / recall / F1 per class, and the number
of images per class and split."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ...plotting import (
    DPI,
    FULL_WIDTH_PX,
    GREY,
    HALF_WIDTH_PX,
    MIN_FONT_PT,
    inches,
    new_figure,
    distinct_short,
    save_figure,
    style,
)
from ...records import AverageScores, ClassScores
from .layout import LEGEND_PT, TICK_PT, TITLE_PT, figure_title, text_px


def plot_confusion_matrix(confusion: Sequence[Sequence[int]], classes: Sequence[str], path: str | os.PathLike,
                          normalize: bool = False, names: tuple[str, str] = ("Confusion matrix", "class")) -> Path:
    """Counts, or rates normalised per true class (the diagonal is then each class's recall). `names`: the
    counts' title and what the axes hold (multi-label runs draw label co-occurrence with it).

    Cells are big enough for their numbers at a readable size (about 33 pixels), so the figure grows with the
    number of classes: up to 10 short class names it fits half the report's width. Above 30 classes the cell
    numbers are dropped (the colours carry the information) and rows shrink to the height of their label.
    """
    cm = np.asarray(confusion, dtype=np.float64)
    k = len(classes)
    support = cm.sum(1, keepdims=True)
    # a class without images has no rate: its row is left blank and marked, not drawn as "recall 0"
    values = np.divide(cm, support, out=np.full_like(cm, np.nan), where=support > 0) if normalize else cm
    numbers = k <= 30
    counts_title, axis = names
    names = distinct_short(classes)
    label_px = max((text_px(n, TICK_PT) for n in names), default=6) + 14
    cell_px = float(np.clip(300 / max(k, 1), 33, 60)) if numbers else 17.0
    turn = k > 6 or max((len(n) for n in names), default=0) > 6
    width_px = max(30 + label_px + k * cell_px + 56, HALF_WIDTH_PX)  # never narrower than its title
    height_px = 40 + k * cell_px + (label_px if turn else 22) + 24 + (18 if not numbers else 0)
    tick_font = TICK_PT if numbers else MIN_FONT_PT
    cell_font = 10.0 if k <= 5 else 8.0
    with style():
        fig = new_figure(inches(width_px), inches(height_px))
        ax = fig.subplots()
        ax.grid(False)
        vmax = 1.0 if normalize else max(values.max(initial=0), 1)
        # Many classes: a square-root colour scale, or the few-image confusions vanish next to the diagonal.
        from matplotlib.colors import Normalize, PowerNorm

        norm = PowerNorm(0.5, vmin=0, vmax=vmax) if not numbers else Normalize(vmin=0, vmax=vmax)
        import matplotlib

        cmap = matplotlib.colormaps["Blues"].with_extremes(bad="#f3f4f6")
        im = ax.imshow(values, cmap=cmap, norm=norm, interpolation="nearest", aspect="equal")
        cbar = fig.colorbar(im, ax=ax, shrink=0.8, pad=0.02, fraction=0.06)
        cbar.ax.tick_params(labelsize=tick_font)
        if not normalize:  # counts: a scale up to 4 images was ticked 0.5, 1.5, 2.5, 3.5
            from matplotlib.ticker import MaxNLocator

            # as many ticks as the bar has room for (about 20 pixels each): 11 overlapped on a 2-class matrix
            cbar.locator = MaxNLocator(nbins=max(2, int(0.8 * k * cell_px / 20)), integer=True)
            cbar.update_ticks()
        ax.set_xticks(range(k), names, rotation=90 if turn else 0, fontsize=tick_font)
        ax.set_yticks(range(k), names, fontsize=tick_font)
        ax.set_xlabel(f"predicted {axis}", fontsize=9)
        ax.set_ylabel(f"true {axis}", fontsize=9)
        # Short titles: the page's caption says the rest, and a title wider than the figure would be cut.
        title = "Row-normalised (diagonal = recall)" if normalize else f"{counts_title} (image counts)"
        figure_title(fig, title + ("" if numbers else "\ncolour on a square-root scale: small confusions show"),
                     left=width_px > FULL_WIDTH_PX)
        for spine in ax.spines.values():
            spine.set_visible(False)
        if numbers:
            for t in range(k):
                for p in range(k):
                    v = values[t, p]
                    if np.isnan(v):
                        ax.text(p, t, "—", ha="center", va="center", fontsize=cell_font, color="#9ca3af")
                        continue
                    if normalize:
                        text = "0" if v == 0 else f"{v:.2f}"
                    else:
                        text = f"{int(v)}"
                    color = "white" if v > 0.55 * vmax else ("#9ca3af" if v == 0 else "#111827")
                    ax.text(p, t, text, ha="center", va="center", fontsize=cell_font, color=color)
        return save_figure(fig, path)


def plot_per_class_metrics(per_class: Mapping[str, ClassScores], path: str | os.PathLike,
                           macro: AverageScores | None = None,
                           shown: Mapping[str, Mapping[str, float | None]] | None = None) -> Path:
    """Precision, recall and F1 per class (horizontal bars, classes top to bottom), support written beside.
    `shown`: each class's scores as the report's table shows them (`interpret.scores_shown`), None where there is
    nothing to divide by: no bar and a dash there, as in the table (a class without test images was drawn with a
    recall and F1 of "0", which read as "always missed").

    Half the report's width, beside the classification table. Up to 15 classes each bar carries its value, so
    rows are tall enough for that text; above 30 classes the bars become dots on one line per class.
    """
    classes = list(per_class)
    k = len(classes)
    metrics = (("precision", "#60a5fa"), ("recall", "#f59e0b"), ("f1", "#10b981"))
    names = {"precision": "precision", "recall": "recall", "f1": "F1"}
    dots = k > 30
    row_px = 17 if dots else 50 if k <= 15 else 26
    font = MIN_FONT_PT if dots else TICK_PT
    tick_labels = distinct_short(classes, 16)
    # the bars' length in pixels at a score of 1 (the figure less the class names and the n= column): whether a
    # bar holds its number is read from it (a 0.25 bar beside long names lost the 0 of "0.25" off its end)
    full_px = HALF_WIDTH_PX - max((1.15 * text_px(c, font) for c in tick_labels), default=0) - 90
    inside = 31 * DPI / 72 + 3  # px: a number inside starts 31 points before the bar's end (its padding below)
    with style():
        fig = new_figure(inches(HALF_WIDTH_PX), inches(100 + row_px * max(k, 1)))
        ax = fig.subplots()
        y = np.arange(k)
        for j, (name, color) in enumerate(metrics):
            given = [shown[c][name] if shown is not None else float(getattr(per_class[c], name)) for c in classes]
            values = [0.0 if v is None else float(v) for v in given]
            undefined = [v is None for v in given]
            if dots:
                # a row each, each score a step above or below it and a marker of its own: recall and F1 both 0
                # drew one dot over the other; unclipped, so a 0 or a 1 is a whole dot; a dash where undefined
                at = y + (j - 1) * 0.22
                ax.scatter([np.nan if none else v for v, none in zip(values, undefined)], at, s=16, color=color,
                           marker="os^"[j], label=names[name], zorder=3, clip_on=False)
                ax.scatter([0.0 if none else np.nan for none in undefined], at, s=40, color=color, marker="_",
                           zorder=3, clip_on=False)
            else:
                bars = ax.barh(y + (j - 1) * 0.27, values, height=0.26, color=color, label=names[name], zorder=3)
                if k <= 15:  # near-equal bars need their numbers to be told apart
                    holds = [v * full_px >= inside for v in values]
                    ax.bar_label(bars, labels=[f"{v:.2f}" if fit else "" for v, fit in zip(values, holds)],
                                 label_type="edge", padding=-31, fontsize=MIN_FONT_PT, color="white",
                                 fontweight="bold")
                    # a bar too short to hold its number gets it beside it: a class scoring 0 showed no bar and
                    # no number, which read as missing data
                    ax.bar_label(bars, labels=["—" if none else "0" if v == 0 else "" if fit else f"{v:.2f}"
                                               for v, none, fit in zip(values, undefined, holds)],
                                 label_type="edge", padding=3, fontsize=MIN_FONT_PT, color=GREY)
        if dots:
            for yi in y:
                ax.axhline(yi, color="#e5e7eb", linewidth=0.6, zorder=1)
        if macro:
            ax.axvline(macro.f1, color="#047857", linestyle="--",
                       linewidth=1.2, label="macro F1")
        ax.set_yticks(y, tick_labels, fontsize=font)
        ax.set_ylim(k - 0.5, -0.5)  # first class on top, no empty margins
        ax.set_xlim(0, 1.0)
        ax.set_xlabel("score")
        ax.grid(axis="y", visible=False)
        for yi, c in zip(y, classes):
            ax.annotate(f"n={per_class[c].support}", (1.0, yi), xytext=(8 if dots else 4, 0),  # past a dot at 1
                        textcoords="offset points",
                        va="center", fontsize=font, color=GREY, annotation_clip=False)
        figure_title(fig, "Precision, recall and F1 (n = support)")
        fig.legend(loc="outside lower center", ncol=4, fontsize=LEGEND_PT)
        return save_figure(fig, path, tall=True)  # a row per class: read by scrolling


def plot_class_distribution(counts: Mapping[str, Mapping[str, int]], path: str | os.PathLike,
                            per: str = "class") -> Path:
    """Images per class, one bar per split ({split: {class: n}}); horizontal bars above 20 classes. per="label"
    for multi-label data: no total in the legend, since an image carrying several labels is in several bars.

    Each bar is labelled with its count where the label fits the bar (its width, or its height when horizontal).
    """
    splits = list(counts)
    classes = list(next(iter(counts.values()))) if counts else []
    k, s = len(classes), max(len(splits), 1)
    palette = ["#2563eb", "#f59e0b", "#10b981", "#a855f7", "#64748b"]
    horizontal = k > 20
    labels = distinct_short(classes, 22)
    # the axes' share of the figure's width (its margins hold the counts' ticks), shared out among the classes
    slot_px = FULL_WIDTH_PX * 0.775 / max(k, 1)
    # drawn tick labels run up to 10 % wider than text_px measures them
    widths = [1.15 * text_px(c, TICK_PT) for c in labels]
    # turned where many classes crowd the axis, or where two neighbours' labels would meet (two long names of six)
    turn = not horizontal and k > 0 and ((k > 6 and max(len(c) for c in labels) > 3)
                                         or any((a + b) / 2 > slot_px - 6 for a, b in zip(widths, widths[1:])))
    digits = len(str(max((int(v) for split in counts.values() for v in split.values()), default=0)))
    if horizontal:
        row_px = 24.0
        size_px = (FULL_WIDTH_PX, 110 + row_px * k)
        fits = row_px * 0.8 / s * 0.95 >= 12  # the label's height against the bar's
    else:
        size_px = (FULL_WIDTH_PX, 300 + (max(text_px(c, TICK_PT) for c in labels) * 0.72 if turn else 0))
        bar_px = (FULL_WIDTH_PX - 90) / max(k, 1) * 0.8 / s * 0.95
        fits = text_px("8" * digits, MIN_FONT_PT) <= bar_px + 2  # the label's width against the bar's
    with style():
        fig = new_figure(inches(size_px[0]), inches(size_px[1]))
        ax = fig.subplots()
        pos = np.arange(k)
        width = 0.8 / s
        for j, split in enumerate(splits):
            values = [int(counts[split].get(c, 0)) for c in classes]
            offset = pos + (j - (s - 1) / 2) * width
            legend = split if per == "label" else f"{split} ({sum(values)})"
            bars = (ax.barh if horizontal else ax.bar)(offset, values, width * 0.95, color=palette[j % len(palette)],
                                                       label=legend, zorder=3)
            if fits:
                ax.bar_label(bars, fontsize=MIN_FONT_PT, padding=2, color="#374151")
        if horizontal:
            ax.set_yticks(pos, labels, fontsize=TICK_PT)
            ax.set_ylim(k - 0.5, -0.5)
            ax.set_xlabel("images")
            ax.grid(axis="y", visible=False)
            if fits:
                ax.margins(x=0.08)
        else:
            ax.set_xticks(pos, labels, rotation=45 if turn else 0, ha="right" if turn else "center")
            ax.set_ylabel("images")
            ax.grid(axis="x", visible=False)
            ax.margins(y=0.12)
        ax.set_title(f"Images per {per} and split" if s > 1 else f"Images per {per}", fontsize=TITLE_PT)
        fig.legend(loc="outside lower center", ncol=len(splits), fontsize=LEGEND_PT)
        return save_figure(fig, path, tall=True)  # a row per class: read by scrolling
