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
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

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
    if not len(records):
        return offsets, np.zeros(0, np.int64)
    ids = np.concatenate([np.sort(np.asarray(r, dtype=np.int64)) for r in records])
    return offsets, ids.astype(np.int64)


# ---------------------------------------------------------------------------------- column-set counting
@dataclass(frozen=True)
class ColumnLayout:
    """Where attribute ids sit in the columns: id -> (column, 1-based code within the column).

    Attributes:
        attr_column: Column index of every attribute id.
        attr_code: Code of every attribute id within its column (1..cardinality; 0 = absent).
        column_attrs: Per column, the attribute ids in code order (``column_attrs[c][code-1]``).
    """

    attr_column: np.ndarray
    attr_code: np.ndarray
    column_attrs: tuple

    @classmethod
    def from_attr_columns(cls, attr_column: np.ndarray, n_columns: int) -> ColumnLayout:
        """Builds the layout from the column index of every attribute id."""
        attr_column = np.asarray(attr_column, dtype=np.int64)
        attr_code = np.zeros(len(attr_column), dtype=np.int64)
        column_attrs = []
        for column in range(n_columns):
            members = np.flatnonzero(attr_column == column)
            attr_code[members] = np.arange(1, len(members) + 1)
            column_attrs.append(members)
        return cls(attr_column, attr_code, tuple(column_attrs))

    @property
    def cardinalities(self) -> np.ndarray:
        """Number of attributes of every column."""
        return np.array([len(a) for a in self.column_attrs], dtype=np.int64)

    def wide_codes(self, offsets: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """``(n_records, n_columns)`` int32 matrix of codes (0 = absent) from CSR records."""
        n = len(offsets) - 1
        codes = np.zeros((n, len(self.column_attrs)), dtype=np.int32)
        rows = np.repeat(np.arange(n), np.diff(offsets))
        codes[rows, self.attr_column[ids]] = self.attr_code[ids]
        return codes


# Largest mixed-radix code space handled with dense arrays instead of a sort.
_DENSE_LIMIT = 1 << 22


@dataclass
class ColumnSetGroup:
    """The records that have every column of one column set, with their mixed-radix code.

    Attributes:
        columns: The column set (ascending column indices).
        rows: Row numbers of the records present in every column of the set.
        distinct_attrs: ``(d, len(columns))`` sorted attribute ids of the distinct combinations.
        inverse: For every row in ``rows``, the index of its combination in ``distinct_attrs``.
    """

    columns: list
    rows: np.ndarray
    distinct_attrs: np.ndarray
    inverse: np.ndarray


def _distinct_codes(combined: np.ndarray, space: int) -> tuple[np.ndarray, np.ndarray]:
    if space <= max(_DENSE_LIMIT, 4 * len(combined)):
        seen = np.zeros(space, dtype=bool)
        seen[combined] = True
        present = np.flatnonzero(seen)
        position = np.zeros(space, dtype=np.int64)
        position[present] = np.arange(len(present))
        return present, position[combined]
    return np.unique(combined, return_inverse=True)


def walk_column_sets(layout: ColumnLayout, codes: np.ndarray, max_length: int,
                     roots: list[tuple[int, ...]] | None = None) -> Iterator[ColumnSetGroup]:
    """Visits column sets of 1..max_length columns depth first.

    A prefix keeps the rows where all its columns are present and their mixed-radix code;
    extending it by one column filters those rows and refines the code, so work shrinks with
    depth and no sort over all combination instances is needed.

    Args:
        roots: Visit only these subtrees (see :func:`column_set_shards`): a root ``(c,)`` is the
            single column set ``{c}``; a root ``(c1, c2)`` is ``{c1, c2}`` and every extension by
            columns after ``c2``. Default: every column set.

    Raises:
        OverflowError: If a code space exceeds int64 (see :func:`fits_column_sets`).
    """
    cards = layout.cardinalities
    n_columns = codes.shape[1]

    def step(columns, rows, combined, space, column):
        values = codes[rows, column]
        keep = values > 0
        if not keep.any():
            return None
        card = int(cards[column])
        next_space = space * card
        if next_space >= (1 << 62):
            raise OverflowError("column-set code space exceeds int64")
        next_combined = combined[keep] * card + (values[keep].astype(np.int64) - 1)
        return columns + [column], rows[keep], next_combined, next_space

    def group(columns, rows, combined, space):
        present, inverse = _distinct_codes(combined, space)
        return ColumnSetGroup(columns, rows, _decode(layout, columns, present), inverse)

    def extend(columns, rows, combined, space):
        for column in range(columns[-1] + 1 if columns else 0, n_columns):
            found = step(columns, rows, combined, space, column)
            if found is None:
                continue
            yield group(*found)
            if len(found[0]) < max_length:
                yield from extend(*found)

    all_rows = np.arange(codes.shape[0])
    start: tuple[list[int], np.ndarray, np.ndarray, int] = ([], all_rows, np.zeros(len(all_rows), dtype=np.int64), 1)
    if roots is None:
        yield from extend(*start)
        return
    for root in roots:
        found = start
        for column in root:
            found = step(*found, column)
            if found is None:
                break
        if found is None:
            continue
        yield group(*found)
        if len(root) == 2 and len(root) < max_length:
            yield from extend(*found)


def column_set_shards(layout: ColumnLayout, max_length: int, n_shards: int) -> list[list[tuple[int, ...]]]:
    """Splits every column set of 1..max_length columns into ``n_shards`` groups of subtrees
    (roots for :func:`walk_column_sets`) of about equal cost: the single sets ``(c,)`` and the
    pairs ``(c1, c2)`` with their extensions. A subtree's cost is estimated as the number of
    column sets it holds (each walks at most all rows); shards are filled largest first."""
    n_columns = len(layout.column_attrs)
    roots: list[tuple[tuple[int, ...], int]] = [((c,), 1) for c in range(n_columns)]
    if max_length >= 2:
        for c1 in range(n_columns):
            for c2 in range(c1 + 1, n_columns):
                rest = n_columns - 1 - c2
                roots.append(((c1, c2), sum(math.comb(rest, j) for j in range(max_length - 1))))
    roots.sort(key=lambda item: (-item[1], item[0]))
    shards: list[list[tuple[int, ...]]] = [[] for _ in range(max(1, n_shards))]
    load = [0] * len(shards)
    for root, cost in roots:
        target = min(range(len(shards)), key=lambda i: (load[i], i))
        shards[target].append(root)
        load[target] += cost
    return [sorted(shard) for shard in shards if shard]


def _decode(layout: ColumnLayout, columns: list, present: np.ndarray) -> np.ndarray:
    """Mixed-radix codes of a column set -> sorted attribute ids ``(n, len(columns))``."""
    per_column = []
    rest = present
    for column in reversed(columns):
        rest, code = np.divmod(rest, layout.cardinalities[column])
        per_column.append(layout.column_attrs[column][code])
    attrs = np.column_stack(per_column[::-1])
    attrs.sort(axis=1)
    return attrs


def fits_column_sets(layout: ColumnLayout, max_length: int) -> bool:
    """True if every column set of up to ``max_length`` columns has an int64 code space."""
    top = np.sort(layout.cardinalities)[::-1][:max_length].astype(float)
    return float(np.prod(top)) < 2.0 ** 62


def count_by_column_sets(codec: ComboCodec, layout: ColumnLayout, offsets: np.ndarray, ids: np.ndarray,
                         weights: np.ndarray, max_length: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Weighted counts of every combination of length 1..max_length (same result as
    :func:`count_combinations`, about 10x faster on census-like tables).

    Yields:
        ``(keys, counts)`` per column set (keys are distinct within one yield).
    """
    codes = layout.wide_codes(offsets, ids)
    weights = np.asarray(weights, dtype=np.float64)
    for group in walk_column_sets(layout, codes, max_length):
        counts = np.bincount(group.inverse, weights=weights[group.rows], minlength=len(group.distinct_attrs))
        yield codec.pack(group.distinct_attrs), np.rint(counts).astype(np.int64)


def shortest_member_length_by_column_sets(codec: ComboCodec, layout: ColumnLayout, offsets: np.ndarray,
                                          ids: np.ndarray, member_keys: np.ndarray, max_length: int) -> np.ndarray:
    """Same result as :func:`shortest_member_length`, walking column sets."""
    codes = layout.wide_codes(offsets, ids)
    result = np.full(codes.shape[0], np.iinfo(np.int32).max, dtype=np.int32)
    if member_keys.size:
        for group in walk_column_sets(layout, codes, max_length):
            view = sortable(codec.pack(group.distinct_attrs))
            pos = np.minimum(np.searchsorted(member_keys, view), member_keys.size - 1)
            hit_rows = group.rows[(member_keys[pos] == view)[group.inverse]]
            np.minimum.at(result, hit_rows, len(group.columns))
    result[result == np.iinfo(np.int32).max] = 0
    return result
