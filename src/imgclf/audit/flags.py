"""What a duplicate group means for the data set: copies within a class, conflicting labels (one picture under
several classes) and leakage (one picture in several splits)."""

from __future__ import annotations

import numpy as np


def group_flags(members: list[int], splits: np.ndarray, labels: np.ndarray) -> list[str]:
    """What a group means: "conflicting_labels" (members under more than one class), "leakage" (members in
    more than one of train/val/test), else "same_class"."""
    flags = []
    if len(set(labels[members].tolist())) > 1:
        flags.append("conflicting_labels")
    in_splits = set(splits[members].tolist()) & {"train", "val", "test"}  # not "all" (flat) or "unused" (--run)
    if len(in_splits) > 1:
        flags.append("leakage")
    return flags or ["same_class"]


def leakage_counts(group_of: np.ndarray, splits: np.ndarray) -> dict[str, int]:
    """For each pair of splits ("train-test", ...), how many duplicate groups have members in both: what
    `imgclf train` can warn with when a user-given split leaks into another."""
    names = [s for s in ("train", "val", "test") if s in set(splits.tolist())]
    present = {s: np.unique(group_of[(splits == s) & (group_of >= 0)]) for s in names}
    return {f"{a}-{b}": int(len(np.intersect1d(present[a], present[b])))
            for x, a in enumerate(names) for b in names[x + 1:]}
