"""SuppressToTargets (spec §4.0) on grouped synthetic records: remove each over-represented
attribute's excess occurrences, the victims chosen by one random order of the records.

Synthetic records travel in *groups*: an attribute set with a number of identical copies and a
logical group id (a distinct sensitive row's hash and set index for phase 1, a task and record
number for consolidation). Copy ``j`` of group ``g`` gets the random key of the stream
``(seed, PHASE_SUPPRESS)`` at logical id ``(g, j)``, so the random record order of the spec is
"ascending ``(key, g, j)``" and no copy is ever materialised: for attribute ``a`` with excess
``e(a)``, the victims are its ``e(a)`` occurrences with the smallest ``(key, g, j)``.

Distributed: each partition keeps, per over-represented attribute, its ``e(a)`` smallest
occurrences (:func:`smallest_occurrences`); the selection is mergeable, so the driver re-selects
over the partitions' candidates (:func:`select_smallest`, at most partitions × Σe(a) rows) and
broadcasts one threshold per attribute (:class:`SuppressionThresholds`); executors then remove
every occurrence at or below its attribute's threshold (:func:`apply_suppression`), splitting
the few affected copies off their group and dropping copies left empty.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ksynth_spark.jit import kernel
from ksynth_spark.randomness import PHASE_SUPPRESS, finalize, stream_base, stream_state


class Occurrences(NamedTuple):
    """Attribute occurrences in copies of groups: ``attr``, random ``key`` (uint64), ``group``
    (logical group id) and ``copy`` number."""

    attr: np.ndarray
    key: np.ndarray
    group: np.ndarray
    copy: np.ndarray


@kernel
def copy_key(base, group, copy):
    """Random key of copy ``copy`` of group ``group`` (uint64)."""
    return finalize(stream_state(base, group) ^ finalize(np.uint64(copy) + np.uint64(0x9E3779B97F4A7C15)))


@kernel
def _before(key_a, group_a, copy_a, key_b, group_b, copy_b):
    if key_a != key_b:
        return key_a < key_b
    if group_a != group_b:
        return group_a < group_b
    return copy_a < copy_b


@kernel
def _smallest_copies(base, group, count, m, heap_keys, heap_copies):
    """The ``m`` copies of a group with the smallest keys, ascending (written to the heap
    buffers; returns how many)."""
    size = 0
    for j in range(count):
        key = copy_key(base, group, j)
        if size < m:
            i = size
            size += 1
        elif _before(key, group, j, heap_keys[size - 1], group, heap_copies[size - 1]):
            i = size - 1
        else:
            continue
        while i > 0 and _before(key, group, j, heap_keys[i - 1], group, heap_copies[i - 1]):
            heap_keys[i] = heap_keys[i - 1]
            heap_copies[i] = heap_copies[i - 1]
            i -= 1
        heap_keys[i] = key
        heap_copies[i] = j
    return size


@kernel
def _candidates(base, groups, counts, offsets, ids, excess, out_attr, out_key, out_group, out_copy, heap_keys,
                heap_copies):
    n = 0
    for g in range(groups.size):
        m = 0
        for t in range(offsets[g], offsets[g + 1]):
            m = max(m, excess[ids[t]])
        if m == 0:
            continue
        size = _smallest_copies(base, groups[g], counts[g], min(m, counts[g]), heap_keys, heap_copies)
        for t in range(offsets[g], offsets[g + 1]):
            a = ids[t]
            for i in range(min(excess[a], size)):
                out_attr[n], out_key[n], out_group[n], out_copy[n] = a, heap_keys[i], groups[g], heap_copies[i]
                n += 1
    return n


def smallest_occurrences(seed: int, groups: np.ndarray, counts: np.ndarray, offsets: np.ndarray, ids: np.ndarray,
                         excess: np.ndarray) -> Occurrences:
    """Candidate victims among some groups: per attribute ``a``, its ``excess[a]`` occurrences
    with the smallest ``(key, group, copy)`` within each group (mergeable: see
    :func:`select_smallest`)."""
    groups = np.asarray(groups, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    offsets = np.asarray(offsets, dtype=np.int64)
    ids = np.asarray(ids, dtype=np.int64)
    excess = np.asarray(excess, dtype=np.int64)
    bound = int(np.minimum(excess[ids], np.repeat(counts, np.diff(offsets))).sum()) if ids.size else 0
    top = int(excess.max(initial=0))
    out = Occurrences(np.zeros(bound, np.int64), np.zeros(bound, np.uint64), np.zeros(bound, np.int64),
                      np.zeros(bound, np.int64))
    n = _candidates(stream_base(seed, PHASE_SUPPRESS), groups, counts, offsets, ids, excess, *out,
                    np.zeros(max(1, top), np.uint64), np.zeros(max(1, top), np.int64))
    return select_smallest(Occurrences(*(array[:n] for array in out)), excess)


def select_smallest(found: Occurrences, excess: np.ndarray) -> Occurrences:
    """Keeps, per attribute ``a``, the ``excess[a]`` occurrences with the smallest ``(key, group, copy)``.

    Mergeable: the selection over a union of occurrence sets equals the selection over the
    union of the parts' selections, so partitions select locally and the driver re-selects.
    """
    excess = np.asarray(excess, dtype=np.int64)
    order = np.lexsort((found.copy, found.group, found.key, found.attr))
    attr, key, group, copy = (np.asarray(a)[order] for a in found)
    if attr.size == 0:
        return Occurrences(attr, key, group, copy)
    starts = np.flatnonzero(np.concatenate(([True], attr[1:] != attr[:-1])))
    rank = np.arange(attr.size) - np.repeat(starts, np.diff(np.append(starts, attr.size)))
    keep = rank < excess[attr]
    return Occurrences(attr[keep], key[keep], group[keep], copy[keep])


class SuppressionThresholds(NamedTuple):
    """Per attribute id, the largest ``(key, group, copy)`` whose occurrence is removed."""

    active: np.ndarray      # bool
    key: np.ndarray         # uint64
    group: np.ndarray       # int64
    copy: np.ndarray        # int64

    @classmethod
    def from_victims(cls, victims: Occurrences, n_attrs: int) -> SuppressionThresholds:
        """Thresholds from the selected victims (any order)."""
        active = np.zeros(n_attrs, dtype=bool)
        key = np.zeros(n_attrs, dtype=np.uint64)
        group = np.zeros(n_attrs, dtype=np.int64)
        copy = np.zeros(n_attrs, dtype=np.int64)
        order = np.lexsort((victims.copy, victims.group, victims.key, victims.attr))
        attr = np.asarray(victims.attr)[order]
        if attr.size:
            last = order[np.flatnonzero(np.append(attr[1:] != attr[:-1], True))]
            attrs = np.asarray(victims.attr)[last]
            active[attrs] = True
            key[attrs] = np.asarray(victims.key)[last]
            group[attrs] = np.asarray(victims.group)[last]
            copy[attrs] = np.asarray(victims.copy)[last]
        return cls(active, key, group, copy)


@kernel
def _apply(base, thresholds, groups, counts, offsets, ids, out_offsets, out_ids, out_counts, keep):
    """Writes the surviving groups: each input group minus its affected copies, then every
    affected copy with its remaining attributes (if any). Returns the number of output groups."""
    n_out = 0
    out_offsets[0] = 0
    for g in range(groups.size):
        start, end = offsets[g], offsets[g + 1]
        affected = 0
        for j in range(counts[g]):
            key = copy_key(base, groups[g], j)
            kept = 0
            for t in range(start, end):
                a = ids[t]
                keep[t - start] = not (thresholds.active[a] and not _before(
                    thresholds.key[a], thresholds.group[a], thresholds.copy[a], key, groups[g], j))
                kept += keep[t - start]
            if kept == end - start:
                continue
            affected += 1
            if kept == 0:
                continue
            o = out_offsets[n_out]
            for t in range(start, end):
                if keep[t - start]:
                    out_ids[o] = ids[t]
                    o += 1
            out_offsets[n_out + 1] = o
            out_counts[n_out] = 1
            n_out += 1
        if counts[g] > affected and end > start:
            o = out_offsets[n_out]
            for t in range(start, end):
                out_ids[o] = ids[t]
                o += 1
            out_offsets[n_out + 1] = o
            out_counts[n_out] = counts[g] - affected
            n_out += 1
    return n_out


def apply_suppression(seed: int, thresholds: SuppressionThresholds, groups: np.ndarray, counts: np.ndarray,
                      offsets: np.ndarray, ids: np.ndarray,
                      max_affected: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Removes every occurrence at or below its attribute's threshold; drops emptied copies.

    Args:
        max_affected: An upper bound of the copies affected in these groups (Σ e(a)).

    Returns:
        ``(offsets, ids, counts)`` of the surviving (non-empty) groups.
    """
    groups = np.asarray(groups, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    offsets = np.asarray(offsets, dtype=np.int64)
    ids = np.asarray(ids, dtype=np.int64)
    capacity = groups.size + max_affected
    width = int(np.diff(offsets).max(initial=0))
    out_offsets = np.zeros(capacity + 1, np.int64)
    out_ids = np.zeros(max(1, int(offsets[-1]) + max_affected * width), np.int64)
    out_counts = np.zeros(capacity, np.int64)
    n = _apply(stream_base(seed, PHASE_SUPPRESS), thresholds, groups, counts, offsets, ids, out_offsets, out_ids,
               out_counts, np.zeros(max(1, width), np.bool_))
    return out_offsets[:n + 1], out_ids[:out_offsets[n]], out_counts[:n]
