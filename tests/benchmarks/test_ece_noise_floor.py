"""The calibration benchmark's noise floor: the ECE a perfectly calibrated model measures on a finite test set."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.trust_calibration import binned_ece, ece_noise_floor
from imgclf.evaluation.metrics import expected_calibration_error


def _confident(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.clip(1 - rng.beta(0.5, 6.0, n), 0.1, 1.0)  # mostly near 1, a tail down to 0.1, like a trained model


def test_binned_ece_is_the_reported_ece():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.full(10, 0.3), 500)
    labels = rng.integers(0, 10, 500)
    assert binned_ece(probs.max(1), probs.argmax(1) == labels) == pytest.approx(
        expected_calibration_error(probs, labels)[0], abs=1e-12)


def test_a_calibrated_model_measures_inside_the_floor_and_a_miscalibrated_one_above_it():
    rng = np.random.default_rng(2)
    confidence = _confident(5000, rng)
    floor = ece_noise_floor(confidence, target=0.0, draws=300)
    assert 0 < floor["p05"] < floor["mean"] < floor["p95"] < 0.05
    assert floor["share_at_or_below_target"] == 0.0  # no draw measures a perfect 0
    calibrated = binned_ece(confidence, rng.random(5000) < confidence)
    assert floor["p05"] / 2 < calibrated < floor["p95"] * 2
    overconfident = binned_ece(confidence, rng.random(5000) < confidence - 0.05)
    assert overconfident > 3 * floor["p95"]
    # fewer images, a higher floor
    assert ece_noise_floor(confidence[:500], target=0.0, draws=300)["mean"] > 2 * floor["mean"]
