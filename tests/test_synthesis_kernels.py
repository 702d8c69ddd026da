"""Synthesis kernels without Spark: spec §8.4 worked example and invariants S1–S8 (spec §7).

Every privacy or calibration check recomputes supports and counts here, with plain Python
sets over the sensitive records, never with the code under test.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest

from ksynth_spark import synthesis_kernels as K
from ksynth_spark.combinations import csr_from_lists
from ksynth_spark.model import attribute_table, floor_k

# ------------------------------------------------------------------------------------ helpers
EXAMPLE_ROWS = [
    ("a1", "b1", "c1"), ("a1", "b1", "c1"), ("a1", "b1", "c2"), ("a1", "b2", "c1"), ("a1", "b2", None),
    ("a1", None, "c2"), ("a2", "b1", "c1"), ("a2", "b1", "c3"), ("a2", "b2", "c1"), ("a2", "b2", "c1"),
    ("a2", "b2", "c2"), ("a2", "b2", "c3"),
]


class Table:
    """A sensitive table as id sets, with its support index (brute-force helpers for checks)."""

    def __init__(self, rows: list[tuple], headers: list[str], k: int):
        counts = Counter((h, v) for row in rows for h, v in zip(headers, row) if v is not None)
        self.attributes = attribute_table([(h, v, n) for (h, v), n in counts.items()], headers)
        ids = {(c, v): i for i, c, v in zip(self.attributes.attr_id, self.attributes.column, self.attributes.value)}
        self.records = [frozenset(ids[(h, v)] for h, v in zip(headers, row) if v is not None) for row in rows]
        self.id_of = {f"{c}:{v}": i for (c, v), i in ids.items()}
        self.k = k
        self.n = self.attributes["count"].to_numpy()
        self.space = K.AttributeSpace(self.attributes["column_index"].to_numpy(np.int64), len(headers))
        self.offsets, self.ids = csr_from_lists([sorted(r) for r in self.records])
        self.index = K.SupportIndex.from_records(self.offsets, self.ids, self.space, k)

    def oracle(self, cache_size: int = 1000) -> K.SupportOracle:
        return K.SupportOracle(self.index, cache_size)

    def support(self, combo) -> int:
        combo = frozenset(combo)
        return sum(1 for r in self.records if combo <= r)

    def ids_of(self, *labels: str) -> frozenset:
        return frozenset(self.id_of[label] for label in labels)

    def reportable(self, length: int) -> tuple[list, list]:
        """k-anonymous aggregates counted by itertools (floor_k of every count >= k)."""
        counts: Counter = Counter()
        for record in self.records:
            for size in range(1, length + 1):
                counts.update(itertools.combinations(sorted(record), size))
        kept = [(list(c), floor_k(n, self.k)) for c, n in counts.items() if n >= self.k]
        return [c for c, _ in kept], [n for _, n in kept]


def records_of(offsets, ids) -> list[frozenset]:
    return [frozenset(ids[offsets[i]:offsets[i + 1]].tolist()) for i in range(len(offsets) - 1)]


def attribute_counts(records, n_attrs: int) -> np.ndarray:
    counts = np.zeros(n_attrs, dtype=np.int64)
    for record in records:
        for a in record:
            counts[a] += 1
    return counts


def row_seeded(table: Table, seed: int, cache_size: int = 1000) -> list[frozenset]:
    """Spec §4.1 through the kernels (phase 1, consolidation, suppression)."""
    oracle = table.oracle(cache_size)
    n = len(table.records)
    offsets, ids = K.row_seeded_phase1(oracle, seed, np.arange(n), table.offsets, table.ids)
    used = np.bincount(ids, minlength=len(table.n))
    extra = K.row_seeded_consolidation(oracle, seed, used)
    all_offsets = np.concatenate([offsets, offsets[-1] + extra.offsets[1:]])
    all_ids = np.concatenate([ids, extra.ids])
    record_ids = np.arange(len(all_offsets) - 1)
    counts = np.bincount(all_ids, minlength=len(table.n))
    kept, new_offsets, new_ids, _ = K.suppress_to_targets(
        record_ids, K.uniform_keys(seed, K.PHASE_SUPPRESS, record_ids), all_offsets, all_ids,
        K.excess_counts(counts, table.n, table.k))
    return records_of(new_offsets, new_ids)


def value_seeded(table: Table, seed: int, **options) -> tuple[list[frozenset], K.Consolidation]:
    result = K.value_seeded(table.oracle(), seed, K.ConsolidationOptions(**options))
    record_ids = np.arange(result.n_records)
    counts = np.bincount(result.ids, minlength=len(table.n))
    _, offsets, ids, _ = K.suppress_to_targets(record_ids, K.uniform_keys(seed, K.PHASE_SUPPRESS, record_ids),
                                               result.offsets, result.ids, K.excess_counts(counts, table.n, table.k))
    return records_of(offsets, ids), result


def random_table(seed: int, n_rows: int = 240, n_columns: int = 5, k: int = 3) -> Table:
    """Skewed categorical data with empty cells, so rare values and combinations occur."""
    rng = np.random.default_rng(seed)
    headers = [f"col{c}" for c in range(n_columns)]
    rows = []
    for _ in range(n_rows):
        row = []
        for c in range(n_columns):
            width = 2 + c
            value = int(min(rng.geometric(0.45), width))
            row.append(None if rng.random() < 0.08 else f"v{value}")
        rows.append(tuple(row))
    return Table(rows, headers, k)


@pytest.fixture(scope="module")
def example() -> Table:
    return Table(EXAMPLE_ROWS, ["A", "B", "C"], 3)


# ------------------------------------------------------------------------------------ randomness
def test_streams_depend_only_on_seed_phase_and_id():
    a = K.RandomStream(7, K.PHASE_ROW_SEEDED, 42)
    b = K.RandomStream(7, K.PHASE_ROW_SEEDED, 42)
    assert [a.next_u64() for _ in range(5)] == [b.next_u64() for _ in range(5)]
    assert K.RandomStream(7, K.PHASE_ROW_SEEDED, 43).next_u64() != K.RandomStream(7, K.PHASE_ROW_SEEDED, 42).next_u64()
    assert K.RandomStream(8, K.PHASE_ROW_SEEDED, 42).next_u64() != K.RandomStream(7, K.PHASE_ROW_SEEDED, 42).next_u64()
    ids = np.array([0, 5, 2**40])
    keys = K.uniform_keys(7, K.PHASE_SUPPRESS, ids)
    assert keys.tolist() == [K.RandomStream(7, K.PHASE_SUPPRESS, int(i)).next_u64() for i in ids]


def test_wchoice_uses_running_sums_and_skips_zero_weights():
    """Spec §0: P(x) = m[x] / Σm; weight-0 candidates never win; all-zero is NONE."""
    stream = K.RandomStream(1, 99, 0)
    weights = [0, 3, 0, 1, 6]
    draws = Counter(stream.wchoice(weights) for _ in range(20000))
    assert set(draws) == {1, 3, 4}
    for index, expected in ((1, 0.3), (3, 0.1), (4, 0.6)):
        # 5 standard errors of a binomial proportion over 20,000 draws: <= 0.0175
        assert abs(draws[index] / 20000 - expected) < 5 * math.sqrt(expected * (1 - expected) / 20000)
    assert stream.wchoice([0, 0]) == -1
    assert stream.wchoice([]) == -1


def test_below_and_permutation_are_uniform():
    stream = K.RandomStream(3, 99, 0)
    values = Counter(stream.below(3) for _ in range(30000))
    assert all(abs(values[v] / 30000 - 1 / 3) < 0.015 for v in range(3))
    perms = Counter(tuple(stream.permutation(3)) for _ in range(12000))
    assert len(perms) == 6 and all(abs(c / 12000 - 1 / 6) < 0.02 for c in perms.values())


# ------------------------------------------------------------------------------------ §8.4 worked example
PHASE1_EXPECTED = {
    0: {("A:a1", "B:b1"): 11 / 34, ("A:a1", "C:c1"): 12 / 34, ("B:b1", "C:c1"): 11 / 34},
    1: {("A:a1", "B:b1"): 11 / 34, ("A:a1", "C:c1"): 12 / 34, ("B:b1", "C:c1"): 11 / 34},
    2: {("A:a1", "B:b1"): 11 / 14, ("C:c2",): 3 / 14},
    3: {("A:a1", "C:c1"): 1 / 2, ("B:b2", "C:c1"): 1 / 2},
    4: {("A:a1",): 1 / 2, ("B:b2",): 1 / 2},
    5: {("A:a1",): 2 / 3, ("C:c2",): 1 / 3},
    6: {("A:a2", "C:c1"): 9 / 17, ("B:b1", "C:c1"): 8 / 17},
    7: {("A:a2",): 6 / 11, ("B:b1",): 5 / 11},
    8: {("A:a2", "B:b2"): 8 / 21, ("A:a2", "C:c1"): 13 / 42, ("B:b2", "C:c1"): 13 / 42},
    9: {("A:a2", "B:b2"): 8 / 21, ("A:a2", "C:c1"): 13 / 42, ("B:b2", "C:c1"): 13 / 42},
    10: {("A:a2", "B:b2"): 4 / 5, ("C:c2",): 1 / 5},
    11: {("A:a2", "B:b2"): 1.0},
}
ALLOWED_PAIRS = [("A:a1", "B:b1"), ("A:a1", "C:c1"), ("A:a2", "B:b2"), ("A:a2", "C:c1"), ("B:b1", "C:c1"),
                 ("B:b2", "C:c1")]
FINAL_COUNTS = {"A:a1": 6, "A:a2": 6, "B:b1": 3, "B:b2": 6, "C:c1": 6, "C:c2": 3}


def test_example_phase1_outcome_distribution(example):
    """Spec §8.4 phase-1 table: exact outcome probabilities of every seed record.

    10,000 seeds per record. Tolerance: 5 binomial standard errors sqrt(p(1-p)/n) of each
    probability (<= 0.025); the outcomes are fixed by the seeds, and for a correct sampler the
    chance that any of the 27 cells misses by 5 sigma is below 1e-5.
    """
    draws = 10000
    outcomes = {i: Counter() for i in range(12)}
    oracle = example.oracle()
    for seed in range(draws):
        offsets, ids = K.row_seeded_phase1(oracle, seed, np.arange(12), example.offsets, example.ids)
        for i, record in enumerate(records_of(offsets, ids)):
            outcomes[i][record] += 1
    for i, expected in PHASE1_EXPECTED.items():
        wanted = {example.ids_of(*labels): p for labels, p in expected.items()}
        assert set(outcomes[i]) == set(wanted), f"record r{i}"
        for record, p in wanted.items():
            tolerance = 5 * math.sqrt(p * (1 - p) / draws)
            assert abs(outcomes[i][record] / draws - p) <= tolerance, (f"r{i}", record, outcomes[i][record])


@pytest.mark.parametrize("mode", ["row_seeded", "value_seeded"])
def test_example_seeded_modes_final_counts(example, mode):
    """Spec §8.4: final single counts fixed, no triple, only protected pairs, no C:c3."""
    allowed = {example.ids_of(*p) for p in ALLOWED_PAIRS}
    for seed in range(40):
        records = row_seeded(example, seed) if mode == "row_seeded" else value_seeded(example, seed)[0]
        counts = attribute_counts(records, len(example.n))
        assert {label: counts[example.id_of[label]] for label in FINAL_COUNTS} == FINAL_COUNTS
        assert counts[example.id_of["C:c3"]] == 0
        assert all(len(r) == 1 or r in allowed for r in records)
        assert all(r and example.support(r) >= 3 for r in records)


def test_example_unseeded(example):
    """Spec §8.4: exactly 12 records, each empty, a single (not C:c3) or a protected pair."""
    allowed = {example.ids_of(*p) for p in ALLOWED_PAIRS}
    c3 = example.id_of["C:c3"]
    empty = 0
    for seed in range(60):
        offsets, ids = K.unseeded_records(example.oracle(), seed, np.arange(12))
        records = records_of(offsets, ids)
        assert len(records) == 12
        assert all(len(r) <= 1 and c3 not in r or r in allowed for r in records)
        empty += sum(1 for r in records if not r)
    assert empty > 0     # e.g. EMPTY for column C first leaves only r4, then every value is rare


def test_example_aggregate_seeded(example):
    """Spec §8.4: same single counts, only protected pairs, triples only {a1,b1,c1} / {a2,b2,c1}."""
    combos, counts = example.reportable(2)
    table = K.AggregateTable.from_combos(combos, counts, len(example.n), 2)
    allowed = {example.ids_of(*p) for p in ALLOWED_PAIRS}
    triples = {example.ids_of("A:a1", "B:b1", "C:c1"), example.ids_of("A:a2", "B:b2", "C:c1")}
    seen_triples = set()
    for seed in range(60):
        result = K.aggregate_seeded(table, example.space, seed)
        records = records_of(result.offsets, result.ids)
        got = attribute_counts(records, len(example.n))
        assert {label: got[example.id_of[label]] for label in FINAL_COUNTS} == FINAL_COUNTS
        for record in records:
            assert record
            assert all(frozenset(pair) in allowed for pair in itertools.combinations(record, 2))
            if len(record) == 3:
                assert record in triples
                seen_triples.add(record)
    assert seen_triples      # records beyond the reporting length do occur (no guarantee there)


def test_example_aggregate_weight_uses_rounded_percentile():
    """Spec §8.4: weight of adding C:c1 to {A:a1, B:b1} = round(R8 95th of [3, 3, 6]) = 6."""
    assert K.round_half_away(K.quantile_r8([3, 3, 6], 0.95)) == 6


# ------------------------------------------------------------------------------------ quantile and rounding
@pytest.mark.parametrize("values", [[1.0], [3, 3, 6], [5, 1, 9, 2], list(range(1, 300, 7))])
@pytest.mark.parametrize("p", [0.0, 0.05, 0.5, 0.95, 1.0])
def test_quantile_r8_matches_numpy_median_unbiased(values, p):
    assert K.quantile_r8(values, p) == pytest.approx(np.quantile(values, p, method="median_unbiased"))


def test_round_half_away_from_zero():
    assert [K.round_half_away(x) for x in (0.5, 1.5, 2.5, 2.4999, -0.5, -1.5)] == [1, 2, 3, 2, -1, -2]


# ------------------------------------------------------------------------------------ invariants S1–S8
TABLE_SEEDS = [11, 12, 13]


@pytest.fixture(scope="module", params=[(11, 2), (12, 3), (13, 5)], ids=lambda p: f"table{p[0]}-k{p[1]}")
def table(request) -> Table:
    seed, k = request.param
    return random_table(seed, k=k)


def test_row_seeded_invariants(table):
    """S1 (support >= k), S2 (counts = floor_k(n)), no empty record, for several seeds."""
    targets = np.where(table.n >= table.k, floor_k(table.n, table.k), 0)
    for seed in range(5):
        records = row_seeded(table, seed)
        assert all(records), "empty record emitted"
        assert all(table.support(r) >= table.k for r in records)
        assert attribute_counts(records, len(table.n)).tolist() == targets.tolist()


def test_row_seeded_phase1_is_a_maximal_subset_of_its_seed(table):
    """S4: s_i ⊆ r_i, and no a in r_i \\ s_i with n(a) >= k keeps support >= k."""
    n = len(table.records)
    for seed in range(3):
        offsets, ids = K.row_seeded_phase1(table.oracle(), seed, np.arange(n), table.offsets, table.ids)
        for record, grown in zip(table.records, records_of(offsets, ids)):
            assert grown <= record
            assert not grown or table.support(grown) >= table.k
            for a in record - grown:
                assert table.n[a] < table.k or table.support(grown | {a}) < table.k


def test_phase1_supports_are_exact_when_partial_records_switch_to_row_lists():
    """S4 on a table of 3,000 rows (47 bitset words): partial records with at most 64 matching
    rows are answered from row lists spread over many words, larger ones from bitsets."""
    table = random_table(11, n_rows=3000, n_columns=7, k=3)
    assert K._new_path(table.index)[4].shape[1] == 64
    sample = 400
    offsets, ids = K.row_seeded_phase1(table.oracle(50), 5, np.arange(sample), table.offsets[:sample + 1], table.ids)
    sizes = []
    for record, grown in zip(table.records[:sample], records_of(offsets, ids)):
        support = table.support(grown)
        sizes.append(support)
        assert grown <= record and support >= table.k
        for a in record - grown:
            assert table.n[a] < table.k or table.support(grown | {a}) < table.k
    assert min(sizes) <= 64 < max(sizes)


def test_value_seeded_invariants(table):
    targets = np.where(table.n >= table.k, floor_k(table.n, table.k), 0)
    for seed in range(5):
        records, result = value_seeded(table, seed)
        assert result.quota_left == 0 and not result.stalled
        assert all(records) and all(table.support(r) >= table.k for r in records)
        assert attribute_counts(records, len(table.n)).tolist() == targets.tolist()


def test_value_seeded_oversampling_respects_ceilings(table):
    """S8: before suppression every controlled combination count <= A[c]·(1 + ratio)."""
    combos, counts = table.reportable(2)
    control = K.AggregateTable.from_combos(combos, counts, len(table.n), 2)
    ratio = 0.1
    for seed in range(4):
        records, result = value_seeded(table, seed, control=control, ratio=ratio, tries=10)
        built = Counter()
        for record in records_of(result.offsets, result.ids):
            for size in (1, 2):
                built.update(itertools.combinations(sorted(record), size))
        for combo, count in zip(combos, counts):
            assert built[tuple(sorted(combo))] <= count * (1 + ratio)
        assert all(table.support(r) >= table.k for r in records)


def test_unseeded_invariants(table):
    """S1 for the non-empty attributes of every record and S3 (exactly N records)."""
    n = len(table.records)
    for seed in range(5):
        offsets, ids = K.unseeded_records(table.oracle(), seed, np.arange(n))
        records = records_of(offsets, ids)
        assert len(records) == n
        assert all(table.support(r) >= table.k for r in records if r)


@pytest.mark.parametrize("length", [2, 3])
def test_aggregate_seeded_invariants(table, length):
    """S5: every combination of length <= R is a reportable key; single counts = reportable;
    records non-empty. Also with synthetic counts."""
    combos, counts = table.reportable(length)
    keys = {frozenset(c) for c in combos}
    singles = {c[0]: n for c, n in zip(combos, counts) if len(c) == 1}
    aggregate = K.AggregateTable.from_combos(combos, counts, len(table.n), length)
    for seed, synthetic in ((0, False), (1, False), (2, True)):
        result = K.aggregate_seeded(aggregate, table.space, seed, use_synthetic_counts=synthetic)
        records = records_of(result.offsets, result.ids)
        assert all(records)
        for record in records:
            for size in range(1, min(length, len(record)) + 1):
                assert all(frozenset(c) in keys for c in itertools.combinations(record, size))
        got = attribute_counts(records, len(table.n))
        assert {a: int(got[a]) for a in singles} == singles
        assert got.sum() == sum(singles.values())


def test_aggregate_seeded_target_and_scale(table):
    """S6: exactly T records with a target (quotas reset when exhausted); scale factor ceilings."""
    combos, counts = table.reportable(2)
    aggregate = K.AggregateTable.from_combos(combos, counts, len(table.n), 2)
    keys = {frozenset(c) for c in combos}
    n = len(table.records)
    for target in (1, n // 3, 2 * n):
        result = K.aggregate_seeded(aggregate, table.space, 5, target=target)
        assert result.n_records == target
        assert all(frozenset(p) in keys for r in records_of(result.offsets, result.ids)
                   for p in itertools.combinations(r, 2))
    scaled = K.aggregate_seeded(aggregate, table.space, 5, scale=0.5)
    got = attribute_counts(records_of(scaled.offsets, scaled.ids), len(table.n))
    for combo, count in zip(combos, counts):
        if len(combo) == 1:
            assert got[combo[0]] == math.ceil(count / 2)


def test_scale_factor_is_read_as_a_decimal():
    table = K.AggregateTable.from_combos([[0], [1]], [30, 7], 2, 1)
    assert table.scaled_counts(0.1).tolist() == [3, 1]


def test_output_order_matches_sorting_the_string_rows(table):
    """S7: non-empty cells non-increasing, then lexicographic ascending (ordinal strings)."""
    records = row_seeded(table, 3)
    offsets, ids = csr_from_lists([sorted(r) for r in records])
    values = list(table.attributes["value"])
    columns = table.attributes["column_index"].to_numpy()
    ranks = K.value_ranks(columns, values)
    cells, non_empty = K.row_cells(offsets, ids, columns, ranks, table.space.n_columns)
    order = K.output_order(cells, non_empty)
    rows = []
    for record in records:
        row = [""] * table.space.n_columns
        for a in record:
            row[columns[a]] = values[a]
        rows.append(row)
    expected = sorted(rows)
    expected.sort(key=lambda r: -sum(1 for c in r if c))
    assert [rows[i] for i in order] == expected


# ------------------------------------------------------------------------------------ suppression
def sequential_suppression(records: list[frozenset], order: list[int], excess: np.ndarray) -> list[frozenset]:
    """Spec §4.0 SuppressToTargets, literally: walk the records in the shuffled order."""
    left = excess.copy()
    out = [set(r) for r in records]
    for i in order:
        for a in sorted(records[i]):
            if left[a] > 0:
                out[i].discard(a)
                left[a] -= 1
    return [frozenset(r) for r in out]


def test_suppression_equals_the_sequential_algorithm(table):
    records = [r for r in row_seeded(table, 1)] + table.records[:50]
    offsets, ids = csr_from_lists([sorted(r) for r in records])
    counts = attribute_counts(records, len(table.n))
    excess = K.excess_counts(counts, table.n, table.k)
    assert excess.sum() > 0
    record_ids = np.arange(len(records))
    keys = K.uniform_keys(9, K.PHASE_SUPPRESS, record_ids)
    kept, new_offsets, new_ids, removed = K.suppress_to_targets(record_ids, keys, offsets, ids, excess)
    order = sorted(range(len(records)), key=lambda i: (int(keys[i]), i))
    expected = sequential_suppression(records, order, excess)
    assert removed == excess.sum()
    assert records_of(new_offsets, new_ids) == [r for r in expected if r]
    assert kept.tolist() == [i for i, r in enumerate(expected) if r]
    after = attribute_counts(expected, len(table.n))
    targets = floor_k(table.n, table.k)
    assert all(after[a] <= targets[a] for a in range(len(table.n)) if table.n[a] >= table.k)


def test_suppression_victims_merge_across_partitions(table):
    """Selecting victims per partition, then re-selecting the union, equals selecting at once."""
    records = row_seeded(table, 2) + table.records
    offsets, ids = csr_from_lists([sorted(r) for r in records])
    excess = K.excess_counts(attribute_counts(records, len(table.n)), table.n, table.k)
    record_ids = np.arange(len(records))
    keys = K.uniform_keys(4, K.PHASE_SUPPRESS, record_ids)
    whole = K.smallest_occurrences(record_ids, keys, offsets, ids, excess)
    parts = []
    for rows in np.array_split(np.random.default_rng(0).permutation(len(records)), 3):
        part = [sorted(records[i]) for i in rows]
        part_offsets, part_ids = csr_from_lists(part)
        parts.append(K.smallest_occurrences(rows, keys[rows], part_offsets, part_ids, excess))
    merged = K.select_smallest(*(np.concatenate([p[j] for p in parts]) for j in range(3)), excess)
    assert all(np.array_equal(a, b) for a, b in zip(whole, merged))


# ------------------------------------------------------------------------------------ determinism
def test_cache_size_and_batching_do_not_change_results(table):
    """The LRU cache and the batch split are performance only (spec §4.0)."""
    n = len(table.records)
    reference = K.row_seeded_phase1(table.oracle(100000), 8, np.arange(n), table.offsets, table.ids)
    tiny = K.row_seeded_phase1(table.oracle(1), 8, np.arange(n), table.offsets, table.ids)
    half = n // 2
    first = K.row_seeded_phase1(table.oracle(3), 8, np.arange(half), table.offsets[:half + 1], table.ids)
    second = K.row_seeded_phase1(table.oracle(3), 8, np.arange(half, n), table.offsets[half:], table.ids)
    assert all(np.array_equal(a, b) for a, b in zip(reference, tiny))
    assert records_of(*reference) == records_of(*first) + records_of(*second)
    assert row_seeded(table, 4, cache_size=2) == row_seeded(table, 4)
    unseeded = K.unseeded_records(table.oracle(1), 3, np.arange(n))
    again = K.unseeded_records(table.oracle(1000), 3, np.arange(n)[::-1])
    assert records_of(*unseeded) == records_of(*again)[::-1]


def test_lru_cache_evicts_and_stays_consistent(table):
    oracle = table.oracle(4)
    n = len(table.records)
    K.row_seeded_phase1(oracle, 1, np.arange(n), table.offsets, table.ids)
    assert oracle.cache.meta[2] == 4 and oracle.cache.misses > 4
    assert (oracle.cache.slot_entry >= 0).sum() == 4
