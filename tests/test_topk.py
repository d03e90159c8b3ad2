"""`top_k` / `top_indices`: the one ranking of classes (predictions) and images (top losses)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from imgclf.topk import top_indices, top_k


def test_largest_first_ties_in_position_order_nan_last():
    assert top_indices([0.1, 0.5, 0.2, 0.5, math.nan, 0.9], 6) == [5, 1, 3, 2, 0, 4]
    assert top_indices(np.array([[3.0, 1.0], [2.0, 4.0]]), 2) == [3, 0]  # any shape, read flat


def test_k_is_clamped():
    assert top_indices([0.3, 0.7], 5) == [1, 0]
    assert top_indices([0.3, 0.7], 0) == []
    assert top_indices([], 3) == []


def test_top_k_lists_class_and_probability():
    probs = np.array([0.1, 0.6, 0.3], dtype=np.float32)
    assert top_k(probs, ["cat", "dog", "fox"], 2) == [("dog", pytest.approx(0.6)), ("fox", pytest.approx(0.3))]
    assert [c for c, _ in top_k(probs, ["cat", "dog", "fox"], 0)] == ["dog"]  # at least one class
    assert len(top_k(probs, ["cat", "dog", "fox"], 10)) == 3
    assert all(isinstance(p, float) for _, p in top_k(probs, ["cat", "dog", "fox"], 3))  # JSON-ready
    with pytest.raises(ValueError, match="one value per class"):
        top_k(probs, ["cat", "dog"], 1)
