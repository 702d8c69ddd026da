"""Output order of synthetic records (spec §4.0): more complete records first, then lexicographic.

Rows sort by their number of non-empty cells descending, then by their cells in header order,
compared as strings. Here each cell is the rank of its value among its column's values in
ordinal (UTF-8 byte) order, 0 for an empty cell, which orders exactly as the strings do.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
