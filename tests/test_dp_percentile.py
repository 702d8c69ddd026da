"""Tests of :mod:`ksynth_spark.dp.percentile` (spec §3.5, §3.7): score vectors and invariant D4."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from ksynth_spark.dp.noise import SeededNoise
from ksynth_spark.dp.percentile import (
    dp_percentile,
    dp_percentile_from_histogram,
    histogram,
    percentile_scores,
    percentile_scores_from_histogram,
)
from ksynth_spark.numerics import quantile_r8
from tests.test_dp_noise import ZeroNoise


def test_quantile_r8_matches_numpy_median_unbiased():
    rng = np.random.default_rng(0)
    for _ in range(200):
        x = np.sort(rng.integers(0, 30, int(rng.integers(1, 25))))
        p = float(rng.choice([0.0, 1.0, rng.uniform()]))
        assert quantile_r8(x, p) == pytest.approx(np.quantile(x, p, method="median_unbiased"))
    assert math.isnan(quantile_r8([], 0.5))


SCORE_VECTORS = [
    ([0, 1, 4, 5, 5, 8, 11, 12, 12, 15], [-5, -4, -4, -4, -3, -1, -1, -1, 0, -1, -1, -1, -3, -3, -3, -4]),
    ([4] * 10, [-6, -6, -6, -6, 0]),
    ([4] * 8 + [5, 5], [-6, -6, -6, -6, 0, -4]),
    (list(range(2, 12)), [-6, -6, -5, -4, -3, -2, -1, 0, -1, -2, -3, -4]),
    ([5, 4], [-2, -2, -2, -2, 0, -1]),
    ([4], [-1, -1, -1, -1, 0]),
    ([], []),
]


@pytest.mark.parametrize("data,expected", SCORE_VECTORS)
def test_d4_percentile_score_vectors(data, expected):
    assert percentile_scores(data, 60).tolist() == expected


def literal_scores(data: list[int], q: float) -> list[int]:
    """A line-by-line transcription of spec §3.5's score loop (independent reference)."""
    if not data:
        return []
    d = sorted(data)
    n, p = len(d), q / 100
    quantile = math.floor(np.quantile(d, p, method="median_unbiased"))
    pi = sum(1 for v in d if v <= quantile) - 1
    pv, top = d[pi], max(d)
    last = {v: j for j, v in enumerate(d)}
    scores, prev = [], None
    for i in range(top + 1):
        if i < pv:
            raw = pi - last[i] if i in last else (max(prev, 1) if prev is not None else math.ceil(n * p - 1e-9))
        elif i == pv:
            raw = 0
        else:
            raw = math.ceil(n * (1 - p) - 1e-9) if i == top else (last[i] - pi if i in last else max(prev, 1))
        scores.append(-raw)
        prev = raw
    return scores


def test_percentile_scores_match_literal_loop():
    rng = np.random.default_rng(1)
    for trial in range(300):
        data = rng.integers(0, 20, int(rng.integers(1, 30))).tolist()
        q = int(rng.choice([0, 1, 50, 60, 95, 99, 100, int(rng.integers(0, 101))]))
        assert percentile_scores(data, q).tolist() == literal_scores(data, q), (trial, data, q)


def test_d4_dp_percentile_range_and_limits():
    rng = np.random.default_rng(2)
    for seed in range(200):
        data = rng.integers(0, 40, int(rng.integers(1, 50))).tolist()
        value = dp_percentile(data, 99, float(rng.uniform(0.01, 5)), SeededNoise(seed))
        assert 0 <= value <= max(data)
    assert dp_percentile([], 99, 1.0, SeededNoise(0)) == 0
    # without noise the mechanism returns the best-scored candidate: pv, i.e. max for Q = 100
    assert dp_percentile([3, 9, 4], 100, 1.0, ZeroNoise()) == 9
    assert dp_percentile([0, 1, 4, 5, 5, 8, 11, 12, 12, 15], 60, 1.0, ZeroNoise()) == 8


def test_dp_percentile_concentrates_with_large_epsilon():
    data = list(range(2, 12))
    picks = Counter(dp_percentile(data, 60, 200.0, SeededNoise(s)) for s in range(200))
    assert picks.most_common(1)[0][0] == 7


def test_histogram_and_list_percentile_agree():
    data = [3, 3, 0, 7, 7, 7, 1]
    values, counts = histogram(data)
    assert values.tolist() == [0, 1, 3, 7] and counts.tolist() == [1, 1, 2, 3]
    assert (percentile_scores_from_histogram(values, counts, 99) == percentile_scores(data, 99)).all()
    assert [a.tolist() for a in histogram([])] == [[], []]


def test_weighted_histogram_counts_each_value_weight_times():
    """A distinct row of weight m counts its |W| m times: the same scores and percentile as the
    expanded multiset."""
    sizes, weights = [3, 0, 7, 3, 5], [2, 1, 3, 4, 0]
    values, counts = histogram(sizes, weights)
    assert values.tolist() == [0, 3, 7] and counts.tolist() == [1, 6, 3]  # weight 0 leaves no value
    expanded = [s for s, w in zip(sizes, weights, strict=True) for _ in range(w)]
    for q in (0, 50, 60, 99, 100):
        assert (percentile_scores_from_histogram(values, counts, q) == percentile_scores(expanded, q)).all()
    assert dp_percentile_from_histogram(values, counts, 60, 1.0, SeededNoise(4)) == dp_percentile(
        expanded, 60, 1.0, SeededNoise(4))
