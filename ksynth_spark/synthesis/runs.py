"""Merged runs: many independent runs of one Markov chain on partial records, drawn together.

unseeded synthesis builds records as a Markov chain whose *state* is a partial record (sorted
ids) and whose next step depends only on that state. ``m`` runs sitting in one state then evolve
as ``m`` independent draws from it, and runs that reach the same state are interchangeable, so a
level of the chains is the set of distinct states with their numbers of runs
(:class:`StateLevel`). A step splits the runs of every state among its children
(:func:`emit_child`) or ends them (:func:`emit_finished`); :func:`merge_states` sums the children
that coincide. This module holds those structures and the buffered driver of one level
(:func:`expand_level`); the chain's step lives with its mode (:mod:`.unseeded`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from ksynth_spark.jit import kernel
from ksynth_spark.synthesis.paths import UNKNOWN_SUPPORT, path_push, path_rows, path_truncate


class StateLevel(NamedTuple):
    """Distinct states of one level ``t`` with their runs.

    Attributes:
        ids: ``(S, t)`` int64, the state's ids ascending.
        runs: ``(S,)`` int64, the runs sitting in each state.
    """

    ids: np.ndarray
    runs: np.ndarray


class FinishedRecords(NamedTuple):
    """Records whose runs ended: ``(R, C)`` attribute ids (``sizes`` used per row) and runs."""

    ids: np.ndarray
    sizes: np.ndarray
    runs: np.ndarray


class LevelOutput(NamedTuple):
    """What one level's expansion makes: the next level (children not yet merged) and the
    records that ended."""

    children: StateLevel
    finished: FinishedRecords


@kernel
def walk_to(index, path, states, s, t):
    """Points the path at state ``s`` (keeping the prefix it shares with the previous state)
    and makes its deepest depth hold the state's distinct rows."""
    shared = 0
    while shared < t and shared < path.state[0] and path.attrs[shared + 1] == states[s, shared]:
        shared += 1
    path_truncate(path, shared)
    for d in range(shared, t):
        path_push(path, index.zobrist, states[s, d], UNKNOWN_SUPPORT)
    path_rows(path, index.bits)


@kernel
def emit_finished(states, s, t, n_attrs, runs, done, n_done):
    """Ends ``runs`` runs of state ``s``: its ids below ``n_attrs`` become record ``n_done``."""
    size = 0
    for d in range(t):
        if states[s, d] < n_attrs:
            done.ids[n_done, size] = states[s, d]
            size += 1
    done.sizes[n_done] = size
    done.runs[n_done] = runs


@kernel
def emit_child(states, s, t, new_id, runs, children, n_children):
    """Writes state ``s`` plus ``new_id`` (kept ascending) as child ``n_children`` with ``runs``."""
    j = 0
    placed = False
    for d in range(t):
        if not placed and new_id < states[s, d]:
            children.ids[n_children, j] = new_id
            j += 1
            placed = True
        children.ids[n_children, j] = states[s, d]
        j += 1
    if not placed:
        children.ids[n_children, j] = new_id
    children.runs[n_children] = runs


#: ``fill(states, runs, first, children, done, counters)``: a compiled step over states
#: ``first..`` that stops before a buffer could overflow and writes ``[next state, children
#: written, finished written]`` into ``counters``.
Fill = Callable[[np.ndarray, np.ndarray, int, StateLevel, FinishedRecords, np.ndarray], None]


def expand_level(fill: Fill, level: StateLevel, n_columns: int, most: int, capacity: int) -> LevelOutput:
    """Runs ``fill`` over every state of ``level`` with output buffers grown as needed.

    Args:
        fill: The chain's compiled step (see :data:`Fill`).
        level: The states and their runs (``ids`` is ``(S, t)``).
        n_columns: Longest record (width of the finished records).
        most: Most children of one state.
        capacity: Children buffered per compiled call.

    Returns:
        The children (level ``t + 1``, not merged: a child may repeat) and the records that
        ended, in the order of the input states.
    """
    states = np.ascontiguousarray(level.ids, dtype=np.int64)
    runs = np.asarray(level.runs, dtype=np.int64)
    t = states.shape[1]
    width = max(1, n_columns)
    parts: list[LevelOutput] = []
    first, capacity = 0, int(max(1, min(capacity, np.minimum(runs, most).sum())))
    counters = np.zeros(3, np.int64)
    while first < len(runs):
        children = StateLevel(np.zeros((capacity, t + 1), np.int64), np.zeros(capacity, np.int64))
        done = FinishedRecords(np.zeros((capacity, width), np.int64), np.zeros(capacity, np.int64),
                               np.zeros(capacity, np.int64))
        fill(states, runs, first, children, done, counters)
        after, n_children, n_done = (int(v) for v in counters)
        if after == first:                 # one state needs more room than the buffers have
            capacity *= 4
            continue
        parts.append(LevelOutput(StateLevel(children.ids[:n_children], children.runs[:n_children]),
                                 FinishedRecords(*(array[:n_done] for array in done))))
        first = after
    if not parts:
        parts.append(LevelOutput(StateLevel(np.zeros((0, t + 1), np.int64), np.zeros(0, np.int64)),
                                 FinishedRecords(np.zeros((0, width), np.int64), np.zeros(0, np.int64),
                                                 np.zeros(0, np.int64))))
    return LevelOutput(
        StateLevel(np.concatenate([p.children.ids for p in parts]), np.concatenate([p.children.runs for p in parts])),
        concat_finished([p.finished for p in parts]))


def concat_finished(parts: list[FinishedRecords]) -> FinishedRecords:
    """The records of several :class:`FinishedRecords` in order."""
    return FinishedRecords(*(np.concatenate([getattr(p, name) for p in parts]) for name in FinishedRecords._fields))


def root_level(n_runs: int) -> StateLevel:
    """Level 0: ``n_runs`` runs in the empty state."""
    return StateLevel(np.zeros((1, 0), np.int64), np.array([n_runs], np.int64))


def merge_states(level: StateLevel) -> StateLevel:
    """The distinct states of a level with their runs summed, in ascending (lexicographic) order."""
    if not len(level.runs):
        return level
    distinct, inverse = np.unique(level.ids, axis=0, return_inverse=True)
    return StateLevel(distinct, np.bincount(inverse.ravel(), weights=level.runs, minlength=len(distinct))
                      .astype(np.int64))
