"""Kernels of spec §4 synthesis: numpy set-up and numba-compiled record loops, no Spark.

Everything random is drawn from a SplitMix64 stream keyed by ``(seed, phase, logical id)``
(a sensitive record index, a synthetic record number, ...), so a record comes out the same
whichever process, partition or batch builds it.

Attribute ids are the canonical ids of :mod:`ksynth_spark.model` (``0 .. A-1``). The support
index adds one pseudo id per column, ``A + c`` = "no value in column c", which the unseeded mode
conditions on (spec §4.2). Combinations are packed with :class:`~ksynth_spark.combinations.ComboCodec`.

Why numba: with numpy alone one step of a growing record costs 20-50 µs of interpreter and
call overhead, measured on adult (48,842 records, 13 columns, 125 attributes, k = 10,
reporting length 4, 2 shared cores): value_seeded took 31 s (580,000 sequential steps) and
aggregate_seeded was on course for 157 s, against a 23 s target for the whole stage. The
compiled loops take about a microsecond per step.

Index representation, chosen by measurement on adult (CPU seconds for all 48,842 records;
phase 1 of row_seeded / unseeded / value_seeded consolidation, LRU cache of 100,000 entries):

============================================================  =======  ========  ============
representation                                                phase 1  unseeded  value_seeded
============================================================  =======  ========  ============
dense bitsets ``(A + C, ceil(N/64))``, popcount of candidates   0.69     0.73       1.17
hybrid: bitsets, or a pass over the records matrix ``(N, C)``   0.80     1.15       2.27
of ``Rows(P)`` when ``support(P)·C·2 < candidates·W``
sorted row ids + records matrix only                            2.34     3.29       3.59
============================================================  =======  ========  ============

(numpy prototypes had favoured the hybrid: there a popcount pass costs a call, not 0.4 ns a
word.) So ``Rows(P)`` is a bitset ANDed lazily along the growing record, and ``support(P ∪
{a})`` is the popcount of its AND with ``Rows(a)`` (a word-wise popcount the compiler turns into
``popcnt``). Supports are cached per partial record in an exact LRU (``cache_max_size``
entries) keyed by a 128-bit Zobrist hash of ``P``; on value_seeded 40 % of the lookups hit and
the cache halves the time (2.4 s with one entry), on phase 1 half hit but it is neutral.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Callable, Optional, Sequence

import numpy as np
from numba import njit

from ksynth_spark.combinations import ComboCodec, csr_from_lists, records_by_size
from ksynth_spark.model import floor_k

log = logging.getLogger(__name__)

# Compiled loops run without Numba's reference-counting runtime: they never allocate (the
# Python wrappers pass every buffer), and with it each call passing arrays paid atomic
# reference counts (a lattice lookup took 127 ns with, 3.5 ns without). Only the aggregate
# table's builders, which allocate, use the runtime.
_JIT = dict(cache=True, nogil=True, _nrt=False)
_INLINE = dict(_JIT, inline="always")     # the innermost lattice lookups

# Phase tags of the random streams (part of the stream key; never reuse a value).
PHASE_ROW_SEEDED = 1
PHASE_CONSOLIDATE = 2
PHASE_SUPPRESS = 3
PHASE_UNSEEDED = 4
PHASE_VALUE_SEEDED = 5
PHASE_AGGREGATE_SEEDED = 6
PHASE_ZOBRIST = 7

# Upper bound of the support cache's memory (entries are capped so that vectors fit).
CACHE_BYTES = 256 << 20

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)
_ONE = np.uint64(1)
_MASK64 = (1 << 64) - 1

# ======================================================================================= randomness
@njit(**_JIT)
def _finalize(z):
    """SplitMix64 output function (uint64 wrap-around)."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(**_JIT)
def _stream_base(seed64, phase):
    return _finalize(_finalize(seed64 + _GOLDEN) ^ np.uint64(phase))


@njit(**_JIT)
def _stream_state(base, logical_id):
    """Initial state of the stream ``logical_id`` of a ``(seed, phase)`` base key."""
    return _finalize((base ^ np.uint64(logical_id)) + _GOLDEN)


@njit(**_JIT)
def _next_u64(state):
    """Next uniform 64-bit integer of the stream whose state is ``state[0]``."""
    state[0] += _GOLDEN
    return _finalize(state[0])


@njit(**_JIT)
def _below(state, n):
    """Uniform integer in ``[0, n)``, exact (rejects the incomplete low block)."""
    n64 = np.uint64(n)
    threshold = (np.uint64(0) - n64) % n64
    while True:
        x = _next_u64(state)
        if x >= threshold:
            return np.int64(x % n64)


@njit(**_JIT)
def _draw(weights, n, state):
    """Spec §0 WChoice: r uniform in [1, Σw]; first candidate whose running sum >= r; -1 = NONE."""
    total = 0
    for i in range(n):
        total += weights[i]
    if total <= 0:
        return -1
    r = 1 + _below(state, total)
    running = 0
    for i in range(n):
        running += weights[i]
        if running >= r:
            return i
    return -1


@njit(**_JIT)
def _permutation(state, items, n):
    """Writes a uniform random permutation of ``range(n)`` into ``items`` (Fisher–Yates)."""
    for i in range(n):
        items[i] = i
    for i in range(n - 1, 0, -1):
        j = _below(state, i + 1)
        items[i], items[j] = items[j], items[i]


@njit(**_JIT)
def _uniform_keys(base, ids, out, state):
    for i in range(ids.size):
        state[0] = _stream_state(base, ids[i])
        out[i] = _next_u64(state)


def stream_base(seed: int, phase: int) -> np.uint64:
    """Base key of the streams of one phase of one seed (any Python int seed, taken mod 2^64)."""
    return np.uint64(_stream_base(np.uint64(int(seed) & _MASK64), np.int64(phase)))


class RandomStream:
    """The stream ``(seed, phase, logical_id)`` from Python (tests, driver-side draws)."""

    def __init__(self, seed: int, phase: int, logical_id: int):
        self.state = np.array([np.uint64(_stream_state(stream_base(seed, phase), np.int64(logical_id)))],
                              dtype=np.uint64)

    def next_u64(self) -> int:
        """The next uniform 64-bit integer."""
        return int(_next_u64(self.state))

    def below(self, n: int) -> int:
        """A uniform integer in ``[0, n)``."""
        return int(_below(self.state, np.int64(n)))

    def wchoice(self, weights: Sequence[int]) -> int:
        """Spec §0 WChoice over integer weights in candidate order (index, or -1 for NONE)."""
        w = np.asarray(weights, dtype=np.int64)
        return int(_draw(w, w.size, self.state))

    def permutation(self, n: int) -> np.ndarray:
        """A uniform random permutation of ``range(n)``."""
        items = np.zeros(n, dtype=np.int64)
        _permutation(self.state, items, n)
        return items


def uniform_keys(seed: int, phase: int, logical_ids: np.ndarray) -> np.ndarray:
    """First output of ``RandomStream(seed, phase, id)`` for every id (uint64 array)."""
    ids = np.asarray(logical_ids, dtype=np.int64)
    out = np.zeros(ids.size, dtype=np.uint64)
    _uniform_keys(stream_base(seed, phase), ids, out, np.zeros(1, dtype=np.uint64))
    return out


# ======================================================================================= support index
@njit(**_JIT)
def _popcount(x):
    x = x - ((x >> _ONE) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return np.int64((x * _H01) >> np.uint64(56))


@njit(**_JIT)
def _and_count(bits, row, words, depth):
    """``popcount(bits[row] & words[depth])``."""
    total = 0
    for i in range(words.shape[1]):
        total += _popcount(bits[row, i] & words[depth, i])
    return total


@dataclass
class AttributeSpace:
    """Column membership of attribute ids.

    Attributes:
        columns: int64 array, column index of every attribute id.
        n_columns: Number of columns (headers).
    """

    columns: np.ndarray
    n_columns: int

    @property
    def n_attrs(self) -> int:
        """Number of attribute ids A."""
        return len(self.columns)

    def members(self) -> tuple[np.ndarray, np.ndarray]:
        """CSR ``(offsets, ids)`` of the attribute ids of every column (ascending ids)."""
        columns = np.asarray(self.columns, dtype=np.int64)
        order = np.argsort(columns, kind="stable").astype(np.int64)
        offsets = np.searchsorted(columns[order], np.arange(self.n_columns + 1)).astype(np.int64)
        return offsets, order


def partial_bitsets(record_ids: np.ndarray, offsets: np.ndarray, ids: np.ndarray,
                    n_words: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bitset words of ``Rows(a)`` contributed by some records (OR-able across partitions).

    Args:
        record_ids: Sensitive record index of every CSR record.
        offsets, ids: The records' attribute ids (CSR).
        n_words: Words per bitset, ``ceil(N / 64)``.

    Returns:
        ``(attr, word, bits)``: one entry per non-zero word; ``bits`` are int64 (the uint64
        word reinterpreted).
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    rows = np.repeat(np.asarray(record_ids, dtype=np.int64), np.diff(offsets))
    attrs = np.asarray(ids, dtype=np.int64)[offsets[0]:offsets[-1]]
    cell = attrs * n_words + (rows >> 6)
    bits = np.left_shift(np.uint64(1), (rows & 63).astype(np.uint64))
    order = np.argsort(cell, kind="stable")
    cell, bits = cell[order], bits[order]
    if cell.size == 0:
        return cell, cell, cell
    starts = np.flatnonzero(np.concatenate(([True], cell[1:] != cell[:-1])))
    merged = np.bitwise_or.reduceat(bits, starts)
    cell = cell[starts]
    return cell // n_words, cell % n_words, merged.view(np.int64)


def assemble_bitsets(attr: np.ndarray, word: np.ndarray, bits: np.ndarray, n_attrs: int, n_words: int) -> np.ndarray:
    """ORs ``(attr, word, bits)`` entries (see :func:`partial_bitsets`) into a dense ``(A, W)`` array."""
    dense = np.zeros(n_attrs * n_words, dtype=np.uint64)
    np.bitwise_or.at(dense, np.asarray(attr, np.int64) * n_words + np.asarray(word, np.int64),
                     np.asarray(bits, np.int64).view(np.uint64))
    return dense.reshape(n_attrs, n_words)


class SupportIndex:
    """The sensitive ``Rows(a)`` index (spec §1.8) for ``support`` of partial records.

    Attributes:
        bits: ``(A + C, W)`` uint64 bitsets of the attributes and of the "column empty" ids.
        counts: int64 support of every single id.
        zobrist: ``(A + C, 2)`` uint64 random codes; the XOR over ``P`` keys the cache.
    """

    def __init__(self, attr_bits: np.ndarray, space: AttributeSpace, n_records: int, k: int):
        self.space = space
        self.n_records = n_records
        self.k = k
        n_attrs, n_columns = space.n_attrs, space.n_columns
        n_words = max(1, (n_records + 63) // 64)
        attr_bits = np.asarray(attr_bits, dtype=np.uint64).reshape(n_attrs, n_words)
        valid = np.zeros(n_words * 64, dtype=bool)
        valid[:n_records] = True
        self.all_words = np.packbits(valid, bitorder="little").view(np.uint64)
        empties = np.tile(self.all_words, (n_columns, 1))
        offsets, members = space.members()
        for column in range(n_columns):
            ids = members[offsets[column]:offsets[column + 1]]
            if ids.size:
                empties[column] &= ~np.bitwise_or.reduce(attr_bits[ids], axis=0)
        self.bits = np.ascontiguousarray(np.concatenate([attr_bits, empties]))
        self.counts = np.bitwise_count(self.bits).sum(axis=1, dtype=np.int64)
        n_ids = n_attrs + n_columns
        self.zobrist = np.stack([uniform_keys(0, PHASE_ZOBRIST, np.arange(n_ids)),
                                 uniform_keys(1, PHASE_ZOBRIST, np.arange(n_ids))], axis=1)

    @classmethod
    def from_records(cls, offsets: np.ndarray, ids: np.ndarray, space: AttributeSpace, k: int) -> "SupportIndex":
        """Builds the index from in-memory CSR records (tests and small data)."""
        n = len(offsets) - 1
        n_words = max(1, (n + 63) // 64)
        parts = partial_bitsets(np.arange(n), offsets, ids, n_words)
        return cls(assemble_bitsets(*parts, space.n_attrs, n_words), space, n, k)

    @property
    def n_ids(self) -> int:
        """A + C (attributes and empty-column pseudo ids)."""
        return self.bits.shape[0]

    def parts(self) -> tuple:
        """The arrays the compiled loops take."""
        return (self.bits, self.counts, self.zobrist, self.all_words, np.int64(self.k))


# ======================================================================================= support cache
class SupportCache:
    """Exact LRU cache of support vectors keyed by partial record (``cache_max_size`` entries).

    A vector holds ``support(P ∪ {a})`` for every id, -1 while not computed. Keys are the
    128-bit Zobrist hash of ``P`` (a collision needs two of at most ~1e7 partial records to
    share 128 random bits: ~1e-25), found through an open-addressing table. The number of
    entries is also capped so that the vectors fit in :data:`CACHE_BYTES`.
    """

    def __init__(self, n_ids: int, maxsize: int):
        capacity = max(1, min(int(maxsize), CACHE_BYTES // (4 * max(1, n_ids))))
        if capacity < maxsize:
            log.info("support cache capped at %d entries (%d ids per entry)", capacity, n_ids)
        n_slots = 1 << (2 * capacity - 1).bit_length()
        self.slot_keys = np.zeros((n_slots, 2), dtype=np.uint64)
        self.slot_entry = np.full(n_slots, -1, dtype=np.int64)
        self.vectors = np.empty((capacity, n_ids), dtype=np.int32)
        self.keys = np.zeros((capacity, 2), dtype=np.uint64)
        self.links = np.full((capacity, 2), -1, dtype=np.int64)       # previous, next
        self.meta = np.array([-1, -1, 0, 0, 0], dtype=np.int64)       # head, tail, size, hits, misses

    @property
    def hits(self) -> int:
        return int(self.meta[3])

    @property
    def misses(self) -> int:
        return int(self.meta[4])

    def parts(self) -> tuple:
        """The arrays the compiled loops take."""
        return (self.slot_keys, self.slot_entry, self.vectors, self.keys, self.links, self.meta)


@njit(**_JIT)
def _slot_of(slot_keys, slot_entry, key0, key1):
    """Open-addressing position of a key (the key's slot, or the empty slot ending its probe)."""
    mask = slot_entry.size - 1
    s = np.int64(key0 & np.uint64(mask))
    while slot_entry[s] >= 0 and not (slot_keys[s, 0] == key0 and slot_keys[s, 1] == key1):
        s = (s + 1) & mask
    return s


@njit(**_JIT)
def _slot_delete(slot_keys, slot_entry, s):
    """Removes slot ``s`` (backward-shift deletion keeps every probe sequence intact)."""
    mask = slot_entry.size - 1
    hole = s
    j = s
    while True:
        j = (j + 1) & mask
        if slot_entry[j] < 0:
            break
        home = np.int64(slot_keys[j, 0] & np.uint64(mask))
        if (j > hole and (home <= hole or home > j)) or (j < hole and home <= hole and home > j):
            slot_keys[hole, 0], slot_keys[hole, 1] = slot_keys[j, 0], slot_keys[j, 1]
            slot_entry[hole] = slot_entry[j]
            hole = j
    slot_entry[hole] = -1


@njit(**_JIT)
def _lru_unlink(links, meta, entry):
    prev, nxt = links[entry, 0], links[entry, 1]
    if prev >= 0:
        links[prev, 1] = nxt
    else:
        meta[0] = nxt
    if nxt >= 0:
        links[nxt, 0] = prev
    else:
        meta[1] = prev


@njit(**_JIT)
def _lru_push_front(links, meta, entry):
    links[entry, 0] = -1
    links[entry, 1] = meta[0]
    if meta[0] >= 0:
        links[meta[0], 0] = entry
    meta[0] = entry
    if meta[1] < 0:
        meta[1] = entry


@njit(**_JIT)
def _cache_slot(cache, key0, key1):
    """Entry of a partial record's vector (on a miss: a fresh all -1 one, evicting the LRU entry)."""
    slot_keys, slot_entry, vectors, keys, links, meta = cache
    s = _slot_of(slot_keys, slot_entry, key0, key1)
    entry = slot_entry[s]
    if entry >= 0:
        meta[3] += 1
        _lru_unlink(links, meta, entry)
        _lru_push_front(links, meta, entry)
        return entry
    meta[4] += 1
    if meta[2] < vectors.shape[0]:
        entry = meta[2]
        meta[2] += 1
    else:
        entry = meta[1]
        _lru_unlink(links, meta, entry)
        _slot_delete(slot_keys, slot_entry, _slot_of(slot_keys, slot_entry, keys[entry, 0], keys[entry, 1]))
        s = _slot_of(slot_keys, slot_entry, key0, key1)
    slot_keys[s, 0], slot_keys[s, 1] = key0, key1
    slot_entry[s] = entry
    keys[entry, 0], keys[entry, 1] = key0, key1
    _lru_push_front(links, meta, entry)
    for i in range(vectors.shape[1]):
        vectors[entry, i] = -1
    return entry


# ======================================================================================= growing records
def _new_path(index: SupportIndex) -> tuple:
    """Scratch state of one growing record, per depth: ids, cache keys, ``Rows(P)`` as a bitset
    (``words``) or, once it holds at most ``cap`` records, as an ascending row list (``rows``,
    ``n_rows``; -1 = bitset); ``support(P)`` as known when ``P`` was chosen (``node_support``);
    and ``[depth, deepest depth whose Rows is known]``.

    Why two forms: a support over a bitset costs one AND + popcount per 64 records of the whole
    table. Partial records soon match only a few rows; testing just those rows' bits costs
    ``|Rows(P)|`` lookups instead. A lookup costs a few word operations, hence ``cap = W / 4``
    (W = words per bitset). Such small nodes are also kept out of the support cache
    (:func:`_supports`), which then holds the frequent prefixes whose supports are expensive,
    instead of being flushed by one-off deep nodes. Measured with benchmarks/phase1_scaling.py:
    a third less time per record at 10^5-10^7 records, same output. Supports of frequent partial
    records still cost ``W`` words each, so phase 1 as a whole still grows with N².
    """
    depth = index.space.n_columns + 2
    n_words = index.all_words.size
    cap = max(64, n_words // 4)
    words = np.zeros((depth, n_words), dtype=np.uint64)
    rows = np.zeros((depth, cap), dtype=np.int64)
    n_rows = np.full(depth, -1, dtype=np.int64)
    node_support = np.zeros(depth, dtype=np.int64)
    return (np.zeros(depth, np.int64), np.zeros((depth, 2), np.uint64), words, np.zeros(2, np.int64), rows, n_rows,
            node_support)


@njit(**_JIT)
def _path_reset(path, index):
    attrs, keys, words, state, rows, n_rows, node_support = path
    for w in range(words.shape[1]):         # Rows({}) = every record
        words[0, w] = index[3][w]
    n_rows[0] = -1
    node_support[0] = words.shape[1] * 64
    keys[0, 0] = 0
    keys[0, 1] = 0
    state[0] = 0
    state[1] = 0


@njit(**_JIT)
def _path_push(path, zobrist, attr, support):
    """Extends ``P`` by ``attr``; ``support`` is ``support(P ∪ {attr})`` as computed by
    :func:`_supports` (or an upper bound of it)."""
    attrs, keys, state, node_support = path[0], path[1], path[3], path[6]
    depth = state[0] + 1
    attrs[depth] = attr
    node_support[depth] = support
    keys[depth, 0] = keys[depth - 1, 0] ^ zobrist[attr, 0]
    keys[depth, 1] = keys[depth - 1, 1] ^ zobrist[attr, 1]
    state[0] = depth


@njit(**_JIT)
def _has_bit(bits, attr, row):
    """1 if record ``row`` has id ``attr``, else 0 (int64: adding uint64 to int64 gives float64)."""
    return np.int64((bits[attr, row >> 6] >> np.uint64(row & 63)) & _ONE)


@njit(**_JIT)
def _path_rows(path, bits):
    """Makes depth ``state[0]`` hold ``Rows(P)`` (computed lazily along the path): the parent's
    row list filtered by the new id, or the AND of bitsets, turned into a list once small."""
    attrs, words, state, rows, n_rows = path[0], path[2], path[3], path[4], path[5]
    cap = rows.shape[1]
    while state[1] < state[0]:
        d = state[1] + 1
        attr = attrs[d]
        if n_rows[d - 1] >= 0:
            m = 0
            for i in range(n_rows[d - 1]):
                row = rows[d - 1, i]
                if _has_bit(bits, attr, row):
                    rows[d, m] = row
                    m += 1
            n_rows[d] = m
        else:
            total = 0
            for w in range(words.shape[1]):
                x = words[d - 1, w] & bits[attr, w]
                words[d, w] = x
                total += _popcount(x)
            n_rows[d] = -1
            if total <= cap:
                m = 0
                for w in range(words.shape[1]):
                    x = words[d, w]
                    while x != 0:
                        low = x & (np.uint64(0) - x)
                        rows[d, m] = w * 64 + _popcount(low - _ONE)
                        m += 1
                        x ^= low
                n_rows[d] = m
        state[1] = d


@njit(**_JIT)
def _rows_count(bits, attr, rows, depth, n):
    """``|{r in rows[depth, :n] : attr in r}|``."""
    total = 0
    for i in range(n):
        total += _has_bit(bits, attr, rows[depth, i])
    return total


@njit(**_JIT)
def _supports(index, cache, path, candidates, n, out):
    """``out[i] = support(P ∪ {candidates[i]})`` for the current partial record ``P``."""
    bits, counts = index[0], index[1]
    vectors = cache[2]
    keys, words, state, rows, n_rows, node_support = path[1], path[2], path[3], path[4], path[5], path[6]
    depth = state[0]
    if depth == 0:
        for i in range(n):
            out[i] = counts[candidates[i]]
        return
    if node_support[depth] <= rows.shape[1]:     # a small node: its row list answers directly
        _path_rows(path, bits)
        for i in range(n):
            if n_rows[depth] >= 0:
                out[i] = _rows_count(bits, candidates[i], rows, depth, n_rows[depth])
            else:
                out[i] = _and_count(bits, candidates[i], words, depth)
        return
    slot = _cache_slot(cache, keys[depth, 0], keys[depth, 1])
    for i in range(n):
        attr = candidates[i]
        if vectors[slot, attr] < 0:
            _path_rows(path, bits)          # Rows(P), computed once per node and only on a miss
            if n_rows[depth] >= 0:
                vectors[slot, attr] = _rows_count(bits, attr, rows, depth, n_rows[depth])
            else:
                vectors[slot, attr] = _and_count(bits, attr, words, depth)
        out[i] = vectors[slot, attr]


@njit(**_JIT)
def _insertion_sort(x, start, end):
    """Sorts ``x[start:end]`` in place (short ranges)."""
    for i in range(start + 1, end):
        value = x[i]
        j = i - 1
        while j >= start and x[j] > value:
            x[j + 1] = x[j]
            j -= 1
        x[j + 1] = value


@njit(**_JIT)
def _emit(path, n_attrs, out_offsets, out_ids, j):
    """Writes the real attributes of the path, sorted, as CSR record ``j``."""
    attrs, state = path[0], path[3]
    start = out_offsets[j]
    end = start
    for d in range(1, state[0] + 1):
        if attrs[d] < n_attrs:
            out_ids[end] = attrs[d]
            end += 1
    _insertion_sort(out_ids, start, end)
    out_offsets[j + 1] = end


@njit(**_JIT)
def _grow_seeded(index, cache, path, ids, start, end, state, candidates, support):
    """Spec §4.1 phase 1 for the seed record ``ids[start:end]``; leaves ``s_i`` on the path.

    Candidates whose support drops below k are dropped for good (support only shrinks).
    """
    counts, zobrist, k = index[1], index[2], index[4]
    n = 0
    for j in range(start, end):
        if counts[ids[j]] >= k:
            candidates[n] = ids[j]
            n += 1
    _path_reset(path, index)
    while n > 0:
        _supports(index, cache, path, candidates, n, support)
        kept = 0
        for i in range(n):
            if support[i] >= k:
                candidates[kept] = candidates[i]
                support[kept] = support[i]
                kept += 1
        n = kept
        chosen = _draw(support, n, state)
        if chosen < 0:
            break
        _path_push(path, zobrist, candidates[chosen], support[chosen])
        for i in range(chosen, n - 1):
            candidates[i] = candidates[i + 1]
        n -= 1


@njit(**_JIT)
def _row_seeded_batch(index, cache, path, base, n_attrs, record_ids, offsets, ids, out_offsets, out_ids, scratch):
    state, candidates, support = scratch
    out_offsets[0] = 0
    for j in range(record_ids.size):
        state[0] = _stream_state(base, record_ids[j])
        _grow_seeded(index, cache, path, ids, offsets[j], offsets[j + 1], state, candidates, support)
        _emit(path, n_attrs, out_offsets, out_ids, j)


@njit(**_JIT)
def _unseeded_one(index, cache, path, member_offsets, member_ids, n_attrs, state, scratch):
    """Spec §4.2 for one synthetic record: columns in random order, rare values folded into
    EMPTY, and EMPTY conditioning on the truly empty rows (pseudo id ``A + column``)."""
    order, candidates, support = scratch
    zobrist, k = index[2], index[4]
    n_columns = member_offsets.size - 1
    _path_reset(path, index)
    _permutation(state, order, n_columns)
    for position in range(n_columns):
        column = order[position]
        n_values = member_offsets[column + 1] - member_offsets[column]
        for i in range(n_values):
            candidates[i] = member_ids[member_offsets[column] + i]
        candidates[n_values] = n_attrs + column
        _supports(index, cache, path, candidates, n_values + 1, support)
        for i in range(n_values):
            if support[i] < k:
                support[n_values] += support[i]
                support[i] = 0
        chosen = _draw(support, n_values + 1, state)
        if chosen >= 0:                     # (EMPTY's support includes the folded values: an upper bound)
            _path_push(path, zobrist, candidates[chosen], support[chosen])


@njit(**_JIT)
def _unseeded_batch(index, cache, path, base, member_offsets, member_ids, n_attrs, numbers, out_offsets, out_ids,
                    state, scratch):
    out_offsets[0] = 0
    for j in range(numbers.size):
        state[0] = _stream_state(base, numbers[j])
        _unseeded_one(index, cache, path, member_offsets, member_ids, n_attrs, state, scratch)
        _emit(path, n_attrs, out_offsets, out_ids, j)


class SupportOracle:
    """A support index with its LRU cache and record scratch (one per task or driver phase)."""

    def __init__(self, index: SupportIndex, cache_size: int):
        self.index = index
        self.cache = SupportCache(index.n_ids, cache_size)
        self.path = _new_path(index)


def row_seeded_phase1(oracle: SupportOracle, seed: int, record_ids: np.ndarray, offsets: np.ndarray,
                      ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spec §4.1 phase 1 for a batch of sensitive records; record ``i`` uses stream
    ``(seed, PHASE_ROW_SEEDED, i)``.

    Returns:
        CSR ``(offsets, ids)`` of the ``s_i`` in batch order (the ``i ↔ i`` pairing).
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    ids = np.asarray(ids, dtype=np.int64)[offsets[0]:]
    offsets = offsets - offsets[0]
    record_ids = np.asarray(record_ids, dtype=np.int64)
    out_offsets = np.zeros(record_ids.size + 1, dtype=np.int64)
    out_ids = np.zeros(max(1, int(offsets[-1])), dtype=np.int64)
    width = max(1, int(np.diff(offsets).max(initial=0)))
    scratch = (np.zeros(1, dtype=np.uint64), np.zeros(width, dtype=np.int64), np.zeros(width, dtype=np.int64))
    _row_seeded_batch(oracle.index.parts(), oracle.cache.parts(), oracle.path, stream_base(seed, PHASE_ROW_SEEDED),
                      oracle.index.space.n_attrs, record_ids, offsets, ids, out_offsets, out_ids, scratch)
    return out_offsets, out_ids[:out_offsets[-1]]


def unseeded_records(oracle: SupportOracle, seed: int, numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spec §4.2 records ``t`` for every ``t`` in ``numbers`` (stream ``(seed, PHASE_UNSEEDED, t)``).

    Returns:
        CSR ``(offsets, ids)`` in the order of ``numbers`` (records may be empty).
    """
    numbers = np.asarray(numbers, dtype=np.int64)
    member_offsets, member_ids = oracle.index.space.members()
    n_columns = oracle.index.space.n_columns
    out_offsets = np.zeros(numbers.size + 1, dtype=np.int64)
    out_ids = np.zeros(max(1, numbers.size * n_columns), dtype=np.int64)
    width = 1 + int(np.diff(member_offsets).max(initial=0))
    scratch = (np.zeros(max(1, n_columns), dtype=np.int64), np.zeros(width, dtype=np.int64),
               np.zeros(width, dtype=np.int64))
    _unseeded_batch(oracle.index.parts(), oracle.cache.parts(), oracle.path, stream_base(seed, PHASE_UNSEEDED),
                    member_offsets, member_ids, oracle.index.space.n_attrs, numbers, out_offsets, out_ids,
                    np.zeros(1, dtype=np.uint64), scratch)
    return out_offsets, out_ids[:out_offsets[-1]]


# ======================================================================================= aggregate tables
@njit(**_JIT)
def _hash_words(words):
    h = np.uint64(0)
    for w in words:
        h = _finalize(h ^ np.uint64(w))
    return h


@njit(cache=True, nogil=True)
def _build_slots(keys, n_slots):
    """Open-addressing slots ``(n_slots, n_words + 1)``: the packed key, then its row (-1 = empty)."""
    slots = np.zeros((n_slots, keys.shape[1] + 1), dtype=np.int64)
    slots[:, -1] = -1
    mask = n_slots - 1
    for row in range(keys.shape[0]):
        s = np.int64(_hash_words(keys[row]) & np.uint64(mask))
        while slots[s, -1] >= 0:
            s = (s + 1) & mask
        slots[s, :-1] = keys[row]
        slots[s, -1] = row
    return slots


@njit(**_JIT)
def _unpack(keys, row, bits, per_word, out):
    """Ids of the packed combination ``keys[row]`` into ``out``; returns its length."""
    mask = (np.int64(1) << bits) - 1
    n = 0
    for word in range(keys.shape[1]):
        for pos in range(per_word):
            value = (keys[row, word] >> (bits * pos)) & mask
            if value == 0:
                return n
            out[n] = value - 1
            n += 1
    return n


class AggregateTable:
    """An aggregate table ``A`` (reportable k-anonymous or DP counts) with compiled lookups.

    Besides a hash of the packed combinations it keeps the lattice of the table: for every row
    (and for the empty combination, row ``len(table)``) the rows obtained by adding one
    attribute, sorted by that attribute. Growing records then find their new combinations by a
    short binary search from rows they already know instead of hashing them.

    Attributes:
        codec: Packing of combinations of up to ``length`` ids.
        length: Its reporting length ``R_A``.
        keys: ``(rows, n_words)`` packed combinations; counts: int64 count per row.
    """

    def __init__(self, offsets: np.ndarray, ids: np.ndarray, counts: Sequence[int], n_attrs: int, length: int):
        """Builds the table from CSR combinations (``offsets``, ``ids``; any id order) and counts."""
        offsets = np.asarray(offsets, dtype=np.int64)
        n_rows = len(offsets) - 1
        self.length = max(1, int(length))
        self.n_attrs = int(n_attrs)
        self.codec = ComboCodec(max(1, n_attrs), self.length)
        self.keys = np.zeros((n_rows, self.codec.n_words), dtype=np.int64)
        for rows, matrix in records_by_size(offsets, np.asarray(ids, dtype=np.int64)):
            self.keys[rows] = self.codec.pack(np.sort(matrix, axis=1))
        self.counts = np.asarray(counts, dtype=np.int64).reshape(-1)
        n_slots = 1 << max(4, int(2 * max(1, n_rows) - 1).bit_length())
        self.slots = _build_slots(self.keys, n_slots)
        self.child_offsets = np.zeros(n_rows + 2, dtype=np.int64)
        self.child_attrs = self.child_rows = np.zeros(0, dtype=np.int32)
        parent, attr, child = self._lattice_edges()
        order = np.lexsort((attr, parent))
        self.child_offsets = np.searchsorted(parent[order], np.arange(n_rows + 2)).astype(np.int64)
        # int32 halves the lattice's cache footprint (random lookups are memory-bound)
        self.child_attrs, self.child_rows = attr[order].astype(np.int32), child[order].astype(np.int32)

    @classmethod
    def from_combos(cls, combos: Sequence[Sequence[int]], counts: Sequence[int], n_attrs: int,
                    length: int) -> "AggregateTable":
        """Builds the table from a list of combinations (id lists)."""
        offsets, ids = csr_from_lists([list(c) for c in combos])
        return cls(offsets, ids, counts, n_attrs, length)

    def __len__(self) -> int:
        return len(self.counts)

    @property
    def root(self) -> int:
        """Row index standing for the empty combination."""
        return len(self.counts)

    def parts(self) -> tuple:
        """The arrays the compiled loops take (with two lookup scratch buffers)."""
        return (self.keys, self.counts, self.slots, np.int64(self.codec.bits), np.int64(self.codec.per_word),
                np.int64(self.length), np.zeros(self.codec.n_words, dtype=np.int64),
                np.zeros(self.length + 2, dtype=np.int64), self.child_offsets, self.child_attrs, self.child_rows)

    def _lattice_edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(parent, attr, child)`` for every row ``child`` and each of its attributes ``attr``
        whose ``parent = child \\ {attr}`` is in the table (the empty combination is ``root``)."""
        sizes = np.zeros(len(self), dtype=np.int64)
        ids = np.zeros(self.length, dtype=np.int64)
        parts = self.parts()
        for row in range(len(self)):
            sizes[row] = _unpack(self.keys, row, parts[3], parts[4], ids)
        total = int(sizes.sum())
        edges = np.zeros((3, total), dtype=np.int64)
        made = _fill_lattice_edges(parts, len(self), edges, ids, np.zeros(self.length, dtype=np.int64))
        return edges[0, :made], edges[1, :made], edges[2, :made]

    def find(self, combos: Sequence[Sequence[int]]) -> np.ndarray:
        """Row of every combination (any id order), or -1 when absent."""
        parts = self.parts()
        return np.array([_find(parts, np.sort(np.asarray(c, dtype=np.int64)), len(c)) for c in combos],
                        dtype=np.int64)

    def singles(self) -> np.ndarray:
        """``A[{a}]`` for every attribute id (0 when absent)."""
        rows = self.find([[a] for a in range(self.n_attrs)])
        return np.where(rows >= 0, self.counts[np.maximum(rows, 0)], 0)

    def scaled_counts(self, factor: float) -> np.ndarray:
        """``ceil(A[c] * factor)``, with the factor read as the decimal it was written as."""
        exact = Fraction(Decimal(repr(float(factor))))
        return -((-self.counts * exact.numerator) // exact.denominator)

    def with_counts(self, counts: np.ndarray) -> "AggregateTable":
        """The same combinations with other counts."""
        copy = object.__new__(AggregateTable)
        copy.__dict__.update(self.__dict__)
        copy.counts = np.asarray(counts, dtype=np.int64)
        return copy


@njit(**_JIT)
def _find(table, ids, n):
    """Row of the combination ``ids[:n]`` (sorted ascending) in the table, or -1."""
    slots, bits, per_word, length, query = table[2], table[3], table[4], table[5], table[6]
    if n > length or n == 0:
        return -1
    for w in range(query.size):
        query[w] = 0
    for slot in range(n):
        query[slot // per_word] |= (ids[slot] + 1) << (bits * (slot % per_word))
    mask = slots.shape[0] - 1
    s = np.int64(_hash_words(query) & np.uint64(mask))
    width = query.size
    while slots[s, width] >= 0:
        same = True
        for w in range(width):
            if slots[s, w] != query[w]:
                same = False
                break
        if same:
            return slots[s, width]
        s = (s + 1) & mask
    return -1


@njit(**_JIT)
def _fill_lattice_edges(table, n_rows, edges, ids, rest):
    keys, bits, per_word = table[0], table[3], table[4]
    e = 0
    for row in range(n_rows):
        n = _unpack(keys, row, bits, per_word, ids)
        for x in range(n):
            m = 0
            for y in range(n):
                if y != x:
                    rest[m] = ids[y]
                    m += 1
            up = n_rows if m == 0 else _find(table, rest, m)
            if up >= 0:
                edges[0, e], edges[1, e], edges[2, e] = up, ids[x], row
                e += 1
    return e


@njit(**_INLINE)
def _child(offsets, attrs, rows, row, attr):
    """Row of ``combination(row) ∪ {attr}`` through the lattice arrays, or -1."""
    lo, hi = offsets[row], offsets[row + 1]
    end = hi
    while lo < hi:
        mid = (lo + hi) >> 1
        if attrs[mid] < attr:
            lo = mid + 1
        else:
            hi = mid
    if lo < end and attrs[lo] == attr:
        return rows[lo]
    return -1


@njit(**_JIT)
def _merge_into(values, row, n_old, new, n_new):
    """Merges the ``n_new`` values ``new`` into the sorted ``values[row, :n_old]`` (sorts ``new`` first)."""
    _insertion_sort(new, 0, n_new)
    i, j, out = n_old - 1, n_new - 1, n_old + n_new - 1
    while j >= 0:
        if i >= 0 and values[row, i] > new[j]:
            values[row, out] = values[row, i]
            i -= 1
        else:
            values[row, out] = new[j]
            j -= 1
        out -= 1


# ---------------------------------------------------------------------------- subsets of a growing record
def _new_subsets(n_subsets: int, length: int) -> tuple:
    """Rows, sizes and ids of the subsets ``s ⊆ P`` with ``|s| <= R_A - 1`` of a growing record
    (entry 0 is the empty set), and their number."""
    return (np.zeros(n_subsets, np.int64), np.zeros(n_subsets, np.int64),
            np.zeros((n_subsets, max(1, length)), np.int64), np.zeros(1, np.int64))


@njit(**_JIT)
def _subsets_reset(subsets, root):
    rows, sizes, count = subsets[0], subsets[1], subsets[3]
    rows[0] = root
    sizes[0] = 0
    count[0] = 1


@njit(**_INLINE)
def _extension_row(table, subsets, i, attr):
    """Row of ``s_i ∪ {attr}``: through the lattice, or by hash when ``s_i`` itself is absent."""
    rows, sizes, ids = subsets[0], subsets[1], subsets[2]
    if rows[i] >= 0:
        return _child(table[8], table[9], table[10], rows[i], attr)
    combo, size = table[7], sizes[i]
    for j in range(size):
        combo[j] = ids[i, j]
    combo[size] = attr
    _insertion_sort(combo, 0, size + 1)
    return _find(table, combo, size + 1)


@njit(**_JIT)
def _new_combinations(table, subsets, attr, max_size, out):
    """Rows of the combinations that adding ``attr`` to ``P`` creates: ``{attr} ∪ s`` for every
    tracked ``s ⊆ P`` (spec §4.3 "c not in D"); only for ``|s| < max_size`` (-1 for the others).
    Returns how many entries ``out`` has."""
    sizes, count = subsets[1], subsets[3]
    for i in range(count[0]):
        out[i] = _extension_row(table, subsets, i, attr) if sizes[i] < max_size else -1
    return count[0]


@njit(**_JIT)
def _push_subsets(table, subsets, attr, new_rows, n):
    """Tracks the new subsets ``{attr} ∪ s`` of size ``<= R_A - 1`` (rows from ``new_rows``)."""
    rows, sizes, ids, count = subsets
    limit = table[5] - 1
    c = count[0]
    for i in range(n):
        size = sizes[i]
        if size + 1 <= limit:
            rows[c] = new_rows[i]
            sizes[c] = size + 1
            for j in range(size):
                ids[c, j] = ids[i, j]
            ids[c, size] = attr
            c += 1
    count[0] = c


@njit(**_JIT)
def _accept(table, synthetic, ceiling, subsets, attr, rows):
    """Spec §4.3 accept(a): rejects when a new combination would exceed its ceiling (only if
    ``ceiling`` is not empty); on success counts ``G`` and tracks the new subsets."""
    n = _new_combinations(table, subsets, attr, table[5], rows)
    if ceiling.size:
        for i in range(n):
            if rows[i] >= 0 and synthetic[rows[i]] + 1 > ceiling[rows[i]]:
                return False
    for i in range(n):
        if rows[i] >= 0:
            synthetic[rows[i]] += 1
    _push_subsets(table, subsets, attr, rows, n)
    return True


@njit(**_JIT)
def _quantile_r8(values, row, n, p):
    """Spec §3.7 Quantile_R8 of the sorted ``values[row, :n]``."""
    h = (n + 1.0 / 3.0) * p + 1.0 / 3.0
    j = np.int64(math.floor(h))
    if j <= 0 or p == 0.0:
        return float(values[row, 0])
    if j >= n or p == 1.0:
        return float(values[row, n - 1])
    return values[row, j - 1] + (h - j) * (values[row, j] - values[row, j - 1])


@njit(**_JIT)
def _round_half_away(x):
    return np.int64(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def quantile_r8(values: Sequence[float], p: float) -> float:
    """Spec §3.7 ``Quantile_R8`` of ``values`` (any order, at least one)."""
    x = np.sort(np.asarray(values, dtype=np.float64)).reshape(1, -1)
    return float(_quantile_r8(x, 0, x.shape[1], float(p)))


def round_half_away(x: float) -> int:
    """Rounds half away from zero."""
    return int(_round_half_away(float(x)))


# ======================================================================================= consolidation
@njit(**_JIT)
def _open_ids(quota, open_ids):
    for a in range(quota.size):
        open_ids[a] = quota[a] > 0


@njit(**_JIT)
def _close_column(open_ids, member_offsets, member_ids, column):
    for i in range(member_offsets[column], member_offsets[column + 1]):
        open_ids[member_ids[i]] = False


@njit(**_JIT)
def _any_positive(values):
    for v in values:
        if v > 0:
            return True
    return False


@njit(**_JIT)
def _gather_open(open_ids, candidates):
    n = 0
    for a in range(open_ids.size):
        if open_ids[a]:
            candidates[n] = a
            n += 1
    return n


@njit(**_JIT)
def _seed_record(index, cache, path, table, subsets, synthetic, ceiling, tries, quota, columns, member_offsets,
                 member_ids, state, scratch):
    """One Consolidate record with SeedSampler (spec §4.0), with the oversampling control of
    §4.3 when ``synthetic`` (G) is not empty."""
    zobrist, k = index[2], index[4]
    open_ids, candidates, weights, rows = scratch
    controlled = synthetic.size > 0
    _open_ids(quota, open_ids)
    _path_reset(path, index)
    _subsets_reset(subsets, table[1].size)
    while True:
        n = _gather_open(open_ids, candidates)
        if n == 0:
            break
        _supports(index, cache, path, candidates, n, weights)
        for i in range(n):
            if weights[i] < k:
                weights[i] = 0
                open_ids[candidates[i]] = False      # support only shrinks
        attr = -1
        attr_support = 0
        left = tries
        while True:
            chosen = _draw(weights, n, state)
            if chosen < 0:
                break
            if not controlled or _accept(table, synthetic, ceiling, subsets, candidates[chosen], rows):
                attr = candidates[chosen]
                attr_support = weights[chosen]
                break
            left -= 1
            if left == 0:
                break
        if attr < 0:
            break
        _path_push(path, zobrist, attr, attr_support)
        _close_column(open_ids, member_offsets, member_ids, columns[attr])
        quota[attr] -= 1


@njit(**_INLINE)
def _weight_of(counts, synthetic, row):
    """``weight(c)`` of a table row: ``A[c]`` (or ``A[c] - G[c]`` with synthetic counts), 0 = undefined."""
    if row < 0:
        return 0
    value = counts[row]
    if synthetic.size:
        value -= synthetic[row]
    return value if value > 0 else 0


@njit(**_JIT)
def _candidate_values(table, synthetic, subsets, first, whole, open_ids, work, buffer):
    """Adds ``weight({a} ∪ s)`` for the subsets ``s`` tracked from entry ``first`` on to the
    sorted weight list of every open candidate ``a``; an undefined one breaks ``a``. When
    ``whole >= 0`` (``|P| <= R_A - 1``: entry ``whole`` is ``P``) also sets ``full[a] = weight(P ∪ {a})``."""
    values, n_values, broken, full = work
    counts = table[1]
    last = subsets[3][0]
    for a in range(open_ids.size):
        if not open_ids[a]:
            continue
        if whole >= 0:
            full[a] = _weight_of(counts, synthetic, _extension_row(table, subsets, whole, a))
        if broken[a]:
            continue
        n = 0
        for e in range(first, last):
            value = _weight_of(counts, synthetic, _extension_row(table, subsets, e, a))
            if value <= 0:
                broken[a] = True
                break
            buffer[n] = value
            n += 1
        if not broken[a]:
            _merge_into(values, a, n_values[a], buffer, n)
            n_values[a] += n


@njit(**_JIT)
def _aggregate_record(table, subsets, synthetic, p, quota, columns, member_offsets, member_ids, state, scratch,
                      work, record):
    """One Consolidate record with the spec §4.4 sampler (weights from the table only).

    The weight list of a candidate grows with the record: only the combinations created by
    the last attribute are looked up. ``G`` of combinations holding a candidate cannot change
    while the record grows (they are not in it yet), so the lists stay exact.
    """
    open_ids, candidates, weights, rows = scratch
    values, n_values, broken, full = work
    length = table[5]
    _open_ids(quota, open_ids)
    _subsets_reset(subsets, table[1].size)
    for a in range(open_ids.size):
        n_values[a] = 0
        broken[a] = False
    _candidate_values(table, synthetic, subsets, 0, 0, open_ids, work, rows)
    size = 0
    while True:
        n = _gather_open(open_ids, candidates)
        if n == 0:
            break
        for i in range(n):
            a = candidates[i]
            if size + 1 <= length:
                weights[i] = full[a]
            elif broken[a]:
                weights[i] = 0
                open_ids[a] = False
            else:
                weights[i] = max(0, _round_half_away(_quantile_r8(values, a, n_values[a], p)))
        chosen = _draw(weights, n, state)
        if chosen < 0:
            break
        attr = candidates[chosen]
        first = subsets[3][0]
        made = _new_combinations(table, subsets, attr, length if synthetic.size else length - 1, rows)
        if synthetic.size:
            for i in range(made):
                if rows[i] >= 0:
                    synthetic[rows[i]] += 1
        _push_subsets(table, subsets, attr, rows, made)
        _close_column(open_ids, member_offsets, member_ids, columns[attr])
        quota[attr] -= 1
        record[size] = attr
        size += 1
        _candidate_values(table, synthetic, subsets, first, subsets[3][0] - 1 if size + 1 <= length else -1,
                          open_ids, work, rows)
    return size


@njit(**_JIT)
def _can_start(table, synthetic, ceiling, quota):
    """Whether some attribute with quota left could be accepted as a first attribute."""
    root = table[1].size
    for a in range(quota.size):
        if quota[a] > 0:
            row = _child(table[8], table[9], table[10], root, a)
            if row < 0 or synthetic[row] + 1 <= ceiling[row]:
                return True
    return False


@njit(**_JIT)
def _consolidate_chunk(kind, index, cache, path, table, subsets, synthetic, ceiling, p, tries, quota, initial,
                       target, built, columns, member_offsets, member_ids, state, scratch, work, record,
                       out_offsets, out_ids):
    """Builds up to ``len(out_offsets) - 1`` Consolidate records (``kind`` 0: SeedSampler, 1: aggregate).

    Returns:
        ``(records built, status)``; status 0 = more to do, 1 = done, 2 = stalled.
    """
    n_attrs = quota.size
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
            _emit(path, n_attrs, out_offsets, out_ids, made)
        else:
            size = _aggregate_record(table, subsets, synthetic, p, quota, columns, member_offsets, member_ids,
                                     state, scratch, work, record)
            start = out_offsets[made]
            for i in range(size):
                out_ids[start + i] = record[i]
            _insertion_sort(out_ids, start, start + size)
            out_offsets[made + 1] = start + size
        if out_offsets[made + 1] > out_offsets[made]:
            made += 1
        elif ceiling.size == 0 or not _can_start(table, synthetic, ceiling, quota):
            return made, 2                          # nothing can ever be drawn again
    return made, 0


@dataclass
class SeedSampler:
    """Spec §4.0 SeedSampler over the sensitive support index."""

    oracle: SupportOracle


@dataclass
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
        ratio: ``oversampling_ratio`` ρ (control only).
        tries: Consecutive rejections that end a record (``oversampling_tries``, default 1).
        target: Build exactly this many records, resetting exhausted quotas (spec §4.4 T).
        progress: Called as ``progress(records_built, quota_left)`` between chunks of records.
    """

    control: Optional[AggregateTable] = None
    ratio: float = 0.0
    tries: int = 1
    target: Optional[int] = None
    progress: Optional[Callable[[int, int], None]] = None


@dataclass
class Consolidation:
    """Records built by :func:`consolidate` (CSR, creation order) and what was left.

    Attributes:
        offsets, ids: The records (sorted ids, never empty).
        quota_left: Units of quota not used (0 unless stalled or a target was given).
        stalled: The control rejected every possible first attribute (spec §4.0 would loop).
        synthetic: ``G`` at the end (rows of the control/aggregate table), if tracked.
    """

    offsets: np.ndarray
    ids: np.ndarray
    quota_left: int = 0
    stalled: bool = False
    synthetic: Optional[np.ndarray] = None

    @property
    def n_records(self) -> int:
        return len(self.offsets) - 1

    def records(self) -> list[list[int]]:
        """The records as Python lists."""
        return [self.ids[self.offsets[i]:self.offsets[i + 1]].tolist() for i in range(self.n_records)]


def consolidate(quota: np.ndarray, sampler, space: AttributeSpace, stream: RandomStream,
                options: Optional[ConsolidationOptions] = None, chunk: int = 2000) -> Consolidation:
    """Spec §4.0 Consolidate: builds records from per-attribute quotas (sequential, shared quotas).

    Runs on the driver; nothing is collected or broadcast here.

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
    subsets = _new_subsets(n_subsets, table.length)
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
                         quota_left=int(quota.sum()) if target < 0 else 0, stalled=status == 2,
                         synthetic=synthetic if synthetic.size else None)


def _sampler_setup(sampler, options: ConsolidationOptions, space: AttributeSpace) -> tuple:
    """``(kind, oracle, table, G, ceiling, p)`` for :func:`_consolidate_chunk` (unused parts are
    empty stand-ins: the compiled loop takes one signature)."""
    empty_g, empty_ceiling = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    if isinstance(sampler, AggregateSampler):
        table = sampler.table
        synthetic = np.zeros(len(table), dtype=np.int64) if sampler.use_synthetic_counts else empty_g
        stand_in = SupportOracle(SupportIndex(np.zeros((space.n_attrs, 1), np.uint64), space, 1, 1), 1)
        return 1, stand_in, table, synthetic, empty_ceiling, sampler.percentile / 100.0
    if options.control is None:
        return 0, sampler.oracle, AggregateTable.from_combos([], [], space.n_attrs, 1), empty_g, empty_ceiling, 0.0
    table = options.control
    ceiling = table.counts * (1.0 + float(options.ratio))
    return 0, sampler.oracle, table, np.zeros(len(table), dtype=np.int64), ceiling, 0.0


def seeded_quotas(counts: np.ndarray, k: int) -> np.ndarray:
    """``floor_k(n(a))`` for attributes with ``n(a) >= k``, else 0 (row/value_seeded targets)."""
    counts = np.asarray(counts, dtype=np.int64)
    return np.where(counts >= k, floor_k(counts, k), 0)


def leftover_quotas(counts: np.ndarray, used: np.ndarray, k: int) -> np.ndarray:
    """Spec §4.1 phase 2 ``avail(a) = floor_k(n(a)) - used(a)``, kept where > 0."""
    return np.maximum(seeded_quotas(counts, k) - np.asarray(used, dtype=np.int64), 0)


def row_seeded_consolidation(oracle: SupportOracle, seed: int, used: np.ndarray,
                             progress: Optional[Callable[[int, int], None]] = None) -> Consolidation:
    """Spec §4.1 phase 2: the leftover quotas consolidated with SeedSampler."""
    quota = leftover_quotas(oracle.index.counts[:oracle.index.space.n_attrs], used, oracle.index.k)
    return consolidate(quota, SeedSampler(oracle), oracle.index.space, RandomStream(seed, PHASE_CONSOLIDATE, 0),
                       ConsolidationOptions(progress=progress))


def value_seeded(oracle: SupportOracle, seed: int, options: Optional[ConsolidationOptions] = None) -> Consolidation:
    """Spec §4.3 before suppression: consolidation of the quotas ``floor_k(n(a))`` ([DECISION] §11)."""
    quota = seeded_quotas(oracle.index.counts[:oracle.index.space.n_attrs], oracle.index.k)
    return consolidate(quota, SeedSampler(oracle), oracle.index.space, RandomStream(seed, PHASE_VALUE_SEEDED, 0),
                       options)


def aggregate_seeded(table: AggregateTable, space: AttributeSpace, seed: int, *, percentile: float = 95.0,
                     scale: Optional[float] = None, target: Optional[int] = None,
                     use_synthetic_counts: bool = False,
                     progress: Optional[Callable[[int, int], None]] = None) -> Consolidation:
    """Spec §4.4: records built from an aggregate table only (no sensitive record is read)."""
    if scale is not None:
        table = table.with_counts(table.scaled_counts(scale))
    sampler = AggregateSampler(table, percentile, use_synthetic_counts)
    options = ConsolidationOptions(target=target, progress=progress)
    return consolidate(table.singles(), sampler, space, RandomStream(seed, PHASE_AGGREGATE_SEEDED, 0), options)


# ======================================================================================= suppression
def excess_counts(synthetic_counts: np.ndarray, counts: np.ndarray, k: int) -> np.ndarray:
    """Spec §4.0 ``e(a) = c(a) - floor_k(n(a))`` for ``n(a) >= k``, kept where > 0 (else 0)."""
    counts = np.asarray(counts, dtype=np.int64)
    excess = np.asarray(synthetic_counts, dtype=np.int64) - floor_k(counts, k)
    return np.where((counts >= k) & (excess > 0), excess, 0)


def _occurrences(record_ids, keys, offsets, ids):
    offsets = np.asarray(offsets, dtype=np.int64)
    sizes = np.diff(offsets)
    attrs = np.asarray(ids, dtype=np.int64)[offsets[0]:offsets[-1]]
    return (attrs, np.repeat(np.asarray(keys, dtype=np.uint64), sizes),
            np.repeat(np.asarray(record_ids, dtype=np.int64), sizes))


def select_smallest(attrs: np.ndarray, keys: np.ndarray, record_ids: np.ndarray,
                    excess: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keeps, per attribute ``a``, the ``excess[a]`` occurrences with the smallest ``(key, record_id)``.

    Mergeable: the selection over a union of occurrence sets equals the selection over the
    union of the parts' selections, so partitions select locally and the driver re-selects.

    Args:
        attrs, keys, record_ids: Occurrences (keys uint64).
        excess: Number to keep per attribute id.
    """
    attrs = np.asarray(attrs, dtype=np.int64)
    keys = np.asarray(keys, dtype=np.uint64)
    record_ids = np.asarray(record_ids, dtype=np.int64)
    wanted = np.asarray(excess, dtype=np.int64)[attrs] > 0
    attrs, keys, record_ids = attrs[wanted], keys[wanted], record_ids[wanted]
    order = np.lexsort((record_ids, keys, attrs))
    attrs, keys, record_ids = attrs[order], keys[order], record_ids[order]
    if attrs.size == 0:
        return attrs, keys, record_ids
    starts = np.flatnonzero(np.concatenate(([True], attrs[1:] != attrs[:-1])))
    rank = np.arange(attrs.size) - np.repeat(starts, np.diff(np.append(starts, attrs.size)))
    keep = rank < np.asarray(excess, dtype=np.int64)[attrs]
    return attrs[keep], keys[keep], record_ids[keep]


def smallest_occurrences(record_ids: np.ndarray, keys: np.ndarray, offsets: np.ndarray, ids: np.ndarray,
                         excess: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The SuppressToTargets victims among some records: per attribute ``a``, its ``excess[a]``
    occurrences in the records with the smallest ``(key, record_id)`` (see :func:`select_smallest`)."""
    return select_smallest(*_occurrences(record_ids, keys, offsets, ids), excess)


@dataclass
class SuppressionThresholds:
    """Per attribute, the largest ``(key, record_id)`` whose occurrence is removed."""

    active: np.ndarray      # bool per attribute id
    keys: np.ndarray        # uint64 per attribute id
    record_ids: np.ndarray  # int64 per attribute id

    @classmethod
    def from_victims(cls, attrs: np.ndarray, keys: np.ndarray, record_ids: np.ndarray,
                     n_attrs: int) -> "SuppressionThresholds":
        """Thresholds from the selected victims (any order)."""
        attrs = np.asarray(attrs, dtype=np.int64)
        keys = np.asarray(keys, dtype=np.uint64)
        record_ids = np.asarray(record_ids, dtype=np.int64)
        active = np.zeros(n_attrs, dtype=bool)
        thr_keys = np.zeros(n_attrs, dtype=np.uint64)
        thr_ids = np.zeros(n_attrs, dtype=np.int64)
        order = np.lexsort((record_ids, keys, attrs))
        attrs, keys, record_ids = attrs[order], keys[order], record_ids[order]
        if attrs.size:
            last = np.flatnonzero(np.append(attrs[1:] != attrs[:-1], True))
            active[attrs[last]] = True
            thr_keys[attrs[last]] = keys[last]
            thr_ids[attrs[last]] = record_ids[last]
        return cls(active, thr_keys, thr_ids)


def apply_suppression(record_ids: np.ndarray, keys: np.ndarray, offsets: np.ndarray, ids: np.ndarray,
                      thresholds: SuppressionThresholds) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Removes every occurrence at or below its attribute's threshold; drops emptied records.

    Returns:
        ``(kept, offsets, ids, removed)``: positions of the surviving (non-empty) records in the
        input, their CSR attributes and the number of occurrences removed.
    """
    attrs, occ_keys, occ_ids = _occurrences(record_ids, keys, offsets, ids)
    t_keys, t_ids = thresholds.keys[attrs], thresholds.record_ids[attrs]
    removed = thresholds.active[attrs] & ((occ_keys < t_keys) | ((occ_keys == t_keys) & (occ_ids <= t_ids)))
    n = len(offsets) - 1
    owner = np.repeat(np.arange(n), np.diff(np.asarray(offsets, dtype=np.int64)))
    sizes = np.bincount(owner[~removed], minlength=n)
    kept = np.flatnonzero(sizes > 0)
    new_offsets = np.zeros(kept.size + 1, dtype=np.int64)
    np.cumsum(sizes[kept], out=new_offsets[1:])
    return kept, new_offsets, attrs[~removed], int(removed.sum())


def suppress_to_targets(record_ids: np.ndarray, keys: np.ndarray, offsets: np.ndarray, ids: np.ndarray,
                        excess: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Spec §4.0 SuppressToTargets, the random record order being ascending ``(key, record_id)``.

    Returns:
        As :func:`apply_suppression`.
    """
    victims = smallest_occurrences(record_ids, keys, offsets, ids, excess)
    thresholds = SuppressionThresholds.from_victims(*victims, len(excess))
    return apply_suppression(record_ids, keys, offsets, ids, thresholds)


# ======================================================================================= output order
def value_ranks(columns: np.ndarray, values: Sequence[str]) -> np.ndarray:
    """Rank (1-based) of every attribute's value among the values of its column in ordinal
    (code point = UTF-8 byte) order; an empty cell is rank 0, before every value."""
    columns = np.asarray(columns)
    ranks = np.zeros(len(values), dtype=np.int32)
    for column in np.unique(columns):
        ids = np.flatnonzero(columns == column)
        ordered = sorted(ids.tolist(), key=lambda i: values[i])
        ranks[np.array(ordered, dtype=np.int64)] = np.arange(1, len(ids) + 1)
    return ranks


def row_cells(offsets: np.ndarray, ids: np.ndarray, columns: np.ndarray, ranks: np.ndarray,
              n_columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Sort cells of output rows (spec §4.0): per column the value rank (0 = empty).

    Returns:
        ``(cells (n, C) int32, non_empty (n,) int32)``; rows sort by ``non_empty`` descending,
        then ``cells`` lexicographically ascending, exactly as the rows' strings do.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    n = len(offsets) - 1
    attrs = np.asarray(ids, dtype=np.int64)[offsets[0]:offsets[-1]]
    owner = np.repeat(np.arange(n), np.diff(offsets))
    cells = np.zeros((n, n_columns), dtype=np.int32)
    cells[owner, np.asarray(columns)[attrs]] = np.asarray(ranks)[attrs]
    return cells, np.diff(offsets).astype(np.int32)


def output_order(cells: np.ndarray, non_empty: np.ndarray) -> np.ndarray:
    """Positions of the rows in spec §4.0 output order."""
    keys = tuple(cells[:, c] for c in range(cells.shape[1] - 1, -1, -1)) + (-np.asarray(non_empty, np.int64),)
    return np.lexsort(keys)

