"""SeedSampler draws by row proposals: exact rejection sampling that reads a few rows, not all of them.

SeedSampler draws ``a`` with probability proportional to ``support(P ∪ {a})`` among the
candidates (open attributes in unvisited columns with ``support(P ∪ {a}) >= k``). Computing
every candidate's support reads every distinct row of ``Rows(P)``: at 10^7 records that is
thousands of rows per step. A proposal reads a handful instead:

1. draw a distinct row ``r`` of ``Rows(P)`` with probability proportional to its multiplicity
   (``P`` empty: from all rows by their running weights; when ``Rows(P)`` is a small row list,
   from it; otherwise from the rows of ``P``'s rarest attribute by their running weights,
   rejected unless ``r`` holds all of ``P``);
2. draw a column ``c`` uniformly among the ``u`` unvisited columns; ``a`` is ``r``'s value in
   ``c``; reject if ``r`` has none or ``a`` is not open;
3. accept ``a`` if ``support(P ∪ {a}) >= k`` (at once when ``r`` alone has multiplicity ``>= k``,
   else counted over the shorter of the two posting lists, stopping as soon as ``k`` is
   reached); otherwise close ``a`` for the rest of the record
   (supports only shrink as the record grows) and reject.

A single proposal yields a given candidate ``a`` with probability ``Σ_{r ∋ a} w(r) / (support(P) · u)
= support(P ∪ {a}) / (support(P) · u)``: proportional to the SeedSampler's weight. So the
first accepted proposal has exactly the SeedSampler's law. After ``limit`` rejections the
caller draws from the exact weights instead; since every proposal is independent, the
mixture of "accepted within ``limit``" and "fell back" has the same law. The record's end
(no candidate left: spec NONE) is always found by that exact fallback.
"""

from __future__ import annotations

import numpy as np

from ksynth_spark.jit import kernel
from ksynth_spark.randomness import below
from ksynth_spark.synthesis.index import has_bit
from ksynth_spark.synthesis.paths import path_rows

#: Rejected proposals before the caller computes the exact weights.
PROPOSALS = 64
#: From this depth on, ``Rows(P)`` is computed (a row list once small: rows are then drawn
#: from it and supports counted over it, instead of rejecting over posting lists).
LIST_DEPTH = 3


@kernel
def _holds_path(bits, path, depth, skip, row):
    """Whether distinct row ``row`` holds every id of ``P`` (``skip`` is known to be held)."""
    for d in range(1, depth + 1):
        attr = path.attrs[d]
        if attr != skip and not has_bit(bits, attr, row):
            return False
    return True


@kernel
def _reaches_k(index, path, depth, attr, rarest):
    """Whether ``support(P ∪ {attr}) >= k``, counted over the shorter posting list of ``attr``
    and ``P``'s rarest attribute (heaviest rows first), stopping as soon as ``k`` is reached."""
    offsets = index.post_offsets
    source = attr
    if rarest >= 0 and offsets[rarest + 1] - offsets[rarest] < offsets[attr + 1] - offsets[attr]:
        source = rarest
    total = 0
    for i in range(offsets[source], offsets[source + 1]):
        row = index.post_rows[i]
        if source != attr and not has_bit(index.bits, attr, row):
            continue
        if _holds_path(index.bits, path, depth, source, row):
            total += index.weights[row]
            if total >= index.k:
                return True
    return False


@kernel
def _draw_row(index, path, depth, rarest, listed, total, state):
    """A distinct row of ``Rows(P)`` drawn proportionally to its multiplicity, or -1 (rejected)."""
    if listed:
        i = np.searchsorted(path.cum[:path.n_rows[depth]], below(state, total), side="right")
        return np.int64(path.rows[depth, i])
    if rarest < 0:
        cum = index.row_cum
        return np.int64(np.searchsorted(cum, below(state, cum[cum.size - 1]), side="right"))
    lo, hi = index.post_offsets[rarest], index.post_offsets[rarest + 1]
    before = index.post_cum[lo - 1] if lo > 0 else 0
    x = before + below(state, index.post_cum[hi - 1] - before)
    row = np.int64(index.post_rows[lo + np.searchsorted(index.post_cum[lo:hi], x, side="right")])
    return row if _holds_path(index.bits, path, depth, rarest, row) else -1


@kernel
def _listed_reaches_k(index, path, depth, attr):
    """Whether ``support(P ∪ {attr}) >= k`` from the row list of ``P`` (stops at ``k``)."""
    total = 0
    for i in range(path.n_rows[depth]):
        row = path.rows[depth, i]
        if has_bit(index.bits, attr, row):
            total += index.weights[row]
            if total >= index.k:
                return True
    return False


@kernel
def propose(index, path, open_ids, columns, state, limit):
    """A SeedSampler draw for the current partial record by row proposals (see the module
    docstring), or -1 after ``limit`` rejections. ``open_ids[a]`` must be true exactly for the
    open attributes not yet ruled out; attributes found below ``k`` are set false."""
    depth = path.state[0]
    n_columns = path.seen.size
    for c in range(n_columns):
        path.seen[c] = False
    rarest = -1
    for d in range(1, depth + 1):
        attr = path.attrs[d]
        path.seen[columns[attr]] = True
        if rarest < 0 or (index.post_offsets[attr + 1] - index.post_offsets[attr]
                          < index.post_offsets[rarest + 1] - index.post_offsets[rarest]):
            rarest = attr
    u = 0
    for c in range(n_columns):
        if not path.seen[c]:
            path.free[u] = c
            u += 1
    if u == 0:
        return -1
    listed = False
    total = 0
    if depth >= LIST_DEPTH:
        path_rows(path, index.bits)
        if path.n_rows[depth] >= 0:
            listed = True
            for i in range(path.n_rows[depth]):
                total += index.weights[path.rows[depth, i]]
                path.cum[i] = total
    for _ in range(limit):
        row = _draw_row(index, path, depth, rarest, listed, total, state)
        if row < 0:
            continue
        column = path.free[below(state, u)]
        attr = -1
        for x in range(index.row_offsets[row], index.row_offsets[row + 1]):
            if columns[index.row_ids[x]] == column:
                attr = index.row_ids[x]
                break
        if attr < 0 or not open_ids[attr]:
            continue
        if index.weights[row] >= index.k or (_listed_reaches_k(index, path, depth, attr) if listed
                                              else _reaches_k(index, path, depth, attr, rarest)):
            return attr                     # row alone holds P ∪ {attr} k times, or the count reached k
        open_ids[attr] = False
    return -1
