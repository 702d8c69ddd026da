"""Tests of :mod:`ksynth_spark.dp.postprocess` (spec §3.6) and the D2/D3 invariants."""

from __future__ import annotations

import itertools

import numpy as np

from ksynth_spark.combinations import ComboCodec
from ksynth_spark.dp.postprocess import postprocess
from ksynth_spark.numerics import round_half_away


def assert_d2_d3(table: dict[tuple[int, ...], int], attribute_ids: set[int], columns: np.ndarray) -> None:
    """D2 (no length-1 fabrication, sub-combinations present) and D3 (integers >= 1, A2); shared
    by the DP test modules."""
    singles = {c[0] for c in table if len(c) == 1}
    assert singles <= attribute_ids
    for combo, count in table.items():
        assert isinstance(count, int) and count >= 1
        assert list(combo) == sorted(set(combo))
        assert len({columns[a] for a in combo}) == len(combo)
        assert set(combo) <= singles
        for size in range(1, len(combo)):
            for sub in itertools.combinations(combo, size):
                if size >= 2:
                    assert sub in table, "D2: a sub-combination of length >= 2 is missing"
                if sub in table:
                    assert count <= table[sub], "A2: count larger than a present subset"


def test_round_half_away():
    values = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 0.49999999999999994, 2.4999, 3.0])
    assert round_half_away(values).tolist() == [1, 2, 3, -1, -3, 0, 2, 3]
    assert round_half_away(2.5) == 3.0


def test_postprocess_rounds_adds_parents_and_normalises():
    codec = ComboCodec(10, 3)
    table = {(0,): 20.4, (1,): 9.6, (2,): 15.0, (3,): 0.3,
             (0, 1): 12.5, (0, 2): 14.0, (1, 2): 0.2,     # (1,2) rounds to 0 -> re-added as parent
             (0, 1, 2): 8.4, (0, 1, 3): 3.0}              # (0,3), (1,3) missing parents
    keys = np.concatenate([codec.pack(np.array([c])) for c in table])
    out_keys, counts = postprocess(codec, keys, np.array(list(table.values())))
    ids, lengths = codec.unpack(out_keys)
    got = {tuple(int(x) for x in row[:n]): int(c) for row, n, c in zip(ids, lengths, counts, strict=True)}
    assert got == {
        (0,): 20, (1,): 10, (2,): 15,               # (3,) rounds to 0 and is dropped
        (0, 1): 10,                                  # 13 > count(1,) = 10
        (0, 2): 14, (1, 2): 8,                       # parent added with max superset count 8
        (0, 3): 3, (1, 3): 3,                        # parents of (0,1,3)
        (0, 1, 2): 8, (0, 1, 3): 3,
    }


def test_postprocess_invariants_on_random_tables():
    rng = np.random.default_rng(7)
    codec = ComboCodec(15, 4)
    columns = np.arange(15)
    for _ in range(20):
        combos = {tuple(sorted(rng.choice(15, int(rng.integers(1, 5)), replace=False).tolist())) for _ in range(80)}
        singles = {(a,) for c in combos for a in c}
        combos = sorted(combos | singles)
        keys = np.concatenate([codec.pack(np.array([c])) for c in combos])
        noisy = np.where(np.array([len(c) for c in combos]) == 1, rng.uniform(1, 60, len(combos)),
                         rng.uniform(0.01, 60, len(combos)))
        out_keys, counts = postprocess(codec, keys, noisy)
        ids, lengths = codec.unpack(out_keys)
        table = {tuple(int(x) for x in row[:n]): int(c) for row, n, c in zip(ids, lengths, counts, strict=True)}
        assert_d2_d3(table, set(range(15)), columns)


def test_postprocess_of_nothing():
    codec = ComboCodec(4, 2)
    keys, counts = postprocess(codec, np.zeros((0, codec.n_words), np.int64), np.zeros(0))
    assert keys.shape == (0, codec.n_words) and counts.size == 0
