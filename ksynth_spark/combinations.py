"""Vectorised numpy kernels over attribute combinations (no Spark here).

A record is a sorted array of integer attribute ids (ids follow the canonical attribute order
of spec §0, so a sorted id array is a combination in canonical order). A combination of up to
``max_length`` ids is packed into ``n_words`` int64 words: slot ``i`` holds ``id + 1`` in
``bits`` bits, so 0 marks an empty slot. Packed keys sort, compare and hash as plain integers,
which makes counting a sort-and-reduce instead of a dictionary of tuples.

These kernels run inside Spark executors (``mapInArrow``) and in tests as plain functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from typing import Iterator

import numpy as np

# Upper bound of combination instances materialised at once by the enumerators.
DEFAULT_CHUNK_INSTANCES = 1 << 22


@dataclass(frozen=True)
class ComboCodec:
    """Packs sorted attribute-id combinations into fixed-width int64 keys.

    Attributes:
        n_attrs: Number of distinct attribute ids (ids are ``0 .. n_attrs-1``).
        max_length: Longest combination that must fit.
    """

    n_attrs: int
    max_length: int

    @property
    def bits(self) -> int:
        """Bits per slot (enough for ``id + 1``)."""
        return max(1, int(self.n_attrs).bit_length())

    @property
    def per_word(self) -> int:
        """Slots per int64 word (63 usable bits keep keys non-negative)."""
        return 63 // self.bits

    @property
    def n_words(self) -> int:
        """Number of int64 words of one key."""
        return max(1, math.ceil(self.max_length / self.per_word))

    def pack(self, ids: np.ndarray) -> np.ndarray:
        """Packs combinations ``ids`` (shape ``(n, l)``, sorted rows, ``l <= max_length``).

        Returns:
            Keys of shape ``(n, n_words)``, dtype int64.
        """
        ids = np.asarray(ids, dtype=np.int64)
        n, length = ids.shape
        keys = np.zeros((n, self.n_words), dtype=np.int64)
        for slot in range(length):
            word, pos = divmod(slot, self.per_word)
            keys[:, word] |= (ids[:, slot] + 1) << (self.bits * pos)
        return keys

    def unpack(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Inverse of :meth:`pack` for keys of mixed lengths.

        Returns:
            ``(ids, lengths)``: ids of shape ``(n, max_length)`` padded with -1, and lengths.
        """
        keys = np.asarray(keys, dtype=np.int64).reshape(-1, self.n_words)
        n = keys.shape[0]
        ids = np.full((n, self.max_length), -1, dtype=np.int64)
        mask = (1 << self.bits) - 1
        for slot in range(self.max_length):
            word, pos = divmod(slot, self.per_word)
            ids[:, slot] = ((keys[:, word] >> (self.bits * pos)) & mask) - 1
        lengths = (ids >= 0).sum(axis=1)
        return ids, lengths


def sortable(keys: np.ndarray) -> np.ndarray:
    """A 1-D view of ``(n, w)`` keys that numpy can sort, unique and search (int64 or void)."""
    keys = np.ascontiguousarray(keys, dtype=np.int64)
    if keys.ndim == 1 or keys.shape[1] == 1:
        return keys.reshape(-1)
    return keys.view(np.dtype((np.void, 8 * keys.shape[1]))).reshape(-1)


def from_sortable(view: np.ndarray, n_words: int) -> np.ndarray:
    """Inverse of :func:`sortable`: back to an ``(n, n_words)`` int64 array."""
    return np.ascontiguousarray(view).view(np.int64).reshape(-1, n_words)


@lru_cache(maxsize=512)
def subset_positions(m: int, length: int) -> np.ndarray:
    """Index matrix of all ``length``-subsets of ``range(m)`` in lexicographic order."""
    if length > m:
        return np.zeros((0, length), dtype=np.intp)
    return np.array(list(combinations(range(m), length)), dtype=np.intp).reshape(-1, length)


def records_by_size(offsets: np.ndarray, ids: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Groups CSR records by their number of attributes.

    Args:
        offsets: int64 array of ``n + 1`` offsets into ``ids``.
        ids: Concatenated sorted attribute ids of the records.

    Yields:
        ``(row_numbers, matrix)`` for every size m > 0: matrix has shape ``(rows, m)``.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    sizes = np.diff(offsets)
    for m in np.unique(sizes):
        if m == 0:
            continue
        rows = np.flatnonzero(sizes == m)
        starts = offsets[rows]
        matrix = ids[starts[:, None] + np.arange(m)[None, :]]
        yield rows, matrix


def enumerate_combinations(
    codec: ComboCodec,
    offsets: np.ndarray,
    ids: np.ndarray,
    lengths: range | list[int],
    chunk_instances: int = DEFAULT_CHUNK_INSTANCES,
) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """Enumerates every ``l``-subset of every record for each ``l`` in ``lengths``.

    Memory is bounded: at most about ``chunk_instances`` combination instances at once.

    Yields:
        ``(row_numbers, keys, length)``: ``keys[j]`` is a combination of record
        ``row_numbers[j]`` (row numbers index the CSR records; keys have shape (n, n_words)).
    """
    for rows, matrix in records_by_size(offsets, ids):
        m = matrix.shape[1]
        for length in lengths:
            if length > m or length < 1:
                continue
            positions = subset_positions(m, length)
            per_record = positions.shape[0]
            step = max(1, chunk_instances // per_record)
            for start in range(0, len(rows), step):
                block = matrix[start:start + step]
                combos = block[:, positions].reshape(-1, length)
                keys = codec.pack(combos)
                yield np.repeat(rows[start:start + step], per_record), keys, length


def reduce_counts(keys: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sums ``weights`` per distinct key.

    Args:
        keys: ``(n, w)`` int64 keys (or a 1-D sortable view).
        weights: int64 weight per key.

    Returns:
        ``(distinct_keys, sums)`` with keys in ascending sortable order (same shape kind as input).
    """
    two_d = keys.ndim == 2
    n_words = keys.shape[1] if two_d else 1
    view = sortable(keys) if two_d else keys
    if view.size == 0:
        return keys[:0], np.zeros(0, dtype=np.int64)
    order = np.argsort(view, kind="stable")
    sorted_view = view[order]
    sorted_weights = np.asarray(weights, dtype=np.int64)[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_view[1:] != sorted_view[:-1])))
    sums = np.add.reduceat(sorted_weights, starts)
    distinct = sorted_view[starts]
    return (from_sortable(distinct, n_words) if two_d else distinct), sums


class CountAccumulator:
    """Merges weighted key counts chunk by chunk, flushing when it grows too large.

    Flushed partial counts are returned to the caller (Spark sums them across partitions),
    so memory stays bounded however many distinct combinations a partition holds.
    """

    def __init__(self, n_words: int, flush_size: int = 8_000_000):
        self.n_words = n_words
        self.flush_size = flush_size
        self._keys = np.zeros((0, n_words), dtype=np.int64)
        self._counts = np.zeros(0, dtype=np.int64)

    def add(self, keys: np.ndarray, weights: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Adds one chunk; yields the accumulated counts when over ``flush_size`` keys."""
        keys, weights = reduce_counts(keys, weights)
        self._keys, self._counts = reduce_counts(
            np.concatenate([self._keys, keys]), np.concatenate([self._counts, weights])
        )
        if len(self._counts) >= self.flush_size:
            yield from self.drain()

    def drain(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yields and clears what is accumulated."""
        if len(self._counts):
            yield self._keys, self._counts
        self._keys = np.zeros((0, self.n_words), dtype=np.int64)
        self._counts = np.zeros(0, dtype=np.int64)


def count_combinations(
    codec: ComboCodec,
    offsets: np.ndarray,
    ids: np.ndarray,
    weights: np.ndarray,
    max_length: int,
    chunk_instances: int = DEFAULT_CHUNK_INSTANCES,
    flush_size: int = 8_000_000,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Counts, with record weights, every combination of length 1..max_length of the records.

    Yields:
        ``(keys, counts)`` partial results; the same key may appear in several yields and
        must be summed by the caller.
    """
    acc = CountAccumulator(codec.n_words, flush_size)
    for rows, keys, _ in enumerate_combinations(codec, offsets, ids, range(1, max_length + 1), chunk_instances):
        yield from acc.add(keys, weights[rows])
    yield from acc.drain()


def shortest_member_length(
    codec: ComboCodec,
    offsets: np.ndarray,
    ids: np.ndarray,
    member_keys: np.ndarray,
    max_length: int,
    chunk_instances: int = DEFAULT_CHUNK_INSTANCES,
) -> np.ndarray:
    """For each record, the shortest length at which one of its combinations is in a key set.

    Args:
        member_keys: Sorted 1-D sortable view of the key set (see :func:`sortable`).

    Returns:
        int32 array per record: the shortest length, or 0 if no combination is a member.
    """
    n = len(offsets) - 1
    result = np.zeros(n, dtype=np.int32)
    if member_keys.size == 0:
        return result
    for length in range(1, max_length + 1):
        for rows, keys, _ in enumerate_combinations(codec, offsets, ids, [length], chunk_instances):
            view = sortable(keys)
            pos = np.searchsorted(member_keys, view)
            pos = np.minimum(pos, member_keys.size - 1)
            hit_rows = np.unique(rows[member_keys[pos] == view])
            fresh = hit_rows[result[hit_rows] == 0]
            result[fresh] = length
    return result


def csr_from_lists(records: list[list[int]] | list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Builds ``(offsets, ids)`` from per-record id lists (each list sorted here)."""
    sizes = np.array([len(r) for r in records], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    ids = np.concatenate([np.sort(np.asarray(r, dtype=np.int64)) for r in records]) if len(records) else np.zeros(0, np.int64)
    return offsets, ids.astype(np.int64)
