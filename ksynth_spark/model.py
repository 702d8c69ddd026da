"""The encoded data model shared by every stage.

Attributes ``(column, value)`` are dictionary-encoded once to integer ids ``0 .. A-1`` assigned
in canonical order (ascending ordinal order of ``"column:value"``), so a sorted id array is a
combination in canonical order. The sensitive table is held as its *distinct rows*: every
distinct attribute set once, with the number of records that have it (its weight). Every stage
works on those (their number grows with the variety of the data, not with N).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

ROWS_SCHEMA = "attrs array<int>, weight long"
AGGREGATE_SCHEMA = "attrs array<int>, length int, count long"


@dataclass(frozen=True)
class MultiValueSource:
    """Where an expanded multi-value column came from."""

    source: str
    piece: str
    delimiter: str


@dataclass(frozen=True)
class EncodedData:
    """The sensitive table after parsing, joining, expansion and encoding.

    Attributes:
        rows: Spark DataFrame ``attrs array<int>, weight long``: one row per distinct attribute
            set (``attrs`` sorted ascending, possibly empty), ``weight`` = the number of
            records that have exactly that set. Persisted. Sensitive: never collected as rows,
            except by the synthesis index (ids and weights, in executors' broadcast).
        attributes: Driver-side attribute table, one row per attribute id: ``attr_id`` (int,
            0..A-1, canonical order), ``column_index``, ``column``, ``value``, ``count`` (n(a)).
            Small (distinct values only); sensitive because it holds exact counts.
        headers: Final column names (after multi-value expansion), in output order.
        n_records: N, the number of sensitive records.
        n_rows: D, the number of distinct rows.
        multi_value: Expanded column name -> its source column, piece and delimiter.
    """

    rows: Any
    attributes: pd.DataFrame
    headers: list[str]
    n_records: int
    n_rows: int
    multi_value: dict[str, MultiValueSource] = field(default_factory=dict)

    @property
    def n_attributes(self) -> int:
        """Number of distinct attributes A."""
        return len(self.attributes)

    @property
    def attribute_columns(self) -> np.ndarray:
        """int32 array: column index of every attribute id."""
        return self.attributes["column_index"].to_numpy(dtype=np.int32)

    @property
    def attribute_counts(self) -> np.ndarray:
        """int64 array: n(a) of every attribute id."""
        return self.attributes["count"].to_numpy(dtype=np.int64)

    def labels(self) -> list[str]:
        """``fmt(a) = "column:value"`` of every attribute id."""
        return [f"{c}:{v}" for c, v in zip(self.attributes["column"], self.attributes["value"], strict=True)]

    def selection_ranks(self, order: str = "ordinal") -> np.ndarray:
        """Rank of every attribute id in the selections-string order.

        ``ordinal`` is the id order itself; ``case_insensitive`` sorts by lower-cased
        ``fmt`` with ordinal ties.
        """
        n = self.n_attributes
        if order == "ordinal":
            return np.arange(n, dtype=np.int64)
        labels = self.labels()
        ordered = sorted(range(n), key=lambda i: (labels[i].lower(), labels[i]))
        ranks = np.empty(n, dtype=np.int64)
        ranks[np.array(ordered, dtype=np.int64)] = np.arange(n)
        return ranks


def attribute_table(rows: list[tuple[str, str, int]], headers: list[str]) -> pd.DataFrame:
    """Builds the attribute table from ``(column, value, count)`` rows, assigning canonical ids.

    Args:
        rows: One entry per distinct attribute.
        headers: Final column names (gives ``column_index``).
    """
    position = {h: i for i, h in enumerate(headers)}
    ordered = sorted(rows, key=lambda r: f"{r[0]}:{r[1]}")
    return pd.DataFrame(
        {
            "attr_id": np.arange(len(ordered), dtype=np.int32),
            "column_index": np.array([position[r[0]] for r in ordered], dtype=np.int32),
            "column": [r[0] for r in ordered],
            "value": [r[1] for r in ordered],
            "count": np.array([r[2] for r in ordered], dtype=np.int64),
        }
    )
