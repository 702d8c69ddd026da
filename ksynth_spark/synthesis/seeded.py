"""row_seeded phase 1 over distinct rows: the ``m`` greedy growths of a row run together (numba).

Spec: every sensitive record ``r_i`` grows ``s_i`` from the empty set, each step adding a
remaining attribute ``a`` of ``r_i`` with probability proportional to ``support(s_i ∪ {a})``
among those whose support stays ``>= k``, until none is left.

Why the runs of a distinct row can run together, exactly: the growth is a Markov chain on
sets — what can happen next depends only on the current set ``P`` (its candidates are the
attributes of the row not in ``P`` with ``support(P ∪ {a}) >= k``, and their weights are those
supports). So ``m`` independent runs from the same row, described by how many runs sit in each
set after ``j`` steps, evolve by splitting the runs of every set among its candidates with
independent weighted draws, and merging the runs that reach the same set. This module does
exactly that, level by level; each set's supports are computed once however many runs pass
through it, and the result (each final set with its number of runs) has the same distribution
as ``m`` separate runs. Runs are split with one WChoice draw per run (spec §0), so the draws
equal those of separate runs.

Randomness: one stream per distinct row keyed by the row's content hash, consumed in a
canonical order (levels ascending; within a level, sets in lexicographic order of their
attributes taken rarest first; candidates in id order), so a row's output does not depend on
the partition, batch or process that grows it. Processing sets in that order also lets
consecutive sets share the longest possible prefix of the path whose Rows are known.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ksynth_spark.jit import kernel
from ksynth_spark.randomness import PHASE_ROW_SEEDED, split_runs, stream_base, stream_state
from ksynth_spark.synthesis.paths import SupportOracle, path_push, path_reset, path_truncate, supports

#: Positions of the sequence key (sets of wider rows are ordered by their first 62 positions,
#: then by their hash).
_KEY_POSITIONS = 62


class LevelParts(NamedTuple):
    """The sets of one level: membership over the row's candidates, runs, hash, support."""

    members: np.ndarray
    runs: np.ndarray
    keys: np.ndarray
    support: np.ndarray


class GrowthScratch(NamedTuple):
    """Buffers of the level-by-level growth of one distinct row (reused across rows).

    Attributes:
        cand: The row's candidate ids (``n(a) >= k``), ascending.
        push_order: Candidate positions, rarest first.
        current, following: The sets of this level and of the next one.
        table: Open-addressing table of the next level (set hash -> set index).
        order, sequence: Processing order of the current level and its sort key.
        free, ids, weights, split: Per-set candidate scratch.
    """

    cand: np.ndarray
    push_order: np.ndarray
    current: LevelParts
    following: LevelParts
    table: np.ndarray
    order: np.ndarray
    sequence: np.ndarray
    free: np.ndarray
    ids: np.ndarray
    weights: np.ndarray
    split: np.ndarray


class GrownSets(NamedTuple):
    """Output buffers: the final sets ``s`` of the rows with their number of runs.

    Attributes:
        ids: ``(capacity, C)`` the ids of each set (ascending), ``sizes`` its length.
        runs: Number of runs ending in the set; ``row``: input row of the set; ``leaf``: index of
            the set among its row's sets (with the row hash, the set's logical id).
    """

    ids: np.ndarray
    sizes: np.ndarray
    runs: np.ndarray
    row: np.ndarray
    leaf: np.ndarray


def _level(states: int, width: int) -> LevelParts:
    return LevelParts(np.zeros((states, width), np.uint8), np.zeros(states, np.int64),
                      np.zeros((states, 2), np.uint64), np.zeros(states, np.int64))


def new_scratch(width: int, states: int) -> GrowthScratch:
    """Scratch for rows of up to ``width`` attributes and levels of up to ``states`` sets."""
    width = max(1, width)
    return GrowthScratch(np.zeros(width, np.int64), np.zeros(width, np.int64), _level(states, width),
                         _level(states, width), np.full(1 << (2 * states - 1).bit_length(), -1, np.int64),
                         np.zeros(states, np.int64), np.zeros(states, np.int64), np.zeros(width, np.int64),
                         np.zeros(width, np.int64), np.zeros(width, np.int64), np.zeros(width, np.int64))


def new_output(capacity: int, n_columns: int) -> GrownSets:
    """Output buffers for ``capacity`` sets."""
    return GrownSets(np.zeros((capacity, max(1, n_columns)), np.int64), np.zeros(capacity, np.int64),
                     np.zeros(capacity, np.int64), np.zeros(capacity, np.int64), np.zeros(capacity, np.int64))


@kernel
def _before(level, sequence, a, b):
    """Canonical order of two sets of a level: sequence key descending, then hash."""
    if sequence[a] != sequence[b]:
        return sequence[a] > sequence[b]
    if level.keys[a, 0] != level.keys[b, 0]:
        return level.keys[a, 0] < level.keys[b, 0]
    return level.keys[a, 1] < level.keys[b, 1]


@kernel
def _sort_level(level, count, n, ws):
    """Fills ``ws.order`` with the sets of ``level`` in canonical order (shell sort)."""
    order, sequence = ws.order, ws.sequence
    for s in range(count):
        key = np.int64(0)
        for t in range(min(n, _KEY_POSITIONS)):
            if level.members[s, ws.push_order[t]]:
                key |= np.int64(1) << np.int64(_KEY_POSITIONS - t)
        sequence[s] = key
        order[s] = s
    gap = count // 2
    while gap > 0:
        for i in range(gap, count):
            value = order[i]
            j = i
            while j >= gap and _before(level, sequence, value, order[j - gap]):
                order[j] = order[j - gap]
                j -= gap
            order[j] = value
        gap //= 2


@kernel
def _walk_to(index, path, level, s, n, ws):
    """Points the path at set ``s``, keeping the prefix it shares with the previous set."""
    depth = 0
    for t in range(n):
        p = ws.push_order[t]
        if level.members[s, p]:
            depth += 1
            if depth > path.state[0] or path.attrs[depth] != ws.cand[p]:
                path_truncate(path, depth - 1)
                path_push(path, index.zobrist, ws.cand[p], np.int64(1) << np.int64(62))
    path_truncate(path, depth)
    path.node_support[depth] = level.support[s]


@kernel
def _emit(level, s, n, ws, out, n_out, row, leaf):
    size = 0
    for p in range(n):
        if level.members[s, p]:
            out.ids[n_out, size] = ws.cand[p]
            size += 1
    out.sizes[n_out] = size
    out.runs[n_out] = level.runs[s]
    out.row[n_out] = row
    out.leaf[n_out] = leaf


@kernel
def _add_child(ws, level, s, p, attr, runs, support, zobrist, n, count):
    """Adds ``runs`` runs to the set ``P_s ∪ {attr}`` of the next level; returns the new count
    of sets there, or -1 when the level is full."""
    nxt, table = ws.following, ws.table
    key0 = level.keys[s, 0] ^ zobrist[attr, 0]
    key1 = level.keys[s, 1] ^ zobrist[attr, 1]
    mask = table.size - 1
    t = np.int64(key0 & np.uint64(mask))
    while table[t] >= 0 and not (nxt.keys[table[t], 0] == key0 and nxt.keys[table[t], 1] == key1):
        t = (t + 1) & mask
    if table[t] < 0:
        if count >= nxt.runs.size:
            return -1
        table[t] = count
        for q in range(n):
            nxt.members[count, q] = level.members[s, q]
        nxt.members[count, p] = 1
        nxt.keys[count, 0] = key0
        nxt.keys[count, 1] = key1
        nxt.runs[count] = 0
        nxt.support[count] = support
        count += 1
    nxt.runs[table[t]] += runs
    return count


@kernel
def _grow_row(index, cache, path, ids, start, end, copies, state, ws, out, n_out, row):
    """All runs of one distinct row. Returns the new number of output sets, -1 when the
    output is full, -2 when a level outgrows the scratch."""
    counts, zobrist, k = index.counts, index.zobrist, index.k
    n = 0
    for j in range(start, end):
        if counts[ids[j]] >= k:
            ws.cand[n] = ids[j]
            n += 1
    for i in range(n):                       # push order: rarest candidate first
        ws.push_order[i] = i
    for i in range(1, n):
        value = ws.push_order[i]
        j = i - 1
        while j >= 0 and counts[ws.cand[ws.push_order[j]]] > counts[ws.cand[value]]:
            ws.push_order[j + 1] = ws.push_order[j]
            j -= 1
        ws.push_order[j + 1] = value
    level = ws.current
    for q in range(n):
        level.members[0, q] = 0
    level.runs[0] = copies
    level.keys[0, 0] = 0
    level.keys[0, 1] = 0
    level.support[0] = np.int64(1) << np.int64(62)
    count = 1
    leaf = 0
    while count > 0:
        _sort_level(level, count, n, ws)
        for t in range(ws.table.size):
            ws.table[t] = -1
        following = 0
        path_reset(path, index)
        for position in range(count):
            s = ws.order[position]
            _walk_to(index, path, level, s, n, ws)
            m = 0
            for p in range(n):
                if not level.members[s, p]:
                    ws.free[m] = p
                    ws.ids[m] = ws.cand[p]
                    m += 1
            supports(index, cache, path, ws.ids, m, ws.weights)
            kept = 0
            for i in range(m):
                if ws.weights[i] >= k:
                    ws.free[kept] = ws.free[i]
                    ws.weights[kept] = ws.weights[i]
                    kept += 1
            if kept == 0:
                if n_out >= out.runs.size:
                    return -1
                _emit(level, s, n, ws, out, n_out, row, leaf)
                n_out += 1
                leaf += 1
                continue
            split_runs(ws.weights, kept, level.runs[s], state, ws.split)
            for i in range(kept):
                if ws.split[i] > 0:
                    p = ws.free[i]
                    following = _add_child(ws, level, s, p, ws.cand[p], ws.split[i], ws.weights[i], zobrist, n,
                                           following)
                    if following < 0:
                        return -2
        nxt = ws.following
        for i in range(following):
            for q in range(n):
                level.members[i, q] = nxt.members[i, q]
            level.runs[i] = nxt.runs[i]
            level.keys[i, 0] = nxt.keys[i, 0]
            level.keys[i, 1] = nxt.keys[i, 1]
            level.support[i] = nxt.support[i]
        count = following
    return n_out


@kernel
def _grow_batch(index, cache, path, base, first, hashes, offsets, ids, copies, state, ws, out, status):
    """Rows ``first..`` of a batch; stops early when a buffer is full (``status``: ``[rows done,
    sets written, reason]`` with reason 0 = finished, -1 = output full, -2 = scratch too small)."""
    n_out = 0
    for j in range(first, hashes.size):
        state[0] = stream_state(base, hashes[j])
        result = _grow_row(index, cache, path, ids, offsets[j], offsets[j + 1], copies[j], state, ws, out, n_out, j)
        if result < 0:
            status[0], status[1], status[2] = j, n_out, result
            return
        n_out = result
    status[0], status[1], status[2] = hashes.size, n_out, 0


def grow_rows(oracle: SupportOracle, seed: int, hashes: np.ndarray, offsets: np.ndarray, ids: np.ndarray,
              copies: np.ndarray, states: int = 1024) -> GrownSets:
    """Spec phase 1 for a batch of distinct rows: every row's ``copies`` runs, together.

    Args:
        oracle: The support index with its cache and path scratch.
        seed: The run seed (streams ``(seed, PHASE_ROW_SEEDED, row hash)``).
        hashes: Content hash of every row (:func:`ksynth_spark.randomness.row_hashes`).
        offsets, ids: The rows (CSR, ids ascending).
        copies: Multiplicity of every row.
        states: Initial capacity of a level (grown as needed).

    Returns:
        The final sets of all rows, in row order (rows' sets in the order they ended).
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    ids = np.asarray(ids, dtype=np.int64)
    hashes = np.asarray(hashes, dtype=np.int64)
    copies = np.asarray(copies, dtype=np.int64)
    width = int(np.diff(offsets).max(initial=0))
    n_columns = oracle.index.space.n_columns
    ws = new_scratch(width, states)
    base = stream_base(seed, PHASE_ROW_SEEDED)
    parts: list[GrownSets] = []
    first, capacity = 0, max(64, 4 * len(hashes))
    status = np.zeros(3, np.int64)
    state = np.zeros(1, np.uint64)
    while first < len(hashes):
        out = new_output(capacity, n_columns)
        _grow_batch(oracle.index.parts(), oracle.cache.parts(), oracle.path, base, first, hashes, offsets, ids,
                    copies, state, ws, out, status)
        done, written, reason = (int(v) for v in status)
        parts.append(GrownSets(*(array[:written] for array in out)))
        if reason == -2:
            states *= 4
            ws = new_scratch(width, states)
        elif reason == -1 and written == 0:
            capacity *= 4
        first = done
    return GrownSets(*(np.concatenate([getattr(p, name) for p in parts]) for name in GrownSets._fields))
