"""The LR finder's figure, lr_find.png: the sweep's loss against the learning rate, with its two usual picks."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_curve(result: Any, path: Path) -> Path:
    """Loss against learning rate (log axis): the steps' own losses, their centred mean, the suggestion where the
    mean's fall ends, and the other usual pick, a tenth of the rate at the lowest loss. result: an
    `lr_find.LRFindResult`."""
    import numpy as np

    from ..plotting import inches, new_figure, plain_log_scale, save_figure, style

    lrs, losses = np.array(result.lrs), np.array(result.losses, dtype=float)
    with style():
        fig = new_figure(inches(900), inches(560))
        ax = fig.add_subplot()
        if result.raw_losses is not None:
            ax.plot(lrs, result.raw_losses, ".", color="#1f77b4", alpha=0.35, markersize=3,
                    label="training loss, each step")
        ax.plot(lrs, losses, color="#1f77b4", linewidth=1.6,
                label=f"training loss (mean of {result.window} steps)" if result.window else "training loss")
        plain_log_scale(ax, "x")
        if result.suggestion is not None:
            i = int(np.argmin(np.abs(lrs - result.suggestion)))
            ax.axvline(result.suggestion, color="#d62728", linestyle="--", linewidth=1.2)
            ax.plot([result.suggestion], [losses[i]], "o", color="#d62728",
                    label=f"suggested lr {result.suggestion:.2g} (where the fall ends)")

        if result.lowest_loss_lr is not None:
            j = int(np.argmin(np.abs(lrs - result.lowest_loss_lr)))
            if result.still_falling:  # the terminal withholds the tenth too: it reads a curve cut short
                ax.plot([result.lowest_loss_lr], [losses[j]], "v", color="#7f7f7f",
                        label=f"lowest loss at {result.lowest_loss_lr:.2g}: still falling there"
                        + (" (sweep higher)" if result.can_sweep_higher else " (at the highest end_lr)"))
            else:
                ax.plot([result.lowest_loss_lr], [losses[j]], "v", color="#7f7f7f",
                        label=f"lowest loss at {result.lowest_loss_lr:.2g}")
                ax.axvline(result.tenth_of_lowest, color="#7f7f7f", linestyle=":", linewidth=1.2,
                           label=f"a tenth of it, {result.tenth_of_lowest:.2g} (the other usual pick)")
        finite = losses[np.isfinite(losses)]
        if finite.size:  # the divergence at the end would squash the useful part of the curve
            low, start = float(finite.min()), float(finite[: max(1, len(finite) // 10)].max())
            if result.raw_losses is not None:  # single steps stray from their mean: keep them in view
                raw = np.array(result.raw_losses, dtype=float)
                low = min(low, float(raw[np.isfinite(raw)].min(initial=low)))
                first = raw[: max(1, len(raw) // 2)]  # before the end's divergence, which may be cut off
                start = max(start, float(first[np.isfinite(first)].max(initial=start)))
            ax.set_ylim(low - 0.1 * (start - low + 1e-9), start + 0.05 * (start - low + 1e-9))
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        ax.set_title(f"LR finder: {result.span}" + ("\n(stopped early: the loss diverged)" if result.stopped_early
                                                   else "")
                     + ("\nno suggestion: the loss did not fall clearly below its start"
                        if result.suggestion is None else ""))
        # below the plot: inside it, the legend sat on the rate lines and the steps' dots wherever it went
        fig.legend(loc="outside lower center", ncol=2, fontsize=8.5)
        ax.grid(True, which="major", alpha=0.3)
    return save_figure(fig, path)
