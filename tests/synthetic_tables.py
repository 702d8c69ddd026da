"""Small sensitive tables for the synthesis kernel tests, with brute-force oracles.

Every privacy or calibration check recomputes supports and counts here, with plain Python
sets over the sensitive records, never with the code under test.
"""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np

from ksynth_spark.combinations import csr_from_lists
from ksynth_spark.model import attribute_table
from ksynth_spark.numerics import floor_k
from ksynth_spark.randomness import row_hashes
from ksynth_spark.synthesis.index import AttributeSpace, DistinctIndex
from ksynth_spark.synthesis.paths import SupportOracle

EXAMPLE_ROWS = [
    ("a1", "b1", "c1"), ("a1", "b1", "c1"), ("a1", "b1", "c2"), ("a1", "b2", "c1"), ("a1", "b2", None),
    ("a1", None, "c2"), ("a2", "b1", "c1"), ("a2", "b1", "c3"), ("a2", "b2", "c1"), ("a2", "b2", "c1"),
    ("a2", "b2", "c2"), ("a2", "b2", "c3"),
]


class Table:
    """A sensitive table as id sets, its distinct rows and support index."""

    def __init__(self, rows: list[tuple], headers: list[str], k: int):
        counts = Counter((h, v) for row in rows for h, v in zip(headers, row, strict=True) if v is not None)
        self.attributes = attribute_table([(h, v, n) for (h, v), n in counts.items()], headers)
        table = self.attributes
        ids = {(c, v): i for i, c, v in zip(table.attr_id, table.column, table.value, strict=True)}
        self.records = [frozenset(ids[(h, v)] for h, v in zip(headers, row, strict=True) if v is not None)
                        for row in rows]
        self.id_of = {f"{c}:{v}": i for (c, v), i in ids.items()}
        self.k = k
        self.n = self.attributes["count"].to_numpy()
        self.space = AttributeSpace(self.attributes["column_index"].to_numpy(np.int64), len(headers))
        distinct = Counter(self.records)
        self.distinct = sorted(distinct, key=sorted)
        self.weights = np.array([distinct[r] for r in self.distinct], dtype=np.int64)
        self.offsets, self.ids = csr_from_lists([sorted(r) for r in self.distinct])
        self.hashes = row_hashes(self.offsets, self.ids)
        self.index = DistinctIndex(self.offsets, self.ids, self.weights, self.space, k, keep_rows=True)

    def oracle(self, cache_size: int = 1000) -> SupportOracle:
        return SupportOracle(self.index, cache_size)

    def support(self, combo) -> int:
        combo = frozenset(combo)
        return sum(1 for r in self.records if combo <= r)

    def ids_of(self, *labels: str) -> frozenset:
        return frozenset(self.id_of[label] for label in labels)

    def targets(self) -> np.ndarray:
        """``floor_k(n(a))`` for ``n(a) >= k``, else 0."""
        return np.where(self.n >= self.k, floor_k(self.n, self.k), 0)

    def reportable(self, length: int) -> tuple[list, list]:
        """k-anonymous aggregates counted by itertools (floor_k of every count >= k)."""
        counts: Counter = Counter()
        for record in self.records:
            for size in range(1, length + 1):
                counts.update(itertools.combinations(sorted(record), size))
        kept = [(list(c), floor_k(n, self.k)) for c, n in counts.items() if n >= self.k]
        return [c for c, _ in kept], [n for _, n in kept]


def records_of(offsets, ids) -> list[frozenset]:
    return [frozenset(ids[offsets[i]:offsets[i + 1]].tolist()) for i in range(len(offsets) - 1)]


def expand(offsets, ids, counts) -> list[frozenset]:
    """Groups (CSR sets with counts) as a list of records."""
    return [record for record, count in zip(records_of(offsets, ids), counts, strict=True) for _ in range(int(count))]


def attribute_counts(records, n_attrs: int) -> np.ndarray:
    counts = np.zeros(n_attrs, dtype=np.int64)
    for record in records:
        for a in record:
            counts[a] += 1
    return counts


def random_table(seed: int, n_rows: int = 240, n_columns: int = 5, k: int = 3) -> Table:
    """Skewed categorical data with empty cells, so rare values and combinations occur."""
    rng = np.random.default_rng(seed)
    headers = [f"col{c}" for c in range(n_columns)]
    rows = []
    for _ in range(n_rows):
        row = []
        for c in range(n_columns):
            value = int(min(rng.geometric(0.45), 2 + c))
            row.append(None if rng.random() < 0.08 else f"v{value}")
        rows.append(tuple(row))
    return Table(rows, headers, k)
