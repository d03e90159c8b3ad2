"""Class-imbalance measures (Buda et al. 2017): imbalance ratio rho and minority fraction mu."""

from __future__ import annotations

import math
from collections.abc import Mapping

IMBALANCE_FLAG_RHO = 1.5  # above this ratio the report flags the data set as imbalanced


def imbalance_stats(counts: Mapping[str, int]) -> dict[str, object]:
    """rho = max/min class count; minority classes are those below the midpoint of min and max, mu = their share
    of all classes (0 for a balanced set, 0.5 for S4's step imbalance). Counts of more than two sizes have minority
    classes only above IMBALANCE_FLAG_RHO (digits' 1.06 is counting noise); a step imbalance (two sizes) has them
    at any ratio, as Buda et al. define mu. A class with no image has no ratio: rho is None (JSON has no
    infinity), and the set counts as imbalanced."""
    values = [int(v) for v in counts.values()]
    if not values:
        return {"rho": None, "mu": None, "minority": [], "imbalanced": False}
    lo, hi = min(values), max(values)
    rho = hi / lo if lo > 0 else None
    midpoint = (lo + hi) / 2
    imbalanced = rho is None or rho > IMBALANCE_FLAG_RHO
    # Near-balanced sets (digits: rho 1.06) have no minority classes, only counting noise.
    minority = sorted(c for c, v in counts.items() if (imbalanced or len(set(values)) == 2) and v < midpoint)
    return {
        "rho": None if rho is None else round(rho, 4),
        "mu": round(len(minority) / len(values), 4),
        "minority": minority,
        "imbalanced": imbalanced,
    }


def class_weights(spec: str, labels, classes: list[str]) -> list[float] | None:
    """Loss weights per class: none, balanced (n / (k * n_c), scikit-learn's rule) or a JSON file."""
    import numpy as np

    if spec == "none":
        return None
    counts = np.bincount(np.asarray(labels), minlength=len(classes)).astype(float)
    if spec == "balanced":
        return [float(len(labels) / (len(classes) * c)) if c else 0.0 for c in counts]
    return weights_from_file(spec, classes)


def weights_from_file(path: str, classes: list[str]) -> list[float]:
    """A class_weight JSON file's weight of each class, in class order; the usual error when it cannot be read or
    does not name exactly the classes (training checks it before it writes anything or warns of the data)."""
    from ..errors import invalid
    from ..io import read_json

    try:
        mapping = read_json(path)
    except (OSError, ValueError) as exc:
        raise invalid("class_weight", path, "none, balanced or a readable JSON file", note=str(exc)) from None
    if not isinstance(mapping, dict) or set(mapping) != set(classes):
        held = f"keys {sorted(mapping)}" if isinstance(mapping, dict) else f"a {type(mapping).__name__}"
        raise invalid("class_weight", path, "a JSON file that maps every class name to a weight",
                      note=f"{held}; the classes are {classes}")
    bad = {c: w for c, w in mapping.items() if not _positive_number(w)}
    if bad:  # a negative weight trains towards the class's errors, and zero weights give a NaN loss
        shown = ", ".join(f"{c!r}: {w!r}" for c, w in list(bad.items())[:5]) + (" ..." if len(bad) > 5 else "")
        raise invalid("class_weight", path, "a JSON file whose weights are finite numbers above 0",
                      note=f"{len(bad)} {'weight is' if len(bad) == 1 else 'weights are'} not: {shown}")
    return [float(mapping[c]) for c in classes]


def _positive_number(value: object) -> bool:
    from ..stats import finite_number

    weight = finite_number(value)
    return weight is not None and weight > 0


def imbalance_warnings(cfg) -> list[str]:
    """Imbalance settings that run but are almost always a mistake: two corrections of the same imbalance."""
    if cfg.class_weight != "none" and cfg.sampler != "none":
        return [f"class_weight (--class-weight) {cfg.class_weight} with sampler (--sampler) {cfg.sampler}: both "
                "correct the class imbalance, so the small classes are favoured twice (drawn more often, then "
                "weighed up again in the loss); use one of the two"]
    return []


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


def step_counts(num_classes: int, num_minority: int, per_class: int, rho: float) -> tuple[int, int]:
    """Images per (minority, majority) class for a step imbalance that keeps the total at classes x per_class.

    With m of K classes minority, minority size n and majority size rho*n: m*n + (K-m)*rho*n = K*N, so
    n = K*N / (m + (K-m)*rho); for mu = 0.5 that is 2N/(1+rho) and 2N*rho/(1+rho) (S4: N=32, rho=15 -> 4/60).
    The ratio is the experiment's variable, so it is kept exact: majority = rho * minority, the minority size
    a multiple of rho's denominator (rho 1.2 = 6/5: 10 and 12, not 9 and 11, whose ratio is 1.22); the total
    moves by the rounding instead (choose N a multiple of (1+rho)/2 to avoid it). Only a rho with no fraction of
    denominator <= 100 keeps the nearest sizes, and its ratio moves (`rho_actual`).
    """
    from fractions import Fraction

    from ..errors import invalid

    if not 0 < num_minority < num_classes:
        raise invalid("num_minority", num_minority, f"between 1 and {num_classes - 1}",
                      where=f"{num_classes} classes")
    if per_class < 1:
        raise invalid("per_class", per_class, "a positive number of images")
    if not 1 <= rho < math.inf:
        raise invalid("rho", rho, "a finite ratio >= 1 (largest / smallest class)")
    exact = num_classes * per_class / (num_minority + (num_classes - num_minority) * rho)
    ratio = Fraction(rho).limit_denominator(100)
    step = ratio.denominator if abs(float(ratio) - rho) < 1e-9 else 1
    minority = step * max(1, int(exact / step + 0.5))  # round half up, never to an empty class
    return minority, int(rho * minority + 0.5)
