"""Whether a run's scores can be told from chance, and what to try when they cannot: the report's first finding
and the terminal's line after training."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..records import HistoryRow, MetricsRecord
from .interpret import predicted_counts


def no_better_than_guessing(metrics: MetricsRecord, z: float = 2.0) -> float | None:
    """Chance, 1/K for the K classes the evaluated split holds, where the macro recall is within `z` standard
    errors above it; else None (and None for a multi-label evaluation or fewer than 2 classes present). A model
    that learnt nothing recalls each class at 1/K on average, whatever it answers and however imbalanced the split
    (accuracy would follow the most common class's share instead). The standard error is that of a mean of K
    recalls, each a binomial share of its class's images at 1/K."""
    if metrics.task != "single" or not metrics.count:
        return None
    supports = [s.support for s in metrics.per_class.values() if s.support > 0]
    if len(supports) < 2:
        return None
    chance = 1.0 / len(supports)
    error = math.sqrt(chance * (1.0 - chance) * sum(1.0 / n for n in supports)) / len(supports)
    # every image right is no guess, however few (4 test images of 2 classes reach chance + 2 errors at 1.0)
    return chance if metrics.macro.recall < 1.0 and metrics.macro.recall <= chance + z * error else None


FITS_TRAINING = 0.9  # a last epoch's training accuracy from which a model at chance fits but does not generalise


ONE_CLASS_SHARE = 0.9  # a model that gives one class to this share of the images or more answers by the class sizes


def guessing_advice(history: Sequence[HistoryRow], metrics: MetricsRecord | None = None,
                    train_counts: Mapping[str, int] | None = None, balancing: str | None = None) -> str:
    """What to try for a model whose scores cannot be told from chance: one that gives one class to nearly every
    image has learnt the class sizes (its training accuracy is that class's share: "it fits its training images"
    was said of a run at 98 % on a class of 5,000 beside nine of 3); one that fits its training images does not
    generalise, and more epochs will not help it (the advice said so to a run at 100 % training accuracy that
    overfitted from epoch 2); one that does not fit them has not learnt yet. train_counts: the training split's
    images per class (dataset.json), which say whether the class it answers is most of them; balancing: how the
    run already balanced them ("--sampler oversample"), if it did."""
    accuracies = [a for a in (row.value("acc") for row in history) if math.isfinite(a)]
    counts = {k: v for k, v in predicted_counts(metrics).items() if v is not None} if metrics is not None else {}
    name = max(counts, key=counts.get) if counts and sum(counts.values()) else None
    share = counts[name] / sum(counts.values()) if name is not None else 0.0
    trained_on = train_counts.get(name, 0) / sum(train_counts.values()) if train_counts and name is not None and \
        sum(train_counts.values()) else 0.0
    classes = sum(1 for v in (train_counts or {}).values() if v)
    # most of the training images, and clearly more than an even share: two balanced classes are half each, and
    # were told to balance them
    if share >= ONE_CLASS_SHARE and trained_on >= 0.5 and classes and trained_on >= 1 / classes + 0.1:
        close = accuracies and abs(accuracies[-1] - trained_on) <= 0.05
        trained = f"; its training accuracy, {100 * accuracies[-1]:.1f} %, is that share" if close else ""
        said = (f"It answers {name!r} for {100 * share:.0f} % of these images, the class of {100 * trained_on:.0f} % "
                f"of its training images{trained}: it has learnt the class sizes, not the classes.")
        if balancing:
            return (f"{said} It trained with {balancing} already: more images of the other classes, --loss focal, "
                    "or a smaller network may help.")
        return f"{said} Balance them while training: --sampler oversample, or --class-weight balanced."
    if accuracies and accuracies[-1] >= FITS_TRAINING:
        return (f"It fits its training images (training accuracy {100 * accuracies[-1]:.1f} % at the last epoch) "
                "without doing better on these: more images per class, stronger augmentation or a smaller network "
                "may help; more epochs will not.")
    return "Look at the training curves; more epochs, or a lower learning rate, may be what it needs."


def balancing_of(config: Any) -> str | None:
    """How a run's settings balanced its classes while training, in flags ("--sampler oversample"); None: not."""
    used = [f"--sampler {config.sampler}" if getattr(config, "sampler", "none") != "none" else "",
            f"--class-weight {config.class_weight}" if getattr(config, "class_weight", "none") != "none" else ""]
    return " and ".join(u for u in used if u) or None
