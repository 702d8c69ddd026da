"""Aggregate tables for synthesis: compiled lookups of combinations and of a growing record's subsets.

An :class:`AggregateTable` is an aggregate table ``A`` (the reportable k-anonymous or DP
counts) that the quota-driven modes read: aggregate_seeded draws its weights from it, and
value_seeded with oversampling checks its ceilings. Besides a hash of the packed combinations
it keeps the lattice of the table: for every row (and for the empty combination, row
``len(table)``) the rows obtained by adding one attribute, sorted by that attribute. A growing
record tracks its subsets of up to ``R_A - 1`` attributes (:class:`SubsetParts`), and finds the
combinations a new attribute creates by a short binary search from rows it already knows
instead of hashing them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ksynth_spark.combinations import ComboCodec, csr_from_lists, records_by_size
from ksynth_spark.jit import allocating_kernel, inline_kernel, kernel
from ksynth_spark.numerics import decimal_fraction
from ksynth_spark.randomness import finalize
from ksynth_spark.synthesis.index import popcount


class TableParts(NamedTuple):
    """The arrays of an :class:`AggregateTable` as the compiled kernels take them.

    Attributes:
        keys: ``(rows, n_words)`` packed combinations; counts: their counts.
        slots: The open-addressing hash of the keys; bits, per_word, length: the packing.
        query, combo: Lookup scratch.
        child_offsets, child_attrs, child_rows: The lattice (row -> rows with one more id).
        child_counts: The count of every child (``counts[child_rows]``: one read less per lookup).
        child_slots, child_bits, child_ranks: Its bitmaps (see :meth:`AggregateTable._lattice_bitmaps`).
    """

    keys: np.ndarray
    counts: np.ndarray
    slots: np.ndarray
    bits: np.int64
    per_word: np.int64
    length: np.int64
    query: np.ndarray
    combo: np.ndarray
    child_offsets: np.ndarray
    child_attrs: np.ndarray
    child_rows: np.ndarray
    child_counts: np.ndarray
    child_slots: np.ndarray
    child_bits: np.ndarray
    child_ranks: np.ndarray


class SubsetParts(NamedTuple):
    """The subsets ``s ⊆ P`` with ``|s| <= R_A - 1`` of a growing record (entry 0 is the empty
    set): their table rows (-1 = absent), sizes and ids, and their number (``count[0]``)."""

    rows: np.ndarray
    sizes: np.ndarray
    ids: np.ndarray
    count: np.ndarray  # type: ignore[assignment]  # shadows tuple.count; the kernels read this field by name


@inline_kernel
def insertion_sort(x, start, end):
    """Sorts ``x[start:end]`` in place (short ranges)."""
    for i in range(start + 1, end):
        value = x[i]
        j = i - 1
        while j >= start and x[j] > value:
            x[j + 1] = x[j]
            j -= 1
        x[j + 1] = value

@kernel
def _hash_words(words):
    h = np.uint64(0)
    for w in words:
        h = finalize(h ^ np.uint64(w))
    return h


@allocating_kernel
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


@kernel
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

    def __init__(self, offsets: np.ndarray, ids: np.ndarray, counts: Sequence[int] | np.ndarray, n_attrs: int,
                 length: int):
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
        self.child_attrs = self.child_rows = self.child_slots = np.zeros(0, dtype=np.int32)
        self.child_counts = np.zeros(0, dtype=np.int64)
        self.child_bits, self.child_ranks = np.zeros((0, 1), dtype=np.uint64), np.zeros((0, 1), dtype=np.int32)
        parent, attr, child = self._lattice_edges()
        order = np.lexsort((attr, parent))
        self.child_offsets = np.searchsorted(parent[order], np.arange(n_rows + 2)).astype(np.int64)
        # int32 halves the lattice's cache footprint (random lookups are memory-bound)
        self.child_attrs, self.child_rows = attr[order].astype(np.int32), child[order].astype(np.int32)
        self.child_counts = self.counts[self.child_rows]
        self._lattice_bitmaps()

    @classmethod
    def from_combos(cls, combos: Sequence[Sequence[int]], counts: Sequence[int], n_attrs: int,
                    length: int) -> AggregateTable:
        """Builds the table from a list of combinations (id lists)."""
        offsets, ids = csr_from_lists([list(c) for c in combos])
        return cls(offsets, ids, counts, n_attrs, length)

    def __len__(self) -> int:
        return len(self.counts)

    @property
    def root(self) -> int:
        """Row index standing for the empty combination."""
        return len(self.counts)

    def parts(self) -> TableParts:
        """The arrays the compiled loops take (with two lookup scratch buffers)."""
        return TableParts(self.keys, self.counts, self.slots, np.int64(self.codec.bits),
                          np.int64(self.codec.per_word), np.int64(self.length),
                          np.zeros(self.codec.n_words, dtype=np.int64), np.zeros(self.length + 2, dtype=np.int64),
                          self.child_offsets, self.child_attrs, self.child_rows, self.child_counts, self.child_slots,
                          self.child_bits, self.child_ranks)

    def _lattice_edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(parent, attr, child)`` for every row ``child`` and each of its attributes ``attr``
        whose ``parent = child \\ {attr}`` is in the table (the empty combination is ``root``)."""
        sizes = np.zeros(len(self), dtype=np.int64)
        ids = np.zeros(self.length, dtype=np.int64)
        parts = self.parts()
        for row in range(len(self)):
            sizes[row] = _unpack(self.keys, row, parts.bits, parts.per_word, ids)
        total = int(sizes.sum())
        edges = np.zeros((3, total), dtype=np.int64)
        made = _fill_lattice_edges(parts, len(self), edges, ids, np.zeros(self.length, dtype=np.int64))
        return edges[0, :made], edges[1, :made], edges[2, :made]

    def _lattice_bitmaps(self) -> None:
        """Bitmaps of the lattice, so that :func:`child_row` takes O(1) instead of a binary search.

        Every row with children (and the root) gets a slot (``child_slots[row]``, -1 = none):
        ``child_bits[slot]`` has bit ``a`` set iff ``combination ∪ {a}`` is a row, and
        ``child_ranks[slot, w]`` counts the children with an id below word ``w``, so the child's
        position is ``child_offsets[row] + child_ranks[slot, w] + popcount(lower bits of word w)``.
        Skipped (binary searches instead) when the bitmaps would outgrow the lattice itself
        (very many attributes and sparse rows).
        """
        n_words = (self.n_attrs + 63) // 64
        parents = np.repeat(np.arange(len(self) + 1), np.diff(self.child_offsets))
        has_children = np.diff(self.child_offsets) > 0
        n_slots = int(has_children.sum())
        if n_slots * n_words > max(2 * len(parents), 1 << 16):
            return
        slots = np.full(len(self) + 1, -1, dtype=np.int32)
        slots[has_children] = np.arange(n_slots, dtype=np.int32)
        attrs = self.child_attrs.astype(np.int64)
        cells = (slots[parents].astype(np.int64), attrs >> 6)
        bits = np.zeros((n_slots, n_words), dtype=np.uint64)
        np.bitwise_or.at(bits, cells, np.left_shift(np.uint64(1), (attrs & 63).astype(np.uint64)))
        per_word = np.zeros((n_slots, n_words), dtype=np.int64)
        np.add.at(per_word, cells, 1)
        self.child_slots, self.child_bits = slots, bits
        self.child_ranks = (np.cumsum(per_word, axis=1) - per_word).astype(np.int32)

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
        exact = decimal_fraction(factor)
        return -((-self.counts * exact.numerator) // exact.denominator)

    def with_counts(self, counts: np.ndarray) -> AggregateTable:
        """The same combinations with other counts."""
        copy = object.__new__(AggregateTable)
        copy.__dict__.update(self.__dict__)
        copy.counts = np.asarray(counts, dtype=np.int64)
        copy.child_counts = copy.counts[self.child_rows]
        return copy


@kernel
def _find(table, ids, n):
    """Row of the combination ``ids[:n]`` (sorted ascending) in the table, or -1."""
    slots, bits, per_word, length, query = table.slots, table.bits, table.per_word, table.length, table.query
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


@kernel
def _fill_lattice_edges(table, n_rows, edges, ids, rest):
    keys, bits, per_word = table.keys, table.bits, table.per_word
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


@inline_kernel
def child_edge(table, row, attr):
    """Position in the lattice arrays of ``combination(row) ∪ {attr}``, or -1 (through the
    bitmaps when the row has them, else by a binary search)."""
    offsets, attrs = table.child_offsets, table.child_attrs
    if table.child_slots.size:
        slot = table.child_slots[row]
        if slot >= 0:
            word = table.child_bits[slot, attr >> 6]
            bit = np.uint64(1) << np.uint64(attr & 63)
            if word & bit == 0:
                return -1
            return offsets[row] + table.child_ranks[slot, attr >> 6] + popcount(word & (bit - np.uint64(1)))
    lo, hi = offsets[row], offsets[row + 1]
    end = hi
    while lo < hi:
        mid = (lo + hi) >> 1
        if attrs[mid] < attr:
            lo = mid + 1
        else:
            hi = mid
    if lo < end and attrs[lo] == attr:
        return lo
    return -1


@inline_kernel
def child_row(table, row, attr):
    """Row of ``combination(row) ∪ {attr}`` through the lattice arrays, or -1."""
    edge = child_edge(table, row, attr)
    return table.child_rows[edge] if edge >= 0 else -1


# ---------------------------------------------------------------------------- subsets of a growing record
def new_subsets(n_subsets: int, length: int) -> SubsetParts:
    """Scratch for the subsets of a growing record (``n_subsets`` entries at most)."""
    return SubsetParts(np.zeros(n_subsets, np.int64), np.zeros(n_subsets, np.int64),
                       np.zeros((n_subsets, max(1, length)), np.int64), np.zeros(1, np.int64))


@kernel
def subsets_reset(subsets, root):
    """Makes the empty set the only tracked subset."""
    rows, sizes, count = subsets.rows, subsets.sizes, subsets.count
    rows[0] = root
    sizes[0] = 0
    count[0] = 1


@inline_kernel
def extension_row(table, subsets, i, attr):
    """Row of ``s_i ∪ {attr}``: through the lattice, or by hash when ``s_i`` itself is absent."""
    rows, sizes, ids = subsets.rows, subsets.sizes, subsets.ids
    if rows[i] >= 0:
        return child_row(table, rows[i], attr)
    combo, size = table.combo, sizes[i]
    for j in range(size):
        combo[j] = ids[i, j]
    combo[size] = attr
    insertion_sort(combo, 0, size + 1)
    return _find(table, combo, size + 1)


@kernel
def new_combinations(table, subsets, attr, max_size, out):
    """Rows of the combinations that adding ``attr`` to ``P`` creates: ``{attr} ∪ s`` for every
    tracked ``s ⊆ P`` (spec §4.3 "c not in D"); only for ``|s| < max_size`` (-1 for the others).
    Returns how many entries ``out`` has."""
    sizes, count = subsets.sizes, subsets.count
    for i in range(count[0]):
        out[i] = extension_row(table, subsets, i, attr) if sizes[i] < max_size else -1
    return count[0]


@kernel
def push_subsets(table, subsets, attr, new_rows, n):
    """Tracks the new subsets ``{attr} ∪ s`` of size ``<= R_A - 1`` (rows from ``new_rows``)."""
    rows, sizes, ids, count = subsets.rows, subsets.sizes, subsets.ids, subsets.count
    limit = table.length - 1
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


@kernel
def accept(table, synthetic, ceiling, subsets, attr, rows):
    """Spec §4.3 accept(a): rejects when a new combination would exceed its ceiling (only if
    ``ceiling`` is not empty); on success counts ``G`` and tracks the new subsets."""
    n = new_combinations(table, subsets, attr, table.length, rows)
    if ceiling.size:
        for i in range(n):
            if rows[i] >= 0 and synthetic[rows[i]] + 1 > ceiling[rows[i]]:
                return False
    for i in range(n):
        if rows[i] >= 0:
            synthetic[rows[i]] += 1
    push_subsets(table, subsets, attr, rows, n)
    return True
