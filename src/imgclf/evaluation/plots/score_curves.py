"""Figures of the model's scores: one-vs-rest ROC and precision-recall curves, the reliability diagram, and the
unknown-input score distributions."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...plotting import (
    DPI,
    GREY,
    HALF_WIDTH_PX,
    MIN_FONT_PT,
    ONSET_COLOR,
    inches,
    new_figure,
    distinct_short,
    save_figure,
    style,
)
from .layout import LEGEND_PT, TITLE_PT, figure_title, legend_columns, wrapped


def _one_hot(y_true: np.ndarray, k: int) -> np.ndarray:
    return np.eye(k, dtype=np.int64)[np.asarray(y_true, dtype=np.int64)]


def _curve_style(k: int) -> dict[str, Any]:
    # Up to 10 classes: one colour and legend entry each. More: thin grey lines, the averages carry the legend.
    return {"linewidth": 1.4, "alpha": 0.9} if k <= 10 else {"linewidth": 0.7, "alpha": 0.35, "color": "#94a3b8"}


ZOOM_CONNECTOR = "#b6c2d1"


def _zoom_inset(ax, xlim: tuple[float, float], ylim: tuple[float, float], bounds: list[float]) -> None:
    """Repeat the axes' lines in an inset zoomed on the corner where good models differ.

    `bounds` must lie in the empty part of the axes (good models leave one): the legend sits below the axes, so
    the connector lines from the zoomed corner to the inset cross no curve, only the chance diagonal, if any.
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
    # dotted and lighter than the chance diagonal they cross in ROC plots: a reader saw three "chance" lines
    indicator = ax.indicate_inset_zoom(inset, edgecolor=GREY)
    for connector in indicator.connectors:
        connector.set(linestyle=":", color=ZOOM_CONNECTOR, linewidth=0.9, alpha=1.0)


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


def _finish_curves(fig, ax, title: str, scores: dict[str, float], score_name: str, grey: bool, columns: int,
                   path: str | os.PathLike) -> Path:
    """Title (with the lowest-scoring class when the classes are drawn in grey), square axes, legend below; saved."""
    if grey and scores:
        worst = min(scores, key=scores.get)
        names = list(scores)  # every class: the cut name must name one of them
        shown = distinct_short(names, 14)[names.index(worst)]
        # tied as the title shows the score: one name alone read as the only class that low
        tied = sum(f"{v:.3f}" == f"{scores[worst]:.3f}" for v in scores.values()) - 1
        more = f" and {tied} more" if tied else ""
        lowest = wrapped(f"lowest {score_name}: {shown}{more} ({scores[worst]:.3f})",
                         fig.get_figwidth() * DPI * 0.85, TITLE_PT, "bold")
        title += f"\n{len(scores)} classes in grey\n{lowest}"
    ax.set_title(title, fontsize=TITLE_PT)
    ax.set_aspect("equal")
    _curve_legend(fig, ax, columns)
    return save_figure(fig, path)


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
    shown = dict(zip(labelled, distinct_short(labelled, 13)))
    legend = [f"{shown[c]} (AUC 0.000)" for c in labelled] + ["micro-average (AUC 0.000)"] * 2 + ["chance"]
    columns = legend_columns(legend, HALF_WIDTH_PX - 4, handle_em=1.8)
    with style():
        fig, ax = _curve_figure(len(legend), 1 if k <= 10 else 3, columns)
        curve_kwargs = _curve_style(k)
        for i, c in enumerate(classes):
            if not (0 < onehot[:, i].sum() < len(y)):
                continue  # ROC needs both positives and negatives
            fpr, tpr, _ = roc_curve(onehot[:, i], probs[:, i])
            aucs[c] = auc(fpr, tpr)
            tprs.append(np.interp(grid, fpr, tpr))
            ax.plot(fpr, tpr, label=f"{shown[c]} (AUC {aucs[c]:.3f})" if k <= 10 else None, **curve_kwargs)
        if tprs:
            fpr, tpr, _ = roc_curve(onehot.ravel(), probs.ravel())
            ax.plot(fpr, tpr, color="#111827", linestyle="--", linewidth=2.2,
                    label=f"micro-average (AUC {auc(fpr, tpr):.3f})")
            mean_tpr = np.mean(tprs, axis=0)
            mean_tpr[0] = 0.0
            ax.plot(grid, mean_tpr, color="#7c3aed", linestyle=":", linewidth=2.6,
                    label=f"macro-average (AUC {np.mean(list(aucs.values())):.3f})")
        ax.plot([0, 1], [0, 1], color=GREY, linewidth=0.8, linestyle="-", alpha=0.5, label="chance")
        # (every curve perfect: nothing differs in the corner, and an inset would only add lines)
        if aucs and np.mean(list(aucs.values())) >= 0.95 and min(aucs.values()) < 0.9995:
            # Good models hug the top-left corner; the inset shows where they actually differ. It sits below the
            # chance diagonal, where no curve of such a model goes (its tick labels and title too).
            floor = min(float(np.interp(0.15, *line.get_data())) for line in ax.get_lines()[:-1])
            _zoom_inset(ax, (0.0, 0.15), (max(0.0, floor - 0.03), 1.005), [0.58, 0.08, 0.39, 0.33])
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        return _finish_curves(fig, ax, "ROC curves, one class vs rest", aucs, "AUC", k > 10, columns, path)


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
    shown = dict(zip(labelled, distinct_short(labelled, 13)))
    legend = [f"{shown[c]} (AP 0.000)" for c in labelled] + ["micro-average (AP 0.000)"]
    columns = legend_columns(legend, HALF_WIDTH_PX - 4, handle_em=1.8)
    with style():
        fig, ax = _curve_figure(len(legend), 1 if k <= 10 else 3, columns)
        curve_kwargs = _curve_style(k)
        aps = {}
        for i, c in enumerate(classes):
            if not onehot[:, i].any():
                continue
            precision, recall, _ = precision_recall_curve(onehot[:, i], probs[:, i])
            aps[c] = average_precision_score(onehot[:, i], probs[:, i])
            ax.step(recall, precision, where="post", label=f"{shown[c]} (AP {aps[c]:.3f})" if k <= 10 else None,
                    **curve_kwargs)
        if aps:
            precision, recall, _ = precision_recall_curve(onehot.ravel(), probs.ravel())
            ap = average_precision_score(onehot.ravel(), probs.ravel())
            ax.step(recall, precision, where="post", color="#111827", linestyle="--", linewidth=2.2,
                    label=f"micro-average (AP {ap:.3f})")
            if ap >= 0.95 and min(aps.values()) < 0.9995:
                # good models run along the top and down the right edge: the lower left is empty
                floor = min(_pr_floor(*line.get_data()) for line in ax.get_lines())
                _zoom_inset(ax, (0.7, 1.005), (max(0.0, floor - 0.03), 1.005), [0.17, 0.08, 0.45, 0.4])
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(0, 1.03)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        return _finish_curves(fig, ax, "Precision-recall curves", aps, "AP", k > 10, columns, path)


# ---------------------------------------------------------------------------------------- calibration
def plot_reliability(y_true: Sequence[int], probs: np.ndarray, path: str | os.PathLike, bins: int = 15,
                     title: str = "Reliability") -> Path:
    """Reliability diagram: accuracy vs confidence per bin, the gap to the diagonal, ECE; counts below.

    The legend sits below the figure, never on the plot: bars can stand anywhere from 0 to 1. title: what the
    diagram shows ('Before calibration' for the raw softmax of a calibrated run)."""
    from matplotlib.ticker import MaxNLocator

    from ..interpret import calibration_verdict
    from ..metrics import expected_calibration_error

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
        verdict = f"ECE {ece:.3f}, {calibration_verdict(over, ece)}"
        # a half-width figure holds about 42 characters: the title was cut at both edges beyond them
        figure_title(fig, f"{title} — {verdict}" if len(title) + len(verdict) + 3 <= 42 else f"{title}\n{verdict}")
        handles, labels = top.get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=LEGEND_PT, columnspacing=1.2)
        bars = bottom.bar(centers, counts, width=width * 0.95, color="#94a3b8")
        bottom.bar_label(bars, labels=[_count(c) for c in counts], fontsize=MIN_FONT_PT, padding=1, color="#374151")
        bottom.margins(y=0.25)
        bottom.set_ylabel("images")
        # image counts: no 2.5 tick; 3 ticks in the short panel (ten packed its labels into one another)
        bottom.yaxis.set_major_locator(MaxNLocator(nbins=3, integer=True))
        bottom.set_xlabel("confidence (top-class probability)")
        return save_figure(fig, path)


def plot_score_distributions(scores: Mapping[str, np.ndarray], threshold: float | None, detector: str,
                             path: str | os.PathLike, bins: int = 40) -> Path:
    """In-distribution scores per split ({"validation": ..., "test": ...}; the title names them) as overlaid density
    histograms, with the unknown threshold: images left of it are called unknown. The range is the splits' 0.5th to
    100th percentile (plus the threshold), so that a few extreme images do not squeeze the rest into one bin."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

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
            label = f"{name} ({len(v)} image{'s' if len(v) != 1 else ''}" + (
                f", {100 * below:.1f} % unknown)" if threshold is not None else ")")
            ax.hist(np.clip(v, lo, hi), bins=edges, density=True, histtype="stepfilled", alpha=0.35,
                    color=palette.get(name, GREY), edgecolor=palette.get(name, GREY), linewidth=1.2, label=label)
        if threshold is not None:
            # written as the report's facts table writes it (three decimals): -1.582e+04 beside -15818.470
            ax.axvline(threshold, color=ONSET_COLOR, linestyle="--", linewidth=1.2,
                       label=f"threshold {threshold:.3f}: unknown below")
        # few ticks, in thousands where long: a pretrained backbone's Mahalanobis scores (-16000 ... -8000) ran
        # together into one unreadable string across the half-width figure
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.xaxis.set_major_formatter(FuncFormatter(_compact_tick))
        ax.set_xlabel(f"{detector} score (higher: more like training)")
        ax.set_ylabel("density")
        ax.set_yticks([])
        figure_title(fig, "Unknown-input scores, " + " and ".join(values))
        fig.legend(loc="outside lower center", ncol=1, fontsize=LEGEND_PT)
        return save_figure(fig, path)


def _compact_tick(value: float, _position: object = None) -> str:
    """A score axis tick in at most six characters: 0.95, -120, 12k, -15.5k."""
    if abs(value) >= 10_000:
        return f"{value / 1000:.4g}k".replace("-", "\u2212")
    return f"{value:.4g}".replace("-", "\u2212")


def _count(n: int) -> str:
    """A bin's image count in at most four characters (a bar is about 25 pixels wide): 7, 512, 3.4k, 12k."""
    if not n:
        return ""
    return str(n) if n < 1000 else f"{n / 1000:.1f}k" if n < 9950 else f"{round(n / 1000)}k"
