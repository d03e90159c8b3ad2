"""One function per figure. Each takes data already read from a run's records and an output path, and writes a PNG
through the plotting stack (`imgclf.plotting`: one style, Figure objects, atomic writes, no mathtext in user text).

Sizes are chosen for the report page: a figure is drawn as wide as its slot there (FULL_WIDTH_PX across the page,
HALF_WIDTH_PX beside another), so the page shows it at its natural size, and no text is smaller than MIN_FONT_PT.
Figures that need more room for many classes grow instead of shrinking their text; the page then shows them in a
scroll frame at their natural size.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..plotting import (
    BEST_COLOR,
    DPI,
    FULL_WIDTH_PX,
    GREY,
    HALF_WIDTH_PX,
    MAX_PIXELS,  # noqa: F401  (re-exported: the cap every figure here respects)
    MIN_FONT_PT,
    ONSET_COLOR,
    RIGHT_COLOR,
    TRAIN_COLOR,
    VAL_COLOR,
    WRONG_COLOR,
    font_families,
    inches,
    new_figure,
    plain_log_scale,
    save_figure,
    short,
    style,
)
from ..records import AverageScores, ClassScores, HistoryRow
from ..stats import mean_std

# Font sizes in points (at the plotting DPI of 110, one point is 1.53 pixels).
TICK_PT = 8.5
LEGEND_PT = 8.0
TITLE_PT = 10.0


def _text_px(text: str, pt: float, weight: str = "normal") -> float:
    """The width in pixels of `text` drawn at `pt` points, measured with the figures' own fonts (to size a figure
    before drawing it: margins for its labels, legend columns that fit)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    font = FontProperties(family=font_families(), size=pt, weight=weight)
    return TextToPath().get_text_width_height_descent(text, font, ismath=False)[0] * DPI / 72


def _title(fig, text: str) -> None:
    """The figure's title, centred on the figure: over an axes pushed right by long tick labels it would be cut.
    Half-width figures hold about 42 characters."""
    fig.suptitle(text, fontweight="bold", fontsize=TITLE_PT)


def _legend_columns(labels: Sequence[str], width_px: float, font_pt: float = LEGEND_PT,
                    handle_em: float = 2.0) -> int:
    """As many legend columns as fit in width_px. matplotlib fills columns top to bottom; each is as wide as its
    widest entry (handle, 0.8 em, then the text), columns 1.2 em apart, 0.4 em of padding each side."""
    em = font_pt * DPI / 72
    widths = [_text_px(t, font_pt) + (handle_em + 0.8) * em for t in labels]

    def width(columns: int) -> float:
        rows = math.ceil(len(widths) / columns)
        return (sum(max(widths[i:i + rows]) for i in range(0, len(widths), rows))
                + (columns - 1) * 1.2 * em + 0.8 * em)

    return max((c for c in range(1, len(widths) + 1) if width(c) <= width_px), default=1)


# ---------------------------------------------------------------------------------------- training curves
def plot_training_curves(history: Sequence[HistoryRow], path: str | os.PathLike, best_epoch: int | None = None,
                         onset: int | None = None) -> Path:
    """Accuracy and loss per epoch, train vs validation, from history.csv rows.

    Marks the kept (best) epoch, the overfitting onset (see interpret.overfitting_onset) and learning-rate
    changes: a few step changes get a labelled line each; schedules that change every epoch (cosine, one-cycle)
    get the learning rate drawn on a second axis instead, which marks every change without a forest of lines.
    Epochs with a frozen backbone are shaded.
    """
    from .interpret import lr_changes

    epochs = np.array([r.epoch for r in history], dtype=np.float64)
    col = {k: np.array([r.value(k) for r in history]) for k in ("acc", "val_acc", "loss", "val_loss", "lr", "frozen")}
    with style():
        fig = new_figure(inches(FULL_WIDTH_PX), inches(400))
        axes = fig.subplots(1, 2)
        marker = "o" if len(epochs) <= 40 else None
        panels = (("acc", "val_acc", "Accuracy"), ("loss", "val_loss", "Loss"))
        for ax, (train_key, val_key, title) in zip(axes, panels):
            for key, color, label in ((train_key, TRAIN_COLOR, "train"), (val_key, VAL_COLOR, "validation")):
                y = col[key]
                if np.isfinite(y).any():
                    ax.plot(epochs, y, color=color, marker=marker, markersize=3.5, linewidth=1.8, label=label)
            ax.set_title(title)
            ax.set_xlabel("epoch")
            if len(epochs):
                ax.set_xlim(epochs.min() - 0.5, epochs.max() + 0.5)
            ax.xaxis.get_major_locator().set_params(integer=True)
            frozen = epochs[col["frozen"] == 1]
            if len(frozen):
                ax.axvspan(frozen.min() - 0.5, frozen.max() + 0.5, color=GREY, alpha=0.12, lw=0,
                           label="backbone frozen")
            if best_epoch is not None:
                ax.axvline(best_epoch, color=BEST_COLOR, linewidth=1.6, linestyle="-", alpha=0.85,
                           label=f"best epoch ({best_epoch})")
                hit = epochs == best_epoch
                if hit.any() and np.isfinite(col[val_key][hit]).all():
                    ax.plot(epochs[hit], col[val_key][hit], marker="*", markersize=14, color=BEST_COLOR,
                            markeredgecolor="white", zorder=5, linestyle="none")
            if onset is not None:
                ax.axvspan(onset - 0.5, epochs.max() + 0.5, color=ONSET_COLOR, alpha=0.07, lw=0)
                ax.axvline(onset - 0.5, color=ONSET_COLOR, linestyle="--", linewidth=1.4,
                           label=f"overfitting from epoch {onset}")
        acc_ax, loss_ax = axes
        finite_acc = np.concatenate([col["acc"][np.isfinite(col["acc"])], col["val_acc"][np.isfinite(col["val_acc"])]])
        if len(finite_acc):
            acc_ax.set_ylim(max(0.0, finite_acc.min() - 0.05), min(1.02, max(finite_acc.max() + 0.03, 0.1)))
        changes = lr_changes(list(col["lr"]))
        handles, labels = loss_ax.get_legend_handles_labels()
        if changes and len(changes) <= 6:
            for ax in axes:
                for epoch, old, new in changes:
                    ax.axvline(epoch - 0.5, color=GREY, linestyle=":", linewidth=1.3)
            top = loss_ax.get_ylim()[1]
            for epoch, old, new in changes:
                loss_ax.annotate(f"lr {old:.2g}→{new:.2g}", (epoch - 0.5, top), xytext=(3, -3),
                                 textcoords="offset points", rotation=90, va="top", ha="left", fontsize=8, color=GREY)
            from matplotlib.lines import Line2D

            handles.append(Line2D([], [], color=GREY, linestyle=":", linewidth=1.3))
            labels.append("learning-rate change")
        elif changes:
            lr_ax = loss_ax.twinx()
            lr_ax.plot(epochs, col["lr"], color=GREY, linewidth=1.2, linestyle="-.", label="learning rate")
            lr_ax.set_ylabel("learning rate", color=GREY)
            lr_ax.tick_params(axis="y", colors=GREY)
            lr_ax.grid(False)
            lr_ax.spines["right"].set_visible(True)
            if np.nanmin(col["lr"]) > 0 and np.nanmax(col["lr"]) / np.nanmin(col["lr"]) > 20:
                plain_log_scale(lr_ax, "y")
            h2, l2 = lr_ax.get_legend_handles_labels()
            handles += h2
            labels += l2
        fig.legend(handles, labels, loc="outside lower center", ncol=_legend_columns(labels, FULL_WIDTH_PX - 20),
                   fontsize=LEGEND_PT)
        return save_figure(fig, path)


# ---------------------------------------------------------------------------------------- confusion matrix
def plot_confusion_matrix(confusion: Sequence[Sequence[int]], classes: Sequence[str], path: str | os.PathLike,
                          normalize: bool = False) -> Path:
    """Counts, or rates normalised per true class (the diagonal is then each class's recall).

    Cells are big enough for their numbers at a readable size (about 33 pixels), so the figure grows with the
    number of classes: up to 10 short class names it fits half the report's width. Above 30 classes the cell
    numbers are dropped (the colours carry the information) and rows shrink to the height of their label.
    """
    cm = np.asarray(confusion, dtype=np.float64)
    k = len(classes)
    support = cm.sum(1, keepdims=True)
    values = np.divide(cm, support, out=np.zeros_like(cm), where=support > 0) if normalize else cm
    numbers = k <= 30
    names = [short(c) for c in classes]
    label_px = max((_text_px(n, TICK_PT) for n in names), default=6) + 14
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
        vmax = 1.0 if normalize else max(values.max(), 1)
        # Many classes: a square-root colour scale, or the few-image confusions vanish next to the diagonal.
        from matplotlib.colors import Normalize, PowerNorm

        norm = PowerNorm(0.5, vmin=0, vmax=vmax) if not numbers else Normalize(vmin=0, vmax=vmax)
        im = ax.imshow(values, cmap="Blues", norm=norm, interpolation="nearest", aspect="equal")
        cbar = fig.colorbar(im, ax=ax, shrink=0.8, pad=0.02, fraction=0.06)
        cbar.ax.tick_params(labelsize=tick_font)
        ax.set_xticks(range(k), names, rotation=90 if turn else 0, fontsize=tick_font)
        ax.set_yticks(range(k), names, fontsize=tick_font)
        ax.set_xlabel("predicted class", fontsize=9)
        ax.set_ylabel("true class", fontsize=9)
        # Short titles: the page's caption says the rest, and a title wider than the figure would be cut.
        title = "Row-normalised (diagonal = recall)" if normalize else "Confusion matrix (image counts)"
        _title(fig, title + ("" if numbers else "\ncolour on a square-root scale: small confusions show"))
        for spine in ax.spines.values():
            spine.set_visible(False)
        if numbers:
            for t in range(k):
                for p in range(k):
                    v = values[t, p]
                    if normalize:
                        text = "0" if v == 0 else f"{v:.2f}"
                    else:
                        text = f"{int(v)}"
                    color = "white" if v > 0.55 * vmax else ("#9ca3af" if v == 0 else "#111827")
                    ax.text(p, t, text, ha="center", va="center", fontsize=cell_font, color=color)
        return save_figure(fig, path)


# ---------------------------------------------------------------------------------------- per-class bars
def plot_per_class_metrics(per_class: Mapping[str, ClassScores], path: str | os.PathLike,
                           macro: AverageScores | None = None) -> Path:
    """Precision, recall and F1 per class (horizontal bars, classes top to bottom), support written beside.

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
    with style():
        fig = new_figure(inches(HALF_WIDTH_PX), inches(100 + row_px * max(k, 1)))
        ax = fig.subplots()
        y = np.arange(k)
        for j, (name, color) in enumerate(metrics):
            values = [float(getattr(per_class[c], name)) for c in classes]
            if dots:
                ax.scatter(values, y, s=18, color=color, label=names[name], zorder=3)
            else:
                bars = ax.barh(y + (j - 1) * 0.27, values, height=0.26, color=color, label=names[name], zorder=3)
                if k <= 15:  # near-equal bars need their numbers to be told apart
                    ax.bar_label(bars, labels=[f"{v:.2f}" if v >= 0.2 else "" for v in values], label_type="edge",
                                 padding=-31, fontsize=MIN_FONT_PT, color="white", fontweight="bold")
        if dots:
            for yi in y:
                ax.axhline(yi, color="#e5e7eb", linewidth=0.6, zorder=1)
        if macro:
            ax.axvline(macro.f1, color="#047857", linestyle="--",
                       linewidth=1.2, label="macro F1")
        ax.set_yticks(y, [short(c, 16) for c in classes], fontsize=font)
        ax.set_ylim(k - 0.5, -0.5)  # first class on top, no empty margins
        ax.set_xlim(0, 1.0)
        ax.set_xlabel("score")
        ax.grid(axis="y", visible=False)
        for yi, c in zip(y, classes):
            ax.annotate(f"n={per_class[c].support}", (1.0, yi), xytext=(4, 0), textcoords="offset points",
                        va="center", fontsize=font, color=GREY, annotation_clip=False)
        _title(fig, "Precision, recall and F1 (n = support)")
        fig.legend(loc="outside lower center", ncol=4, fontsize=LEGEND_PT)
        return save_figure(fig, path)


# ---------------------------------------------------------------------------------------- ROC and PR
def _one_hot(y_true: np.ndarray, k: int) -> np.ndarray:
    return np.eye(k, dtype=np.int64)[np.asarray(y_true, dtype=np.int64)]


def _curve_style(k: int) -> dict[str, Any]:
    # Up to 10 classes: one colour and legend entry each. More: thin grey lines, the averages carry the legend.
    return {"linewidth": 1.4, "alpha": 0.9} if k <= 10 else {"linewidth": 0.7, "alpha": 0.35, "color": "#94a3b8"}


def _zoom_inset(ax, xlim: tuple[float, float], ylim: tuple[float, float], bounds: list[float]) -> None:
    """Repeat the axes' lines in an inset zoomed on the corner where good models differ.

    `bounds` must lie in the empty part of the axes (good models leave one): the legend sits below the axes, so
    the connector lines from the zoomed corner to the inset cross nothing but the plot's empty area.
    """
    from matplotlib.ticker import MaxNLocator

    inset = ax.inset_axes(bounds, xlim=xlim, ylim=ylim)
    for line in ax.get_lines():
        inset.plot(*line.get_data(), color=line.get_color(), linestyle=line.get_linestyle(),
                   linewidth=line.get_linewidth(), alpha=line.get_alpha(), drawstyle=line.get_drawstyle())
    inset.tick_params(labelsize=MIN_FONT_PT)
    inset.xaxis.set_major_locator(MaxNLocator(3))
    inset.yaxis.set_major_locator(MaxNLocator(3))
    inset.grid(True, alpha=0.25)
    inset.set_facecolor("white")
    for spine in inset.spines.values():
        spine.set_visible(True)
        spine.set_color("#9ca3af")
    inset.set_title("zoom", fontsize=MIN_FONT_PT, color=GREY, pad=3)
    ax.indicate_inset_zoom(inset, edgecolor=GREY)


def _curve_figure(entries: int, title_lines: int, columns: int):
    """A figure half the report wide: a square plot, its legend of `entries` below it in `columns` columns."""
    rows = math.ceil(entries / columns)
    height_px = 18 * title_lines + 16 + (HALF_WIDTH_PX - 55) + 45 + 19 * rows + 12
    fig = new_figure(inches(HALF_WIDTH_PX), inches(height_px))
    return fig, fig.subplots()


def _curve_legend(fig, ax, columns: int) -> None:
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=columns, fontsize=LEGEND_PT, handlelength=1.8,
               columnspacing=1.2)


def plot_roc_curves(y_true: Sequence[int], probs: np.ndarray, classes: Sequence[str], path: str | os.PathLike) -> Path:
    """One-vs-rest ROC per class with its AUC, plus micro- and macro-averaged curves."""
    from sklearn.metrics import auc, roc_curve

    y = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    k = len(classes)
    onehot = _one_hot(y, k)
    grid = np.linspace(0, 1, 501)
    tprs, aucs = [], {}
    labelled = [c for i, c in enumerate(classes) if 0 < onehot[:, i].sum() < len(y)] if k <= 10 else []
    legend = [f"{short(c, 13)} (AUC 0.000)" for c in labelled] + ["micro-average (AUC 0.000)"] * 2 + ["chance"]
    columns = _legend_columns(legend, HALF_WIDTH_PX - 4, handle_em=1.8)
    with style():
        fig, ax = _curve_figure(len(legend), 1 if k <= 10 else 3, columns)
        curve_kwargs = _curve_style(k)
        for i, c in enumerate(classes):
            if not (0 < onehot[:, i].sum() < len(y)):
                continue  # ROC needs both positives and negatives
            fpr, tpr, _ = roc_curve(onehot[:, i], probs[:, i])
            aucs[c] = auc(fpr, tpr)
            tprs.append(np.interp(grid, fpr, tpr))
            ax.plot(fpr, tpr, label=f"{short(c, 13)} (AUC {aucs[c]:.3f})" if k <= 10 else None, **curve_kwargs)
        if tprs:
            fpr, tpr, _ = roc_curve(onehot.ravel(), probs.ravel())
            ax.plot(fpr, tpr, color="#111827", linestyle="--", linewidth=2.2,
                    label=f"micro-average (AUC {auc(fpr, tpr):.3f})")
            mean_tpr = np.mean(tprs, axis=0)
            mean_tpr[0] = 0.0
            ax.plot(grid, mean_tpr, color="#7c3aed", linestyle=":", linewidth=2.6,
                    label=f"macro-average (AUC {np.mean(list(aucs.values())):.3f})")
        ax.plot([0, 1], [0, 1], color=GREY, linewidth=0.8, linestyle="-", alpha=0.5, label="chance")
        if aucs and np.mean(list(aucs.values())) >= 0.95:
            # Good models hug the top-left corner; the inset shows where they actually differ. It sits below the
            # chance diagonal, where no curve of such a model goes (its tick labels and title too).
            floor = min(float(np.interp(0.15, *line.get_data())) for line in ax.get_lines()[:-1])
            _zoom_inset(ax, (0.0, 0.15), (max(0.0, floor - 0.03), 1.005), [0.58, 0.08, 0.39, 0.33])
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        title = "ROC curves, one class vs rest"
        if k > 10 and aucs:
            worst = min(aucs, key=aucs.get)
            title += f"\n{len(aucs)} classes in grey\nlowest AUC: {short(worst, 14)} ({aucs[worst]:.3f})"
        ax.set_title(title, fontsize=TITLE_PT)
        ax.set_aspect("equal")
        _curve_legend(fig, ax, columns)
        return save_figure(fig, path)


def _pr_floor(recall: np.ndarray, precision: np.ndarray, start: float = 0.7) -> float:
    """Lowest precision worth zooming to: over recall in [start, 1), plus the best precision at full recall
    (the final drop to the class prevalence at recall 1 would stretch the zoom to the whole axis)."""
    recall, precision = np.asarray(recall), np.asarray(precision)
    inside = precision[(recall >= start) & (recall < 1)]
    at_full = precision[recall >= 1]
    values = list(inside) + ([float(at_full.max())] if len(at_full) else [])
    return float(min(values)) if values else 1.0


def plot_pr_curves(y_true: Sequence[int], probs: np.ndarray, classes: Sequence[str], path: str | os.PathLike) -> Path:
    """Precision-recall per class with average precision (AP), plus the micro-average. y_true: class ids, or
    (N, K) multi-hot label sets (multi-label runs: one curve per label)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    y = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    k = len(classes)
    onehot = y if y.ndim == 2 else _one_hot(y, k)
    labelled = [c for i, c in enumerate(classes) if onehot[:, i].any()] if k <= 10 else []
    legend = [f"{short(c, 13)} (AP 0.000)" for c in labelled] + ["micro-average (AP 0.000)"]
    columns = _legend_columns(legend, HALF_WIDTH_PX - 4, handle_em=1.8)
    with style():
        fig, ax = _curve_figure(len(legend), 1 if k <= 10 else 3, columns)
        curve_kwargs = _curve_style(k)
        aps = {}
        for i, c in enumerate(classes):
            if not onehot[:, i].any():
                continue
            precision, recall, _ = precision_recall_curve(onehot[:, i], probs[:, i])
            aps[c] = average_precision_score(onehot[:, i], probs[:, i])
            ax.step(recall, precision, where="post", label=f"{short(c, 13)} (AP {aps[c]:.3f})" if k <= 10 else None,
                    **curve_kwargs)
        if aps:
            precision, recall, _ = precision_recall_curve(onehot.ravel(), probs.ravel())
            ap = average_precision_score(onehot.ravel(), probs.ravel())
            ax.step(recall, precision, where="post", color="#111827", linestyle="--", linewidth=2.2,
                    label=f"micro-average (AP {ap:.3f})")
            if ap >= 0.95:
                # good models run along the top and down the right edge: the lower left is empty
                floor = min(_pr_floor(*line.get_data()) for line in ax.get_lines())
                _zoom_inset(ax, (0.7, 1.005), (max(0.0, floor - 0.03), 1.005), [0.17, 0.08, 0.45, 0.4])
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(0, 1.03)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        title = "Precision-recall curves"
        if k > 10 and aps:
            worst = min(aps, key=aps.get)
            title += f"\n{len(aps)} classes in grey\nlowest AP: {short(worst, 14)} ({aps[worst]:.3f})"
        ax.set_title(title, fontsize=TITLE_PT)
        ax.set_aspect("equal")
        _curve_legend(fig, ax, columns)
        return save_figure(fig, path)


# ---------------------------------------------------------------------------------------- calibration
def plot_reliability(y_true: Sequence[int], probs: np.ndarray, path: str | os.PathLike, bins: int = 15,
                     title: str = "Reliability") -> Path:
    """Reliability diagram: accuracy vs confidence per bin, the gap to the diagonal, ECE; counts below.

    The legend sits below the figure, never on the plot: bars can stand anywhere from 0 to 1. title: what the
    diagram shows ('Before calibration' for the raw softmax of a calibrated run)."""
    from .interpret import calibration_verdict
    from .metrics import expected_calibration_error

    y = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    ece, table = expected_calibration_error(probs, y, bins)
    with style():
        fig = new_figure(inches(HALF_WIDTH_PX), inches(540))
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
        width = 1.0 / bins
        centers = np.array([(b["lo"] + b["hi"]) / 2 for b in table])
        acc = np.array([b["accuracy"] if b["accuracy"] is not None else np.nan for b in table])
        conf = np.array([b["confidence"] if b["confidence"] is not None else np.nan for b in table])
        has = np.isfinite(acc)
        counts = np.array([b["count"] for b in table])
        # Bins holding under 2 % of the images are drawn faint: their accuracy is a coin toss, not a trend.
        faint = counts < max(2, 0.02 * counts.sum())
        for sel, alpha, label in ((has & ~faint, 1.0, "accuracy"), (has & faint, 0.35, "accuracy (few images)")):
            if sel.any():
                top.bar(centers[sel], acc[sel], width=width * 0.95, color="#3b82f6", alpha=alpha, edgecolor="white",
                        label=label, zorder=2)
        gap_lo = np.minimum(acc, conf)[has]
        top.bar(centers[has], np.abs(conf - acc)[has], bottom=gap_lo, width=width * 0.95, facecolor="none",
                hatch="///", edgecolor=ONSET_COLOR, linewidth=0.8, label="gap to mean confidence", zorder=3)
        top.plot([0, 1], [0, 1], color=GREY, linestyle="--", linewidth=1, label="perfect calibration")
        top.set_xlim(0, 1)
        top.set_ylim(0, 1.02)
        top.set_ylabel("accuracy")
        over = float(np.nansum((conf - acc)[has] * counts[has]) / max(counts.sum(), 1))
        _title(fig, f"{title} — ECE {ece:.3f}, {calibration_verdict(over)}")
        handles, labels = top.get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=LEGEND_PT, columnspacing=1.2)
        bars = bottom.bar(centers, counts, width=width * 0.95, color="#94a3b8")
        bottom.bar_label(bars, labels=[_count(c) for c in counts], fontsize=MIN_FONT_PT, padding=1, color="#374151")
        bottom.margins(y=0.25)
        bottom.set_ylabel("images")
        bottom.set_xlabel("confidence (top-class probability)")
        return save_figure(fig, path)


def plot_score_distributions(scores: Mapping[str, np.ndarray], threshold: float | None, detector: str,
                             path: str | os.PathLike, bins: int = 40) -> Path:
    """In-distribution scores per split ({"validation": ..., "test": ...}) as overlaid density histograms, with the
    unknown threshold: images left of it are called unknown. The range is the splits' 0.5th to 100th percentile
    (plus the threshold), so that a few extreme images do not squeeze the rest into one bin."""
    palette = {"validation": "#2563eb", "test": "#f59e0b"}
    values = {name: np.asarray(v, dtype=np.float64)[np.isfinite(v)] for name, v in scores.items() if len(v)}
    pooled = np.concatenate(list(values.values())) if values else np.zeros(1)
    lo, hi = float(np.percentile(pooled, 0.5)), float(pooled.max())
    if threshold is not None:
        lo, hi = min(lo, threshold), max(hi, threshold)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    with style():
        fig = new_figure(inches(HALF_WIDTH_PX), inches(400))
        ax = fig.subplots()
        for name, v in values.items():
            below = float(np.mean(v < threshold)) if threshold is not None else 0.0
            label = f"{name} ({len(v)} images" + (f", {100 * below:.1f} % unknown)" if threshold is not None else ")")
            ax.hist(np.clip(v, lo, hi), bins=edges, density=True, histtype="stepfilled", alpha=0.35,
                    color=palette.get(name, GREY), edgecolor=palette.get(name, GREY), linewidth=1.2, label=label)
        if threshold is not None:
            ax.axvline(threshold, color=ONSET_COLOR, linestyle="--", linewidth=1.2,
                       label=f"threshold {threshold:.4g}: unknown below")
        ax.set_xlabel(f"{detector} score (higher: more like training)")
        ax.set_ylabel("density")
        ax.set_yticks([])
        _title(fig, "Unknown-input scores, validation and test")
        fig.legend(loc="outside lower center", ncol=1, fontsize=LEGEND_PT)
        return save_figure(fig, path)


def _count(n: int) -> str:
    """A bin's image count in at most four characters (a bar is about 25 pixels wide): 7, 512, 3.4k, 12k."""
    if not n:
        return ""
    return str(n) if n < 1000 else f"{n / 1000:.1f}k" if n < 9950 else f"{round(n / 1000)}k"


# ---------------------------------------------------------------------------------------- image grids
def _show(ax, image: np.ndarray) -> None:
    img = np.asarray(image)
    small = max(img.shape[:2]) < 96  # tiny inputs: crisp pixels beat a blurry upscale
    kwargs = {"interpolation": "nearest" if small else "antialiased"}
    if img.ndim == 3 and img.shape[-1] == 1:
        ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=255, **kwargs)
    else:
        ax.imshow(img, **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def _mark(ax, color: str, width: float) -> None:
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_color(color)
        spine.set_linewidth(width)


def _grid(n: int, max_cols: int) -> tuple[int, int]:
    cols = max(1, min(max_cols, n))
    return math.ceil(max(n, 1) / cols), cols


def _cell_axes(n: int, cols: int, images_per_cell: int = 1, caption_in: float = 0.5, pad_in: float = 0.14,
               title_in: float = 0.4, width_px: float = FULL_WIDTH_PX, title: str = ""):
    """A figure with n cells in rows of up to `cols`, placed by hand (image grids: constrained layout costs seconds
    for 20+ axes). A full row of `cols` cells is width_px wide, so the page shows the grid at its natural size;
    fewer cells keep that cell size in a narrower figure, never narrower than its bold `title`.

    Each cell is a caption band over `images_per_cell` square image axes stacked vertically.
    Returns (figure, [[axes of cell 0], [axes of cell 1], ...]).
    """
    img_in = (inches(width_px) - pad_in) / cols - pad_in
    rows, cols = _grid(n, cols)
    grid_w = cols * (img_in + pad_in) + pad_in
    width = max(grid_w, inches(_text_px(title, TITLE_PT, "bold") + 24))
    cell_h = caption_in + images_per_cell * img_in + (images_per_cell - 1) * 0.04
    height = title_in + rows * (cell_h + pad_in) + pad_in
    fig = new_figure(width, height, layout=None)
    cells = []
    for i in range(n):
        r, c = divmod(i, cols)
        left = (width - grid_w) / 2 + pad_in + c * (img_in + pad_in)
        top = height - title_in - r * (cell_h + pad_in) - caption_in
        axes = []
        for j in range(images_per_cell):
            bottom = top - (j + 1) * img_in - j * 0.04
            axes.append(fig.add_axes((left / width, bottom / height, img_in / width, img_in / height)))
        cells.append(axes)
    return fig, cells


CAPTION_PT = 8.0  # "True: <13 characters>" in bold fits a cell of a six-column grid (146 pixels)


def _caption(s: Mapping[str, Any], show_loss: bool = False) -> str:
    text = f"True: {short(s['true'], 13)}\nPred: {short(s['pred'], 13)} ({s['prob']:.2f})"
    return text + (f"\nloss {s['loss']:.2f}" if show_loss else "")


def _is_wrong(s: Mapping[str, Any]) -> bool:
    return not s.get("correct", s["true"] == s["pred"])


def plot_prediction_grid(samples: Sequence[Mapping[str, Any]], path: str | os.PathLike,
                         title: str = "Sample predictions", show_loss: bool = False, max_cols: int = 6) -> Path:
    """Images captioned "True: x / Pred: y (p)"; wrong predictions get a red caption and a red frame.

    Each sample: {"image": uint8 HWC, "true", "pred", "prob", "loss" (if show_loss), "correct"}.
    """
    n_wrong = sum(1 for s in samples if _is_wrong(s))
    # The sample mixes right and wrong on purpose: say so, or the share of red reads as the error rate.
    drawn = "" if show_loss else ", mixed on purpose (not the error rate)"
    heading = f"{title}: {n_wrong} wrong (red frame) and {len(samples) - n_wrong} right{drawn}"
    with style():
        fig, cells = _cell_axes(max(len(samples), 1), max_cols, caption_in=0.62 if show_loss else 0.5, title=heading)
        for (ax,), s in zip(cells, samples):
            _show(ax, s["image"])
            wrong = _is_wrong(s)
            ax.set_title(_caption(s, show_loss), fontsize=CAPTION_PT, color=WRONG_COLOR if wrong else RIGHT_COLOR,
                         fontweight="bold" if wrong else "normal", pad=4)
            _mark(ax, WRONG_COLOR if wrong else "#d1d5db", 3.0 if wrong else 0.8)
        if not samples:
            cells[0][0].axis("off")
            cells[0][0].text(0.5, 0.5, "no readable images", ha="center", va="center", color=GREY)
        fig.suptitle(heading, fontweight="bold", fontsize=TITLE_PT, y=1 - 0.1 / fig.get_figheight())
        return save_figure(fig, path)


def plot_top_losses(samples: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """The images the model got most confidently wrong (highest loss first)."""
    return plot_prediction_grid(samples, path, title="Top losses", show_loss=True)


def plot_gradcam_grid(samples: Sequence[Mapping[str, Any]], path: str | os.PathLike, layer: str = "",
                      max_cols: int = 6) -> Path:
    """Each sample as the input image above its Grad-CAM overlay; wrong predictions marked red.

    Each sample: {"image": uint8 HWC, "heatmap": float (H, W) in [0, 1], "true", "pred", "prob", "correct"}.
    """
    heading = "Grad-CAM: where the model looked for its predicted class" + (f" (layer {layer})" if layer else "")
    with style():
        fig, cells = _cell_axes(max(len(samples), 1), max_cols, images_per_cell=2, caption_in=0.62, title=heading)
        for (top, bottom), s in zip(cells, samples):
            wrong = _is_wrong(s)
            _show(top, s["image"])
            flat = float(np.max(s["heatmap"])) < 1e-6  # Grad-CAM found no positive evidence for the class
            top.set_title(_caption(s) + ("\n(no positive evidence)" if flat else ""), fontsize=CAPTION_PT,
                          color=WRONG_COLOR if wrong else RIGHT_COLOR, fontweight="bold" if wrong else "normal", pad=4)
            _show(bottom, s["image"])
            h, w = s["image"].shape[:2]
            bottom.imshow(s["heatmap"], cmap="jet", alpha=0.45, vmin=0, vmax=1, extent=(-0.5, w - 0.5, h - 0.5, -0.5),
                          interpolation="bilinear")
            for ax in (top, bottom):
                _mark(ax, WRONG_COLOR if wrong else "#d1d5db", 3.0 if wrong else 0.8)
        if not samples:
            for ax in cells[0]:
                ax.axis("off")
        fig.suptitle(heading, fontweight="bold", fontsize=TITLE_PT, y=1 - 0.1 / fig.get_figheight())
        return save_figure(fig, path)


# ---------------------------------------------------------------------------------------- data set figures
def plot_class_distribution(counts: Mapping[str, Mapping[str, int]], path: str | os.PathLike) -> Path:
    """Images per class, one bar per split ({split: {class: n}}); horizontal bars above 20 classes.

    Each bar is labelled with its count where the label fits the bar (its width, or its height when horizontal).
    """
    splits = list(counts)
    classes = list(next(iter(counts.values()))) if counts else []
    k, s = len(classes), max(len(splits), 1)
    palette = ["#2563eb", "#f59e0b", "#10b981", "#a855f7", "#64748b"]
    horizontal = k > 20
    labels = [short(c, 22) for c in classes]
    turn = not horizontal and k > 6 and max(len(c) for c in labels) > 3
    digits = len(str(max((int(v) for split in counts.values() for v in split.values()), default=0)))
    if horizontal:
        row_px = 24.0
        size_px = (FULL_WIDTH_PX, 110 + row_px * k)
        fits = row_px * 0.8 / s * 0.95 >= 12  # the label's height against the bar's
    else:
        size_px = (FULL_WIDTH_PX, 300 + (max(_text_px(c, TICK_PT) for c in labels) * 0.72 if turn else 0))
        bar_px = (FULL_WIDTH_PX - 90) / max(k, 1) * 0.8 / s * 0.95
        fits = _text_px("8" * digits, MIN_FONT_PT) <= bar_px + 2  # the label's width against the bar's
    with style():
        fig = new_figure(inches(size_px[0]), inches(size_px[1]))
        ax = fig.subplots()
        pos = np.arange(k)
        width = 0.8 / s
        for j, split in enumerate(splits):
            values = [int(counts[split].get(c, 0)) for c in classes]
            offset = pos + (j - (s - 1) / 2) * width
            bars = (ax.barh if horizontal else ax.bar)(offset, values, width * 0.95, color=palette[j % len(palette)],
                                                       label=f"{split} ({sum(values)})", zorder=3)
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
        ax.set_title("Images per class and split" if s > 1 else "Images per class", fontsize=TITLE_PT)
        fig.legend(loc="outside lower center", ncol=len(splits), fontsize=LEGEND_PT)
        return save_figure(fig, path)


def plot_class_samples(paths: Mapping[str, str], path: str | os.PathLike, max_side: int = 160) -> Path:
    """One example image per class ({class: image path}), at its own aspect ratio; unreadable ones are marked."""
    from PIL import Image

    from ..data.decode import DecodeError, open_image

    names = list(paths)
    n = max(len(names), 1)
    cols = math.ceil(n / math.ceil(n / 10))  # rows of at most 10, as even as possible
    width_px = min(FULL_WIDTH_PX, cols * 175 + 15)  # images up to 160 pixels
    cell_px = (width_px - 15) / cols
    name_chars = max((n for n in range(3, 41) if _text_px("m" * n, CAPTION_PT) * 0.85 <= cell_px), default=3)
    with style():
        fig, cells = _cell_axes(n, cols, caption_in=0.3, width_px=width_px, title="One sample image per class")
        if not names:
            cells[0][0].axis("off")
        for (ax,), name in zip(cells, names):
            try:
                arr = open_image(paths[name], None, "rgb")
                img = Image.fromarray(arr)
                img.thumbnail((max_side, max_side))
                _show(ax, np.asarray(img))
                _mark(ax, "#d1d5db", 0.8)
            except DecodeError as exc:
                ax.axis("off")
                ax.text(0.5, 0.5, f"unreadable:\n{exc}", ha="center", va="center", fontsize=MIN_FONT_PT,
                        color=WRONG_COLOR, wrap=True)
            ax.set_title(short(name, name_chars), fontsize=CAPTION_PT, pad=4)
        fig.suptitle("One sample image per class", fontweight="bold", fontsize=TITLE_PT,
                     y=1 - 0.1 / fig.get_figheight())
        return save_figure(fig, path)


# ---------------------------------------------------------------------------------------- run comparison
def plot_compare_curves(groups: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Validation accuracy and loss of several runs overlaid, one colour per group.

    Each group: {"label": str, "histories": [the HistoryRow list of each run]}. A group of several seeds is drawn as
    its mean with a ±1 std band (where at least two runs reached that epoch) over thin lines of the runs.
    """
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors if len(groups) <= 10 else colormaps["tab20"].colors
    with style():
        fig = new_figure(12, 4.6)
        axes = fig.subplots(1, 2)
        for g, group in enumerate(groups):
            color = palette[g % len(palette)]
            for ax, key in zip(axes, ("val_acc", "val_loss")):
                series = [(np.array([r.epoch for r in h], dtype=np.float64), np.array([r.value(key) for r in h]))
                          for h in group["histories"]]
                series = [(e[np.isfinite(v)], v[np.isfinite(v)]) for e, v in series]
                series = [(e, v) for e, v in series if len(v)]
                if not series:
                    continue
                n = len(series)
                label = group["label"] + (f" (mean of {n} seeds ± std)" if n > 1 else "")
                if n == 1:
                    e, v = series[0]
                    ax.plot(e, v, color=color, linewidth=1.9, marker="o" if len(e) <= 30 else None, markersize=3,
                            label=label)
                    continue
                for e, v in series:
                    ax.plot(e, v, color=color, linewidth=0.7, alpha=0.35)
                epochs = np.unique(np.concatenate([e for e, _ in series]))
                stack = np.full((n, len(epochs)), np.nan)
                for i, (e, v) in enumerate(series):
                    stack[i, np.searchsorted(epochs, e)] = v
                stats = [mean_std(column) for column in stack.T]
                mean = np.array([st.mean for st in stats], dtype=np.float64)
                # epochs only one run reached: no std there, so no band
                std = np.array([np.nan if st.std is None else st.std for st in stats])
                ax.plot(epochs, mean, color=color, linewidth=2.1, label=label)
                band = np.isfinite(std)
                ax.fill_between(epochs[band], (mean - std)[band], (mean + std)[band], color=color, alpha=0.18, lw=0)
        for ax, title in zip(axes, ("Validation accuracy", "Validation loss")):
            ax.set_title(title)
            ax.set_xlabel("epoch")
            ax.xaxis.get_major_locator().set_params(integer=True)
        handles, labels = axes[1].get_legend_handles_labels()
        if not handles:
            handles, labels = axes[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="outside lower center", ncol=min(3, len(labels)), fontsize=8.5)
        return save_figure(fig, path)
