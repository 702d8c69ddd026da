"""A growing partial record and the supports of its extensions, in numba.

Every synthesis mode that reads the sensitive data grows records one attribute at a time and,
at each step, needs ``support(P ∪ {a})`` for the candidate attributes ``a`` of the partial
record ``P``. A :class:`PathParts` holds ``P`` as a stack (one attribute per depth) with, per
depth, the distinct rows ``Rows(P)`` of the :class:`~ksynth_spark.synthesis.index.DistinctIndex`
computed lazily: a bitset while large, an ascending list of row numbers once it holds at most
``cap`` rows. :func:`supports` answers from the index counts (``P`` empty), straight from the
row list (small ``P``: cheap, not cached), or through the LRU support cache.

Why two forms: a support over a bitset costs an AND and a weighted popcount per 64 distinct
rows of the whole table; partial records soon match only a few rows, and testing just those
rows' bits costs ``|Rows(P)|`` lookups instead. With ``cap = W / 8`` (W words per bitset) the
phase-1 kernel took 24 µs per record on the 10^6-row resampled adult table, against 34 µs with
``cap = W`` (benchmarks/phase1_scaling.py). Such small nodes also stay out of the cache, which
then holds the frequent prefixes whose supports are expensive.

Histogram supports: when the index keeps its rows (``keep_rows``) and a step asks for many
candidates (consolidation asks for every value with quota left), one pass over the rows of
``Rows(P)`` counts every value at once (:func:`add_rows`), for a small node or to fill a cache
entry, whenever that costs less than a query per candidate.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ksynth_spark.jit import kernel
from ksynth_spark.synthesis.cache import SupportCache, cache_entry, cache_has
from ksynth_spark.synthesis.index import DistinctIndex, has_bit, popcount, weighted_and, weighted_rows

_ONE = np.uint64(1)
#: Cost of reading one value of one row in a histogram, in bitset words ANDed, for the support
#: cache (measured on consolidation: a pass over scattered rows costs several sequential word
#: operations per value).
_HISTOGRAM_COST = 4
#: Weighted support that marks a node as small when the path has no better bound.
UNKNOWN_SUPPORT = np.int64(1) << np.int64(62)


class PathParts(NamedTuple):
    """Scratch state of one growing record, per depth ``0..C+1`` (depth 0 = the empty record).

    Attributes:
        attrs: The id pushed at each depth.
        keys: Zobrist hash of ``P`` up to each depth (the cache key).
        words: ``Rows(P)`` as a bitset (valid while ``n_rows`` is -1).
        state: ``[depth of P, deepest depth whose Rows is known]``.
        rows: ``Rows(P)`` as a row list (valid while ``n_rows >= 0``), at most ``cap`` rows.
        n_rows: Length of the row list, or -1 when Rows is a bitset.
        node_support: ``support(P)`` as known when ``P`` was pushed (an upper bound, or
            :data:`UNKNOWN_SUPPORT`).
        hist: ``(1, A)`` scratch of the histogram supports (zero between calls, except along
            a growing record: see :func:`record_supports`).
        hist_depth: ``[depth whose Rows hist counts, or -1 when hist is zero]``.
        seen, free, cum: Per column and per row scratch of the row proposals (:mod:`.proposals`).
    """

    attrs: np.ndarray
    keys: np.ndarray
    words: np.ndarray
    state: np.ndarray
    rows: np.ndarray
    n_rows: np.ndarray
    node_support: np.ndarray
    hist: np.ndarray
    hist_depth: np.ndarray
    seen: np.ndarray
    free: np.ndarray
    cum: np.ndarray


def new_path(index: DistinctIndex) -> PathParts:
    """Fresh scratch for records of up to ``C + 1`` ids (attributes and empty-column ids)."""
    depth = index.space.n_columns + 2
    n_columns = max(1, index.space.n_columns)
    cap = max(64, index.n_words // 8)
    return PathParts(np.zeros(depth, np.int64), np.zeros((depth, 2), np.uint64),
                     np.zeros((depth, index.n_words), np.uint64), np.zeros(2, np.int64),
                     np.zeros((depth, cap), np.int64), np.full(depth, -1, np.int64), np.zeros(depth, np.int64),
                     np.zeros((1, max(1, index.space.n_attrs)), np.int64), np.full(1, -1, np.int64),
                     np.zeros(n_columns, np.bool_), np.zeros(n_columns, np.int64), np.zeros(cap, np.int64))


@kernel
def path_reset(path, index):
    """Makes ``P`` the empty record (whose Rows is every distinct row)."""
    for w in range(path.words.shape[1]):
        path.words[0, w] = index.all_words[w]
    path.n_rows[0] = -1
    path.node_support[0] = UNKNOWN_SUPPORT
    path.keys[0, 0] = 0
    path.keys[0, 1] = 0
    path.state[0] = 0
    path.state[1] = 0


@kernel
def path_truncate(path, depth):
    """Pops ``P`` back to its first ``depth`` ids."""
    path.state[0] = depth
    if path.state[1] > depth:
        path.state[1] = depth


@kernel
def path_push(path, zobrist, attr, support):
    """Extends ``P`` by ``attr``; ``support`` is ``support(P ∪ {attr})`` (or an upper bound)."""
    depth = path.state[0] + 1
    path.attrs[depth] = attr
    path.node_support[depth] = support
    path.keys[depth, 0] = path.keys[depth - 1, 0] ^ zobrist[attr, 0]
    path.keys[depth, 1] = path.keys[depth - 1, 1] ^ zobrist[attr, 1]
    path.state[0] = depth
    if path.state[1] >= depth:
        path.state[1] = depth - 1


@kernel
def path_rows(path, bits):
    """Makes the current depth hold ``Rows(P)`` (computed lazily along the path): the parent's
    row list filtered by the new id, or the AND of bitsets, turned into a list once small."""
    words, rows, n_rows, state = path.words, path.rows, path.n_rows, path.state
    cap = rows.shape[1]
    while state[1] < state[0]:
        d = state[1] + 1
        attr = path.attrs[d]
        if n_rows[d - 1] >= 0:
            m = 0
            for i in range(n_rows[d - 1]):
                row = rows[d - 1, i]
                if has_bit(bits, attr, row):
                    rows[d, m] = row
                    m += 1
            n_rows[d] = m
        else:
            total = 0
            for w in range(words.shape[1]):
                x = words[d - 1, w] & bits[attr, w]
                words[d, w] = x
                total += popcount(x)
            n_rows[d] = -1
            if total <= cap:
                m = 0
                for w in range(words.shape[1]):
                    x = words[d, w]
                    while x != 0:
                        low = x & (np.uint64(0) - x)
                        rows[d, m] = w * 64 + popcount(low - _ONE)
                        m += 1
                        x ^= low
                n_rows[d] = m
        state[1] = d


@kernel
def support_of(index, path, attr, depth):
    """``support(P ∪ {attr})`` from the known Rows of depth ``depth``."""
    if path.n_rows[depth] >= 0:
        return weighted_rows(index, attr, path.rows, depth, path.n_rows[depth])
    return weighted_and(index, attr, path.words, depth)


@kernel
def _row_count(path, depth):
    """Number of distinct rows in ``Rows(P)`` at ``depth`` (known there)."""
    if path.n_rows[depth] >= 0:
        return path.n_rows[depth]
    total = 0
    for w in range(path.words.shape[1]):
        total += popcount(path.words[depth, w])
    return total


@kernel
def add_rows(index, path, depth, target, line, sign):
    """``target[line, a] += sign · weight(e)`` for every attribute ``a`` of every distinct row
    ``e`` of ``Rows(P)`` at ``depth`` (the index must keep its rows). Returns ``|Rows(P)|``
    weighted (the records)."""
    offsets, ids, weights = index.row_offsets, index.row_ids, index.weights
    total = 0
    if path.n_rows[depth] >= 0:
        for i in range(path.n_rows[depth]):
            row = path.rows[depth, i]
            total += weights[row]
            for j in range(offsets[row], offsets[row + 1]):
                target[line, ids[j]] += sign * weights[row]
        return total
    for w in range(path.words.shape[1]):
        x = path.words[depth, w]
        while x != 0:
            low = x & (np.uint64(0) - x)
            row = w * 64 + popcount(low - _ONE)
            total += weights[row]
            for j in range(offsets[row], offsets[row + 1]):
                target[line, ids[j]] += sign * weights[row]
            x ^= low
    return total


@kernel
def _values_per_row(index):
    """Average attributes per distinct row, plus one (0 when the index keeps no rows)."""
    rows = index.row_offsets.size - 1
    return (index.row_ids.size + rows) // rows if rows > 0 else 0


@kernel
def histogram_pays(index, path, depth, candidates, bitset_cost):
    """Whether one pass over the rows of ``Rows(P)`` (known at ``depth``) costs less than a query
    per candidate: a lookup per row of a row list, or an AND per word of a bitset (weighed by
    ``bitset_cost``, the histogram's cost per value read in words ANDed). False when the index
    keeps no rows."""
    per_row = _values_per_row(index)
    if per_row == 0:
        return False
    if path.n_rows[depth] >= 0:
        return per_row < candidates
    return bitset_cost * _row_count(path, depth) * per_row < candidates * path.words.shape[1]


@kernel
def supports(index, cache, path, candidates, n, out):
    """``out[i] = support(P ∪ {candidates[i]})`` for the current partial record ``P``.

    A value's support is a query over ``Rows(P)`` (an AND per bitset word, or a lookup per row
    of a row list); when the index keeps its rows and there are more candidates than values
    per row, one pass over the rows of ``Rows(P)`` counts every value at once instead.
    """
    depth = path.state[0]
    if depth == 0:
        for i in range(n):
            out[i] = index.counts[candidates[i]]
        return
    if path.node_support[depth] <= path.rows.shape[1]:     # a small node: its row list answers
        record_reset(path)
        path_rows(path, index.bits)
        if histogram_pays(index, path, depth, n, _HISTOGRAM_COST):
            add_rows(index, path, depth, path.hist, 0, 1)
            for i in range(n):
                attr = candidates[i]
                out[i] = path.hist[0, attr] if attr < index.n_attrs else support_of(index, path, attr, depth)
            add_rows(index, path, depth, path.hist, 0, -1)
            return
        for i in range(n):
            out[i] = support_of(index, path, candidates[i], depth)
        return
    vectors = cache.vectors
    entry = cache_entry(cache, path.keys[depth, 0], path.keys[depth, 1])
    missing = 0
    for i in range(n):
        if vectors[entry, candidates[i]] < 0:
            missing += 1
    if missing > 0 and index.row_ids.size > 0:
        path_rows(path, index.bits)
        if histogram_pays(index, path, depth, missing, _HISTOGRAM_COST):
            for a in range(index.n_attrs):
                vectors[entry, a] = 0
            add_rows(index, path, depth, vectors, entry, 1)
    for i in range(n):
        attr = candidates[i]
        if vectors[entry, attr] < 0:
            path_rows(path, index.bits)          # Rows(P), computed once per node and only on a miss
            vectors[entry, attr] = support_of(index, path, attr, depth)
        out[i] = vectors[entry, attr]


@kernel
def record_supports(index, cache, path, candidates, n, out):
    """:func:`supports` for a record that only grows (Consolidate): at a small node the supports
    come from ``path.hist``, a histogram of ``Rows(P)`` kept along the record and updated by
    subtracting the rows the last attribute removed, so the record's rows are counted about once
    rather than twice per step. Call :func:`record_reset` before the record's first step.
    """
    depth = path.state[0]
    if depth == 0 or index.row_ids.size == 0:
        supports(index, cache, path, candidates, n, out)
        return
    if path.node_support[depth] > path.rows.shape[1] and cache_has(cache, path.keys[depth, 0], path.keys[depth, 1]):
        supports(index, cache, path, candidates, n, out)
        return
    path_rows(path, index.bits)
    if path.n_rows[depth] < 0:
        supports(index, cache, path, candidates, n, out)
        return
    offsets, ids, weights, rows, hist, known = (index.row_offsets, index.row_ids, index.weights, path.rows,
                                                path.hist, path.hist_depth)
    if known[0] != depth:
        if known[0] == depth - 1 and path.n_rows[depth - 1] >= 0:
            j = 0
            kept = path.n_rows[depth]
            for i in range(path.n_rows[depth - 1]):
                row = rows[depth - 1, i]
                if j < kept and rows[depth, j] == row:
                    j += 1
                    continue
                for x in range(offsets[row], offsets[row + 1]):
                    hist[0, ids[x]] -= weights[row]
        else:
            record_reset(path)
            add_rows(index, path, depth, hist, 0, 1)
        known[0] = depth
    n_attrs = hist.shape[1]
    for i in range(n):
        attr = candidates[i]
        out[i] = hist[0, attr] if attr < n_attrs else support_of(index, path, attr, depth)


@kernel
def record_reset(path):
    """Zeroes the histogram :func:`record_supports` keeps along a record."""
    if path.hist_depth[0] >= 0:
        path.hist[0, :] = 0
        path.hist_depth[0] = -1


@kernel
def emit_path(path, n_attrs, out_offsets, out_ids, j):
    """Writes the real attributes of the path (ids below ``n_attrs``), ascending, as CSR record ``j``."""
    start = out_offsets[j]
    end = start
    for d in range(1, path.state[0] + 1):
        attr = path.attrs[d]
        if attr < n_attrs:
            i = end
            while i > start and out_ids[i - 1] > attr:
                out_ids[i] = out_ids[i - 1]
                i -= 1
            out_ids[i] = attr
            end += 1
    out_offsets[j + 1] = end


class SupportOracle:
    """A support index with its LRU cache and record scratch (one per task)."""

    def __init__(self, index: DistinctIndex, cache_size: int):
        self.index = index
        self.cache = SupportCache(index.n_ids, cache_size)
        self.path = new_path(index)
