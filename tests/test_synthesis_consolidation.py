"""Consolidation, unseeded, suppression and output order kernels (ksynth_spark.synthesis), without Spark.

Invariants S1–S8 on the worked example and on random tables; supports and counts are
recomputed with plain Python sets (tests/synthetic_tables.py), never with the code under test.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest

from ksynth_spark.combinations import csr_from_lists
from ksynth_spark.numerics import quantile_r8, round_half_away
from ksynth_spark.randomness import (
    PHASE_AGGREGATE_SEEDED,
    PHASE_SUPPRESS,
    PHASE_UNSEEDED,
    PHASE_VALUE_SEEDED,
    RandomStream,
    row_hashes,
    stream_base,
)
from ksynth_spark.synthesis.aggregate_table import AggregateTable
from ksynth_spark.synthesis.consolidation import (
    AggregateSampler,
    ConsolidationOptions,
    SeedSampler,
    consolidate,
    leftover_quotas,
    seeded_quotas,
    split_quota,
)
from ksynth_spark.synthesis.index import DistinctIndex
from ksynth_spark.synthesis.order import output_order, row_cells, value_ranks
from ksynth_spark.synthesis.paths import SupportOracle, new_path, path_push, path_reset
from ksynth_spark.synthesis.proposals import propose
from ksynth_spark.synthesis.runs import StateLevel, merge_states, root_level
from ksynth_spark.synthesis.seeded import grow_rows
from ksynth_spark.synthesis.suppression import (
    Occurrences,
    SuppressionThresholds,
    apply_suppression,
    copy_key,
    select_smallest,
    smallest_occurrences,
)
from ksynth_spark.synthesis.unseeded import Expander, unseeded_groups
from tests.synthetic_tables import EXAMPLE_ROWS, Table, attribute_counts, expand, random_table, records_of

ALLOWED_PAIRS = [("A:a1", "B:b1"), ("A:a1", "C:c1"), ("A:a2", "B:b2"), ("A:a2", "C:c1"), ("B:b1", "C:c1"),
                 ("B:b2", "C:c1")]
FINAL_COUNTS = {"A:a1": 6, "A:a2": 6, "B:b1": 3, "B:b2": 6, "C:c1": 6, "C:c2": 3}


@pytest.fixture(scope="module")
def example() -> Table:
    return Table(EXAMPLE_ROWS, ["A", "B", "C"], 3)


@pytest.fixture(scope="module", params=[(11, 2), (12, 3), (13, 5)], ids=lambda p: f"table{p[0]}-k{p[1]}")
def table(request) -> Table:
    seed, k = request.param
    return random_table(seed, k=k)


# ------------------------------------------------------------------------------------ pipelines of kernels
def suppress(table: Table, seed: int, groups: np.ndarray, offsets, ids, counts) -> list[frozenset]:
    """SuppressToTargets on groups through the kernels (one partition)."""
    got = attribute_counts(expand(offsets, ids, counts), len(table.n))
    targets = table.targets()
    excess = np.where((table.n >= table.k) & (got > targets), got - targets, 0)
    victims = smallest_occurrences(seed, groups, counts, offsets, ids, excess)
    thresholds = SuppressionThresholds.from_victims(victims, len(table.n))
    new_offsets, new_ids, new_counts = apply_suppression(seed, thresholds, groups, counts, offsets, ids,
                                                         int(excess.sum()))
    return expand(new_offsets, new_ids, new_counts)


def row_seeded(table: Table, seed: int, tasks: int = 1) -> list[frozenset]:
    """Spec §4.1 through the kernels: phase 1 over distinct rows, phase 2 split in ``tasks``
    logical tasks, phase 3 suppression."""
    grown = grow_rows(table.oracle(), seed, table.hashes, table.offsets, table.ids, table.weights)
    offsets = np.concatenate([[0], np.cumsum(grown.sizes)])
    ids = np.concatenate([grown.ids[i, :grown.sizes[i]] for i in range(len(grown.sizes))] or [np.zeros(0, np.int64)])
    used = attribute_counts(expand(offsets, ids, grown.runs), len(table.n))
    sets = records_of(offsets, ids)
    counts = list(grown.runs)
    for task, share in enumerate(split_quota(leftover_quotas(table.n, used, table.k), tasks)):
        built = consolidate(share, SeedSampler(table.oracle()), table.space, RandomStream(seed, 2, task))
        sets += [frozenset(r) for r in built.records()]
        counts += [1] * built.n_records
    group_offsets, group_ids = csr_from_lists([sorted(s) for s in sets])
    groups = np.arange(len(sets), dtype=np.int64)
    return [r for r in suppress(table, seed, groups, group_offsets, group_ids, np.array(counts)) if r]


def value_seeded(table: Table, seed: int, **options) -> tuple[list[frozenset], object]:
    built = consolidate(seeded_quotas(table.n, table.k), SeedSampler(table.oracle()), table.space,
                        RandomStream(seed, PHASE_VALUE_SEEDED, 0), ConsolidationOptions(**options))
    ones = np.ones(built.n_records, dtype=np.int64)
    return suppress(table, seed, np.arange(built.n_records), built.offsets, built.ids, ones), built


def unseeded(table: Table, seed: int, n: int | None = None) -> list[frozenset]:
    """Spec §4.2 through the merged-run kernels: ``n`` (default N) records."""
    done = unseeded_groups(table.index, seed, len(table.records) if n is None else n)
    offsets = np.concatenate([[0], np.cumsum(done.sizes)])
    ids = done.ids[np.arange(done.ids.shape[1])[None, :] < done.sizes[:, None]]
    return expand(offsets, ids, done.runs)


def unseeded_distribution(table: Table) -> dict[frozenset, float]:
    """The exact distribution of one spec §4.2 record, by enumerating column orders and draws
    with Python sets over the sensitive records."""
    columns = sorted(set(table.space.columns.tolist()))
    values = {c: [a for a in range(len(table.n)) if table.space.columns[a] == c] for c in columns}
    result: Counter = Counter()

    def visit(remaining: tuple, rows: list, record: frozenset, p: float) -> None:
        if not remaining:
            result[record] += p
            return
        for column in remaining:
            rest = tuple(c for c in remaining if c != column)
            matching = {a: [r for r in rows if a in r] for a in values[column]}
            empty = [r for r in rows if not any(a in r for a in values[column])]
            weights = {a: len(m) for a, m in matching.items() if len(m) >= table.k}
            folded = len(empty) + sum(len(m) for m in matching.values() if len(m) < table.k)
            total = sum(weights.values()) + folded
            q = p / len(remaining)
            if total == 0:
                visit(rest, rows, record, q)
                continue
            for a, w in weights.items():
                visit(rest, matching[a], record | {a}, q * w / total)
            if folded:
                visit(rest, empty, record, q * folded / total)

    visit(tuple(columns), list(table.records), frozenset(), 1.0)
    return dict(result)


def aggregate_seeded(table: AggregateTable, space, seed: int, percentile: float = 95.0, **options):
    quota = table.singles()
    sampler = AggregateSampler(table, percentile, options.pop("use_synthetic_counts", False))
    return consolidate(quota, sampler, space, RandomStream(seed, PHASE_AGGREGATE_SEEDED, 0),
                       ConsolidationOptions(**options))


# ------------------------------------------------------------------------------------ §8.4 worked example
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
        records = unseeded(example, seed)
        assert len(records) == 12
        assert all(len(r) <= 1 and c3 not in r or r in allowed for r in records)
        empty += sum(1 for r in records if not r)
    assert empty > 0     # e.g. EMPTY for column C first leaves only r4, then every value is rare


@pytest.mark.parametrize("name", ["example", "table"])
def test_unseeded_merged_runs_follow_the_spec_distribution(example, name):
    """N merged runs are N independent spec §4.2 records: the frequencies of 40,000 runs match
    the exact distribution (enumerated with sets) within 5 standard errors."""
    table = example if name == "example" else random_table(5, n_rows=60, n_columns=3, k=3)
    exact = unseeded_distribution(table)
    n = 40_000
    got = Counter(unseeded(table, 17, n))
    assert set(got) <= set(exact)
    for record, p in exact.items():
        assert abs(got[record] / n - p) <= 5 * math.sqrt(p * (1 - p) / n) + 1e-9, (sorted(record), got[record], p)


def seed_chain_distribution(table: Table, open_ids: set) -> dict[frozenset, float]:
    """The exact law of one Consolidate record with SeedSampler when the open attributes are
    ``open_ids`` (spec §4.0), enumerated with Python sets over the sensitive records."""
    columns = table.space.columns
    memo: dict[frozenset, dict] = {}

    def law(record: frozenset) -> dict:
        if record not in memo:
            used = {columns[a] for a in record}
            weights = {a: table.support(record | {a}) for a in open_ids if columns[a] not in used}
            weights = {a: w for a, w in weights.items() if w >= table.k}
            total = sum(weights.values())
            result: Counter = Counter()
            if not total:
                result[record] = 1.0
            for a, w in weights.items():
                for final, p in law(record | {a}).items():
                    result[final] += p * w / total
            memo[record] = dict(result)
        return memo[record]

    return law(frozenset())


@pytest.mark.parametrize("keep_rows", [True, False], ids=["row proposals", "exact weights"])
@pytest.mark.parametrize("name", ["example", "table"])
def test_seed_sampler_records_follow_the_spec_law(example, name, keep_rows):
    """With quotas that never run out, Consolidate's records are independent draws of the
    SeedSampler chain: 40,000 of them match the exact law (enumerated with sets) within 5
    standard errors, whether steps are drawn by row proposals or from every candidate's
    support. Some attributes are closed (quota 0), so proposals also meet closed values."""
    table = example if name == "example" else random_table(7, n_rows=400, n_columns=4, k=3)
    index = DistinctIndex(table.offsets, table.ids, table.weights, table.space, table.k, keep_rows=keep_rows)
    open_ids = {a for a in range(len(table.n)) if table.n[a] >= table.k and a % 3 != 1}
    quota = np.array([10**9 if a in open_ids else 0 for a in range(len(table.n))], dtype=np.int64)
    exact = seed_chain_distribution(table, open_ids)
    n = 40_000
    built = consolidate(quota, SeedSampler(SupportOracle(index, 100)), table.space,
                        RandomStream(23, PHASE_VALUE_SEEDED, 0), ConsolidationOptions(target=n))
    got = Counter(frozenset(r) for r in built.records())
    assert sum(got.values()) == n and set(got) <= set(exact)
    for record, p in exact.items():
        assert abs(got[record] / n - p) <= 5 * math.sqrt(p * (1 - p) / n) + 1e-9, (sorted(record), got[record], p)


@pytest.mark.parametrize("depth", [0, 1, 2, 3])
def test_row_proposals_draw_proportionally_to_support(depth):
    """One step of row proposals from a partial record whose rows are too many for a row list
    (drawn through posting lists and rejected unless they hold the record): the accepted
    attributes' frequencies match ``support(P ∪ {a})`` among the candidates within 5 standard
    errors, and no attribute below ``k`` or closed is ever returned."""
    table = random_table(31, n_rows=4000, n_columns=8, k=5)
    index = table.index
    columns = np.asarray(table.space.columns, np.int64)
    order = sorted(range(len(table.n)), key=lambda a: -table.n[a])
    record: list[int] = []
    for a in order:
        if len(record) < depth and columns[a] not in {columns[b] for b in record}:
            record.append(a)
    path = new_path(index)
    path_reset(path, index.parts())
    for a in record:
        path_push(path, index.zobrist, a, np.int64(1) << np.int64(62))
    closed = {order[5], order[9]}
    supports_of = {a: table.support(set(record) | {a}) for a in range(len(table.n))
                   if columns[a] not in {columns[b] for b in record} and a not in closed}
    law = {a: w for a, w in supports_of.items() if w >= table.k}
    total = sum(law.values())
    assert depth < 2 or table.support(record) > path.rows.shape[1]   # posting lists, not a row list
    state = RandomStream(5, PHASE_VALUE_SEEDED, depth).state
    got: Counter = Counter()
    for _ in range(20_000):
        open_ids = np.array([a in supports_of for a in range(len(table.n))])
        attr = propose(index.parts(), path, open_ids, columns, state, 64)
        if attr >= 0:
            got[attr] += 1
    n = sum(got.values())
    assert n > 10_000 and set(got) <= set(law)
    for a, w in law.items():
        p = w / total
        assert abs(got[a] / n - p) <= 5 * math.sqrt(p * (1 - p) / n) + 1e-9, (a, got[a], p)


def test_example_aggregate_seeded(example):
    """Spec §8.4: same single counts, only protected pairs, triples only {a1,b1,c1} / {a2,b2,c1}."""
    combos, counts = example.reportable(2)
    table = AggregateTable.from_combos(combos, counts, len(example.n), 2)
    allowed = {example.ids_of(*p) for p in ALLOWED_PAIRS}
    triples = {example.ids_of("A:a1", "B:b1", "C:c1"), example.ids_of("A:a2", "B:b2", "C:c1")}
    seen_triples = set()
    for seed in range(60):
        records = [frozenset(r) for r in aggregate_seeded(table, example.space, seed).records()]
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
    assert round_half_away(quantile_r8([3, 3, 6], 0.95)) == 6


# ------------------------------------------------------------------------------------ invariants S1–S8
@pytest.mark.parametrize("tasks", [1, 3])
def test_row_seeded_invariants(table, tasks):
    """S1 (support >= k), S2 (counts = floor_k(n)), no empty record, with phase 2 in one or
    several logical tasks."""
    for seed in range(4):
        records = row_seeded(table, seed, tasks)
        assert all(records), "empty record emitted"
        assert all(table.support(r) >= table.k for r in records)
        assert attribute_counts(records, len(table.n)).tolist() == table.targets().tolist()


def test_split_quota_is_exact_and_balanced():
    quota = np.array([0, 1, 7, 10, 11, 1000003])
    for tasks in (1, 2, 3, 7):
        shares = split_quota(quota, tasks)
        assert shares.shape == (tasks, quota.size)
        assert shares.sum(axis=0).tolist() == quota.tolist()
        assert (shares.max(axis=0) - shares.min(axis=0) <= 1).all()
    assert split_quota(np.ones(6, dtype=np.int64), 3).sum(axis=1).tolist() == [2, 2, 2]


def test_value_seeded_invariants(table):
    for seed in range(5):
        records, built = value_seeded(table, seed)
        assert built.quota_left == 0 and not built.stalled
        assert all(records) and all(table.support(r) >= table.k for r in records)
        assert attribute_counts(records, len(table.n)).tolist() == table.targets().tolist()


def test_value_seeded_oversampling_respects_ceilings(table):
    """S8: before suppression every controlled combination count <= A[c]·(1 + ratio)."""
    combos, counts = table.reportable(2)
    control = AggregateTable.from_combos(combos, counts, len(table.n), 2)
    ratio = 0.1
    ceilings = np.floor(control.counts * (1 + ratio)).astype(np.int64)
    for seed in range(4):
        records, built = value_seeded(table, seed, control=control, ceilings=ceilings, tries=10)
        made = Counter()
        for record in built.records():
            for size in (1, 2):
                made.update(itertools.combinations(sorted(record), size))
        for combo, count in zip(combos, counts, strict=True):
            assert made[tuple(sorted(combo))] <= count * (1 + ratio)
        assert all(table.support(r) >= table.k for r in records)


def test_unseeded_invariants(table):
    """S1 for the non-empty attributes of every record and S3 (exactly N records)."""
    n = len(table.records)
    for seed in range(5):
        records = unseeded(table, seed)
        assert len(records) == n
        assert all(table.support(r) >= table.k for r in records if r)


def test_unseeded_levels_do_not_depend_on_batches_or_buffers(table):
    """A level expanded whole, or in two batches in reverse order with tiny buffers, gives the
    same merged states and finished records (the streams are keyed by state)."""
    def ended(*outs) -> list:
        return sorted((tuple(ids[:size]), runs) for out in outs
                      for ids, size, runs in zip(out.finished.ids.tolist(), out.finished.sizes, out.finished.runs,
                                                 strict=True))

    level = root_level(5000)
    whole, small = Expander(table.index), Expander(table.index, capacity=2)
    base = stream_base(3, PHASE_UNSEEDED)
    while len(level.runs):
        out = whole.expand(level, base)
        half = len(level.runs) // 2
        parts = [small.expand(StateLevel(level.ids[i], level.runs[i]), base)
                 for i in (slice(half, None), slice(0, half))]
        joined = merge_states(StateLevel(np.concatenate([p.children.ids for p in parts]),
                                         np.concatenate([p.children.runs for p in parts])))
        merged = merge_states(out.children)
        assert np.array_equal(joined.ids, merged.ids) and np.array_equal(joined.runs, merged.runs)
        assert ended(*parts) == ended(out)
        level = merged


@pytest.mark.parametrize("length", [2, 3])
def test_aggregate_seeded_invariants(table, length):
    """S5: every combination of length <= R is a reportable key; single counts = reportable;
    records non-empty. Also with synthetic counts."""
    combos, counts = table.reportable(length)
    keys = {frozenset(c) for c in combos}
    singles = {c[0]: n for c, n in zip(combos, counts, strict=True) if len(c) == 1}
    aggregate = AggregateTable.from_combos(combos, counts, len(table.n), length)
    for seed, synthetic in ((0, False), (1, False), (2, True)):
        records = [frozenset(r) for r in aggregate_seeded(aggregate, table.space, seed,
                                                          use_synthetic_counts=synthetic).records()]
        assert all(records)
        for record in records:
            for size in range(1, min(length, len(record)) + 1):
                assert all(frozenset(c) in keys for c in itertools.combinations(record, size))
        got = attribute_counts(records, len(table.n))
        assert {a: int(got[a]) for a in singles} == singles


def test_aggregate_seeded_target_and_scale(table):
    """S6: exactly T records with a target (quotas reset when exhausted); scale factor ceilings."""
    combos, counts = table.reportable(2)
    aggregate = AggregateTable.from_combos(combos, counts, len(table.n), 2)
    keys = {frozenset(c) for c in combos}
    n = len(table.records)
    for target in (1, n // 3, 2 * n):
        built = aggregate_seeded(aggregate, table.space, 5, target=target)
        assert built.n_records == target
        assert all(frozenset(p) in keys for r in built.records() for p in itertools.combinations(r, 2))
    scaled = aggregate.with_counts(aggregate.scaled_counts(0.5))
    got = attribute_counts([frozenset(r) for r in aggregate_seeded(scaled, table.space, 5).records()], len(table.n))
    for combo, count in zip(combos, counts, strict=True):
        if len(combo) == 1:
            assert got[combo[0]] == math.ceil(count / 2)


def test_scale_factor_is_read_as_a_decimal():
    table = AggregateTable.from_combos([[0], [1]], [30, 7], 2, 1)
    assert table.scaled_counts(0.1).tolist() == [3, 1]


def test_output_order_matches_sorting_the_string_rows(table):
    """S7: non-empty cells non-increasing, then lexicographic ascending (ordinal strings)."""
    records = row_seeded(table, 3)
    offsets, ids = csr_from_lists([sorted(r) for r in records])
    values = list(table.attributes["value"])
    columns = table.attributes["column_index"].to_numpy()
    cells, non_empty = row_cells(offsets, ids, columns, value_ranks(columns, values), table.space.n_columns)
    order = output_order(cells, non_empty)
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


def grouped(table: Table, seed: int):
    """Groups with an excess: the sensitive table's distinct rows with their multiplicities."""
    groups = row_hashes(table.offsets, table.ids)
    excess = np.where(table.n >= table.k, table.n - table.targets(), 0)
    return groups, excess


def test_suppression_on_groups_equals_the_sequential_algorithm(table):
    """The copies of the groups, walked in ascending (key, group, copy) order, lose exactly the
    occurrences the spec's sequential walk removes; empty copies are dropped."""
    groups, excess = grouped(table, 9)
    assert excess.sum() > 0
    base = stream_base(9, PHASE_SUPPRESS)
    copies = [(int(copy_key(base, np.int64(g), j)), int(g), j, row)
              for row, (g, w) in enumerate(zip(groups, table.weights, strict=True)) for j in range(int(w))]
    copies.sort()
    records = [table.distinct[row] for *_, row in copies]
    expected = sequential_suppression(records, list(range(len(records))), excess)
    victims = smallest_occurrences(9, groups, table.weights, table.offsets, table.ids, excess)
    thresholds = SuppressionThresholds.from_victims(victims, len(table.n))
    offsets, ids, counts = apply_suppression(9, thresholds, groups, table.weights, table.offsets, table.ids,
                                             int(excess.sum()))
    assert Counter(expand(offsets, ids, counts)) == Counter(r for r in expected if r)
    after = attribute_counts(expected, len(table.n))
    assert all(after[a] == table.targets()[a] for a in range(len(table.n)) if table.n[a] >= table.k)


def test_suppression_victims_merge_across_partitions(table):
    """Selecting victims per partition, then re-selecting the union, equals selecting at once."""
    groups, excess = grouped(table, 4)
    whole = smallest_occurrences(4, groups, table.weights, table.offsets, table.ids, excess)
    parts = []
    for rows in np.array_split(np.random.default_rng(0).permutation(len(groups)), 3):
        offsets, ids = csr_from_lists([sorted(table.distinct[i]) for i in rows])
        parts.append(smallest_occurrences(4, groups[rows], table.weights[rows], offsets, ids, excess))
    merged = select_smallest(Occurrences(*(np.concatenate([getattr(p, f) for p in parts])
                                           for f in Occurrences._fields)), excess)
    assert all(np.array_equal(a, b) for a, b in zip(whole, merged, strict=True))
