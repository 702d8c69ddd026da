"""row_seeded phase 1 over distinct rows (ksynth_spark.synthesis.seeded), without Spark.

The spec's phase 1 grows every sensitive record separately; the kernel grows the m copies of a
distinct row together. These tests check the per-record distribution of the worked example, that
m merged runs are distributed like m independent runs, maximality (S4), and that caching,
batching and buffer sizes never change the output.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from ksynth_spark.synthesis.index import DistinctIndex
from ksynth_spark.synthesis.paths import SupportOracle, path_push, path_reset, record_reset, record_supports, supports
from ksynth_spark.synthesis.seeded import grow_rows
from tests.synthetic_tables import EXAMPLE_ROWS, Table, random_table

PHASE1_EXPECTED = {
    ("A:a1", "B:b1", "C:c1"): {("A:a1", "B:b1"): 11 / 34, ("A:a1", "C:c1"): 12 / 34, ("B:b1", "C:c1"): 11 / 34},
    ("A:a1", "B:b1", "C:c2"): {("A:a1", "B:b1"): 11 / 14, ("C:c2",): 3 / 14},
    ("A:a1", "B:b2", "C:c1"): {("A:a1", "C:c1"): 1 / 2, ("B:b2", "C:c1"): 1 / 2},
    ("A:a1", "B:b2"): {("A:a1",): 1 / 2, ("B:b2",): 1 / 2},
    ("A:a1", "C:c2"): {("A:a1",): 2 / 3, ("C:c2",): 1 / 3},
    ("A:a2", "B:b1", "C:c1"): {("A:a2", "C:c1"): 9 / 17, ("B:b1", "C:c1"): 8 / 17},
    ("A:a2", "B:b1", "C:c3"): {("A:a2",): 6 / 11, ("B:b1",): 5 / 11},
    ("A:a2", "B:b2", "C:c1"): {("A:a2", "B:b2"): 8 / 21, ("A:a2", "C:c1"): 13 / 42, ("B:b2", "C:c1"): 13 / 42},
    ("A:a2", "B:b2", "C:c2"): {("A:a2", "B:b2"): 4 / 5, ("C:c2",): 1 / 5},
    ("A:a2", "B:b2", "C:c3"): {("A:a2", "B:b2"): 1.0},
}


@pytest.fixture(scope="module")
def example() -> Table:
    return Table(EXAMPLE_ROWS, ["A", "B", "C"], 3)


def grow(table: Table, seed: int, copies=None, oracle=None, **kwargs):
    """Phase 1 of every distinct row of ``table``: the output sets with their run counts."""
    copies = table.weights if copies is None else copies
    return grow_rows(oracle or table.oracle(), seed, table.hashes, table.offsets, table.ids, copies, **kwargs)


def test_example_phase1_outcome_distribution(example):
    """Spec §8.4 phase-1 table: exact outcome probabilities of every seed record.

    10,000 seeds, one run per distinct row. Tolerance: 5 binomial standard errors of each
    probability; for a correct sampler the chance that any of the cells misses is below 1e-5.
    """
    draws = 10000
    outcomes = {row: Counter() for row in example.distinct}
    oracle = example.oracle()
    ones = np.ones(len(example.distinct), dtype=np.int64)
    for seed in range(draws):
        grown = grow(example, seed, ones, oracle)
        for row, record in zip(grown.row, _sets(grown), strict=True):
            outcomes[example.distinct[row]][record] += 1
    for labels, expected in PHASE1_EXPECTED.items():
        row = example.ids_of(*labels)
        wanted = {example.ids_of(*outcome): p for outcome, p in expected.items()}
        assert set(outcomes[row]) == set(wanted), labels
        for record, p in wanted.items():
            assert abs(outcomes[row][record] / draws - p) <= 5 * math.sqrt(p * (1 - p) / draws), (labels, record)


def _sets(grown) -> list[frozenset]:
    return [frozenset(grown.ids[i, :grown.sizes[i]].tolist()) for i in range(len(grown.runs))]


def test_merged_runs_are_distributed_like_independent_runs(example):
    """Three copies of (a1, b1, c1) grown together: the multiset of their outcomes has the
    multinomial distribution of three independent runs (11/34, 12/34, 11/34)."""
    row = example.distinct.index(example.ids_of("A:a1", "B:b1", "C:c1"))
    draws = 8000
    copies = np.zeros(len(example.distinct), dtype=np.int64)
    copies[row] = 3
    p = {example.ids_of("A:a1", "B:b1"): 11 / 34, example.ids_of("A:a1", "C:c1"): 12 / 34,
         example.ids_of("B:b1", "C:c1"): 11 / 34}
    oracle = example.oracle()
    seen: Counter = Counter()
    for seed in range(draws):
        grown = grow(example, seed, copies, oracle)
        assert grown.runs.sum() == 3 and set(grown.row) <= {row}
        seen[tuple(sorted((tuple(sorted(s)), int(n)) for s, n in zip(_sets(grown), grown.runs, strict=True)))] += 1
    for outcome, count in seen.items():
        sizes = [n for _, n in outcome]
        probability = math.factorial(3) / math.prod(math.factorial(n) for n in sizes)
        probability *= math.prod(p[frozenset(s)] ** n for s, n in outcome)
        assert abs(count / draws - probability) <= 5 * math.sqrt(probability * (1 - probability) / draws), outcome
    assert len(seen) == 10     # every multiset of three outcomes out of three occurs


@pytest.mark.parametrize("seed, k", [(11, 2), (12, 3), (13, 5)])
def test_phase1_is_a_maximal_subset_of_its_seed(seed, k):
    """S4: s ⊆ r, support(s) >= k, and no a in r \\ s with n(a) >= k keeps support >= k; the
    runs of a row add up to its multiplicity."""
    table = random_table(seed, k=k)
    for run_seed in range(3):
        grown = grow(table, run_seed)
        runs_per_row = np.bincount(grown.row, weights=grown.runs, minlength=len(table.distinct))
        assert runs_per_row.tolist() == table.weights.tolist()
        for row, grown_set in zip(grown.row, _sets(grown), strict=True):
            record = table.distinct[row]
            assert grown_set <= record
            assert not grown_set or table.support(grown_set) >= table.k
            for a in record - grown_set:
                assert table.n[a] < table.k or table.support(grown_set | {a}) < table.k


def test_supports_are_exact_when_partial_records_switch_to_row_lists():
    """S4 on a wide table (3,000 rows): partial records matching few distinct rows are answered
    from row lists spread over many words, larger ones from bitsets."""
    table = random_table(11, n_rows=3000, n_columns=7, k=3)
    oracle = table.oracle(50)
    grown = grow(table, 5, oracle=oracle)
    supports = []
    for row, grown_set in zip(grown.row, _sets(grown), strict=True):
        supports.append(table.support(grown_set))
        assert supports[-1] >= table.k
        for a in table.distinct[row] - grown_set:
            assert table.n[a] < table.k or table.support(grown_set | {a}) < table.k
    assert min(supports) <= oracle.path.rows.shape[1] < max(supports)


def test_cache_batching_and_buffers_do_not_change_results():
    """The LRU cache, the batch split, the level scratch and the output buffer sizes are
    performance only: the sets and their runs are identical."""
    table = random_table(12, k=3)
    reference = grow(table, 8, oracle=table.oracle(100000))
    tiny = grow(table, 8, oracle=table.oracle(1), states=1)
    half = len(table.distinct) // 2
    first = grow_rows(table.oracle(3), 8, table.hashes[:half], table.offsets[:half + 1], table.ids,
                      table.weights[:half])
    second = grow_rows(table.oracle(3), 8, table.hashes[half:], table.offsets[half:], table.ids, table.weights[half:])
    for name in ("sizes", "runs", "leaf"):
        assert np.array_equal(getattr(reference, name), getattr(tiny, name))
        assert np.array_equal(getattr(reference, name), np.concatenate([getattr(first, name), getattr(second, name)]))
    assert _sets(reference) == _sets(tiny) == _sets(first) + _sets(second)
    assert reference.row.tolist() == first.row.tolist() + (second.row + half).tolist()
    assert grow(table, 9).runs.tolist() != reference.runs.tolist() or _sets(grow(table, 9)) != _sets(reference)


def test_lru_cache_evicts_and_stays_consistent():
    table = random_table(13, k=2)
    oracle = table.oracle(4)
    grow(table, 1, oracle=oracle)
    assert oracle.cache.meta[2] == 4 and oracle.cache.misses > 4
    assert (oracle.cache.slot_entry >= 0).sum() == 4


def test_histogram_supports_equal_value_by_value_queries():
    """Supports counted by one pass over the rows (an index with its rows, many candidates) equal
    the brute-force counts, for partial records answered by row lists and by bitsets, through
    the cache and not, and kept along a growing record; and phase 1 gives the same output
    without the rows."""
    table = random_table(11, n_rows=3000, n_columns=7, k=3)
    plain = DistinctIndex(table.offsets, table.ids, table.weights, table.space, table.k)
    assert table.index.row_ids.size and not plain.row_ids.size
    everything = np.arange(len(table.n), dtype=np.int64)
    rng = np.random.default_rng(3)
    sizes_seen = set()
    for index in (table.index, plain):
        oracle = SupportOracle(index, 8)
        for record in rng.choice(len(table.records), 60):
            partial = sorted(table.records[record])[:int(rng.integers(1, 4))]
            path_reset(oracle.path, index.parts())
            for a in partial:
                path_push(oracle.path, index.zobrist, a, table.support(partial))
            out = np.zeros(everything.size, dtype=np.int64)
            for _ in range(2):                                   # a miss, then (for large ones) a hit
                supports(index.parts(), oracle.cache.parts(), oracle.path, everything, everything.size, out)
                assert out.tolist() == [table.support(set(partial) | {a}) for a in everything]
            sizes_seen.add(table.support(partial) <= oracle.path.rows.shape[1])
    assert sizes_seen == {True, False}
    for cache_size in (1, 100000):
        with_rows = grow(table, 5, oracle=SupportOracle(table.index, cache_size))
        without = grow(table, 5, oracle=SupportOracle(plain, cache_size))
        assert _sets(with_rows) == _sets(without) and with_rows.runs.tolist() == without.runs.tolist()
    oracle = SupportOracle(table.index, 8)
    record_reset(oracle.path)
    for record in rng.choice(len(table.records), 30):           # records that only grow (Consolidate)
        path_reset(oracle.path, table.index.parts())
        record_reset(oracle.path)
        partial: list[int] = []
        for a in sorted(table.records[record]):
            partial.append(a)
            path_push(oracle.path, table.index.zobrist, a, table.support(partial))
            out = np.zeros(everything.size, dtype=np.int64)
            record_supports(table.index.parts(), oracle.cache.parts(), oracle.path, everything, everything.size, out)
            assert out.tolist() == [table.support(set(partial) | {b}) for b in everything]
