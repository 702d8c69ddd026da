"""The sensitive support index over DISTINCT rows: ``support(P)`` for partial records, in numba.

``support(P)`` is the number of sensitive records containing the attribute set ``P``. Records
with the same attribute set are one *distinct row* with a multiplicity (its weight), so the
index is built over the D distinct rows, never over the N records: its size and the cost of a
query grow with D (adult: 28,671 distinct rows for 48,842 records; the 10^7-row resampled
table: 440,914), and nothing here grows with N.

Layout (memory per worker, D distinct rows, A attributes, C columns, W = ceil(D/64) words):

* ``bits``: ``(A + C, W)`` uint64 bitsets, bit ``e`` of id ``a`` set iff distinct row ``e``
  holds ``a``; the ``C`` extra ids ``A + c`` mean "no value in column c" (the unseeded mode
  conditions on them). ``(A + C) · D / 8`` bytes.
* ``weights``: the multiplicity of every distinct row (8 bytes per row). Rows are ordered by
  weight, heaviest first.
* ``planes``: ``(B, W)`` uint64, bit ``e`` of plane ``b`` = bit ``b`` of ``weights[e]``
  (``B`` = bits of the largest weight), so the weighted size of a set of rows is
  ``Σ_b 2^b · popcount(set & plane_b)``. Because heavy rows come first, the high planes are
  zero after a few words; ``plane_words[w]`` is the number of planes worth reading in word ``w``
  (``B · D / 8`` bytes at most).
* ``counts``: ``support({a})`` of every id; ``zobrist``: ``(A + C, 2)`` random codes whose
  XOR over ``P`` keys the support cache.
* ``row_offsets``, ``row_ids`` (with ``keep_rows``): the rows themselves in index order,
  ``8 · D + 4 · (attribute occurrences)`` bytes, so that the supports of every value at once
  come from one pass over a small set of rows (a histogram) instead of a query per value.
* ``row_cum``, ``post_offsets``, ``post_rows``, ``post_cum`` (with ``postings``): running
  weights of the rows, and every attribute's rows (ascending: heaviest first) with running
  weights over the concatenated lists, so that a row holding ``a`` can be drawn with
  probability proportional to its multiplicity (:mod:`.proposals`); ``8 · D + 12 ·
  (attribute occurrences)`` bytes.

A set of rows is held either as such a bitset or, once small, as an ascending list of row
numbers (see :mod:`ksynth_spark.synthesis.paths`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ksynth_spark.jit import inline_kernel, kernel
from ksynth_spark.randomness import PHASE_ZOBRIST, uniform_keys

_ONE = np.uint64(1)
_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)


class AttributeSpace(NamedTuple):
    """Column membership of attribute ids.

    Attributes:
        columns: int64 array, the column index of every attribute id.
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


class IndexParts(NamedTuple):
    """The arrays of a :class:`DistinctIndex` as the compiled kernels take them."""

    bits: np.ndarray
    counts: np.ndarray
    zobrist: np.ndarray
    all_words: np.ndarray
    k: np.int64
    weights: np.ndarray
    planes: np.ndarray
    plane_words: np.ndarray
    row_offsets: np.ndarray
    row_ids: np.ndarray
    n_attrs: np.int64
    row_cum: np.ndarray
    post_offsets: np.ndarray
    post_rows: np.ndarray
    post_cum: np.ndarray


@inline_kernel
def popcount(x):
    """Set bits of a uint64 (the compiler turns this into ``popcnt``)."""
    x = x - ((x >> _ONE) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return np.int64((x * _H01) >> np.uint64(56))


@inline_kernel
def has_bit(bits, attr, row):
    """1 if distinct row ``row`` holds id ``attr``, else 0 (int64)."""
    return np.int64((bits[attr, row >> 6] >> np.uint64(row & 63)) & _ONE)


@kernel
def weighted_and(index, attr, words, depth):
    """Weighted size of ``bits[attr] & words[depth]``: the records of those distinct rows."""
    bits, planes, plane_words = index.bits, index.planes, index.plane_words
    total = 0
    for w in range(words.shape[1]):
        x = bits[attr, w] & words[depth, w]
        if x != 0:
            for b in range(plane_words[w]):
                total += popcount(x & planes[b, w]) << b
    return total


@kernel
def weighted_rows(index, attr, rows, depth, n):
    """Weighted size of ``{e in rows[depth, :n] : attr in e}``."""
    bits, weights = index.bits, index.weights
    total = 0
    for i in range(n):
        row = rows[depth, i]
        if has_bit(bits, attr, row):
            total += weights[row]
    return total


def _bitsets(offsets: np.ndarray, ids: np.ndarray, n_ids: int, n_words: int) -> np.ndarray:
    """``(n_ids, n_words)`` bitsets of CSR rows ``0..len(offsets)-2`` (bit = row number)."""
    sizes = np.diff(offsets)
    rows = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    flat = np.zeros(n_ids * n_words, dtype=np.uint64)
    np.bitwise_or.at(flat, ids[offsets[0]:offsets[-1]] * n_words + (rows >> 6),
                     np.left_shift(_ONE, (rows & 63).astype(np.uint64)))
    return flat.reshape(n_ids, n_words)


def _as_words(mask: np.ndarray, n_words: int) -> np.ndarray:
    padded = np.zeros(n_words * 64, dtype=bool)
    padded[:mask.size] = mask
    return np.packbits(padded, bitorder="little").view(np.uint64)


def _postings(row_offsets: np.ndarray, row_ids: np.ndarray, weights: np.ndarray, n_attrs: int,
              keep: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every attribute's rows (CSR, rows ascending) with running weights over the whole list."""
    if not keep:
        return np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)
    rows = np.repeat(np.arange(len(row_offsets) - 1, dtype=np.int64), np.diff(row_offsets))
    order = np.lexsort((rows, row_ids))
    post_rows = rows[order]
    offsets = np.searchsorted(np.asarray(row_ids)[order], np.arange(n_attrs + 1)).astype(np.int64)
    return offsets, post_rows.astype(np.int32), np.cumsum(weights[post_rows])


class DistinctIndex:
    """``Rows(a)`` over the distinct sensitive rows with their multiplicities (see the module
    docstring for the layout and its memory).

    Args:
        offsets, ids: CSR of the distinct rows (ids ascending within a row).
        weights: Multiplicity of every distinct row (> 0).
        space: Column membership of the attribute ids.
        k: The privacy resolution.
        keep_rows: Also keep the rows themselves (``row_offsets``, ``row_ids``: CSR in index
            order, 4 bytes per attribute occurrence of a distinct row) for the histogram
            supports; otherwise they are empty and supports are queried value by value.
        postings: Also keep every value's rows with running weights (row proposals; needs
            ``keep_rows``, and defaults to it).
    """

    def __init__(self, offsets: np.ndarray, ids: np.ndarray, weights: np.ndarray, space: AttributeSpace, k: int,
                 keep_rows: bool = False, postings: bool | None = None):
        offsets = np.asarray(offsets, dtype=np.int64)
        ids = np.asarray(ids, dtype=np.int64)
        weights = np.asarray(weights, dtype=np.int64)
        order = np.argsort(-weights, kind="stable")
        sizes = np.diff(offsets)[order]
        starts = offsets[:-1][order]
        row_offsets = np.zeros(len(order) + 1, dtype=np.int64)
        np.cumsum(sizes, out=row_offsets[1:])
        gather = np.repeat(starts - row_offsets[:-1], sizes) + np.arange(int(row_offsets[-1]))
        row_ids = ids[gather] if gather.size else np.zeros(0, dtype=np.int64)
        self.weights = weights[order]
        self.row_offsets = row_offsets if keep_rows else np.zeros(1, dtype=np.int64)
        self.row_ids = row_ids.astype(np.int32) if keep_rows else np.zeros(0, dtype=np.int32)
        postings = keep_rows if postings is None else postings and keep_rows
        self.row_cum = np.cumsum(self.weights) if postings else np.zeros(0, dtype=np.int64)
        self.post_offsets, self.post_rows, self.post_cum = _postings(row_offsets, row_ids, self.weights,
                                                                     space.n_attrs, postings)
        self.space = space
        self.k = int(k)
        self.n_rows = len(order)
        self.n_records = int(self.weights.sum())
        n_words = max(1, (self.n_rows + 63) // 64)
        attr_bits = _bitsets(row_offsets, row_ids, space.n_attrs, n_words)
        self.all_words = _as_words(np.ones(self.n_rows, dtype=bool), n_words)
        empties = np.tile(self.all_words, (space.n_columns, 1))
        member_offsets, members = space.members()
        for column in range(space.n_columns):
            column_ids = members[member_offsets[column]:member_offsets[column + 1]]
            if column_ids.size:
                empties[column] &= ~np.bitwise_or.reduce(attr_bits[column_ids], axis=0)
        self.bits = np.ascontiguousarray(np.concatenate([attr_bits, empties]))
        n_planes = max(1, int(self.weights.max(initial=1)).bit_length())
        self.planes = np.stack([_as_words(((self.weights >> b) & 1).astype(bool), n_words) for b in range(n_planes)])
        nonzero = self.planes != 0
        highest = n_planes - np.argmax(nonzero[::-1], axis=0)
        self.plane_words = np.where(nonzero.any(axis=0), highest, 0).astype(np.int64)
        self.counts = np.zeros(self.bits.shape[0], dtype=np.int64)
        for b in range(n_planes):
            self.counts += np.bitwise_count(self.bits & self.planes[b]).sum(axis=1, dtype=np.int64) << b
        n_ids = self.bits.shape[0]
        self.zobrist = np.stack([uniform_keys(0, PHASE_ZOBRIST, np.arange(n_ids)),
                                 uniform_keys(1, PHASE_ZOBRIST, np.arange(n_ids))], axis=1)

    @property
    def n_ids(self) -> int:
        """A + C (attributes and empty-column pseudo ids)."""
        return self.bits.shape[0]

    @property
    def n_words(self) -> int:
        """Words per bitset, ``ceil(D / 64)``."""
        return self.all_words.size

    @property
    def nbytes(self) -> int:
        """Bytes held by the index arrays."""
        return sum(a.nbytes for a in (self.bits, self.planes, self.weights, self.counts, self.zobrist,
                                      self.plane_words, self.all_words, self.row_offsets, self.row_ids,
                                      self.row_cum, self.post_offsets, self.post_rows, self.post_cum))

    def parts(self) -> IndexParts:
        """The arrays the compiled loops take."""
        return IndexParts(self.bits, self.counts, self.zobrist, self.all_words, np.int64(self.k), self.weights,
                          self.planes, self.plane_words, self.row_offsets, self.row_ids, np.int64(self.space.n_attrs),
                          self.row_cum, self.post_offsets, self.post_rows, self.post_cum)
