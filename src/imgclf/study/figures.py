"""The imbalance study's figures, one function per figure, each drawn from study.json alone, on the same plotting
stack as every other figure (`imgclf.plotting`: one style, Figure objects, atomic writes)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.lines import Line2D

from ..plotting import GREY, TRAIN_COLOR, VAL_COLOR, WRONG_COLOR, new_figure, plain_log_scale, save_figure, style

METRICS = (("accuracy", "accuracy"), ("macro_recall", "macro recall"),
           ("minority_recall", "minority-class mean recall"))
MINORITY_COLOR = WRONG_COLOR
MAJORITY_COLOR = TRAIN_COLOR
# One colour per configuration in the overlay (none, reg, reg+bn first): the colour-blind-safe Okabe-Ito set.
# Widest figure in inches: at the plotting stack's 110 dpi it fits study.html's column (1148 px) unscaled, so its
# text keeps the size it was drawn at.
PAGE_WIDTH = 10.4
CONFIG_COLORS = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#000000")


def scored(study: dict[str, Any]) -> str:
    """The split the scores were measured on: test, or validation where the data had no test split."""
    return study.get("scored") or "test"


def config_colors(study: dict[str, Any]) -> dict[str, str]:
    """One colour per configuration, the same in every figure of the page."""
    return {c: CONFIG_COLORS[i % len(CONFIG_COLORS)] for i, c in enumerate(study["configs"])}


def _rho_axis(ax: Any, rhos: list[float]) -> None:
    plain_log_scale(ax, "x", base=2)
    ax.set_xticks(rhos, [f"{r:g}:1" for r in rhos])
    ax.minorticks_off()
    ax.set_xlabel("imbalance ratio rho")


def plot_metrics_vs_rho(study: dict[str, Any], path: str | os.PathLike) -> Path:
    """Accuracy next to macro recall and minority recall, per ratio and configuration (mean +- std over seeds)."""
    rhos = sorted({row["rho"] for row in study["summary"]})
    configs = list(study["configs"])
    colors = config_colors(study)
    with style():
        fig = new_figure(PAGE_WIDTH, 3.8)
        axes = fig.subplots(1, len(METRICS), sharey=True)
        for ax, (key, title) in zip(axes, METRICS):
            for i, config in enumerate(configs):
                rows = [r for r in study["summary"] if r["config"] == config and r[key]["mean"] is not None]
                if not rows:
                    continue
                xs = [r["rho"] * (1 + 0.04 * (i - (len(configs) - 1) / 2)) for r in rows]  # dodge overlapping bars
                ys = [r[key]["mean"] for r in rows]
                err = [r[key]["std"] or 0.0 for r in rows]
                ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=config, color=colors[config],
                            linestyle="-" if len(rows) > 1 else "none")
            _rho_axis(ax, rhos)
            ax.set_title(f"{scored(study)} {title}" if key == "accuracy" else title)
            # a bar above 1 (recall 0.917 +- 0.144) was cut at the frame
            spans = [(r[key]["mean"] - (r[key]["std"] or 0.0), r[key]["mean"] + (r[key]["std"] or 0.0))
                     for r in study["summary"] if r[key]["mean"] is not None]
            ax.set_ylim(min([-0.02] + [low - 0.02 for low, _ in spans]),
                        max([1.02] + [high + 0.02 for _, high in spans]))
        axes[0].set_ylabel("mean over seeds (bars: std)")
        handles, labels = axes[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, title="configuration", fontsize=8, loc="outside right center")
        return save_figure(fig, path)


CLASS_MARKERS = "osD^vP*Xh<>p"


def plot_class_recall(study: dict[str, Any], config: str, path: str | os.PathLike) -> Path:
    """Per-class test recall against the ratio for one configuration: minority classes dashed in reds, majority ones
    solid in blues, each class its own shade and marker."""
    table = study["table"].get(config, {})
    rhos = sorted(float(r) for r in table)
    with style():
        fig = new_figure(8.0, 3.9)
        ax = fig.subplots()
        classes = study["classes"]
        minority_classes = [c for c in classes if c in study["minority"]]
        majority_classes = [c for c in classes if c not in study["minority"]]
        for i, cls in enumerate(classes):
            minority = cls in study["minority"]
            ys = _nan([table[f"{r:g}"][cls]["recall"] for r in rhos])
            # each class its own shade and marker, and a small sideways step: one colour per kind made the legend's
            # entries alike, and equal recalls hid each other's lines
            kin = minority_classes if minority else majority_classes
            shade = 0.45 + 0.45 * kin.index(cls) / max(1, len(kin) - 1)
            colour = matplotlib.colormaps["Reds" if minority else "Blues"](shade)
            xs = [r * (1 + 0.012 * (i - (len(classes) - 1) / 2)) for r in rhos]
            ax.plot(xs, ys, marker=CLASS_MARKERS[i % len(CLASS_MARKERS)], color=colour,
                    linestyle="--" if minority else "-", alpha=0.9, label=f"{cls}{' (minority)' if minority else ''}")
        _rho_axis(ax, rhos)
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel(f"{scored(study)} recall (mean over seeds)")
        ax.set_title(f"per-class recall, configuration {config}")
        fig.legend(fontsize=7, ncol=2 if len(study["classes"]) > 12 else 1, loc="outside right center")
        return save_figure(fig, path)


def held_out(study: dict[str, Any]) -> tuple[str, str]:
    """(curve key prefix, label) of the split the curves watch: validation, or test under S4's protocol."""
    held = study.get("protocol", {}).get("held_out", "val")
    return held, "test" if held == "test" else "validation"


def plot_curves(study: dict[str, Any], config: str, path: str | os.PathLike) -> Path:
    """Train and held-out (validation, or test under S4's protocol) accuracy and loss per epoch, one column per
    ratio; every seed one thin line, the overfitting onset (held-out loss rising while training loss falls)
    marked with a dotted line."""
    held, held_label = held_out(study)
    runs = [r for r in study["runs"] if r["config"] == config and r["finished"]]
    rhos = sorted({r["rho"] for r in runs})
    with style():
        fig = new_figure(min(3.3 * len(rhos) + 0.8, PAGE_WIDTH), 5.6)
        axes = fig.subplots(2, len(rhos), squeeze=False, sharex="col")
        onset_labelled = False
        for j, rho in enumerate(rhos):
            for run in (r for r in runs if r["rho"] == rho):
                c = run["curves"]
                epochs = list(range(1, len(c["acc"]) + 1))
                marker = "o" if len(epochs) < 3 else None  # a one-epoch curve is a point
                first = run["seed"] == min(r["seed"] for r in runs if r["rho"] == rho)
                for i, (train_key, val_key) in enumerate((("acc", f"{held}_acc"), ("loss", f"{held}_loss"))):
                    ax = axes[i][j]
                    ax.plot(epochs, _nan(c[train_key]), color=TRAIN_COLOR, lw=1, marker=marker, ms=3,
                            label="train" if first else None)
                    ax.plot(epochs, _nan(c[val_key]), color=VAL_COLOR, lw=1, ls="--", marker=marker, ms=3,
                            label=held_label if first else None)
                    if run["overfitting_onset"]:
                        ax.axvline(run["overfitting_onset"], color=GREY, ls=":", lw=1,
                                   label=None if onset_labelled or i == 0 else "overfitting onset")
                        onset_labelled |= i == 1
            axes[0][j].set_title(f"rho {rho:g}:1")
            axes[0][j].set_ylim(0, 1.02)
            axes[1][j].set_xlabel("epoch")
            _whole_epochs(axes[0][j], axes[1][j])
        axes[0][0].set_ylabel("accuracy")
        axes[1][0].set_ylabel("loss")
        handles = {label: h for ax in axes[1] for h, label in zip(*ax.get_legend_handles_labels())}
        if handles:
            fig.legend(handles.values(), handles.keys(), fontsize=8, loc="outside lower center", ncol=len(handles))
        fig.suptitle(_fitted(fig, f"train and {held_label} curves, configuration {config} (one line per seed)"),
                     fontsize=10)
        return save_figure(fig, path)


def plot_configs_overlaid(study: dict[str, Any], path: str | os.PathLike) -> Path:
    """S4's comparison on one chart: per ratio (columns), accuracy and loss per epoch (rows) with every
    configuration overlaid, one colour each, train solid and held-out (test under S4's protocol) dashed; each
    line is the mean over seeds (study.json's `curves_by_config`). Each line's gid is 'configuration|curve'."""
    held, held_label = held_out(study)
    overlay = study["curves_by_config"]
    rhos = sorted(overlay, key=float)
    configs = [c for c in study["configs"] if any(c in overlay[r] for r in rhos)]
    colors = config_colors(study)
    with style():
        fig = new_figure(min(2.6 * len(rhos) + 1.9, PAGE_WIDTH), 5.4)
        axes = fig.subplots(2, len(rhos), squeeze=False, sharex="col", sharey="row")
        for j, rho in enumerate(rhos):
            for config, curves in overlay[rho].items():
                epochs = list(range(1, len(curves["loss"]) + 1))
                marker = "o" if len(epochs) < 3 else None  # a one-epoch curve is a point
                for i, metric in enumerate(("acc", "loss")):
                    for key, ls in ((metric, "-"), (f"{held}_{metric}", "--")):
                        axes[i][j].plot(epochs, _nan(curves[key]), color=colors[config], ls=ls, lw=1.4,
                                        marker=marker, ms=3, gid=f"{config}|{key}")
            axes[0][j].set_title(f"rho {float(rho):g}:1")
            axes[0][j].set_ylim(0, 1.02)
            axes[1][j].set_xlabel("epoch")
            _whole_epochs(axes[0][j], axes[1][j])
        axes[0][0].set_ylabel("accuracy")
        axes[1][0].set_ylabel("loss")
        handles = [Line2D([], [], color=colors[c], lw=2) for c in configs]
        handles += [Line2D([], [], color=GREY, ls="-"), Line2D([], [], color=GREY, ls="--")]
        labels = configs + ["train", held_label]
        fig.legend(handles, labels, fontsize=9, loc="outside lower center", ncol=len(labels))
        seeds = max(len(c["seeds"]) for by_config in overlay.values() for c in by_config.values())
        fig.suptitle(_fitted(fig, f"configurations overlaid: train (solid) and {held_label} (dashed) per epoch, "
                             + ("one seed" if seeds == 1 else f"mean over up to {seeds} seeds")), fontsize=10)
        return save_figure(fig, path)


def _fitted(fig: Any, title: str) -> str:
    """The title wrapped to the figure's width: one ratio's figure is 4 inches wide, and its one-line title was
    cut at both edges."""
    from ..evaluation.plots.layout import wrapped
    from ..plotting import DPI

    return wrapped(title, 0.94 * fig.get_figwidth() * DPI, 10)


def _whole_epochs(*axes: Any) -> None:
    """Epoch ticks at whole epochs (a 3-epoch run read 1.0, 1.5, 2.0, ...; a 1-epoch run, 0.96 to 1.04)."""
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def _nan(values: list[float | None]) -> list[float]:
    """study.json stores a missing value as null; matplotlib wants NaN (a gap in the line)."""
    return [float("nan") if v is None else v for v in values]


def plot_class_recall_by_config(study: dict[str, Any], rho: float, path: str | os.PathLike) -> Path:
    """Per-class test recall at one ratio, one bar per configuration: which classes a corrective brings back."""
    configs = [c for c in study["configs"] if f"{rho:g}" in study["table"].get(c, {})]
    classes = study["minority"] + study["majority"]
    width = 0.8 / len(configs)
    with style():
        fig = new_figure(max(7.6, 0.75 * len(classes) + 2.7), 4.2)
        ax = fig.subplots()
        for i, config in enumerate(configs):
            cells = study["table"][config][f"{rho:g}"]
            xs = [k + (i - (len(configs) - 1) / 2) * width for k in range(len(classes))]
            recalls = [cells[c]["recall"] for c in classes]
            ax.bar(xs, _nan(recalls), width, label=config, zorder=3, color=config_colors(study)[config])
            for x, recall in zip(xs, recalls):  # a bar of height 0 draws nothing: a class never found, marked
                if recall == 0:
                    ax.text(x, 0.01, "0", ha="center", va="bottom", fontsize=7, zorder=4,
                            color=config_colors(study)[config])
        ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
        for tick, cls in zip(ax.get_xticklabels(), classes):
            if cls in study["minority"]:
                tick.set_color(MINORITY_COLOR)
        ax.axvline(len(study["minority"]) - 0.5, color=GREY, lw=1, ls=":")
        ax.set_ylim(0, 1.02)
        ax.set_ylabel(f"{scored(study)} recall (mean over seeds)")
        ax.set_title(f"per-class recall at rho {rho:g}:1 by configuration (minority classes in red, left)")
        ax.grid(axis="x", visible=False)
        fig.legend(fontsize=8, loc="outside right center")
        return save_figure(fig, path)
