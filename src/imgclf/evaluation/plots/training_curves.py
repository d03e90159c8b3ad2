"""Curves over epochs: one run's training curves, and several runs' validation curves overlaid (compare)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...plotting import (
    BEST_COLOR,
    FULL_WIDTH_PX,
    GREY,
    ONSET_COLOR,
    TRAIN_COLOR,
    VAL_COLOR,
    inches,
    new_figure,
    plain_log_scale,
    save_figure,
    style,
)
from ...records import HistoryRow
from ...stats import mean_std
from .layout import LEGEND_PT, legend_columns


# A loss this many times the run's median puts the loss panel on a log scale. A run at a high learning rate on a
# small data set can have one validation epoch at loss 2,000 against 0.7 for the others (S5 stand-in, fast recipe):
# on a linear axis every other epoch is a flat line at zero. Measured max / median: 2.0-3.4 for the Fashion-MNIST
# and S5 model_s runs of benchmarks/, 350-8,700 for the fast recipe's runs on the S3 and S5 stand-ins.
SPIKE_RATIO = 20.0


def loss_spikes(losses: np.ndarray) -> bool:
    """Whether the finite, positive losses of a run reach SPIKE_RATIO times their median."""
    values = np.asarray(losses, dtype=np.float64)
    values = values[np.isfinite(values)]
    return len(values) >= 3 and values.min() > 0 and values.max() > SPIKE_RATIO * np.median(values)


def plot_training_curves(history: Sequence[HistoryRow], path: str | os.PathLike, best_epoch: int | None = None,
                         onset: int | None = None, kept_val_acc: float | None = None) -> Path:
    """Accuracy and loss per epoch, train vs validation, from history.csv rows.

    kept_val_acc: the kept weights' validation accuracy once their batch-norm statistics were recomputed (model.json
    `val_accuracy_after_batch_norm`), drawn at the kept epoch where it differs from that epoch's curve: the curve
    read 18 % where the model kept scored 60 %, and only the report's text said why.

    Marks the kept (best) epoch, the overfitting onset (see interpret.overfitting_onset) and learning-rate
    changes: a few step changes get a labelled line each; schedules that change every epoch (cosine, one-cycle)
    get the learning rate drawn on a second axis instead, which marks every change without a forest of lines.
    Epochs with a frozen backbone are shaded.
    """
    from ..interpret import lr_changes

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
            # an epoch cut short (a time limit, a signal) is drawn hollow, with its share: its train loss is over
            # part of a pass and its validation can dip, and it read as any other epoch
            cut = [r for r in history if r.fraction is not None and r.fraction < 1]
            for r in cut:
                for key, color in ((train_key, TRAIN_COLOR), (val_key, VAL_COLOR)):
                    y = r.value(key)
                    if np.isfinite(y):
                        named = ax is axes[1] and key == train_key and r is cut[0]  # one legend entry
                        ax.plot([r.epoch], [y], marker="o", markersize=7, markerfacecolor="white",
                                markeredgecolor=color, markeredgewidth=1.6, linestyle="none", zorder=4,
                                label="epoch cut short (its share of batches at the foot)" if named else None)
                ax.annotate(f"{max(1, int(100 * r.fraction))} %", (r.epoch, 0), xycoords=("data", "axes fraction"),
                            xytext=(0, 3), textcoords="offset points", ha="center", fontsize=8, color=GREY)
            ax.set_title(title)
            ax.set_xlabel("epoch")
            if len(epochs):
                ax.set_xlim(epochs.min() - 0.5, epochs.max() + 0.5)
            # whole epochs, and a tick at the one epoch of a 1-epoch run (the default fell back to 0.6, 0.8, ...)
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
            frozen = epochs[col["frozen"] == 1]
            if len(frozen):
                ax.axvspan(frozen.min() - 0.5, frozen.max() + 0.5, color=GREY, alpha=0.12, lw=0,
                           label="backbone frozen")
            if best_epoch is not None:
                ax.axvline(best_epoch, color=BEST_COLOR, linewidth=1.6, linestyle="-", alpha=0.85,
                           label=f"best epoch ({best_epoch})")
                hit = epochs == best_epoch
                if hit.any() and np.isfinite(col[val_key][hit]).all():
                    # an outline: the validation point it marks stays visible inside (at 1 epoch the only one)
                    ax.plot(epochs[hit], col[val_key][hit], marker="*", markersize=16, markerfacecolor="none",
                            markeredgecolor=BEST_COLOR, markeredgewidth=1.6, zorder=5, linestyle="none",
                            label="validation at the best epoch")  # unnamed, the legend left the star unexplained
            if ax is axes[0] and kept_val_acc is not None and best_epoch is not None:
                at = col["val_acc"][epochs == best_epoch]
                if not (len(at) and np.isfinite(at).all() and abs(float(at[0]) - kept_val_acc) < 0.0005):
                    ax.plot([best_epoch], [kept_val_acc], marker="D", markersize=8, color="white",
                            markeredgecolor=BEST_COLOR, markeredgewidth=2, linestyle="none", zorder=6,
                            label=f"kept weights, batch-norm statistics recomputed ({kept_val_acc:.3f})")
            if onset is not None:
                ax.axvspan(onset - 0.5, epochs.max() + 0.5, color=ONSET_COLOR, alpha=0.07, lw=0)
                ax.axvline(onset - 0.5, color=ONSET_COLOR, linestyle="--", linewidth=1.4,
                           label=f"overfitting from epoch {onset}")
        acc_ax, loss_ax = axes
        finite_acc = np.concatenate([col["acc"][np.isfinite(col["acc"])], col["val_acc"][np.isfinite(col["val_acc"])],
                                     [kept_val_acc] if kept_val_acc is not None else []])
        if len(finite_acc):
            acc_ax.set_ylim(max(0.0, finite_acc.min() - 0.05), min(1.02, max(finite_acc.max() + 0.03, 0.1)))
        loss_ax.margins(y=0.1)  # room for the best-epoch star at the lowest validation loss
        if loss_spikes(np.concatenate([col["loss"], col["val_loss"]])):
            plain_log_scale(loss_ax, "y")
            loss_ax.set_title("Loss, log scale\n(one epoch's loss is far above the rest)")  # one line was cut
        changes = lr_changes(list(col["lr"]))
        handles, labels = loss_ax.get_legend_handles_labels()
        for handle, label in zip(*acc_ax.get_legend_handles_labels()):  # drawn on the accuracy panel alone
            if label.startswith("kept weights"):
                handles.append(handle)
                labels.append(label)
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
        fig.legend(handles, labels, loc="outside lower center", ncol=legend_columns(labels, FULL_WIDTH_PX - 20),
                   fontsize=LEGEND_PT)
        return save_figure(fig, path)


def plot_compare_curves(groups: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Validation accuracy and loss of several runs overlaid, one colour per group.

    Each group: {"label": str, "histories": [the HistoryRow list of each run], "members": "seeds" (default) or
    "folds", what its runs are}. A group of several is drawn as
    its mean with a ±1 std band (where at least two runs reached that epoch) over thin lines of the runs.
    """
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors if len(groups) <= 10 else colormaps["tab20"].colors
    with style():
        # the page's width, as the report's curves: drawn 1320 px wide, it was shown shrunk to 70 %, its legend
        # text at 9 px
        fig = new_figure(inches(FULL_WIDTH_PX), inches(440))
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
                label = group["label"] + (f" (mean of {n} {group.get('members', 'seeds')} ± std)" if n > 1 else "")
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
        losses = np.array([r.value("val_loss") for group in groups for h in group["histories"] for r in h],
                          dtype=np.float64)
        spiked = loss_spikes(losses)  # one run's spike would flatten every other run's curve on zero
        if spiked:
            plain_log_scale(axes[1], "y")
        titles = ("Validation accuracy", "Validation loss, log scale\n(one epoch's loss is far above the rest)"
                  if spiked else "Validation loss")
        for ax, title in zip(axes, titles):
            ax.set_title(title)
            ax.set_xlabel("epoch")
            ax.xaxis.get_major_locator().set_params(integer=True)
        handles, labels = axes[1].get_legend_handles_labels()
        if not handles:
            handles, labels = axes[0].get_legend_handles_labels()
        if handles:
            # two columns of 42-character entries fit the page's width (three ran past its edges)
            fig.legend(handles, labels, loc="outside lower center", ncol=min(2, len(labels)), fontsize=8.5)
            # taller by each text line of the legend past four: 25 groups' legend squeezed the axes to nothing
            lines = sum(max(label.count("\n") + 1 for label in labels[i:i + 2]) for i in range(0, len(labels), 2))
            fig.set_size_inches(inches(FULL_WIDTH_PX), inches(440 + 19 * max(0, lines - 4)))
        return save_figure(fig, path)
