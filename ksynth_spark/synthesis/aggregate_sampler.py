"""Weights of the spec §4.4 aggregate sampler: the candidates of a growing record, weighed from an aggregate table only.

While ``|P ∪ {a}| <= R_A`` a candidate ``a`` weighs ``weight(P ∪ {a})``; beyond, it weighs
``round_half_away(Quantile_R8(ws, π))`` of the weights ``ws`` of every ``c ⊆ P ∪ {a}`` with
``a ∈ c`` and ``|c| <= R_A`` (an undefined one rules ``a`` out for the rest of the record).

The lists ``ws`` grow with the record: adding an attribute ``x`` to ``P`` only adds the
combinations ``{a, x} ∪ s``, i.e. the extensions of the subsets of ``P`` that ``x`` created
(:func:`candidate_values`), and only for the candidates still "live" (open and with no undefined
weight so far, a list that shrinks fast as the record grows). They are read from the table's
lattice: a candidate's extension through the lattice bitmaps (O(1), see
:meth:`~ksynth_spark.synthesis.aggregate_table.AggregateTable._lattice_bitmaps`), or all
children of a subset's row in one sequential pass when most candidates are live.
``Quantile_R8`` reads at most the ``span`` largest values of a list
(:func:`~ksynth_spark.numerics.quantile_r8_span`), so only those are kept: a new value is
compared with the smallest kept one and usually dropped, instead of being merged into the
whole sorted list. The weights are exact, as from the whole lists.
"""

from __future__ import annotations

import numpy as np

from ksynth_spark.jit import inline_kernel, kernel
from ksynth_spark.numerics import quantile_r8_top, round_half_away_scalar
from ksynth_spark.synthesis.aggregate_table import child_edge, extension_row
from ksynth_spark.synthesis.index import popcount

#: Cost of looking up one candidate's child of a row through the lattice bitmaps, and (rows
#: without) by a binary search, in steps of one pass over the row's children. A subset's
#: extensions are looked up candidate by candidate when that costs less than the whole pass.
BITMAP_LOOKUP_COST = 1
SEARCH_LOOKUP_COST = 8


@inline_kernel
def weight_of(counts, synthetic, row):
    """``weight(c)`` of a table row: ``A[c]`` (or ``A[c] - G[c]`` with synthetic counts), 0 = undefined."""
    if row < 0:
        return 0
    value = counts[row]
    if synthetic.size:
        value -= synthetic[row]
    return value if value > 0 else 0


@inline_kernel
def edge_weight(table, synthetic, edge):
    """:func:`weight_of` the child at position ``edge`` of the lattice arrays (-1 = undefined)."""
    if edge < 0:
        return 0
    value = table.child_counts[edge]
    if synthetic.size:
        value -= synthetic[table.child_rows[edge]]
    return value if value > 0 else 0


@inline_kernel
def keep_top(values, row, n_kept, span, value):
    """Adds ``value`` to ``values[row, :n_kept]``, the ascending largest values of a list, keeping
    at most ``span`` of them (the smallest one is dropped when full)."""
    if n_kept < span:
        j = n_kept
        while j > 0 and values[row, j - 1] > value:
            values[row, j] = values[row, j - 1]
            j -= 1
        values[row, j] = value
    elif value > values[row, 0]:
        j = 0
        while j + 1 < span and values[row, j + 1] < value:
            values[row, j] = values[row, j + 1]
            j += 1
        values[row, j] = value


@inline_kernel
def _add_value(work, span, attr, value, whole_entry):
    """Adds a weight of candidate ``attr`` (and records it as ``weight(P ∪ {attr})`` for the
    entry of ``P``); an undefined weight (0) is not counted, which breaks ``attr``."""
    values, n_values, broken, full = work
    if whole_entry:
        full[attr] = value
    if value > 0 and not broken[attr]:
        keep_top(values, attr, min(n_values[attr], span), span, value)
        n_values[attr] += 1


@inline_kernel
def _lookup_cost(table, row):
    """Cost of one :func:`child_edge` lookup from ``row`` (see :data:`BITMAP_LOOKUP_COST`)."""
    if table.child_slots.size and table.child_slots[row] >= 0:
        return BITMAP_LOOKUP_COST
    return SEARCH_LOOKUP_COST


@inline_kernel
def _live_values(table, synthetic, row, live, n_live, buffer, work, span):
    """Adds ``weight(combination(row) ∪ {a})`` to the list of every live candidate ``a``, drops
    (breaks) those where it is undefined, and returns how many are left. The lookups of a block
    of ``buffer.size`` candidates come first (their memory reads overlap), then the lists."""
    values, n_values, broken = work[0], work[1], work[2]
    slot = table.child_slots[row] if table.child_slots.size else -1
    base = table.child_offsets[row]
    kept = 0
    for start in range(0, n_live, buffer.size):
        stop = min(n_live, start + buffer.size)
        if slot >= 0:                               # bitmap lookups, the row's arrays held
            bits, ranks = table.child_bits[slot], table.child_ranks[slot]
            for i in range(start, stop):
                a = live[i]
                word = bits[a >> 6]
                bit = np.uint64(1) << np.uint64(a & 63)
                edge = base + ranks[a >> 6] + popcount(word & (bit - np.uint64(1))) if word & bit else -1
                buffer[i - start] = edge_weight(table, synthetic, edge)
        else:
            for i in range(start, stop):
                buffer[i - start] = edge_weight(table, synthetic, child_edge(table, row, live[i]))
        for i in range(start, stop):
            a, value = live[i], buffer[i - start]
            if value > 0:
                keep_top(values, a, min(n_values[a], span), span, value)
                n_values[a] += 1
                live[kept] = a
                kept += 1
            else:
                broken[a] = True
    return kept


@kernel
def candidate_values(table, synthetic, subsets, first, whole, open_ids, candidates, n, work, span, live, buffer):
    """Adds ``weight({a} ∪ s)`` for the subsets ``s`` tracked from entry ``first`` on to the weight
    list of every open candidate ``a`` among ``candidates[:n]``; an undefined one breaks ``a``.
    When ``whole >= 0`` (``|P| <= R_A - 1``: entry ``whole`` is ``P``) also sets ``full[a] =
    weight(P ∪ {a})``.

    ``n_values[a]`` counts the values a candidate got, so a candidate is whole exactly when it
    got one for every tracked subset (``n_values[a] == subsets.count[0]``). ``live`` (scratch)
    lists the candidates still whole; a subset's extensions are looked up candidate by
    candidate (a block of ``buffer.size`` at a time, scratch), or read from all children of its
    row in one pass when that is shorter.
    """
    n_values, broken, full = work[1], work[2], work[3]
    counts, offsets, attrs = table.counts, table.child_offsets, table.child_attrs
    n_live = 0
    for i in range(n):
        a = candidates[i]
        if open_ids[a]:
            if whole >= 0:
                full[a] = 0
            if not broken[a]:
                live[n_live] = a
                n_live += 1
    for e in range(first, subsets.count[0]):
        if n_live == 0 and e != whole:
            continue
        row = subsets.rows[e]
        if row < 0:                                 # absent subset (DP tables): hash lookups
            for i in range(n):
                a = candidates[i]
                if open_ids[a]:
                    _add_value(work, span, a, weight_of(counts, synthetic, extension_row(table, subsets, e, a)),
                               e == whole)
        elif e != whole and n_live * _lookup_cost(table, row) < offsets[row + 1] - offsets[row]:
            n_live = _live_values(table, synthetic, row, live, n_live, buffer, work, span)
            continue
        else:
            for j in range(offsets[row], offsets[row + 1]):     # every child of the row: one pass
                a = attrs[j]
                if open_ids[a]:
                    _add_value(work, span, a, edge_weight(table, synthetic, j), e == whole)
        kept = 0
        for i in range(n_live):
            a = live[i]
            if n_values[a] == e + 1:
                live[kept] = a
                kept += 1
            else:
                broken[a] = True
        n_live = kept


@kernel
def candidate_weights(work, span, p, beyond, open_ids, candidates, n, weights):
    """The sampler's weights of the open candidates among ``candidates[:n]``, kept in order (ascending
    ids) in ``candidates`` with their weights in ``weights``; returns how many.

    ``beyond``: ``|P| + 1 > R_A`` (quantile weights; broken candidates are closed and dropped, as
    their weight 0 can never be drawn); otherwise the weight is ``full[a]``.
    """
    values, n_values, broken, full = work
    m = 0
    for i in range(n):
        a = candidates[i]
        if not open_ids[a]:
            continue
        if not beyond:
            weight = full[a]
        elif broken[a]:
            open_ids[a] = False
            continue
        else:
            count = n_values[a]
            weight = max(0, round_half_away_scalar(quantile_r8_top(values, a, count, min(count, span), p)))
        candidates[m] = a
        weights[m] = weight
        m += 1
    return m
