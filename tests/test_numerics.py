"""Shared numerics (ksynth_spark.numerics): Quantile_R8, rounding half away from zero, exact
decimal fractions and sorted-key membership."""

from __future__ import annotations

import numpy as np
import pytest

from ksynth_spark.numerics import ceil_fraction, decimal_fraction, floor_k, member, quantile_r8, round_half_away


@pytest.mark.parametrize("values", [[1.0], [3, 3, 6], [5, 1, 9, 2], list(range(1, 300, 7))])
@pytest.mark.parametrize("p", [0.0, 0.05, 0.5, 0.95, 1.0])
def test_quantile_r8_matches_numpy_median_unbiased(values, p):
    assert quantile_r8(values, p) == pytest.approx(np.quantile(values, p, method="median_unbiased"))


def test_round_half_away_from_zero():
    assert [round_half_away(x) for x in (0.5, 1.5, 2.5, 2.4999, -0.5, -1.5)] == [1, 2, 3, 2, -1, -2]
    assert round_half_away(np.array([0.5, -2.5])).tolist() == [1, -3]


def test_exact_fractions_and_floor():
    assert ceil_fraction(10, 99) == 10 and ceil_fraction(100, 0.5) == 1
    assert decimal_fraction(0.1).denominator == 10
    assert floor_k(np.array([9, 10, 29]), 10).tolist() == [0, 10, 20]


def test_member():
    keys = np.array([1, 4, 9], dtype=np.int64)
    hit, position = member(keys, np.array([4, 5, 9, 0]))
    assert hit.tolist() == [True, False, True, False] and position[hit].tolist() == [1, 2]
    assert member(keys[:0], np.array([1]))[0].tolist() == [False]
