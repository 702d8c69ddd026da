"""The support cache: an exact LRU of support vectors keyed by partial record, in numba.

Growing records ask for ``support(P ∪ {a})`` of the same partial records ``P`` again and
again (every record starts from the frequent prefixes). The cache keeps, per ``P``, a vector
of the supports of every id (-1 until computed), keyed by the 128-bit Zobrist hash of ``P`` and
found through an open-addressing table; the least recently used entry is evicted. Its size is
``cache_max_size`` entries (a performance setting only), capped so the vectors fit in
:data:`CACHE_BYTES`.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np

from ksynth_spark.jit import kernel

logger = logging.getLogger(__name__)

#: Upper bound of the cache's memory (entries are capped so that their vectors fit).
CACHE_BYTES = 256 << 20


class CacheParts(NamedTuple):
    """The arrays of a :class:`SupportCache` as the compiled kernels take them.

    Attributes:
        slot_keys, slot_entry: The open-addressing table (key -> entry, -1 = empty slot).
        vectors: ``(capacity, n_ids)`` int32 supports (-1 = not computed).
        keys: The key of every entry; links: ``(previous, next)`` of the LRU list.
        meta: ``[head, tail, size, hits, misses]``.
    """

    slot_keys: np.ndarray
    slot_entry: np.ndarray
    vectors: np.ndarray
    keys: np.ndarray
    links: np.ndarray
    meta: np.ndarray

class SupportCache:
    """Exact LRU cache of support vectors keyed by partial record (``maxsize`` entries at most).

    A vector holds ``support(P ∪ {a})`` for every id, -1 while not computed. Keys are the
    128-bit Zobrist hash of ``P`` (a collision needs two of at most ~1e8 partial records to
    share 128 random bits: ~1e-22).
    """

    def __init__(self, n_ids: int, maxsize: int):
        capacity = max(1, min(int(maxsize), CACHE_BYTES // (4 * max(1, n_ids))))
        if capacity < maxsize:
            logger.debug("support cache capped at %d entries (%d ids per entry)", capacity, n_ids)
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

    def parts(self) -> CacheParts:
        """The arrays the compiled loops take."""
        return CacheParts(self.slot_keys, self.slot_entry, self.vectors, self.keys, self.links, self.meta)


@kernel
def _slot_of(slot_keys, slot_entry, key0, key1):
    """Open-addressing position of a key (the key's slot, or the empty slot ending its probe)."""
    mask = slot_entry.size - 1
    s = np.int64(key0 & np.uint64(mask))
    while slot_entry[s] >= 0 and not (slot_keys[s, 0] == key0 and slot_keys[s, 1] == key1):
        s = (s + 1) & mask
    return s


@kernel
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


@kernel
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


@kernel
def _lru_push_front(links, meta, entry):
    links[entry, 0] = -1
    links[entry, 1] = meta[0]
    if meta[0] >= 0:
        links[meta[0], 0] = entry
    meta[0] = entry
    if meta[1] < 0:
        meta[1] = entry


@kernel
def cache_entry(cache, key0, key1):
    """Entry of a partial record's vector (on a miss: a fresh all -1 one, evicting the LRU entry)."""
    slot_keys, slot_entry, vectors, keys, links, meta = (cache.slot_keys, cache.slot_entry, cache.vectors, cache.keys,
                                                         cache.links, cache.meta)
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


@kernel
def cache_has(cache, key0, key1):
    """Whether a partial record has an entry (a lookup only: no LRU update, no counting)."""
    return cache.slot_entry[_slot_of(cache.slot_keys, cache.slot_entry, key0, key1)] >= 0
