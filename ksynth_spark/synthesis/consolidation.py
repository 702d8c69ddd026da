"""Consolidate (spec §4.0): records built from per-attribute quotas, the engine of the quota-driven modes.

row_seeded phase 2 (leftover quotas), value_seeded (quotas ``floor_k(n(a))``) and
aggregate_seeded (the aggregate table's single counts) all build records one attribute at a
time until every quota is used. A record's attributes are drawn by a sampler — the
SeedSampler over the sensitive support index, or the aggregate sampler over an aggregate
table — among the attributes with quota left whose column the record does not use yet.

Parallel consolidation: the quotas are split exactly across a fixed number of logical tasks
(:func:`split_quota`), each task consolidates its share with its own stream
``(seed, phase, task)`` and the tasks' records are concatenated. Every record still has its
sampler's guarantee (each attribute is drawn only while ``support ≥ k``, or from the table),
and the quotas still add up exactly, so every single-attribute count is unchanged; only which
attributes share a record differs from one sequential pass (spec Q9 allows this exact split).
The number of tasks depends on the total quota only, never on the cluster, so the output is
the same for every partitioning.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ksynth_spark.jit import kernel
from ksynth_spark.numerics import quantile_r8_span
from ksynth_spark.randomness import RandomStream, draw
from ksynth_spark.synthesis.aggregate_sampler import candidate_values, candidate_weights
from ksynth_spark.synthesis.aggregate_table import (
    AggregateTable,
    accept,
    child_row,
    insertion_sort,
    new_combinations,
    new_subsets,
    push_subsets,
    subsets_reset,
)
from ksynth_spark.synthesis.index import AttributeSpace, DistinctIndex
from ksynth_spark.synthesis.paths import (
    SupportOracle,
    emit_path,
    path_push,
    path_reset,
    record_reset,
    record_supports,
)
from ksynth_spark.synthesis.proposals import PROPOSALS, propose


# ======================================================================================= consolidation
@kernel
def _open_ids(quota, open_ids):
    for a in range(quota.size):
        open_ids[a] = quota[a] > 0


@kernel
def _close_column(open_ids, member_offsets, member_ids, column):
    for i in range(member_offsets[column], member_offsets[column + 1]):
        open_ids[member_ids[i]] = False


@kernel
def _any_positive(values):
    for v in values:
        if v > 0:
            return True
    return False


@kernel
def _gather_open(open_ids, candidates):
    n = 0
    for a in range(open_ids.size):
        if open_ids[a]:
            candidates[n] = a
            n += 1
    return n


@kernel
def _seed_record(index, cache, path, table, subsets, synthetic, ceiling, tries, quota, columns, member_offsets,
                 member_ids, state, scratch):
    """One Consolidate record with SeedSampler (spec §4.0), with the oversampling control of
    §4.3 when ``synthetic`` (G) is not empty. Without the control, and when the index keeps
    its rows, each step first tries row proposals (:mod:`.proposals`, same law); once they
    fail, the record's remaining steps compute every candidate's support."""
    zobrist, k = index.zobrist, index.k
    open_ids, candidates, weights, rows = scratch
    controlled = synthetic.size > 0
    _open_ids(quota, open_ids)
    path_reset(path, index)
    record_reset(path)
    subsets_reset(subsets, table.counts.size)
    proposals = not controlled and index.post_rows.size > 0
    while True:
        if proposals:
            attr = propose(index, path, open_ids, columns, state, PROPOSALS)
            proposals = attr >= 0               # once they fail, the record ends the exact way
            if attr >= 0:
                depth = path.state[0]
                bound = min(path.node_support[depth], index.counts[attr])      # an upper bound of the support
                path_push(path, zobrist, attr, bound)
                _close_column(open_ids, member_offsets, member_ids, columns[attr])
                quota[attr] -= 1
                continue
        n = _gather_open(open_ids, candidates)
        if n == 0:
            break
        record_supports(index, cache, path, candidates, n, weights)
        for i in range(n):
            if weights[i] < k:
                weights[i] = 0
                open_ids[candidates[i]] = False      # support only shrinks
        attr = -1
        attr_support = 0
        left = tries
        while True:
            chosen = draw(weights, n, state)
            if chosen < 0:
                break
            if not controlled or accept(table, synthetic, ceiling, subsets, candidates[chosen], rows):
                attr = candidates[chosen]
                attr_support = weights[chosen]
                break
            left -= 1
            if left == 0:
                break
        if attr < 0:
            break
        path_push(path, zobrist, attr, attr_support)
        _close_column(open_ids, member_offsets, member_ids, columns[attr])
        quota[attr] -= 1


@kernel
def _aggregate_record(table, subsets, synthetic, p, span, quota, columns, member_offsets, member_ids, state,
                      scratch, work, record):
    """One Consolidate record with the spec §4.4 sampler (weights from the table only; see
    :mod:`.aggregate_sampler`).

    The weight list of a candidate grows with the record: only the combinations created by
    the last attribute are looked up. ``G`` of combinations holding a candidate cannot change
    while the record grows (they are not in it yet), so the lists stay exact. ``candidates``
    holds the open ids in ascending order (the draw order), shrinking as columns close.
    """
    open_ids, candidates, weights, rows = scratch
    n_values, broken = work[1], work[2]
    length = table.length
    n = 0
    for a in range(quota.size):
        open_ids[a] = quota[a] > 0
        n_values[a] = 0
        broken[a] = False
        if open_ids[a]:
            candidates[n] = a
            n += 1
    subsets_reset(subsets, table.counts.size)
    candidate_values(table, synthetic, subsets, 0, 0, open_ids, candidates, n, work, span, weights, rows)
    size = 0
    while True:
        n = candidate_weights(work, span, p, size + 1 > length, open_ids, candidates, n, weights)
        if n == 0:
            break
        chosen = draw(weights, n, state)
        if chosen < 0:
            break
        attr = candidates[chosen]
        first = subsets.count[0]
        made = new_combinations(table, subsets, attr, length if synthetic.size else length - 1, rows)
        if synthetic.size:
            for i in range(made):
                if rows[i] >= 0:
                    synthetic[rows[i]] += 1
        push_subsets(table, subsets, attr, rows, made)
        _close_column(open_ids, member_offsets, member_ids, columns[attr])
        quota[attr] -= 1
        record[size] = attr
        size += 1
        candidate_values(table, synthetic, subsets, first, subsets.count[0] - 1 if size + 1 <= length else -1,
                         open_ids, candidates, n, work, span, weights, rows)
    return size


@kernel
def _can_start(table, synthetic, ceiling, quota):
    """Whether some attribute with quota left could be accepted as a first attribute."""
    root = table.counts.size
    for a in range(quota.size):
        if quota[a] > 0:
            row = child_row(table, root, a)
            if row < 0 or synthetic[row] + 1 <= ceiling[row]:
                return True
    return False


@kernel
def _consolidate_chunk(kind, index, cache, path, table, subsets, synthetic, ceiling, p, tries, quota, initial,
                       target, built, columns, member_offsets, member_ids, state, scratch, work, record,
                       out_offsets, out_ids):
    """Builds up to ``len(out_offsets) - 1`` Consolidate records (``kind`` 0: SeedSampler, 1: aggregate).

    Returns:
        ``(records built, status)``; status 0 = more to do, 1 = done, 2 = stalled.
    """
    n_attrs = quota.size
    span = quantile_r8_span(work[0].shape[1], p) if kind == 1 else 1
    made = 0
    out_offsets[0] = 0
    while made < out_offsets.size - 1:
        exhausted = not _any_positive(quota)
        if target < 0 and exhausted:
            return made, 1
        if target >= 0:
            if built + made >= target:
                return made, 1
            if exhausted:
                for a in range(n_attrs):
                    quota[a] = initial[a]
                for r in range(synthetic.size):
                    synthetic[r] = 0
        if kind == 0:
            _seed_record(index, cache, path, table, subsets, synthetic, ceiling, tries, quota, columns,
                         member_offsets, member_ids, state, scratch)
            emit_path(path, n_attrs, out_offsets, out_ids, made)
        else:
            size = _aggregate_record(table, subsets, synthetic, p, span, quota, columns, member_offsets,
                                     member_ids, state, scratch, work, record)
            start = out_offsets[made]
            for i in range(size):
                out_ids[start + i] = record[i]
            insertion_sort(out_ids, start, start + size)
            out_offsets[made + 1] = start + size
        if out_offsets[made + 1] > out_offsets[made]:
            made += 1
        elif ceiling.size == 0 or not _can_start(table, synthetic, ceiling, quota):
            return made, 2                          # nothing can ever be drawn again
    return made, 0


@dataclass(frozen=True)
class SeedSampler:
    """Spec §4.0 SeedSampler over the sensitive support index."""

    oracle: SupportOracle


@dataclass(frozen=True)
class AggregateSampler:
    """Spec §4.4 sampler: weights from an aggregate table only (never the sensitive records).

    Attributes:
        table: The aggregate table (already scaled if a scale factor is used).
        percentile: π of ``weight_selection_percentile`` (default 95).
        use_synthetic_counts: Weights ``A[c] - G[c]`` instead of ``A[c]``.
    """

    table: AggregateTable
    percentile: float = 95.0
    use_synthetic_counts: bool = False


@dataclass
class ConsolidationOptions:
    """Options of :func:`consolidate`.

    Attributes:
        control: Aggregate table of spec §4.3's oversampling control (SeedSampler only).
        ceilings: Per row of ``control``, the largest synthetic count allowed
            (``floor(A[c]·(1 + ρ))``, or this task's share of it).
        tries: Consecutive rejections that end a record (``oversampling_tries``, default 1).
        target: Build exactly this many records, resetting exhausted quotas (spec §4.4 T).
        progress: Called as ``progress(records_built, quota_left)`` between chunks of records.
    """

    control: AggregateTable | None = None
    ceilings: np.ndarray | None = None
    tries: int = 1
    target: int | None = None
    progress: Callable[[int, int], None] | None = None


@dataclass
class Consolidation:
    """Records built by :func:`consolidate` (CSR, creation order) and what was left.

    Attributes:
        offsets, ids: The records (sorted ids, never empty).
        quota_left: Units of quota not used (0 unless stalled or a target was given).
        stalled: The control rejected every possible first attribute (spec §4.0 would loop).
    """

    offsets: np.ndarray
    ids: np.ndarray
    quota_left: int = 0
    stalled: bool = False

    @property
    def n_records(self) -> int:
        """Number of records built."""
        return len(self.offsets) - 1

    def records(self) -> list[list[int]]:
        """The records as Python lists."""
        return [self.ids[self.offsets[i]:self.offsets[i + 1]].tolist() for i in range(self.n_records)]


def consolidate(quota: np.ndarray, sampler: SeedSampler | AggregateSampler, space: AttributeSpace,
                stream: RandomStream, options: ConsolidationOptions | None = None, chunk: int = 2000) -> Consolidation:
    """Spec §4.0 Consolidate: builds records from per-attribute quotas (sequential, shared quotas).

    Nothing is collected or broadcast here: it runs where it is called (an executor task).

    Args:
        quota: int quota per attribute id (the pool is every id with a quota > 0).
        sampler: :class:`SeedSampler` or :class:`AggregateSampler`.
        space: Column membership (at most one attribute per column in a record).
        stream: The random stream of this consolidation (advanced in place).
        options: Oversampling control, target number of records, progress callback.
        chunk: Records built per compiled call between progress reports.

    Returns:
        The records and what was left.
    """
    options = options or ConsolidationOptions()
    initial = np.maximum(np.asarray(quota, dtype=np.int64), 0)
    quota = initial.copy()
    kind, oracle, table, synthetic, ceiling, p = _sampler_setup(sampler, options, space)
    member_offsets, member_ids = space.members()
    columns = np.asarray(space.columns, dtype=np.int64)
    n_subsets = sum(math.comb(space.n_columns, j) for j in range(table.length)) + 1
    subsets = new_subsets(n_subsets, table.length)
    n_attrs = space.n_attrs
    scratch = (np.zeros(n_attrs, dtype=np.bool_), np.zeros(n_attrs, dtype=np.int64),
               np.zeros(n_attrs, dtype=np.int64), np.zeros(n_subsets, dtype=np.int64))
    work = (np.zeros((n_attrs, n_subsets) if kind == 1 else (1, 1), dtype=np.int64),
            np.zeros(n_attrs, dtype=np.int64), np.zeros(n_attrs, dtype=np.bool_), np.zeros(n_attrs, dtype=np.int64))
    target = -1 if options.target is None else int(options.target)
    tries = max(1, int(options.tries or 1))
    offsets_parts, ids_parts, built, n_ids, status = [np.zeros(1, dtype=np.int64)], [], 0, 0, 0
    out_offsets = np.zeros(chunk + 1, dtype=np.int64)
    out_ids = np.zeros(chunk * max(1, space.n_columns), dtype=np.int64)
    record = np.zeros(space.n_columns + 1, dtype=np.int64)
    while status == 0:
        made, status = _consolidate_chunk(
            kind, oracle.index.parts(), oracle.cache.parts(), oracle.path, table.parts(), subsets, synthetic,
            ceiling, p, tries, quota, initial, target, built, columns, member_offsets, member_ids, stream.state,
            scratch, work, record, out_offsets, out_ids)
        offsets_parts.append(out_offsets[1:made + 1] + n_ids)
        ids_parts.append(out_ids[:out_offsets[made]].copy())
        built += made
        n_ids += int(out_offsets[made])
        if options.progress is not None:
            options.progress(built, int(quota.sum()))
    return Consolidation(np.concatenate(offsets_parts), np.concatenate(ids_parts),
                         quota_left=int(quota.sum()) if target < 0 else 0, stalled=status == 2)


def _stand_in_oracle(space: AttributeSpace) -> SupportOracle:
    """A one-row index for the aggregate sampler, which reads no sensitive data (the compiled
    loop takes one signature)."""
    return SupportOracle(DistinctIndex(np.zeros(2, np.int64), np.zeros(0, np.int64), np.ones(1, np.int64), space, 1), 1)


def _sampler_setup(sampler, options: ConsolidationOptions, space: AttributeSpace) -> tuple:
    """``(kind, oracle, table, G, ceiling, p)`` for :func:`_consolidate_chunk` (unused parts are
    empty stand-ins: the compiled loop takes one signature)."""
    empty_g, empty_ceiling = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    if isinstance(sampler, AggregateSampler):
        table = sampler.table
        synthetic = np.zeros(len(table), dtype=np.int64) if sampler.use_synthetic_counts else empty_g
        return 1, _stand_in_oracle(space), table, synthetic, empty_ceiling, sampler.percentile / 100.0
    if options.control is None:
        return 0, sampler.oracle, AggregateTable.from_combos([], [], space.n_attrs, 1), empty_g, empty_ceiling, 0.0
    table = options.control
    ceilings = np.asarray(options.ceilings, dtype=np.float64)
    return 0, sampler.oracle, table, np.zeros(len(table), dtype=np.int64), ceilings, 0.0


def seeded_quotas(counts: np.ndarray, k: int) -> np.ndarray:
    """``floor_k(n(a))`` for attributes with ``n(a) >= k``, else 0 (row/value_seeded targets)."""
    counts = np.asarray(counts, dtype=np.int64)
    return np.where(counts >= k, (counts // k) * k, 0)


def leftover_quotas(counts: np.ndarray, used: np.ndarray, k: int) -> np.ndarray:
    """Spec §4.1 phase 2 ``avail(a) = floor_k(n(a)) - used(a)``, kept where > 0."""
    return np.maximum(seeded_quotas(counts, k) - np.asarray(used, dtype=np.int64), 0)


#: Quota units per consolidation task (a fixed, logical split: never the number of cores).
UNITS_PER_TASK = 250_000
#: Most consolidation tasks of one release.
MAX_TASKS = 256


def task_count(total_quota: int) -> int:
    """Logical consolidation tasks for a total quota: one per :data:`UNITS_PER_TASK` units."""
    return int(max(1, min(MAX_TASKS, -(-int(total_quota) // UNITS_PER_TASK))))


def split_quota(quota: np.ndarray, n_tasks: int) -> np.ndarray:
    """Splits every attribute's quota exactly across ``n_tasks`` tasks.

    Task ``j`` gets ``q // T`` units of attribute ``a``, plus one when ``(j - a) mod T <
    q mod T`` (the remainders rotate with the attribute, so no task collects all of them).

    Returns:
        ``(n_tasks, A)`` int64 shares; every column sums to the attribute's quota.
    """
    quota = np.maximum(np.asarray(quota, dtype=np.int64), 0)
    tasks = np.arange(n_tasks, dtype=np.int64)[:, None]
    attrs = np.arange(quota.size, dtype=np.int64)[None, :]
    return quota[None, :] // n_tasks + (((tasks - attrs) % n_tasks) < (quota[None, :] % n_tasks))
