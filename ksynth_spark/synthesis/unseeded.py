"""unseeded synthesis as merged runs: the N records drawn together, level by level (numba).

Spec: for each of the N records, visit the columns in a uniformly random order; in each column
draw a value with weight ``|Rc ∩ Rows(value)|`` where values matching fewer than ``k`` rows of
``Rc`` are folded into "empty" (weight: the rows of ``Rc`` truly empty in the column plus the
folded ones); choosing a value keeps ``Rc ∩ Rows(value)``, choosing "empty" keeps only the truly
empty rows. ``Rc`` starts as every record.

Why the N records can be drawn together, exactly: a record under construction is a Markov
chain on *states* — the visited columns with their outcomes (a value, or "empty in column c",
the pseudo id ``A + c`` of the support index). What happens next depends only on the state: the
next column is uniform among the unvisited ones (a uniform random order revealed one column at
a time), and the value weights depend only on ``Rc``, which the state determines. So ``m`` runs
sitting in one state evolve as ``m`` independent draws from that state, and runs reaching the
same state are interchangeable. :meth:`Expander.expand` takes the distinct states of level ``t``
(``t`` columns visited) with their numbers of runs and splits every state's runs, one WChoice
draw per run (spec §0), first among the unvisited columns, then among each column's outcomes;
merging the children that coincide gives level ``t + 1``. A state's work is done once however
many runs pass through it, so the cost follows the distinct states (bounded by the distinct
rows' projections), not N. A run ends when every column is visited, or when it chose "empty"
where no row of ``Rc`` is truly empty (``Rc`` becomes empty, so every later column has nothing
to draw: spec's NONE) — its record is the state's real attributes.

Randomness: the draws of a state use the stream ``(seed, PHASE_UNSEEDED, zobrist key of the
state)``. Every state is expanded exactly once (its level is its number of ids), so its draws
do not depend on the partition, batch or process that expands it, and the output is the same
for every partitioning.

Supports: the weights of the columns that received runs come either from one pass over the
distinct rows of ``Rc`` (a histogram of their attributes weighted by multiplicity: ``|Rc|`` ×
row width) or one candidate value at a time (an AND per bitset word, or a lookup per row of a
row list; ``Rc`` is held as in :mod:`.paths`), whichever costs less for the state.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ksynth_spark.jit import kernel
from ksynth_spark.randomness import PHASE_UNSEEDED, split_runs, stream_base, stream_state
from ksynth_spark.synthesis.index import DistinctIndex
from ksynth_spark.synthesis.paths import PathParts, add_rows, histogram_pays, new_path, path_reset, support_of
from ksynth_spark.synthesis.runs import (
    FinishedRecords,
    LevelOutput,
    StateLevel,
    concat_finished,
    emit_child,
    emit_finished,
    expand_level,
    merge_states,
    root_level,
    walk_to,
)


class _Scratch(NamedTuple):
    """Per-state buffers of :func:`_expand` (``hist`` is ``(1, A)`` and zero between states)."""

    hist: np.ndarray
    visited: np.ndarray
    unvisited: np.ndarray
    n_unvisited: np.ndarray
    ones: np.ndarray
    column_split: np.ndarray
    weights: np.ndarray
    split: np.ndarray
    state: np.ndarray


@kernel
def _candidates(member_offsets, ws, u):
    """Number of outcomes (values and "empty") of the columns that received runs."""
    candidates = 0
    for j in range(u):
        if ws.column_split[j] > 0:
            column = ws.unvisited[j]
            candidates += member_offsets[column + 1] - member_offsets[column] + 1
    return candidates


@kernel
def _unseeded_state(index, path, states, s, t, n_attrs, member_offsets, member_ids, runs, total, one_by_one, ws,
                    children, n_children, done, n_done):
    """Spec §4.2 step for the runs of state ``s`` (columns already split in ``ws.column_split``)."""
    k = index.k
    for j in range(ws.n_unvisited[0]):
        column = ws.unvisited[j]
        if ws.column_split[j] == 0:
            continue
        start = member_offsets[column]
        n_values = member_offsets[column + 1] - start
        present = 0
        folded = 0
        for i in range(n_values):
            w = ws.hist[0, member_ids[start + i]]
            present += w
            if w < k:
                folded += w
                w = 0
            ws.weights[i] = w
        empty = support_of(index, path, n_attrs + column, t) if one_by_one else total - present
        ws.weights[n_values] = empty + folded
        split_runs(ws.weights, n_values + 1, ws.column_split[j], ws.state, ws.split)
        for i in range(n_values + 1):
            if ws.split[i] == 0:
                continue
            if i == n_values and empty == 0:           # Rc becomes empty: nothing more to draw
                emit_finished(states, s, t, n_attrs, ws.split[i], done, n_done)
                n_done += 1
            else:
                new_id = member_ids[start + i] if i < n_values else n_attrs + column
                emit_child(states, s, t, new_id, ws.split[i], children, n_children)
                n_children += 1
    return n_children, n_done


@kernel
def _clear(ws, u, member_offsets, member_ids, states, s, t, n_attrs):
    """Zeroes the histogram entries a state touched (its ids and its unvisited columns' values)."""
    for j in range(u):
        column = ws.unvisited[j]
        for i in range(member_offsets[column], member_offsets[column + 1]):
            ws.hist[0, member_ids[i]] = 0
    for d in range(t):
        if states[s, d] < n_attrs:
            ws.hist[0, states[s, d]] = 0


@kernel
def _expand(index, path, base, columns, member_offsets, member_ids, states, runs, first,
            children, done, ws, counters):
    """Expands states ``first..`` of a level until an output buffer could overflow;
    ``counters`` receives ``[next state, children written, finished written]``."""
    n_attrs = columns.size
    n_columns = member_offsets.size - 1
    t = states.shape[1]
    n_children = 0
    n_done = 0
    s = first
    while s < states.shape[0]:
        for c in range(n_columns):
            ws.visited[c] = False
        for d in range(t):
            ident = states[s, d]
            ws.visited[columns[ident] if ident < n_attrs else ident - n_attrs] = True
        u = 0
        outcomes = 1
        for c in range(n_columns):
            if not ws.visited[c]:
                ws.unvisited[u] = c
                u += 1
                outcomes += member_offsets[c + 1] - member_offsets[c] + 1
        ws.n_unvisited[0] = u
        needed = min(runs[s], outcomes)
        if n_children + needed > children.runs.size or n_done + needed > done.runs.size:
            break
        if u == 0:
            emit_finished(states, s, t, n_attrs, runs[s], done, n_done)
            n_done += 1
            s += 1
            continue
        walk_to(index, path, states, s, t)
        ws.state[0] = stream_state(base, path.keys[t, 0])
        split_runs(ws.ones, u, runs[s], ws.state, ws.column_split)
        one_by_one = not histogram_pays(index, path, t, _candidates(member_offsets, ws, u), 1)
        total = 0
        if one_by_one:
            for j in range(u):
                column = ws.unvisited[j]
                if ws.column_split[j] > 0:
                    for i in range(member_offsets[column], member_offsets[column + 1]):
                        ws.hist[0, member_ids[i]] = support_of(index, path, member_ids[i], t)
        else:
            total = add_rows(index, path, t, ws.hist, 0, 1)
        n_children, n_done = _unseeded_state(index, path, states, s, t, n_attrs, member_offsets, member_ids, runs[s],
                                             total, one_by_one, ws, children, n_children, done, n_done)
        _clear(ws, u, member_offsets, member_ids, states, s, t, n_attrs)
        s += 1
    counters[0], counters[1], counters[2] = s, n_children, n_done


class Expander:
    """Expands levels of unseeded merged runs over one support index (kept with its scratch).

    Args:
        index: The support index, built with ``keep_rows=True``.
        capacity: Children buffered per compiled call.
    """

    def __init__(self, index: DistinctIndex, capacity: int = 1 << 16):
        if index.row_offsets.size != index.n_rows + 1:
            raise ValueError("merged runs need an index built with keep_rows=True")
        self.index = index
        self.capacity = capacity
        self.path: PathParts = new_path(index)
        space = index.space
        self.columns = np.asarray(space.columns, dtype=np.int64)
        self.member_offsets, self.member_ids = space.members()
        width = 1 + int(np.diff(self.member_offsets).max(initial=0))
        n_columns = max(1, space.n_columns)
        self.scratch = _Scratch(np.zeros((1, max(1, space.n_attrs)), np.int64), np.zeros(n_columns, np.bool_),
                                np.zeros(n_columns, np.int64), np.zeros(1, np.int64), np.ones(n_columns, np.int64),
                                np.zeros(n_columns, np.int64), np.zeros(width, np.int64), np.zeros(width, np.int64),
                                np.zeros(1, np.uint64))

    def expand(self, level: StateLevel, base: np.uint64) -> LevelOutput:
        """Splits the runs of every state of ``level`` (one level: ``level.ids`` is ``(S, t)``).

        Args:
            level: The states and their runs.
            base: Stream base key; a state's draws use the stream ``(base, its zobrist key)``.

        Returns:
            The children (level ``t + 1``, not merged: a child may repeat) and the records that
            ended, in the order of the input states.
        """
        n_columns = self.index.space.n_columns
        path_reset(self.path, self.index.parts())
        index = self.index.parts()

        def fill(states, runs, first, children, done, counters):
            _expand(index, self.path, base, self.columns, self.member_offsets, self.member_ids, states, runs, first,
                    children, done, self.scratch, counters)

        most = self.index.space.n_attrs + 2 * n_columns + 1            # children of one state, at most
        return expand_level(fill, level, n_columns, most, self.capacity)


def unseeded_groups(index: DistinctIndex, seed: int, n_records: int) -> FinishedRecords:
    """Spec §4.2 in one process: every level, merged, from ``n_records`` runs in the empty state.

    Returns:
        The records with their numbers of runs (Σ runs = N; a record may repeat across rows).
    """
    expander, base = Expander(index), stream_base(seed, PHASE_UNSEEDED)
    level = root_level(n_records)
    finished: list[FinishedRecords] = []
    while len(level.runs):
        out = expander.expand(level, base)
        finished.append(out.finished)
        level = merge_states(out.children)
    return concat_finished(finished)
