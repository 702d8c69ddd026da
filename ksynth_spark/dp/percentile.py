"""The DP percentile that sets each length's allowed contribution Δ (spec §3.5).

Works on a histogram of the contribution sizes ``|W_i|`` (distinct value, multiplicity), so a
Spark job only has to collect one small row per distinct size. The exponential mechanism adds
Exponential(mean 2/ε) noise to every candidate's score and keeps the first maximum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ksynth_spark.combinations import reduce_counts
from ksynth_spark.dp.noise import NoiseSource
from ksynth_spark.numerics import ceil_fraction, quantile_r8_at


def histogram(data: Sequence[int] | np.ndarray,
              weights: Sequence[int] | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(values, counts)`` of a multiset of non-negative integers, values ascending.

    Args:
        data: The values.
        weights: Multiplicity of every value of ``data`` (default 1 each); values whose total
            multiplicity is 0 are left out.
    """
    keys = np.asarray(data, dtype=np.int64).reshape(-1)
    multiplicity = (np.ones(keys.size, np.int64) if weights is None
                    else np.asarray(weights, dtype=np.int64).reshape(-1))
    values, counts = reduce_counts(keys, multiplicity)
    present = counts > 0
    return values[present], counts[present]


def percentile_scores_from_histogram(values: np.ndarray, counts: np.ndarray, percentage: float) -> np.ndarray:
    """Score vector of the DP percentile (spec §3.5) for candidates ``0..max``.

    Args:
        values: Distinct non-negative integer values, ascending.
        counts: Multiplicity of each value (> 0).
        percentage: Q, the percentile in percent.

    Returns:
        int64 scores (``-raw``) for candidates ``0..max(values)``; empty for empty data.
    """
    values = np.asarray(values, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    cum = np.cumsum(counts)
    n = int(cum[-1])

    def element(i: int) -> float:
        return float(values[np.searchsorted(cum, i, side="right")])

    q = math.floor(quantile_r8_at(element, n, percentage / 100.0))
    pi = int(cum[np.searchsorted(values, q, side="right") - 1]) - 1
    pv = int(element(pi))
    top = int(values[-1])

    last = np.full(top + 1, -1, dtype=np.int64)
    last[values] = cum - 1
    candidates = np.arange(top + 1)
    anchor = last >= 0
    anchor[0] = True
    raw = np.zeros(top + 1, dtype=np.int64)
    below = anchor & (candidates < pv)
    above = anchor & (candidates > pv)
    raw[below] = pi - last[below]
    raw[above] = last[above] - pi
    if top > pv:
        raw[top] = ceil_fraction(n, 100 - percentage)
    if last[0] < 0 and pv > 0:  # i = 0 not present
        raw[0] = ceil_fraction(n, percentage)
    raw[pv] = 0
    # a candidate absent from the data repeats its left neighbour's raw score, at least 1
    nearest_anchor = np.maximum.accumulate(np.where(anchor, candidates, 0))
    filled = np.maximum(raw[nearest_anchor], 1)
    raw = np.where(anchor, raw, filled)
    return -raw


def percentile_scores(data: Sequence[int], percentage: float) -> np.ndarray:
    """Score vector of the DP percentile over a plain list of values (spec §3.5)."""
    return percentile_scores_from_histogram(*histogram(data), percentage)


def dp_percentile_from_histogram(
    values: np.ndarray, counts: np.ndarray, percentage: float, epsilon: float, noise: NoiseSource
) -> int:
    """``DpPercentile`` (spec §3.5): argmax of score + Exponential(mean 2/ε); 0 for empty data.

    Draws one exponential per candidate ``0..max(values)`` from ``noise``.
    """
    scores = percentile_scores_from_histogram(values, counts, percentage)
    if scores.size == 0:
        return 0
    noisy = scores + noise.exponential(2.0 / epsilon, scores.size)
    return int(np.argmax(noisy))  # first maximum: ties keep the smaller candidate


def dp_percentile(data: Sequence[int], percentage: float, epsilon: float, noise: NoiseSource) -> int:
    """``DpPercentile`` over a plain list of non-negative integers (spec §3.5)."""
    return dp_percentile_from_histogram(*histogram(data), percentage, epsilon, noise)
