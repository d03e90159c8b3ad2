"""The k highest scores, in one place: the classes a prediction lists (Python API, CLI, HTTP) and the images a
report ranks (top losses) are ordered the same way, ties broken by position so the order is reproducible."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import Described, invalid


def top_indices(scores: Sequence[float] | np.ndarray, k: int) -> list[int]:
    """Positions of the k largest scores, largest first; equal scores keep their order, NaN comes last.

    k is clamped to [0, len(scores)], so "at most k" needs no check at the call site.
    """
    values = np.asarray(scores, dtype=np.float64).ravel()
    k = max(0, min(int(k), len(values)))
    # A stable sort of the negated scores: numpy's default quicksort orders ties arbitrarily.
    order = np.argsort(-values, kind="stable")
    return [int(i) for i in order[:k]]


def top_k(probs: Sequence[float] | np.ndarray, classes: Sequence[str], k: int) -> list[tuple[str, float]]:
    """[(class, probability), ...] of the k most probable classes of one prediction, most probable first.

    At least one class is listed, at most every class.
    """
    values = np.asarray(probs, dtype=np.float64).ravel()
    if len(values) != len(classes):
        raise invalid("probs", Described(f"{len(values)} values"), f"one value per class ({len(classes)} classes)")
    return [(classes[i], float(values[i])) for i in top_indices(values, max(1, k))]
