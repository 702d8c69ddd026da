"""The numbers the showcase page embeds, as compact arrays: the synthetic data's vocabulary, its
distinct records or its combination counts, and the published counts (pure numpy, no Spark).

The page answers one question (spec §5.7): for a set of attributes, how many synthetic records
hold them (the *estimate*) and what is its published count (the *actual*). Two embeddings give
exactly the same answers for every combination the page can show (at most R attributes):

* ``records``: the distinct synthetic records with their numbers of copies; the page counts
  the records holding a combination, each weighted by its copies;
* ``combinations``: the synthetic count of every combination of up to R attributes; the page
  reads estimates straight from that table.

A release embeds the smaller of the two (:func:`choose_embedding`): distinct records grow with
the variety of the synthetic data, combinations with its number of columns and R. Published
counts are embedded only for combinations that also occur in the synthetic data, the only ones
the page can show (every bar and every reachable selection has an estimate > 0).

Attributes are numbered per page: attribute id = offset of its column + index of its value in
the column's sorted value list. Arrays are base64 of little-endian unsigned integers of 1, 2, 4
or 8 bytes (``{"bytes": w, "data": text}``).
"""

from __future__ import annotations

import base64
import itertools
import logging
import math
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

EMBEDDINGS = ("records", "combinations")
_RECORD_COUNT_KEY = "record_count"


# ---------------------------------------------------------------------------------- named structures
@dataclass(frozen=True)
class Vocabulary:
    """The columns of the page and the values of each that occur in the synthetic data.

    Attributes:
        columns: Column names, in page order.
        values: Per column, its values sorted by code point (page attribute ids follow this order).
    """

    columns: tuple[str, ...]
    values: tuple[tuple[str, ...], ...]

    @property
    def offsets(self) -> np.ndarray:
        """int64 array of ``len(columns) + 1``: page id of each column's first value, then the total."""
        return np.concatenate([[0], np.cumsum([len(v) for v in self.values], dtype=np.int64)]).astype(np.int64)

    @property
    def n_attributes(self) -> int:
        """Number of page attributes."""
        return int(sum(len(v) for v in self.values))

    def index(self) -> dict[tuple[str, str], int]:
        """``(column, value) -> page attribute id``."""
        out: dict[tuple[str, str], int] = {}
        offset = 0
        for column, values in zip(self.columns, self.values, strict=True):
            for i, value in enumerate(values):
                out[(column, value)] = offset + i
            offset += len(values)
        return out


@dataclass(frozen=True)
class Combinations:
    """Combinations of page attributes with one count each, grouped by length.

    Attributes:
        ids: Length -> ``(n, length)`` int64 array, each row ascending, rows distinct.
        counts: Length -> ``(n,)`` int64 array of counts.
    """

    ids: dict[int, np.ndarray]
    counts: dict[int, np.ndarray]

    @classmethod
    def from_csr(cls, offsets: np.ndarray, ids: np.ndarray, counts: np.ndarray, page_of: np.ndarray,
                 max_length: int | None = None) -> Combinations:
        """Combinations given as CSR attribute lists of another id space, mapped through
        ``page_of`` (``-1``: the attribute is not on the page, so the combination is dropped).

        Args:
            offsets, ids: CSR attribute lists (int64).
            counts: One count per combination.
            page_of: Page id of every source attribute id, or -1.
            max_length: Longer combinations are dropped (None: keep all).
        """
        lengths = np.diff(offsets)
        page = page_of[ids] if len(ids) else np.zeros(0, dtype=np.int64)
        owner = np.repeat(np.arange(len(lengths)), lengths)
        missing = np.zeros(len(lengths), dtype=bool)
        missing[owner[page < 0]] = True
        by_ids: dict[int, np.ndarray] = {}
        by_counts: dict[int, np.ndarray] = {}
        for length in sorted(set(lengths.tolist()) - {0}):
            if max_length is not None and length > max_length:
                continue
            rows = np.flatnonzero((lengths == length) & ~missing)
            if len(rows) == 0:
                continue
            take = offsets[rows][:, None] + np.arange(length)[None, :]
            by_ids[length] = np.sort(page[take], axis=1).astype(np.int64)
            by_counts[length] = np.asarray(counts, dtype=np.int64)[rows]
        return cls(by_ids, by_counts)

    @property
    def total(self) -> int:
        """Number of combinations."""
        return int(sum(len(c) for c in self.counts.values()))

    def as_dict(self) -> dict[frozenset[int], int]:
        """``{frozenset of page ids: count}`` (for tests and small tables)."""
        return {frozenset(row.tolist()): int(c) for length in self.ids
                for row, c in zip(self.ids[length], self.counts[length], strict=True)}


@dataclass(frozen=True)
class DistinctRecords:
    """The distinct synthetic records with their numbers of copies.

    Attributes:
        codes: ``(n, columns)`` int64: 0 = empty cell, ``i + 1`` = ``vocabulary.values[c][i]``.
        weights: ``(n,)`` int64 number of copies of each record.
    """

    codes: np.ndarray
    weights: np.ndarray


@dataclass(frozen=True)
class ShowcaseRelease:
    """Everything the page's numbers come from (all releasable).

    Attributes:
        vocabulary: Columns and the values that occur in the synthetic data.
        reportable: The published counts (protected or DP) of combinations on the page.
        published_record_count: The published number of records (None: not published).
        synthetic_record_count: Number of synthetic records (Σ copies).
        synthetic: Synthetic count of every combination of up to R attributes (None: counted
            from ``records``).
        records: The distinct synthetic records (None when the page embeds combinations and
            they were not gathered).
    """

    vocabulary: Vocabulary
    reportable: Combinations
    published_record_count: int | None
    synthetic_record_count: int
    synthetic: Combinations | None = None
    records: DistinctRecords | None = None


@dataclass(frozen=True)
class EmbeddingChoice:
    """The embedding of a page and the sizes (bytes of base64 text) it was chosen by (None:
    not known, the records were not gathered)."""

    name: str
    records_bytes: int | None
    combinations_bytes: int


# ---------------------------------------------------------------------------------- building from frames
def vocabulary_of(values: dict[str, list[str] | set[str] | np.ndarray], columns: list[str]) -> Vocabulary:
    """The vocabulary of ``columns`` given the values seen in each (empty strings ignored)."""
    return Vocabulary(tuple(columns), tuple(tuple(sorted({str(v) for v in values.get(c, ())} - {""}))
                                            for c in columns))


def records_from_frame(synthetic: pd.DataFrame) -> tuple[Vocabulary, DistinctRecords]:
    """The vocabulary and distinct records of a synthetic table (one row per record, strings,
    ``""``/NaN = empty)."""
    if not isinstance(synthetic, pd.DataFrame):
        raise ValueError("synthetic must be a pandas DataFrame")
    names = [str(c) for c in synthetic.columns]
    if len(set(names)) != len(names):
        raise ValueError(f"synthetic data has duplicated column names: {names}")
    for name in names:
        if ";" in name or ":" in name or name == "":
            raise ValueError(f"invalid column name {name!r} (must be non-empty without ';' or ':')")
    cells = synthetic.astype(object).where(synthetic.notna(), "").astype(str).to_numpy(dtype=object)
    cells = cells.reshape(len(synthetic), len(names))
    columns_values, codes = [], np.zeros(cells.shape, dtype=np.int64)
    for c in range(len(names)):
        unique_cells, inverse = np.unique(cells[:, c].astype(str), return_inverse=True)
        uniques = [str(u) for u in unique_cells]
        if uniques and uniques[0] == "":  # np.unique sorts: the empty string comes first
            columns_values.append(tuple(uniques[1:]))
            codes[:, c] = inverse
        else:
            columns_values.append(tuple(uniques))
            codes[:, c] = inverse + 1
    vocabulary = Vocabulary(tuple(names), tuple(columns_values))
    if len(codes) == 0:
        return vocabulary, DistinctRecords(codes, np.zeros(0, dtype=np.int64))
    distinct, weights = np.unique(codes, axis=0, return_counts=True)
    return vocabulary, DistinctRecords(distinct.astype(np.int64), weights.astype(np.int64))


def combinations_from_selections(reportable: pd.DataFrame, vocabulary: Vocabulary,
                                 count_column: str = "protected_count") -> tuple[int | None, Combinations]:
    """Parse a reportable aggregates table (``selections``, count column; the ``record_count``
    row holds the published record count) into page combinations. Combinations naming an
    attribute absent from the vocabulary are dropped (the page can never show them).

    Raises:
        ValueError: On missing columns, malformed selections, invalid counts or a combination
            reported twice with different counts.
    """
    if not isinstance(reportable, pd.DataFrame):
        raise ValueError("reportable must be a pandas DataFrame")
    missing = {"selections", count_column} - set(map(str, reportable.columns))
    if missing:
        raise ValueError(f"reportable aggregates lack column(s) {sorted(missing)}; "
                         f"got {list(map(str, reportable.columns))}")
    index = vocabulary.index()
    record_count: int | None = None
    seen: dict[tuple[int, ...], int] = {}
    dropped = 0
    for selections, count in zip(reportable["selections"], reportable[count_column], strict=True):
        count = parse_count(count, selections)
        if selections == _RECORD_COUNT_KEY:
            record_count = count
            continue
        attributes = parse_selections(selections)
        ids = [index.get(a) for a in attributes]
        if any(i is None for i in ids):
            dropped += 1
            continue
        key = tuple(sorted(cast("list[int]", ids)))  # no None: checked above
        if seen.get(key, count) != count:
            raise ValueError(f"combination {selections!r} is reported twice with different counts "
                             f"({seen[key]} and {count})")
        seen[key] = count
    if dropped:
        logger.info("Showcase: %d published combinations name values absent from the synthetic data", dropped)
    by_length: dict[int, list[tuple[tuple[int, ...], int]]] = {}
    for key, count in seen.items():
        by_length.setdefault(len(key), []).append((key, count))
    return record_count, Combinations(
        {n: np.array([k for k, _ in rows], dtype=np.int64).reshape(len(rows), n) for n, rows in by_length.items()},
        {n: np.array([c for _, c in rows], dtype=np.int64) for n, rows in by_length.items()})


def parse_selections(selections: str) -> frozenset[tuple[str, str]]:
    """Parse a ``col:value;col:value`` selections string into a set of ``(column, value)``.

    Raises:
        ValueError: If an attribute is not ``column:value`` or appears twice.
    """
    if not isinstance(selections, str) or selections.strip() == "":
        raise ValueError(f"empty or non-string selections: {selections!r}")
    attributes = []
    for part in selections.split(";"):
        pieces = part.split(":")
        if len(pieces) != 2 or pieces[0] == "" or pieces[1] == "":
            raise ValueError(f"malformed attribute {part!r} in selections {selections!r}; expected 'column:value'")
        attributes.append((pieces[0], pieces[1]))
    result = frozenset(attributes)
    if len(result) != len(attributes):
        raise ValueError(f"repeated attribute in selections {selections!r}")
    return result


def parse_count(count: Any, selections: object) -> int:
    """A published count as a non-negative int.

    Raises:
        ValueError: If it is not a non-negative integer.
    """
    try:
        value = float(count)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value != int(value) or value < 0:
        raise ValueError(f"invalid count {count!r} for selections {selections!r}")
    return int(value)


# ---------------------------------------------------------------------------------- counting
def count_combinations(vocabulary: Vocabulary, records: DistinctRecords, max_length: int) -> Combinations:
    """The synthetic count of every combination of 1..max_length attributes of the records
    (each record weighted by its copies), one column subset at a time."""
    offsets = vocabulary.offsets
    n_columns = len(vocabulary.columns)
    base = max(1, vocabulary.n_attributes)
    ids_by: dict[int, list[np.ndarray]] = {}
    counts_by: dict[int, list[np.ndarray]] = {}
    present = records.codes > 0
    for length in range(1, min(max_length, n_columns) + 1):
        for subset in itertools.combinations(range(n_columns), length):
            cols = list(subset)
            rows = np.flatnonzero(present[:, cols].all(axis=1))
            if len(rows) == 0:
                continue
            ids = records.codes[np.ix_(rows, np.asarray(cols))] - 1 + offsets[cols][None, :]  # ascending: offsets grow
            keys = _row_keys(ids, base)
            unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
            ids_by.setdefault(length, []).append(ids[first])
            counts_by.setdefault(length, []).append(
                np.bincount(inverse.reshape(-1), weights=records.weights[rows], minlength=len(unique)).astype(np.int64))
    return Combinations({n: np.concatenate(v) for n, v in ids_by.items()},
                        {n: np.concatenate(v) for n, v in counts_by.items()})


def _row_keys(ids: np.ndarray, base: int) -> np.ndarray:
    """One hashable, sortable key per row of ascending ids (int64 when it fits, else strings)."""
    length = ids.shape[1]
    if (base + 1) ** length < 2 ** 62:
        keys = np.zeros(len(ids), dtype=np.int64)
        for j in range(length):
            keys = keys * (base + 1) + (ids[:, j] + 1)
        return keys
    return np.array([",".join(map(str, row)) for row in ids.tolist()], dtype=object)


def _positions(keys: np.ndarray, table_keys: np.ndarray) -> np.ndarray:
    """Index of every key in ``table_keys`` (distinct), or -1."""
    if len(table_keys) == 0 or len(keys) == 0:
        return np.full(len(keys), -1, dtype=np.int64)
    order = np.argsort(table_keys, kind="stable")
    sorted_keys = table_keys[order]
    at = np.clip(np.searchsorted(sorted_keys, keys), 0, len(sorted_keys) - 1)
    return np.where(sorted_keys[at] == keys, order[at], -1).astype(np.int64)


def _take(values: np.ndarray, where: np.ndarray) -> np.ndarray:
    """``values[where]``, -1 where ``where`` is -1."""
    if len(values) == 0:
        return np.full(len(where), -1, dtype=np.int64)
    return np.where(where >= 0, values[np.maximum(where, 0)], -1)


# ---------------------------------------------------------------------------------- encoding
def _width(maximum: int) -> int:
    return 1 if maximum < 1 << 8 else 2 if maximum < 1 << 16 else 4 if maximum < 1 << 32 else 8


def pack(values: np.ndarray, width: int | None = None) -> dict:
    """``{"bytes": w, "data": base64}`` of non-negative integers as little-endian uint of w bytes."""
    values = np.asarray(values, dtype=np.int64).reshape(-1)
    if len(values) and values.min() < 0:
        raise ValueError("only non-negative integers can be packed")
    width = width or _width(int(values.max(initial=0)))
    return {"bytes": width, "data": base64.b64encode(values.astype(f"<u{width}").tobytes()).decode("ascii")}


def unpack(packed: dict) -> np.ndarray:
    """Inverse of :func:`pack` (int64)."""
    return np.frombuffer(base64.b64decode(packed["data"]), dtype=f"<u{packed['bytes']}").astype(np.int64)


def _b64_length(n_bytes: int) -> int:
    return 4 * ((n_bytes + 2) // 3)


def records_payload_bytes(vocabulary: Vocabulary, n_distinct: int, max_copies: int) -> int:
    """Size of the base64 text of the records embedding (codes per column and copies)."""
    return (sum(_b64_length(n_distinct * _width(len(values))) for values in vocabulary.values)
            + _b64_length(n_distinct * _width(max_copies)))


def combination_blocks(vocabulary: Vocabulary, reportable: Combinations, synthetic: Combinations,
                       with_estimates: bool) -> list[dict]:
    """The combination blocks of the page, one per length.

    With estimates: every synthetic combination with its synthetic count and its published
    count; without: the published combinations that occur in the synthetic data. A published
    count is stored as ``count // unit + 1`` (``unit`` = the block's gcd), 0 = not published.
    """
    base = max(1, vocabulary.n_attributes)
    id_width = _width(max(0, vocabulary.n_attributes - 1))
    blocks = []
    for length in sorted(set(synthetic.ids) | set(reportable.ids)):
        syn_ids = synthetic.ids.get(length, np.zeros((0, length), dtype=np.int64))
        syn_counts = synthetic.counts.get(length, np.zeros(0, dtype=np.int64))
        rep_ids = reportable.ids.get(length, np.zeros((0, length), dtype=np.int64))
        rep_counts = reportable.counts.get(length, np.zeros(0, dtype=np.int64))
        syn_keys, rep_keys = _row_keys(syn_ids, base), _row_keys(rep_ids, base)
        if with_estimates:
            actual = _take(rep_counts, _positions(syn_keys, rep_keys))
            keep = syn_counts > 0
            ids, actual, estimates = syn_ids[keep], actual[keep], syn_counts[keep]
        else:
            keep = _take(syn_counts, _positions(rep_keys, syn_keys)) > 0
            ids, actual, estimates = rep_ids[keep], rep_counts[keep], None
        if len(ids) == 0:
            continue
        order = np.argsort(_row_keys(ids, base), kind="stable")  # the same page whatever the input order
        ids, actual = ids[order], actual[order]
        estimates = estimates[order] if estimates is not None else None
        published = actual[actual >= 0]
        unit = int(np.gcd.reduce(published)) if len(published) else 1
        unit = unit or 1
        block = {"size": int(length), "count": int(len(ids)), "ids": pack(ids, id_width), "unit": unit,
                 "actuals": pack(np.where(actual >= 0, actual // unit + 1, 0))}
        if estimates is not None:
            block["estimates"] = pack(estimates)
        blocks.append(block)
    return blocks


def blocks_bytes(blocks: list[dict]) -> int:
    """Size of the base64 text of combination blocks."""
    return sum(len(value["data"]) for block in blocks for value in block.values() if isinstance(value, dict))


def choose_embedding(vocabulary: Vocabulary, reportable: Combinations, synthetic: Combinations, n_distinct: int,
                     max_copies: int, requested: str = "auto") -> EmbeddingChoice:
    """The embedding of the smaller page (or the requested one), with both sizes.

    Raises:
        ValueError: For an unknown ``requested`` embedding.
    """
    if requested not in ("auto", *EMBEDDINGS):
        raise ValueError(f"embedding must be 'auto', 'records' or 'combinations', got {requested!r}")
    records = records_payload_bytes(vocabulary, n_distinct, max_copies) + blocks_bytes(
        combination_blocks(vocabulary, reportable, synthetic, with_estimates=False))
    combinations = blocks_bytes(combination_blocks(vocabulary, reportable, synthetic, with_estimates=True))
    name = requested if requested != "auto" else "records" if records <= combinations else "combinations"
    logger.info("Showcase embedding: %s (records %.2f MB, combinations %.2f MB; %d distinct records, "
                "%d synthetic combinations)", name, records / 1e6, combinations / 1e6, n_distinct, synthetic.total)
    return EmbeddingChoice(name, records, combinations)


def embedded_numbers(release: ShowcaseRelease, embedding: str, max_length: int) -> dict:
    """The ``records`` / ``combinations`` part of the page data for the chosen embedding.

    Raises:
        ValueError: If the records embedding is asked for without records.
    """
    synthetic = release.synthetic
    if synthetic is None:
        if release.records is None:
            raise ValueError("the release needs distinct records or synthetic combination counts")
        synthetic = count_combinations(release.vocabulary, release.records, max_length)
    if embedding == "records":
        if release.records is None:
            raise ValueError("the records embedding needs the distinct synthetic records")
        records = release.records
        return {"records": {"count": int(len(records.weights)),
                            "codes": [pack(records.codes[:, c], _width(len(values)))
                                      for c, values in enumerate(release.vocabulary.values)],
                            "weights": pack(records.weights)},
                "combinations": combination_blocks(release.vocabulary, release.reportable, synthetic, False)}
    return {"records": None,
            "combinations": combination_blocks(release.vocabulary, release.reportable, synthetic, True)}


def decode_numbers(data: dict) -> dict:
    """Decode the packed arrays of page data in place (for tests and tools): record codes per
    column and weights become lists; each block gets ``combos`` (tuples of page ids), ``actual``
    (published counts, None = not published) and, with estimates, ``estimate``."""
    records = data.get("records")
    if records:
        records["codes"] = [unpack(p).tolist() for p in records["codes"]]
        records["weights"] = unpack(records["weights"]).tolist()
    for block in data.get("combinations") or []:
        size, unit = block["size"], block["unit"]
        flat = unpack(block.pop("ids")).tolist()
        block["combos"] = [tuple(flat[i:i + size]) for i in range(0, len(flat), size)]
        block["actual"] = [None if a == 0 else (a - 1) * unit for a in unpack(block.pop("actuals")).tolist()]
        if "estimates" in block:
            block["estimate"] = unpack(block.pop("estimates")).tolist()
    return data
