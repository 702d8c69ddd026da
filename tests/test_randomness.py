"""Random streams (ksynth_spark.randomness): keyed by seed, phase and logical id only; WChoice,
uniform integers, permutations and run splits with the right distributions."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from ksynth_spark.randomness import (
    PHASE_ROW_SEEDED,
    PHASE_SUPPRESS,
    RandomStream,
    row_hashes,
    split_runs,
    uniform_keys,
)


def test_streams_depend_only_on_seed_phase_and_id():
    a = RandomStream(7, PHASE_ROW_SEEDED, 42)
    b = RandomStream(7, PHASE_ROW_SEEDED, 42)
    assert [a.next_u64() for _ in range(5)] == [b.next_u64() for _ in range(5)]
    assert RandomStream(7, PHASE_ROW_SEEDED, 43).next_u64() != RandomStream(7, PHASE_ROW_SEEDED, 42).next_u64()
    assert RandomStream(8, PHASE_ROW_SEEDED, 42).next_u64() != RandomStream(7, PHASE_ROW_SEEDED, 42).next_u64()
    ids = np.array([0, 5, 2**40])
    assert uniform_keys(7, PHASE_SUPPRESS, ids).tolist() == [RandomStream(7, PHASE_SUPPRESS, int(i)).next_u64()
                                                             for i in ids]


def test_wchoice_uses_running_sums_and_skips_zero_weights():
    """P(x) = m[x] / Σm; weight-0 candidates never win; all-zero is NONE."""
    stream = RandomStream(1, 99, 0)
    weights = [0, 3, 0, 1, 6]
    draws = Counter(stream.wchoice(weights) for _ in range(20000))
    assert set(draws) == {1, 3, 4}
    for index, expected in ((1, 0.3), (3, 0.1), (4, 0.6)):
        assert abs(draws[index] / 20000 - expected) < 5 * math.sqrt(expected * (1 - expected) / 20000)
    assert stream.wchoice([0, 0]) == -1
    assert stream.wchoice([]) == -1


def test_below_and_permutation_are_uniform():
    stream = RandomStream(3, 99, 0)
    values = Counter(stream.below(3) for _ in range(30000))
    assert all(abs(values[v] / 30000 - 1 / 3) < 0.015 for v in range(3))
    perms = Counter(tuple(stream.permutation(3)) for _ in range(12000))
    assert len(perms) == 6 and all(abs(c / 12000 - 1 / 6) < 0.02 for c in perms.values())


def test_split_runs_is_multinomial():
    """Splitting 5 runs over weights 1:2:7 gives multinomial(5, 0.1/0.2/0.7) counts."""
    stream = RandomStream(4, 99, 0)
    weights = np.array([1, 2, 7], dtype=np.int64)
    out = np.zeros(3, dtype=np.int64)
    totals = np.zeros(3)
    seen_all_in_third = 0
    draws = 20000
    for _ in range(draws):
        split_runs(weights, 3, 5, stream.state, out)
        assert out.sum() == 5
        totals += out
        seen_all_in_third += out[2] == 5
    assert np.allclose(totals / (5 * draws), [0.1, 0.2, 0.7], atol=0.01)
    p = 0.7 ** 5
    assert abs(seen_all_in_third / draws - p) < 5 * math.sqrt(p * (1 - p) / draws)


def test_row_hashes_depend_on_content_only():
    offsets = np.array([0, 2, 4, 4, 5])
    ids = np.array([1, 5, 1, 5, 3])
    hashes = row_hashes(offsets, ids)
    assert hashes[0] == hashes[1] and len(set(hashes.tolist())) == 3
    assert row_hashes(np.array([2, 4]), ids)[0] == row_hashes(np.array([0, 2]), np.array([1, 5]))[0]
