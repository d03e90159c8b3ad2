"""Mean ± standard deviation over repeated runs (seeds): the one place it is computed, so `compare`, the studies,
the figures and the benchmarks report the same spread for the same numbers."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class MeanStd:
    mean: float | None
    std: float | None  # sample standard deviation (ddof=1); None below two values
    n: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self, digits: int = 3, scale: float = 1.0, unit: str = "") -> str:
        """"0.912 ± 0.012", "91.23 ± 1.23 %" (scale 100, unit " %"); "—" when there is no value."""
        if self.mean is None:
            return "—"
        out = f"{scale * self.mean:.{digits}f}"
        if self.std is not None:
            out += f" ± {scale * self.std:.{digits}f}"
        return out + unit


def mean_std(values: Iterable[float | int | None]) -> MeanStd:
    """Mean and sample standard deviation of the finite values; None and NaN (a run without that number) are
    left out and not counted in n.

    The spread over seeds is a sample of what another seed would give, hence ddof=1 (airbench, numpy's
    `std(ddof=1)`). One value has no spread: std is None there rather than a misleading 0.
    """
    xs = [float(v) for v in values if v is not None and not isinstance(v, bool) and math.isfinite(float(v))]
    if not xs:
        return MeanStd(None, None, 0)
    if len(set(xs)) == 1:  # the sum's rounding made three equal 0.9365... a mean 1 ulp off, "± 0.00" beside it
        return MeanStd(xs[0], 0.0 if len(xs) > 1 else None, len(xs))
    mean = math.fsum(xs) / len(xs)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
    return MeanStd(mean, std, len(xs))


def finite_number(x: Any) -> float | None:
    """A number read from a record or a user's file, as a float; None for anything else: text, true/false, NaN,
    infinity, or an integer too large for a float."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    try:
        value = float(x)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None
