"""The numpy combination kernels against a plain itertools count (invariants A1, A3)."""

import numpy as np
import pytest

from ksynth_spark.combinations import (
    ComboCodec,
    count_combinations,
    csr_from_lists,
    reduce_counts,
    shortest_member_length,
    sortable,
)
from tests import reference


def _random_records(rng, n_records, n_columns, values_per_column, missing=0.2):
    records = []
    for _ in range(n_records):
        record = []
        for column in range(n_columns):
            if rng.random() >= missing:
                record.append(column * values_per_column + int(rng.integers(values_per_column)))
        records.append(record)
    return records


def _counts(codec, records, max_length, weights=None, **kw):
    offsets, ids = csr_from_lists(records)
    weights = np.ones(len(records), np.int64) if weights is None else weights
    parts = list(count_combinations(codec, offsets, ids, weights, max_length, **kw))
    keys = np.concatenate([p[0] for p in parts])
    counts = np.concatenate([p[1] for p in parts])
    keys, counts = reduce_counts(keys, counts)
    ids_, lengths = codec.unpack(keys)
    return {frozenset(row[row >= 0].tolist()): int(c) for row, c in zip(ids_, counts, strict=True)}


@pytest.mark.parametrize("seed, n_columns, values, max_length", [(1, 5, 3, 3), (2, 8, 2, 8), (3, 6, 40, 4)])
def test_counts_equal_itertools(seed, n_columns, values, max_length):
    rng = np.random.default_rng(seed)
    records = _random_records(rng, 300, n_columns, values)
    codec = ComboCodec(n_columns * values, max_length)
    # tiny chunks and flushes exercise the partial-result paths
    got = _counts(codec, records, max_length, chunk_instances=97, flush_size=50)
    expected = reference.count([frozenset(r) for r in records], max_length)
    assert got == {frozenset(k): v for k, v in expected.items()}
    # A3: occurrences of length l = sum over records of C(m_i, l)
    from math import comb
    for length in range(1, max_length + 1):
        assert sum(v for key, v in got.items() if len(key) == length) == sum(comb(len(r), length) for r in records)


def test_multi_word_keys_and_weights():
    codec = ComboCodec(n_attrs=300, max_length=9)  # 9 bits per slot, 7 slots per word -> 2 words
    assert codec.n_words == 2
    records = [list(range(0, 270, 30)), list(range(0, 270, 30)), [5, 35]]
    merged = _counts(codec, [records[0], records[2]], 9, weights=np.array([2, 1]))
    assert merged == _counts(codec, records, 9)
    assert merged[frozenset(range(0, 270, 30))] == 2


def test_shortest_member_length():
    codec = ComboCodec(10, 3)
    offsets, ids = csr_from_lists([[0, 3, 6], [1, 4], [2]])
    members = np.sort(sortable(codec.pack(np.array([[3, 6], [1, 4]]))))
    assert shortest_member_length(codec, offsets, ids, members, 3).tolist() == [2, 2, 0]


@pytest.mark.parametrize("seed, n_columns, values, max_length", [(4, 5, 3, 3), (5, 7, 6, 7)])
def test_column_set_kernels_equal_the_enumerating_ones(seed, n_columns, values, max_length):
    from ksynth_spark.combinations import (
        ColumnLayout,
        count_by_column_sets,
        fits_column_sets,
        shortest_member_length_by_column_sets,
    )

    rng = np.random.default_rng(seed)
    records = _random_records(rng, 400, n_columns, values, missing=0.3)
    weights = rng.integers(1, 4, len(records))
    codec = ComboCodec(n_columns * values, max_length)
    layout = ColumnLayout.from_attr_columns(np.arange(n_columns * values) // values, n_columns)
    assert fits_column_sets(layout, max_length)
    offsets, ids = csr_from_lists(records)
    by_sets = list(count_by_column_sets(codec, layout, offsets, ids, weights, max_length))
    keys, counts = reduce_counts(np.concatenate([p[0] for p in by_sets]), np.concatenate([p[1] for p in by_sets]))
    assert len(keys) == sum(len(p[0]) for p in by_sets)  # each combination is emitted once
    enumerated = list(count_combinations(codec, offsets, ids, weights, max_length))
    keys2, counts2 = reduce_counts(np.concatenate([p[0] for p in enumerated]),
                                   np.concatenate([p[1] for p in enumerated]))
    assert np.array_equal(keys, keys2) and np.array_equal(counts, counts2)
    members = np.sort(sortable(keys[counts <= 2]))
    assert np.array_equal(shortest_member_length_by_column_sets(codec, layout, offsets, ids, members, max_length),
                          shortest_member_length(codec, offsets, ids, members, max_length))
