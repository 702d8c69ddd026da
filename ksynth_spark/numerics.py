"""Shared numerics: the one home of the spec's small formulas (no Spark here).

``floor_k`` (rounding down to a multiple of k), ``Quantile_R8`` (Hyndman–Fan type 8, used by
the DP percentile and the aggregate_seeded weights), rounding half away from zero (DP counts and
aggregate_seeded weights), exact decimal fractions, and the membership test of keys in a sorted
key set (used wherever packed combination keys are looked up).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction

import numpy as np

from ksynth_spark.jit import inline_kernel, kernel


def floor_k(x, k: int):
    """``k * floor(x / k)`` for ints or numpy arrays."""
    return (x // k) * k


@inline_kernel
def _r8_h(n, p):
    """``h = (n + 1/3)·p + 1/3`` of ``Quantile_R8`` for ``n`` values (its ``j`` is ``floor(h)``)."""
    return (n + 1.0 / 3.0) * p + 1.0 / 3.0


@kernel
def quantile_r8_span(n_max, p):
    """How many of the largest values ``Quantile_R8(x, p)`` reads at most, over sorted lists of
    ``1..n_max`` values: keeping that many largest values of a growing list keeps it exact."""
    span = 1
    for n in range(1, n_max + 1):
        j = int(math.floor(_r8_h(n, p)))
        if j <= 0 or p == 0.0:
            need = n
        elif j >= n or p == 1.0:
            need = 1
        else:
            need = n - j + 1
        if need > span:
            span = need
    return span


@kernel
def quantile_r8_top(values, row, n, kept, p):
    """``Quantile_R8`` of a sorted list of ``n >= 1`` values whose ``kept`` largest are
    ``values[row, :kept]`` (ascending; ``kept >= min(n, quantile_r8_span(n, p))``)."""
    h = _r8_h(n, p)
    j = np.int64(math.floor(h))
    skipped = n - kept
    if j <= 0 or p == 0.0:
        return float(values[row, 0])
    if j >= n or p == 1.0:
        return float(values[row, kept - 1])
    return values[row, j - 1 - skipped] + (h - j) * (values[row, j - skipped] - values[row, j - 1 - skipped])


@kernel
def round_half_away_scalar(x):
    """Rounds half away from zero (compiled scalar version)."""
    return np.int64(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def quantile_r8_at(element: Callable[[int], float], n: int, p: float) -> float:
    """``Quantile_R8`` of a sorted sequence of ``n >= 1`` values given by ``element(i)``
    (lets callers evaluate it over a histogram without expanding it)."""
    h = (n + 1.0 / 3.0) * p + 1.0 / 3.0
    j = math.floor(h)
    if j <= 0 or p == 0:
        return element(0)
    if j >= n or p == 1:
        return element(n - 1)
    low = element(j - 1)
    return low + (h - j) * (element(j) - low)


def quantile_r8(values: Sequence[float], p: float) -> float:
    """``Quantile_R8(x, p)`` of ``values`` in any order; NaN for no values."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    if x.size == 0:
        return float("nan")
    return quantile_r8_at(lambda i: float(x[i]), x.size, p)


def round_half_away(x):
    """Rounds half away from zero (``2.5 → 3``, ``-2.5 → -3``): a float for a scalar, an
    array of floats for an array."""
    values = np.asarray(x, dtype=np.float64)
    magnitude = np.abs(values)
    whole = np.floor(magnitude)
    whole = whole + (magnitude - whole >= 0.5)
    result = np.copysign(whole, values)
    return result if result.ndim else float(result)


def ceil_fraction(n: int, percentage: float) -> int:
    """``ceil(n · percentage / 100)`` without floating-point error for decimal percentages."""
    return math.ceil(n * Fraction(str(percentage)) / 100)


def decimal_fraction(value: float) -> Fraction:
    """The exact fraction of the decimal a float was written as (``0.1`` → 1/10)."""
    return Fraction(repr(float(value)))


def member(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which ``keys`` are in the ascending ``sorted_keys``, and where.

    Args:
        sorted_keys: 1-D ascending keys (int64 or the void view of packed keys).
        keys: 1-D keys of the same dtype.

    Returns:
        ``(hit, position)``: boolean hit per key and its index in ``sorted_keys`` (valid where hit).
    """
    if sorted_keys.size == 0:
        return np.zeros(keys.shape[0], dtype=bool), np.zeros(keys.shape[0], dtype=np.int64)
    position = np.minimum(np.searchsorted(sorted_keys, keys), sorted_keys.size - 1)
    return sorted_keys[position] == keys, position
