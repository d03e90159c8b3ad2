"""The interpretation layer: everything people look at, computed once from a run's stored files.

Like fastai's ClassificationInterpretation, but built from `predictions.csv` + `model.json` (never from a live
model), so the report, `evaluate` and `compare` all see the same numbers for a run made yesterday elsewhere.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Described, invalid
from ..records import (ClassScores, HistoryRow, LabelScores, MetricsRecord, RunDir, SkippedFile,
                       TrainingSummary)
from ..topk import top_indices
from .metrics import compute_metrics


@dataclass(frozen=True)
class ConfusedPair:
    true: str
    pred: str
    count: int
    rate: float  # share of the true class's images predicted as `pred`


@dataclass(frozen=True)
class Interpretation:
    classes: list[str]
    paths: list[str]
    y_true: np.ndarray  # (N,) int
    probs: np.ndarray  # (N, K) float
    skipped: list[SkippedFile] = field(default_factory=list)
    # (N,) bool: scored below the unknown threshold (predict and serve say "unknown" for it); None: not recorded
    unknown: np.ndarray | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_predictions(cls, path: str | os.PathLike, classes: Sequence[str]) -> "Interpretation":
        """Read predictions.csv: rows with a non-empty `error` column are skipped files, the rest predictions."""
        path = Path(path)
        classes = list(classes)
        rows = RunDir(path.parent).read_predictions(classes, name=path.name)
        index = {c: i for i, c in enumerate(classes)}
        paths, labels, probs, skipped, unknown = [], [], [], [], []
        for row in rows:
            if row.error:
                skipped.append(SkippedFile(path=row.path, reason=row.error))
                continue
            if row.true not in index:
                raise invalid("predictions", path, f"a file whose true labels are among the model's classes "
                                                   f"{classes}", note=f"true label {row.true!r}")
            paths.append(row.path)
            labels.append(index[row.true])
            probs.append(row.probs)
            unknown.append(bool(row.unknown))
        return cls(classes, paths, np.asarray(labels, dtype=np.int64),
                   np.asarray(probs, dtype=np.float64).reshape(len(paths), len(classes)), skipped,
                   np.asarray(unknown, dtype=bool))

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike) -> "Interpretation":
        run = RunDir(run_dir)
        return cls.from_predictions(run.file("predictions.csv"), run.read_card().classes)

    # ------------------------------------------------------------------ derived, computed once
    @cached_property
    def y_pred(self) -> np.ndarray:
        return self.probs.argmax(1) if len(self.probs) else np.zeros(0, dtype=np.int64)

    @cached_property
    def losses(self) -> np.ndarray:
        """Per-image cross-entropy, -log p(true class)."""
        if not len(self.y_true):
            return np.zeros(0)
        return -np.log(np.clip(self.probs[np.arange(len(self.y_true)), self.y_true], 1e-12, 1.0))

    @cached_property
    def metrics(self) -> MetricsRecord:
        """The same metrics as metrics.json (compute_metrics), recomputed from the stored predictions."""
        if not len(self.y_true):
            raise invalid("predictions", Described(f"only skipped files ({len(self.skipped)})"),
                          "a file with at least one prediction")
        return compute_metrics(self.y_true, self.probs, self.classes)

    @property
    def confusion(self) -> np.ndarray:
        return np.asarray(self.metrics.confusion, dtype=np.int64)

    @property
    def per_class(self) -> dict[str, ClassScores]:
        return self.metrics.per_class

    def most_confused(self, top: int = 10, min_count: int = 1) -> list[ConfusedPair]:
        """Off-diagonal confusion cells, largest first (ties: higher rate first, then class order)."""
        return most_confused(self.metrics, top, min_count)

    def top_losses(self, k: int = 16) -> list[int]:
        """Indices of the k images with the highest loss (the model's most confident mistakes first)."""
        return top_indices(self.losses, k)

    def sample(self, n: int = 16, seed: int = 0) -> list[int]:
        """A seeded mix of right and wrong predictions: up to half wrong (all of them if fewer), the rest right."""
        rng = np.random.default_rng(seed)
        wrong = np.flatnonzero(self.y_pred != self.y_true)
        right = np.flatnonzero(self.y_pred == self.y_true)
        n_wrong = min(len(wrong), n // 2)
        n_right = min(len(right), n - n_wrong)
        n_wrong = min(len(wrong), n - n_right)  # too few right ones: show more wrong ones
        picked = np.concatenate([rng.choice(wrong, n_wrong, replace=False), rng.choice(right, n_right, replace=False)])
        rng.shuffle(picked)
        return [int(i) for i in picked]

    def describe(self, i: int) -> dict[str, Any]:
        """One prediction as a plain dict (for grids and tables)."""
        t, p = int(self.y_true[i]), int(self.y_pred[i])
        return {"path": self.paths[i], "true": self.classes[t], "pred": self.classes[p],
                "prob": float(self.probs[i, p]), "loss": float(self.losses[i]), "correct": t == p,
                "unknown": self.unknown is not None and bool(self.unknown[i])}  # grids: neither right nor wrong


# ---------------------------------------------------------------------- images for grids
def most_confused(metrics: MetricsRecord, top: int = 10, min_count: int = 1) -> list[ConfusedPair]:
    """Off-diagonal cells of a metrics record's confusion matrix, largest first (ties: higher rate first, then
    class order)."""
    cm = np.asarray(metrics.confusion)
    classes = list(metrics.per_class)
    support = cm.sum(1)
    pairs = [
        ConfusedPair(classes[t], classes[p], int(cm[t, p]), float(cm[t, p] / support[t]))
        for t in range(len(classes)) for p in range(len(classes))
        if t != p and cm[t, p] >= max(1, min_count)
    ]
    pairs.sort(key=lambda c: (-c.count, -c.rate))
    return pairs[:top]


def decode_for_display(paths: Sequence[str], size: int, color: str,
                       interpolation: str = "bilinear") -> dict[int, np.ndarray]:
    """{position: uint8 HWC} at the model's input size and colour mode; unreadable files are left out."""
    from ..data.decode import DecodeError, open_image

    out: dict[int, np.ndarray] = {}
    for i, p in enumerate(paths):
        try:
            out[i] = open_image(p, size, color, interpolation)
        except DecodeError:
            continue  # moved or deleted since evaluation: the grid simply shows one image fewer
    return out


# ---------------------------------------------------------------------- training history
@dataclass(frozen=True)
class Overfitting:
    """A sustained rise of validation loss above its minimum while training loss stayed flat or fell."""

    onset: int  # 1-based epoch after the validation minimum: the first epoch that no longer improved
    best_epoch: int  # 1-based epoch of the lowest validation loss
    best_loss: float  # the lowest validation loss
    final_loss: float  # mean validation loss of the last `patience` epochs
    threshold: float  # the rise (final_loss minus the level at the minimum) had to exceed this

    def text(self) -> str:
        return (f"validation loss rose from {self.best_loss:.3g} (its lowest, epoch {self.best_epoch}) to "
                f"{self.final_loss:.3g} (mean of the last epochs) while training loss stayed flat or fell")


PATIENCE, REL_TOL, ABS_TOL, NOISE_K = 3, 0.05, 0.01, 3.0

# The rule in words, for the report: the thresholds are detect_overfitting's defaults.
# the rule needs the minimum and `PATIENCE` epochs after it: fewer epochs cannot show it
OVERFITTING_MIN_EPOCHS = PATIENCE + 1
OVERFITTING_RULE = (f"validation loss averaged over the last {PATIENCE} epochs is above its level at the minimum "
                    f"(median of the lowest epoch and its two neighbours) by more than {100 * REL_TOL:.0f} %, more "
                    f"than {ABS_TOL:g} and more than {NOISE_K:g} times its epoch-to-epoch noise, while training loss "
                    f"rose by less than a quarter of that (flat or falling)")


def detect_overfitting(train_loss: Sequence[float], val_loss: Sequence[float], patience: int = PATIENCE,
                       rel_tol: float = REL_TOL, abs_tol: float = ABS_TOL,
                       noise_k: float = NOISE_K) -> Overfitting | None:
    """Overfitting (REFERENCES S4: validation loss rising while training loss does not), or None.

    The rule (OVERFITTING_RULE), in the spirit of Prechelt's generalisation loss (Early Stopping - But When?,
    1998) but judged on the whole run rather than online:
      - at least `patience` epochs follow the validation minimum (one bad epoch is noise, not a trend);
      - the mean validation loss of the last `patience` epochs exceeds the level at the minimum (the median of
        the lowest epoch and its two neighbours, so one lucky epoch does not set the bar) by more than `rel_tol` of
        that level, more than `abs_tol` (loss differences below that are immaterial), and more than `noise_k`
        times the noise of the validation loss (robust sigma of its second differences, which a smooth trend,
        rising or falling, leaves at zero);
      - training loss stayed flat or fell: its mean over the last `patience` epochs is less than a quarter of the
        validation rise above its mean over those three epochs around the minimum. It need not fall at every step:
        a training loss near zero wobbles.
    A validation loss that comes back to a new minimum later is therefore never flagged, nor is a diverging run
    where both losses rise, nor a flat but noisy validation loss (its minimum is just the luckiest epoch).
    Epochs without both values are skipped; epoch numbers are kept.
    """
    train = np.asarray(train_loss, dtype=np.float64)
    val = np.asarray(val_loss, dtype=np.float64)
    if train.shape != val.shape:
        raise invalid("train_loss and val_loss", Described(f"{len(train)} train_loss and {len(val)} val_loss values"),
                      "the same length: one value per epoch each")
    finite = np.isfinite(train) & np.isfinite(val)
    if finite.sum() < patience + 1:
        return None
    epochs = np.flatnonzero(finite)
    train, val = train[finite], val[finite]
    best = int(np.argmin(val))
    if len(val) - best - 1 < patience:
        return None
    around = slice(max(best - 1, 0), best + 2)
    low = float(np.median(val[around]))
    final = float(val[-patience:].mean())
    rise = final - low
    d2 = np.diff(val, 2)
    # 1.4826 * MAD estimates a normal sigma; a second difference of white noise has variance 6 sigma^2
    noise = 1.4826 * float(np.median(np.abs(d2 - np.median(d2)))) / math.sqrt(6) if len(d2) else 0.0
    threshold = max(rel_tol * abs(low), abs_tol, noise_k * noise)
    train_rise = float(train[-patience:].mean() - train[around].mean())
    if rise <= threshold or train_rise >= 0.25 * rise:
        return None
    return Overfitting(onset=int(epochs[best + 1]) + 1, best_epoch=int(epochs[best]) + 1, best_loss=float(val[best]),
                       final_loss=final, threshold=threshold)


def overfitting_onset(train_loss: Sequence[float], val_loss: Sequence[float],
                      patience: int = PATIENCE) -> int | None:
    """The 1-based epoch where overfitting starts (the first epoch after the validation minimum), or None; the
    rule is `detect_overfitting`'s."""
    found = detect_overfitting(train_loss, val_loss, patience)
    return found.onset if found is not None else None


@dataclass(frozen=True)
class Divergence:
    """Training loss that ended above where the first epoch left it: the run moved away from a fit."""

    first_loss: float  # the first epoch's training loss
    final_loss: float  # mean training loss of the last epochs
    epochs: int  # how many last epochs that mean covers

    def text(self) -> str:
        return (f"training loss ended above its first epoch's ({self.first_loss:.3g} → {self.final_loss:.3g}, mean "
                f"of the last {self.epochs} epochs): training diverged instead of fitting")


def detect_divergence(train_loss: Sequence[float]) -> Divergence | None:
    """A run whose training loss, averaged over its last epochs (up to 3, at most a third of the run), is above
    the first epoch's: a fitting run lowers its own loss whatever happens on validation, so this is a learning
    rate too high for the data (or a broken input pipeline), not overfitting. None with fewer than 3 epochs."""
    loss = np.asarray([v for v in train_loss if math.isfinite(v)], dtype=np.float64)
    if len(loss) < 3:
        return None
    tail = max(1, min(PATIENCE, len(loss) // 3))
    final = float(loss[-tail:].mean())
    return Divergence(float(loss[0]), final, tail) if final > loss[0] else None


def lr_changes(lrs: Sequence[float]) -> list[tuple[int, float, float]]:
    """(1-based epoch, old lr, new lr) for every epoch whose learning rate differs from the previous one."""
    out = []
    for i in range(1, len(lrs)):
        a, b = lrs[i - 1], lrs[i]
        if math.isfinite(a) and math.isfinite(b) and not math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12):
            out.append((i + 1, float(a), float(b)))
    return out


MISCALIBRATED_ECE = 0.05  # above this ECE a run is not called well calibrated, whatever its overall gap


def calibration_verdict(gap: float, ece: float) -> str:
    """Mean confidence minus accuracy, and the expected calibration error, in words (the reliability diagram's
    title, the report's verdict and its findings say the same). A small overall gap with a large ECE is
    over-confidence in some bins offset by under-confidence in others, not good calibration."""
    if gap > 0.01:
        return "over-confident"
    if gap < -0.01:
        return "under-confident"
    return "over- and under-confident by bins" if ece > MISCALIBRATED_ECE else "well calibrated"


# ---------------------------------------------------------------------- run-level summary (for compare)
# said wherever accuracy_beside_val stands beside training's val acc (`imgclf runs`, `imgclf compare`)
MULTILABEL_ACCURACY_NOTE = ("multi-label runs: val and test acc are label-wise (1 - Hamming loss), val acc with every "
                            "label decided at 0.5 as training decides, test acc at the labels' tuned thresholds; "
                            "their subset accuracy (every label of an image right) is in metrics.json")


def accuracy_beside_val(metrics: MetricsRecord) -> float:
    """The test accuracy a listing puts beside the val accuracy: training's val_acc of a multi-label run is
    label-wise (1 - Hamming loss, at 0.5), while its metrics.json accuracy is subset accuracy; this is label-wise too,
    at the labels' tuned thresholds (the listings say so)."""
    if metrics.task == "multilabel" and metrics.multilabel is not None:
        return 1.0 - metrics.multilabel.hamming_loss
    return metrics.accuracy


def predicted_counts(metrics: MetricsRecord) -> dict[str, int | None]:
    """How many images each class was predicted for (the confusion matrix's columns); for a multi-label
    evaluation, each label's own count (its matrix is the labels' co-occurrence), None where not recorded."""
    if metrics.multilabel is not None:
        return {name: getattr(metrics.multilabel.per_label.get(name), "predicted", None) for name in metrics.per_class}
    if metrics.task != "single" or not metrics.confusion:
        return {name: None for name in metrics.per_class}
    return dict(zip(metrics.per_class, (int(v) for v in np.asarray(metrics.confusion).sum(axis=0))))


def scores_shown(scores: ClassScores | LabelScores, predicted: int | None,
                 multilabel: bool = False) -> dict[str, float | None]:
    """A class's precision, recall and F1 as a table shows them: None (a dash) where there is nothing to divide by.
    A class the split holds no image of has no recall or F1 (scikit-learn's 0 would read as 'always missed'), and
    one never predicted has no precision. predicted None: not known, precision shown as it is. A multi-label label
    absent from the split but predicted has F1 0 (its false alarms over none found), which its macro F1 counts."""
    label_alarms = multilabel and not scores.support and bool(predicted)
    return {"precision": scores.precision if predicted is None or predicted else None,
            "recall": scores.recall if scores.support else None,
            "f1": scores.f1 if scores.support or label_alarms else None}


def dash_notes(per_class: dict, predicted: dict[str, int], split: str, kind: str = "class") -> list[str]:
    """What a table's dashes mean for its averages: a class (a label, `kind` "label") never predicted counts as
    precision 0 in the macro average, one without images is left out of it (the rows' shown mean differed)."""
    never = [c for c, r in per_class.items() if r.support > 0 and predicted.get(c) == 0]
    absent = [c for c, r in per_class.items() if r.support == 0]
    notes = [f"Precision “—”: never predicted ({named_few(never)}); the macro and weighted averages count it as 0, "
             f"as scikit-learn does, so a model earns nothing for never naming a {kind}."] if never else []
    if absent:
        alarmed = [c for c in absent if predicted.get(c)]
        what = "Recall “—” (and F1, where never predicted)" if alarmed else "Recall and F1 “—”"  # F1 0 when taken
        notes.append(f"{what}: no {split} image{' carries it' * (kind == 'label')} ({named_few(absent)}); the "
                     f"averages leave the {kind} out" + (f", except the macro precision and F1, which count the "
                     f"images taken for {named_few(alarmed)} (false alarms, precision and F1 0)" if alarmed else "")
                     + ".")
    return notes


def named_few(classes: list[str]) -> str:
    return ", ".join(classes[:5]) + (f" and {len(classes) - 5} more" if len(classes) > 5 else "")


def lowest_recall_classes(per_class: Mapping[str, ClassScores]) -> list[str]:
    """The classes the split holds that share the lowest recall (the metrics' worst class is the first of them by
    name): with 60 classes at 0 the report named one of them as "the weakest", and with every class at the same
    recall it named one at all."""
    recalls = {name: row.recall for name, row in per_class.items() if row.support > 0}
    if not recalls:
        return []
    lowest = min(recalls.values())
    return [name for name, recall in recalls.items() if recall == lowest]


def mean_recall(per_class: Mapping[str, ClassScores], classes: Sequence[str]) -> float | None:
    """Mean recall over those of `classes` (the minority ones, say) that the evaluated split contains; None if it
    contains none of them. A class without test images has no recall, not a recall of 0."""
    values = [per_class[c].recall for c in classes if c in per_class and per_class[c].support > 0]
    return float(np.mean(values)) if values else None


def kept_val_accuracy(history: Sequence[HistoryRow], training: TrainingSummary | None) -> float | None:
    """Validation accuracy of the kept weights: measured after the BatchNorm statistics were recomputed where they
    were (`train.batch_norm_stats`), else training's at the kept epoch (history.csv), else the last epoch's."""
    if training is not None and training.val_accuracy_after_batch_norm is not None:
        return training.val_accuracy_after_batch_norm
    return best_val_accuracy(history, training.best_epoch if training is not None else None)


def kept_val_map(history: Sequence[HistoryRow], training: TrainingSummary | None) -> float | None:
    """Multi-label runs: the kept weights' validation mAP, as `kept_val_accuracy` picks the accuracy (after the
    recomputed BatchNorm statistics, else history.csv's at the kept epoch, else the last epoch's); None for
    single-label runs and histories written before the column."""
    if training is not None and training.val_map_after_batch_norm is not None:
        return training.val_map_after_batch_norm
    rows = [r for r in history if r.val_map is not None]
    best_epoch = training.best_epoch if training is not None else None
    kept = next((r for r in rows if r.epoch == best_epoch), rows[-1] if rows else None)
    return kept.val_map if kept is not None else None


def best_val_accuracy(history: Sequence[HistoryRow], best_epoch: int | None, column: str = "val_acc"
                      ) -> float | None:
    """Validation accuracy (or another history `column`, e.g. val_map) at the kept (best) epoch, else the last
    epoch's."""
    rows = [r for r in history if math.isfinite(r.value(column))]
    if not rows:
        return None
    if best_epoch is not None:
        match = [r for r in rows if r.epoch == int(best_epoch)]
        if match:
            return match[0].value(column)
    return rows[-1].value(column)
