"""Class-imbalance measures (Buda et al. 2017): imbalance ratio rho and minority fraction mu."""

from __future__ import annotations

from collections.abc import Mapping

IMBALANCE_FLAG_RHO = 1.5  # above this ratio the report flags the data set as imbalanced


def imbalance_stats(counts: Mapping[str, int]) -> dict[str, object]:
    """rho = max/min class count; minority classes are those below the midpoint of min and max,
    mu = their share of all classes (0 for a balanced set, 0.5 for S4's step imbalance)."""
    values = [int(v) for v in counts.values()]
    if not values:
        return {"rho": None, "mu": None, "minority": [], "imbalanced": False}
    lo, hi = min(values), max(values)
    rho = hi / lo if lo > 0 else float("inf")
    midpoint = (lo + hi) / 2
    minority = sorted(c for c, v in counts.items() if hi > lo and v < midpoint)
    return {
        "rho": round(rho, 4),
        "mu": round(len(minority) / len(values), 4),
        "minority": minority,
        "imbalanced": rho > IMBALANCE_FLAG_RHO,
    }


def class_weights(spec: str, labels, classes: list[str]) -> list[float] | None:
    """Loss weights per class: none, balanced (n / (k * n_c), scikit-learn's rule) or a JSON file."""
    import numpy as np

    from ..errors import ImgclfError
    from ..io import read_json

    if spec == "none":
        return None
    counts = np.bincount(np.asarray(labels), minlength=len(classes)).astype(float)
    if spec == "balanced":
        return [float(len(labels) / (len(classes) * c)) if c else 0.0 for c in counts]
    try:
        mapping = read_json(spec)
    except (OSError, ValueError) as exc:
        raise ImgclfError(f"class_weight must be none, balanced or a readable JSON file. Received: class_weight={spec!r} ({exc})") from None
    if not isinstance(mapping, dict) or set(mapping) != set(classes):
        raise ImgclfError(
            f"class_weight file must map every class name to a weight. Received: keys "
            f"{sorted(mapping) if isinstance(mapping, dict) else type(mapping).__name__}, classes {classes}"
        )
    return [float(mapping[c]) for c in classes]


def sampler_weights(kind: str, labels, num_classes: int):
    """(per-sample draw weights, items per epoch) for the training sampler; (None, None) for plain shuffling.

    oversample: every class drawn with equal probability, epoch length = number of training images.
    undersample: every class drawn with equal probability, epoch length = classes x smallest class count.
    """
    import numpy as np

    if kind == "none":
        return None, None
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=num_classes).astype(float)
    weights = 1.0 / counts[labels]
    if kind == "oversample":
        return weights, len(labels)
    smallest = int(counts[counts > 0].min())
    return weights, smallest * int((counts > 0).sum())
