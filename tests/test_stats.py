"""`mean_std`: the one mean ± standard deviation over runs (seeds)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from imgclf.stats import MeanStd, mean_std


def test_mean_and_sample_std_match_numpy():
    values = [0.91, 0.93, 0.92, 0.95]
    stat = mean_std(values)
    assert stat.mean == pytest.approx(np.mean(values))
    assert stat.std == pytest.approx(np.std(values, ddof=1))  # the spread over seeds is a sample: ddof=1
    assert stat.n == 4


def test_missing_values_are_left_out_and_one_value_has_no_spread():
    assert mean_std([0.5, None, math.nan, 0.7]) == MeanStd(pytest.approx(0.6), pytest.approx(math.sqrt(0.02)), 2)
    assert mean_std([0.5]) == MeanStd(0.5, None, 1)
    assert mean_std([None, math.inf]) == MeanStd(None, None, 0)
    assert mean_std(iter([1, 2, 3])).mean == 2.0  # any iterable, ints included


def test_text_and_dict():
    assert MeanStd(0.91234, 0.0123, 2).text(2, scale=100, unit=" %") == "91.23 ± 1.23 %"
    assert MeanStd(0.5, None, 1).text() == "0.500"
    assert MeanStd(None, None, 0).text() == "—"
    assert mean_std([1.0, 3.0]).as_dict() == {"mean": 2.0, "std": pytest.approx(math.sqrt(2)), "n": 2}


def test_finite_number_is_a_float_or_none():
    """The one reading of a number from a record or a user's file (runs, compare, class weights, lr_find.json)."""
    from imgclf.stats import finite_number

    assert [finite_number(x) for x in (3, 2.5, -1, 0)] == [3.0, 2.5, -1.0, 0.0]
    assert [finite_number(x) for x in (True, "1", None, float("nan"), float("inf"), 10 ** 400, [1])] == [None] * 7


def test_equal_values_have_exactly_that_mean_and_no_spread():
    """Three folds with the same macro F1, 0.9365079365079365: the sum's rounding gave a mean 1 ulp off and a std
    of 1.4e-16, shown as "93.65 ± 0.00" beside an accuracy whose equal values showed none."""
    value = 0.9365079365079365
    m = mean_std([value] * 3)
    assert m.mean == value and m.std == 0.0 and m.n == 3
    assert mean_std([0.9375] * 3).std == 0.0
