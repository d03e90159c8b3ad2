"""folds.json: written by `--folds K` beside the fold runs (not a run file)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .base import Record

# val_* from the fold's card and history at the kept epoch, test_* from its metrics.json (None without a test split):
# val_loss is training's raw loss, test_loss that of the probabilities after the card's temperature (if fitted)
FoldMetric = Literal["val_accuracy", "val_loss", "test_accuracy", "test_loss", "test_macro_precision",
                     "test_macro_recall", "test_macro_f1", "test_weighted_f1", "test_ece", "test_macro_auc",
                     "test_worst_class_recall"]


class FoldStats(BaseModel):
    """One metric over the folds that have it."""

    model_config = ConfigDict(extra="forbid")
    mean: float | None
    std: float | None = Field(description="Sample standard deviation (ddof=1); None with fewer than two folds.")
    n: int = Field(ge=0, description="Folds with a finite value.")


class FoldRow(BaseModel):
    """One fold's run directory and metrics (one field per FoldMetric; None: that fold has no such number)."""

    model_config = ConfigDict(extra="forbid")
    fold: int = Field(ge=1)
    run: str = Field(description="The fold's run directory, relative to the cross-validation folder (fold-i).")
    epochs: int | None = Field(None, ge=0, description="Epochs the fold trained (None in files written before it "
                               "was recorded): folds stopped by a time limit or early stopping may differ.")
    val_accuracy: float | None = Field(None, description=(
        "The card's validation accuracy of the kept weights: after the BatchNorm statistics were recomputed where "
        "the run recomputed them (the card's training.val_accuracy_after_batch_norm), else history.csv's val_acc."))
    val_loss: float | None = Field(None, description=(
        "history.csv's val_loss at the kept epoch: training's, with the running BatchNorm averages (no loss is "
        "recorded after the recompute), so it may not match val_accuracy's weights' statistics."))
    test_accuracy: float | None = None
    test_loss: float | None = None
    test_macro_precision: float | None = None
    test_macro_recall: float | None = None
    test_macro_f1: float | None = None
    test_weighted_f1: float | None = None
    test_ece: float | None = None
    test_macro_auc: float | None = None
    test_worst_class_recall: float | None = None


class FoldsRecord(Record):
    """folds.json: a k-fold cross-validation (`--folds K`): every fold's metrics and, per metric, mean ± std."""

    folds: int = Field(ge=2, description="K: the number of fold runs summarised.")
    test_images: int = Field(ge=0, description="Images in the test split, the same for every fold.")
    metrics: dict[FoldMetric, FoldStats]
    per_fold: list[FoldRow]
