"""The CSV files of a run: history.csv (one row per epoch) and predictions.csv (one row per evaluated image)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field


class HistoryRow(BaseModel):
    """One row of history.csv: one training epoch (1-based). Empty cells read as None."""

    model_config = ConfigDict(extra="forbid")
    COLUMNS: ClassVar[tuple[str, ...]] = ("epoch", "lr", "loss", "acc", "val_loss", "val_acc", "seconds",
                                          "images_per_s", "frozen", "fraction", "l2_penalty", "val_map")
    epoch: int = Field(ge=1)
    lr: float | None = None
    loss: float | None = None
    acc: float | None = None
    val_loss: float | None = None
    val_acc: float | None = None
    seconds: float | None = None
    images_per_s: float | None = None
    frozen: int = 0
    fraction: float | None = Field(None, ge=0, le=1, description=(
        "Share of the epoch's batches trained: 1 for a whole epoch, less where the time limit cut it; empty in "
        "files written before the column, and for an epoch resumed from a checkpoint written before it (whole)."))
    l2_penalty: float | None = Field(None, ge=0, description=(
        "The Keras-style L2 penalty inside this epoch's val_loss (as Keras reports it), of the weights validated: "
        "`less_penalty` takes it out again. loss holds each step's own (of the raw weights under --ema, which "
        "validation replaces by their average), so for loss the subtraction is near, not exact. Empty where no "
        "layer carries one, and in files written before the column."))
    val_map: float | None = Field(None, ge=0, le=1, description=(
        "Multi-label runs: the validation mAP (mean of the labels' average precision, over the labels some "
        "validation image carries), which `imgclf tune` ranks and prunes their trials by; val_acc is label-wise "
        "at 0.5. Empty for single-label runs, and in files written before the column."))

    def cells(self) -> list[str]:
        out = []
        for name in self.COLUMNS:
            v = getattr(self, name)
            out.append("" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v))
        return out

    def value(self, name: str) -> float:
        """A column as a float, NaN when empty (what the curves plot)."""
        v = getattr(self, name)
        return math.nan if v is None else float(v)

    def less_penalty(self, name: str) -> float:
        """loss or val_loss without the L2 penalty: the fit alone, which a shrinking penalty does not hide (the
        overfitting rule reads it; for `loss`, near: the epoch's mean less the validated weights' penalty)."""
        return self.value(name) - (self.l2_penalty or 0.0)


def epochs_trained(rows: Sequence[HistoryRow]) -> float:
    """The epochs `rows` trained, a cut epoch counted by its share (5.54 where a time limit cut the sixth)."""
    return round(sum(1.0 if r.fraction is None else r.fraction for r in rows), 4)


def cut_epochs_text(rows: Sequence[HistoryRow]) -> str:
    """'the last cut at 54 %', 'epoch 6 cut at 54 %' (a run cut by its time limit, then resumed with more time),
    or '' where every epoch trained whole."""
    parts = [f"{'the last' if r is rows[-1] else f'epoch {r.epoch}'} cut at {max(1, math.floor(100 * r.fraction))} %"
             for r in rows if r.fraction is not None and r.fraction < 1]
    return ", ".join(parts)


def epochs_text(rows: Sequence[HistoryRow]) -> str:
    """'6 epochs', or '6 epochs, the last cut at 54 %' where the time limit ended an epoch early."""
    cut = cut_epochs_text(rows)
    return f"{len(rows)} epoch{'s' if len(rows) != 1 else ''}" + (f", {cut}" if cut else "")


class PredictionRow(BaseModel):
    """One row of predictions.csv: an evaluated image, or a skipped file (`error` set, no prediction)."""

    model_config = ConfigDict(extra="forbid")
    FIXED: ClassVar[tuple[str, ...]] = ("path", "true", "pred", "prob", "loss", "error")
    # written since card schema 2; files without them still read
    OPTIONAL: ClassVar[tuple[str, ...]] = ("score", "unknown")
    path: str
    true: str = ""
    pred: str = ""
    prob: float | None = None
    loss: float | None = None
    error: str = ""
    score: float | None = Field(None, description="In-distribution score (model.json `unknown`).")
    unknown: bool | None = Field(None, description="Score below the card's threshold.")
    probs: list[float] = Field(default_factory=list, description="One probability per class, in the card's "
                               "class order; written as p_<class> columns.")

    @staticmethod
    def header(classes: Sequence[str]) -> list[str]:
        return [*PredictionRow.FIXED, *PredictionRow.OPTIONAL, *(f"p_{c}" for c in classes)]
