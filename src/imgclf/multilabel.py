"""Multi-label outputs: one sigmoid per label, and per-label decision thresholds tuned on the validation split.

Shared by training (the thresholds go into the card), evaluation, `Classifier.predict` and the exported graph, so
every stage turns logits into label sets the same way.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .errors import invalid

DEFAULT_THRESHOLD = 0.5
# Below this many validation positives a label keeps DEFAULT_THRESHOLD: with one positive at p = 0.047 its max-F1
# threshold was 0.045, which then carried the label on 35 of 45 test images (precision 0.03).
MIN_TUNING_POSITIVES = 5


class SigmoidHead(nn.Module):
    """logits (N, K) -> (probabilities sigmoid(logits) (N, K), score (N,), unknown (N,) bool): the `TrustHead`
    interface for multi-label cards. The score is the highest label probability; no image is called unknown
    (an image carrying none of the labels is a legitimate answer here, not an out-of-distribution one)."""

    needs_features = False
    features = "pre-logits"  # never read: no detector
    threshold = None

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits.float())

    def forward(self, logits: torch.Tensor, features: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        probs = self.probabilities(logits)
        score = probs.max(dim=1).values
        return probs, score, torch.zeros_like(score, dtype=torch.bool)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


def label_average_precisions(targets: np.ndarray, probs: np.ndarray) -> list[float | None]:
    """Each label's average precision (scikit-learn's), None for a label no image carries (it has no precision-recall
    curve)."""
    from sklearn.metrics import average_precision_score

    y = np.asarray(targets, dtype=np.int64)
    p = np.asarray(probs, dtype=np.float64)
    return [float(average_precision_score(y[:, i], p[:, i])) if y[:, i].any() else None for i in range(y.shape[1])]


def macro_average_precision(targets: np.ndarray, probs: np.ndarray) -> float | None:
    """mAP: the mean of the labels' average precision over the labels some image carries (None when none does).
    The multi-label report's headline, and what `imgclf tune` ranks multi-label trials by on the validation split:
    threshold-free, where the label-wise accuracy at 0.5 rewards a model that predicts no rare label at all."""
    present = [ap for ap in label_average_precisions(targets, probs) if ap is not None]
    # the mean of APs of 1.0 can come out a rounding above it (1.0000000000000002)
    return min(1.0, float(np.mean(present))) if present else None


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The probability threshold with the highest F1 for one label (scikit-learn's PR curve), halfway between
    the chosen score and the next lower one so that it does not sit on a validation image's exact score. A
    label with fewer than MIN_TUNING_POSITIVES positives in validation keeps 0.5: none, no F1 to maximise; a few,
    an F1 that one image decides. So does one with fewer than that many negatives: carried by every validation
    image, the highest F1 lies below the lowest score, a threshold under every negative the test split holds."""
    from sklearn.metrics import precision_recall_curve

    y = np.asarray(y).astype(bool)
    if is_untuned(int(y.sum()), len(y)):
        return DEFAULT_THRESHOLD
    precision, recall, thresholds = precision_recall_curve(y, p)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    best = int(np.argmax(f1))
    chosen = float(thresholds[best])
    lower = np.asarray(p)[np.asarray(p) < chosen]
    # every validation image at or above it (a label on all of them): halfway down to 0, not on the lowest score,
    # which rounding or another precision's scores put above that image's own
    return float((chosen + (lower.max() if len(lower) else 0.0)) / 2)


def is_untuned(positives: int, images: int) -> bool:
    """A label whose threshold stays DEFAULT_THRESHOLD: fewer than MIN_TUNING_POSITIVES of the `images`
    validation images carry it, or fewer than that many lack it."""
    return min(positives, images - positives) < MIN_TUNING_POSITIVES


def untuned_thresholds(classes: Sequence[str], positives: Sequence[int], images: int) -> str | None:
    """What training will say of the labels `is_untuned` (`positives`: one count a label, of `images` validation
    images), and `inspect` before it: their thresholds stay DEFAULT_THRESHOLD. None when there is none."""
    few = [f"{c!r} ({int(n)} of {images})" for c, n in zip(classes, positives) if is_untuned(int(n), images)]
    if not few:
        return None
    many = len(few) != 1
    names = ", ".join(few[:10]) + (" ..." if len(few) > 10 else "")
    return (f"{len(few)} label{'s' if many else ''} {'are' if many else 'is'} carried by fewer than "
            f"{MIN_TUNING_POSITIVES} validation images, or missing from fewer than {MIN_TUNING_POSITIVES} ({names}): "
            f"{'their thresholds stay' if many else 'its threshold stays'} {DEFAULT_THRESHOLD}, untuned")


def tune_thresholds(targets: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> dict[str, float]:
    """Each label's max-F1 threshold on (validation) targets (N, K) and probabilities (N, K)."""
    # to 6 decimals, down: rounded up past a score halfway to its neighbour, it could drop that image
    return {c: math.floor(best_f1_threshold(targets[:, i], probs[:, i]) * 1e6) / 1e6 for i, c in enumerate(classes)}


def threshold_vector(classes: Sequence[str], thresholds: Mapping[str, float] | None,
                     override: float | None = None) -> np.ndarray:
    """The thresholds in class order: `override` for every label when given (predict --threshold), else the
    card's, else 0.5."""
    if override is not None:
        # numpy scalars too (np.float32(0.3) was refused as "not a probability"); True is no probability
        if not (isinstance(override, numbers.Real) and not isinstance(override, bool) and 0.0 < float(override) < 1.0):
            raise invalid("threshold", override, "a probability between 0 and 1 (exclusive)")
        return np.full(len(classes), float(override))
    if not thresholds:
        return np.full(len(classes), DEFAULT_THRESHOLD)
    return np.array([float(thresholds[c]) for c in classes])


def decide(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Multi-hot (N, K) decisions: a label is carried when its probability reaches its threshold."""
    return (np.asarray(probs) >= thresholds[None, :]).astype(np.uint8)
