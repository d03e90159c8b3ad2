"""Temperature scaling (Guo et al., 2017, "On Calibration of Modern Neural Networks").

One scalar T > 0 is fitted on held-out (validation) logits by minimising the negative log-likelihood of
softmax(logits / T); the calibrated probabilities are softmax(logits / T) everywhere they leave the program.
Dividing every logit of an image by the same T > 0 keeps their order, so the predicted class, and accuracy, never
change: only how confident the probabilities are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

METHODS = ("none", "temperature")
# Where the search stops: a temperature outside this range means the logits carry no usable scale (all
# validation images right by a wide margin pushes T towards 0), and such a T would not transfer to new images.
T_MIN, T_MAX = 0.02, 50.0


def bound_reached(temperature: float) -> str | None:
    """Why a fitted temperature is not to be trusted, when the search stopped at one of its bounds."""
    if temperature <= T_MIN * (1 + 1e-6):
        return (f"the search's lower bound ({T_MIN}): the validation images are nearly all right by wide margins, "
                "so the likelihood kept rising as T fell; such a temperature sharpens probabilities further than "
                "new images will bear out")
    if temperature >= T_MAX * (1 - 1e-6):
        return (f"the search's upper bound ({T_MAX:g}): the logits carry almost no information about the validation "
                "labels, so the fit flattened the probabilities as far as it could")
    return None


@dataclass(frozen=True)
class TemperatureFit:
    temperature: float
    nll_before: float
    nll_after: float
    skipped: str = ""  # why no temperature was fitted (T stays 1): empty when one was


def nll(logits: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of softmax(logits / temperature), in float64."""
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    return float(F.cross_entropy(z / temperature, y))


def fit_temperature(logits: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor,
                    max_iter: int = 200) -> TemperatureFit:
    """The T that minimises the NLL of softmax(logits / T) on these (validation) images.

    The NLL is convex in 1/T (a log-sum-exp of the logits scaled by it, less a linear term), so a bounded 1-D
    search over [1/T_MAX, 1/T_MIN] finds its one minimum (Guo et al. use L-BFGS over T: here it ran over a log T
    clamped to the bounds, whose flat gradient past the lower one stopped it there, 0.02 for a minimum at 0.039).
    When every image is already classified correctly the NLL keeps falling as T -> 0, so there is no minimum to
    find: T stays 1 and `skipped` says why. A fit that would raise the NLL (it cannot, barring numerics) also
    keeps T = 1."""
    from scipy.optimize import minimize_scalar

    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    before = float(F.cross_entropy(z, y)) if len(y) else math.nan
    if len(y) == 0:
        return TemperatureFit(1.0, before, before, "no validation images")
    if bool((z.argmax(1) == y).all()):
        return TemperatureFit(1.0, before, before, "every validation image is already classified correctly, so "
                                                    "sharper probabilities always score better there (the loss "
                                                    "falls as T -> 0): the raw softmax is kept")

    def loss(inverse_t: float) -> float:
        return float(F.cross_entropy(z * inverse_t, y))

    found = minimize_scalar(loss, bounds=(1 / T_MAX, 1 / T_MIN), method="bounded",
                            options={"xatol": 1e-10, "maxiter": max_iter})
    t = 1 / min((float(found.x), 1 / T_MAX, 1 / T_MIN), key=loss)  # a minimum at a bound: the bound itself
    after = float(F.cross_entropy(z / t, y))
    if not math.isfinite(after) or after > before:
        return TemperatureFit(1.0, before, before, "the fit did not lower the validation NLL")
    return TemperatureFit(t, before, after)


def uncalibrated(probs: np.ndarray, temperature: float) -> np.ndarray:
    """The raw softmax back from calibrated probabilities: softmax(T * log p) = softmax(logits), since
    log p = logits / T - const. (What the report's 'before' reliability diagram needs from predictions.csv.)"""
    p = np.asarray(probs, dtype=np.float64)
    with np.errstate(divide="ignore"):
        z = temperature * np.log(p)
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)
