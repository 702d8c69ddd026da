"""Independent k-anonymity audit of a synthetic dataset against the sensitive table.

The module's one job: check, for ANY synthetic dataset (TSV, CSV, Parquet or Delta, whoever
made it), that every synthetic record and every synthetic combination of up to ``length``
attributes describes at least ``k`` sensitive records. It shares no code with the synthesizer:
both tables are parsed with the load stage's rules (:mod:`ksynth_spark.load`), and supports are
computed here, by this module's own compiled loop, over per-attribute bitsets of the distinct
sensitive rows.

How it runs (what reaches the driver):

* The sensitive table is encoded by :func:`ksynth_spark.load.load_encoded` into its D distinct
  rows with multiplicities. Their attribute ids and weights are collected to the driver (D
  rows, never the N records), turned into one ``A × ⌈D/64⌉`` bitset matrix and the weight
  bit-planes, and broadcast.
* The synthetic file is read with the same normalisation (trim, ``;``/``:`` escapes, empty and
  ``0`` cells absent outside sensitive-zero columns, multi-value expansion), its rows grouped
  into distinct attribute sets with counts, and its ``(column, value)`` pairs mapped to the
  sensitive attribute ids. A value absent from the sensitive data gets a fresh id whose bitset
  is empty (support 0). Columns unknown to the sensitive data are listed by name and ignored
  (no sensitive individual has such an attribute, so they cannot single anyone out).
* Executors compute ``support`` = the weighted popcount of the AND of the bitsets, for every
  distinct synthetic record and every distinct synthetic combination up to ``length``; only
  per-length counts and the minimum come back.

The report holds counts and column names only, never a value. The broadcast takes
``(A + B) · D / 8`` bytes (B = bits of the largest multiplicity): 8 MB for the 10^7-row
resampled adult table (440,914 distinct rows).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from typing import Literal, NamedTuple, cast

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.storagelevel import StorageLevel

from ksynth_spark.aggregate import count_combinations_df
from ksynth_spark.arrow_jobs import broadcast, csr, map_batches, numbers, record_batch
from ksynth_spark.config import Config
from ksynth_spark.errors import InputDataError, PrivacyCheckError
from ksynth_spark.inputs import Column, malformed_rows_as_input_error, match_key, normalise_name, read_raw
from ksynth_spark.jit import kernel
from ksynth_spark.load import ROW_INDEX, load_encoded, long_attributes, parse_rows, with_row_index
from ksynth_spark.model import EncodedData
from ksynth_spark.numerics import floor_k

logger = logging.getLogger(__name__)

SYNTHETIC_FORMATS = ("tsv", "csv", "parquet", "delta")
_EXTENSIONS = {".tsv": "tsv", ".tab": "tsv", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


# ---------------------------------------------------------------------------------- bitsets
class SensitiveBitsets(NamedTuple):
    """The distinct sensitive rows as bitsets: ``bits[a]`` has bit ``e`` set iff distinct row
    ``e`` holds attribute ``a``; ``planes[b]`` holds bit ``b`` of every row's multiplicity, and
    ``plane_words[b]`` is the number of words of plane ``b`` that are not all zero (rows are
    ordered by multiplicity, heaviest first, so high planes end early)."""

    bits: np.ndarray
    planes: np.ndarray
    plane_words: np.ndarray
    n_records: int


def _words(rows: np.ndarray, n_words: int) -> np.ndarray:
    padded = np.zeros(n_words * 64, dtype=bool)
    padded[rows] = True
    return np.packbits(padded, bitorder="little").view(np.uint64)


def sensitive_bitsets(data: EncodedData) -> SensitiveBitsets:
    """The bitsets of the distinct sensitive rows (collected: ids and weights of D rows); ids
    without sensitive rows (synthetic values unknown to the sensitive data) get empty bitsets."""
    table = data.rows.select("attrs", "weight").toArrow()
    offsets, ids = csr(table)
    weights = numbers(table, "weight")
    order = np.argsort(-weights, kind="stable")
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    weights = weights[order]
    n_words = max(1, -(-len(order) // 64))
    owners = position[np.repeat(np.arange(len(order)), np.diff(offsets))]
    flat = np.zeros(data.n_attributes * n_words, dtype=np.uint64)
    np.bitwise_or.at(flat, ids * n_words + (owners >> 6), np.left_shift(np.uint64(1), (owners & 63).astype(np.uint64)))
    bits = flat.reshape(-1, n_words)
    n_planes = max(1, int(weights.max(initial=1)).bit_length())
    planes = np.stack([_words(np.flatnonzero((weights >> b) & 1), n_words) for b in range(n_planes)])
    nonzero = planes != 0
    plane_words = np.where(nonzero.any(axis=1), n_words - np.argmax(nonzero[:, ::-1], axis=1), 0)
    return SensitiveBitsets(bits, planes, plane_words.astype(np.int64), int(weights.sum()))


@kernel
def _popcount(x):
    """Set bits of a uint64 (this module's own: the audit shares no code with the synthesizer)."""
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@kernel
def _sorted_supports(bits, planes, plane_words, offsets, ids, order, n_records, acc, out):
    """Supports of CSR sets visited in lexicographic ``order``: ``acc[j]`` keeps the AND of the
    current set's first ``j`` bitsets, reused by the next set that shares those ``j`` ids."""
    known = 0
    prev = -1
    for i in range(order.size):
        r = order[i]
        start, size = offsets[r], offsets[r + 1] - offsets[r]
        common = 0
        if prev >= 0:
            prev_start, prev_size = offsets[prev], offsets[prev + 1] - offsets[prev]
            while (common < size and common < prev_size and common < known
                   and ids[start + common] == ids[prev_start + common]):
                common += 1
        prev = r
        known = size
        if size == 0:
            out[r] = n_records
            continue
        n_words = bits.shape[1]
        for j in range(common, size):
            attr = ids[start + j]
            if j == 0:
                for w in range(n_words):
                    acc[1, w] = bits[attr, w]
            else:
                for w in range(n_words):
                    acc[j + 1, w] = acc[j, w] & bits[attr, w]
        total = 0
        for b in range(planes.shape[0]):
            for w in range(plane_words[b]):
                total += _popcount(acc[size, w] & planes[b, w]) << b
        out[r] = total


def set_supports(index: SensitiveBitsets, offsets: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Support of every attribute set of a CSR batch: the records of the distinct sensitive rows
    holding all its attributes (the weighted popcount of the AND of their bitsets; sets are
    visited in lexicographic order so that a shared prefix is ANDed once). The empty set has
    support N."""
    offsets = np.asarray(offsets, dtype=np.int64)
    ids = np.asarray(ids, dtype=np.int64)
    sizes = np.diff(offsets)
    longest = int(sizes.max(initial=0))
    padded = np.full((len(sizes), max(1, longest)), -1, dtype=np.int64)
    padded[np.repeat(np.arange(len(sizes)), sizes), np.arange(ids.size) - np.repeat(offsets[:-1], sizes)] = ids
    order = np.lexsort(padded.T[::-1]).astype(np.int64)
    supports = np.zeros(len(sizes), dtype=np.int64)
    acc = np.zeros((longest + 1, index.bits.shape[1]), dtype=np.uint64)
    _sorted_supports(index.bits, index.planes, index.plane_words, offsets, ids, order, index.n_records, acc,
                     supports)
    return supports


def _supports(sets: DataFrame, shared) -> DataFrame:
    """``length, support, weight`` for each row of ``sets`` (``attrs, weight``), on executors
    (spread over at least two tasks per core, sorted so that neighbours share prefixes)."""
    def batch_supports(batch: pa.RecordBatch, index: SensitiveBitsets) -> pa.RecordBatch:
        offsets, ids = csr(batch)
        return record_batch(length=np.diff(offsets).astype(np.int32), support=set_supports(index, offsets, ids),
                            weight=numbers(batch, "weight"))

    tasks = 2 * sets.sparkSession.sparkContext.defaultParallelism
    spread = sets.select("attrs", "weight").repartitionByRange(tasks, "attrs").sortWithinPartitions("attrs")
    return map_batches(spread, "length int, support long, weight long", batch_supports, setup=lambda: shared.value)


# ---------------------------------------------------------------------------------- the audit
def audit(spark, data: EncodedData, synthetic: DataFrame, k: int, length: int) -> dict:
    """Runs every check on weighted synthetic attribute sets (``attrs, weight``: sorted ids of
    ``data``'s attribute table, which may be extended by :func:`with_unknown_attributes`).

    Collected to the driver: the distinct sensitive rows' ids and weights (turned into the
    broadcast bitsets), one row of record figures, per-length combination figures and the
    synthetic single-attribute counts (≤ one row per attribute). Never a record or a value.

    Returns:
        The report (see :func:`verify`), without the input-specific keys.
    """
    index = sensitive_bitsets(data)
    logger.info("verify: broadcasting bitsets of %d distinct sensitive rows (%.1f MB)", index.bits.shape[1] * 64,
                (index.bits.nbytes + index.planes.nbytes) / 1e6)
    counts = count_combinations_df(synthetic, data, length)
    try:
        with broadcast(spark, index) as shared:
            records = _supports(counts.rows, shared).agg(
                F.count(F.lit(1)).alias("distinct"), F.sum("weight").alias("total"),
                F.min("support").alias("min_support"),
                F.sum(F.when(F.col("support") < k, F.col("weight")).otherwise(0)).alias("below"),
            ).first()
            combos = (_supports(counts.decoded.withColumnRenamed("count", "weight"), shared)
                      .groupBy("length")
                      .agg(F.count(F.lit(1)).alias("n"), F.sum((F.col("support") < k).cast("long")).alias("below"))
                      .orderBy("length").collect())
        singles = counts.decoded.filter(F.col("length") == 1).select(F.col("attrs")[0].alias("a"), "count").collect()
    finally:
        counts.release()
    assert records is not None  # a global aggregate has one row
    below_by_length = {int(r["length"]): int(r["below"]) for r in combos}
    records_below = int(records["below"] or 0)
    combos_below = sum(below_by_length.values())
    return {
        "passed": records_below == 0 and combos_below == 0,
        "k": k,
        "length": length,
        "synthetic_records": int(records["total"] or 0),
        "distinct_synthetic_records": int(records["distinct"]),
        "min_support": None if records["min_support"] is None else int(records["min_support"]),
        "records_below_k": records_below,
        "combinations_checked": int(sum(r["n"] for r in combos)),
        "combinations_below_k": combos_below,
        "combinations_below_k_by_length": {str(n): below_by_length.get(n, 0) for n in range(1, length + 1)},
        "single_attribute_deviations": single_attribute_deviations(data, singles, k),
    }


def single_attribute_deviations(data: EncodedData, singles, k: int) -> dict:
    """Synthetic single-attribute counts vs ``floor_k(n(a))`` (n = 0 for unknown attributes)."""
    expected = floor_k(data.attribute_counts, k)
    observed = np.zeros_like(expected)
    for row in singles:
        observed[int(row["a"])] = int(row["count"])
    deviation = np.abs(observed - expected)
    return {"attributes_checked": int(len(expected)), "attributes_deviating": int((deviation > 0).sum()),
            "max_abs_deviation": int(deviation.max()) if len(deviation) else 0}


# ---------------------------------------------------------------------------------- reading a synthetic file
@dataclass
class SyntheticInput:
    """A synthetic file encoded in the sensitive attribute-id space.

    Attributes:
        records: ``attrs array<int>, weight long``: the distinct synthetic attribute sets and
            the number of synthetic rows with each.
        unknown_attributes: Column name of every distinct synthetic (column, value) pair absent
            from the sensitive data, in id order (their ids are ``A, A+1, ..``).
        unknown_columns: Synthetic column names unknown to the sensitive data (ignored).
    """

    records: DataFrame
    unknown_attributes: list[str]
    unknown_columns: list[str]
    cached: list = field(default_factory=list)

    def unpersist(self) -> None:
        """Drops the cached parsed rows."""
        for df in self.cached:
            df.unpersist()


def detect_format(path: str, requested: str | None) -> str:
    """The synthetic file's format: ``requested`` or from the extension (``.gz``/``.bz2`` ignored).

    Raises:
        InputDataError: Unknown requested format, or an extension that does not tell.
    """
    fmt: str | None
    if requested:
        fmt = requested.strip().lower()
        if fmt not in SYNTHETIC_FORMATS:
            raise InputDataError(f"Unknown synthetic format '{requested}': use one of {', '.join(SYNTHETIC_FORMATS)}.")
        return fmt
    stem = path.rstrip("/")
    for compressed in (".gz", ".bz2"):
        if stem.lower().endswith(compressed):
            stem = stem[: -len(compressed)]
    fmt = _EXTENSIONS.get(os.path.splitext(stem)[1].lower())
    if fmt is None:
        raise InputDataError(f"Cannot tell the format of {path} from its extension: pass --format "
                             f"({', '.join(SYNTHETIC_FORMATS)}).")
    return fmt


def _synthetic_columns(raw_headers: list[str], data: EncodedData,
                       sensitive_config: Config) -> tuple[list[Column], list[str]]:
    """Matches synthetic headers (normalised, case-sensitive) to the sensitive final headers and
    multi-value source columns. Returns ``(columns, unknown_names)``."""
    known = set(data.headers)
    multi_sources = {m.source: m.delimiter for m in data.multi_value.values()}
    zero_keys = {match_key(z) for z in sensitive_config.sensitive_zeros}
    columns, unknown, seen = [], [], set()
    for i, raw in enumerate(raw_headers):
        name = normalise_name(raw)
        if name not in known and name not in multi_sources:
            unknown.append(name)
            continue
        if name in seen:
            raise InputDataError(f"The synthetic data has two columns named '{name}' after trimming/normalisation.")
        seen.add(name)
        columns.append(Column(f"c{i}", name, match_key(raw) in zero_keys, multi_sources.get(name)))
    if not columns:
        raise InputDataError("None of the synthetic columns is a column of the sensitive data: check that both "
                             "files are the same table (and the sensitive config's use_columns).")
    return columns, unknown


def read_synthetic(spark, data: EncodedData, sensitive_config: Config, path: str, fmt: str) -> SyntheticInput:
    """Reads and encodes a synthetic file with the sensitive table's parsing rules.

    Collected to the driver: the header row and the column name (never the value) of every
    synthetic attribute unknown to the sensitive data.

    Raises:
        InputDataError: Missing/unreadable file, malformed rows, or no column in common.
    """
    config = replace(sensitive_config, sensitive_microdata_path=path,
                     input_format="csv" if fmt in ("tsv", "csv") else cast(Literal["parquet", "delta"], fmt),
                     sensitive_microdata_delimiter="\t" if fmt == "tsv" else ",",
                     subject_id=None, use_columns=[], record_limit=-1, sensitive_zeros=[], multi_value_columns={})
    raw, raw_headers = read_raw(spark, config)
    columns, unknown_columns = _synthetic_columns(raw_headers, data, sensitive_config)
    with malformed_rows_as_input_error(path):
        rows = parse_rows(with_row_index(raw), columns, [ROW_INDEX]).persist(StorageLevel.MEMORY_AND_DISK)
        rows.count()
    ids = F.broadcast(spark.createDataFrame(data.attributes[["column", "value", "attr_id"]]))
    mapped = long_attributes(rows, columns, [ROW_INDEX]).drop("source").join(ids, ["column", "value"], "left")
    unknown = (mapped.filter(F.col("attr_id").isNull()).select("column", "value").distinct()
               .withColumn("unknown_id", (F.row_number().over(Window.orderBy("column", "value")) - 1
                                          + data.n_attributes).cast("int"))
               .persist(StorageLevel.MEMORY_AND_DISK))
    unknown_attributes = [r["column"] for r in unknown.orderBy("unknown_id").select("column").collect()]
    encoded = (mapped.join(F.broadcast(unknown), ["column", "value"], "left")
               .groupBy(ROW_INDEX)
               .agg(F.array_sort(F.collect_list(F.coalesce("attr_id", "unknown_id").cast("int"))).alias("attrs")))
    records = (rows.select(ROW_INDEX).join(encoded, ROW_INDEX, "left")
               .select(F.coalesce("attrs", F.array().cast("array<int>")).alias("attrs"))
               .groupBy("attrs").agg(F.count(F.lit(1)).alias("weight")))
    if unknown_columns:
        logger.warning("verify: %d synthetic column(s) are not in the sensitive data and are ignored: %s",
                       len(unknown_columns), ", ".join(unknown_columns))
    return SyntheticInput(records, unknown_attributes, unknown_columns, [rows, unknown])


def with_unknown_attributes(data: EncodedData, columns: list[str]) -> EncodedData:
    """``data`` with extra attributes ``A, A+1, ..`` (one per entry of ``columns``, their column
    names): count 0, no value. Unknown columns (e.g. an unobserved multi-value piece) are appended
    to the headers so that every id keeps a column."""
    if not columns:
        return data
    headers = list(data.headers)
    position = {h: i for i, h in enumerate(headers)}
    for column in columns:
        if column not in position:
            position[column] = len(headers)
            headers.append(column)
    extra = pd.DataFrame({
        "attr_id": np.arange(data.n_attributes, data.n_attributes + len(columns), dtype=np.int32),
        "column_index": np.array([position[c] for c in columns], dtype=np.int32),
        "column": columns,
        "value": [""] * len(columns),
        "count": np.zeros(len(columns), dtype=np.int64),
    })
    return replace(data, attributes=pd.concat([data.attributes, extra], ignore_index=True), headers=headers)


# ---------------------------------------------------------------------------------- entry points
def _length(config: Config, length: int | None, n_headers: int) -> int:
    """``length`` (≤ 0 = all columns) or the config's reporting length, capped at the columns."""
    requested = config.reporting_length if length is None else length
    return max(1, replace(config, reporting_length=requested).effective_reporting_length(n_headers))


def verify(spark, sensitive_config: Config, synthetic_path: str, length: int | None = None,
           synthetic_format: str | None = None) -> dict:
    """Audits a synthetic file against the sensitive table of ``sensitive_config`` at its
    resolution ``k`` (``reporting_resolution``).

    Args:
        spark: The SparkSession.
        sensitive_config: Where and how to read the sensitive table (path, delimiter, format,
            use_columns, sensitive_zeros, multi_value_columns, subject_id, record_limit) and k.
        synthetic_path: The synthetic dataset (TSV/CSV/Parquet/Delta).
        length: Longest combination checked; None = the config's ``reporting_length``
            (default 3); ≤ 0 = every column.
        synthetic_format: ``tsv``, ``csv``, ``parquet`` or ``delta``; None = from the extension.

    Returns:
        JSON-ready report: ``passed`` (no record and no combination with support < k), ``k``,
        ``length``, ``synthetic_records``, ``distinct_synthetic_records``, ``min_support``,
        ``records_below_k``, ``combinations_checked``, ``combinations_below_k`` (and by length),
        ``single_attribute_deviations`` (from floor_k(n(a))), ``synthetic_values_unknown_to_sensitive``
        (a count) and ``unknown_columns`` (names). Counts and column names only.

    Raises:
        InputDataError: For unusable inputs (never quoting a value).
    """
    k = sensitive_config.k
    fmt = detect_format(synthetic_path, synthetic_format)
    data = load_encoded(spark, sensitive_config)
    synthetic = read_synthetic(spark, data, sensitive_config, synthetic_path, fmt)
    try:
        report = audit(spark, with_unknown_attributes(data, synthetic.unknown_attributes), synthetic.records, k,
                       _length(sensitive_config, length, len(data.headers)))
    finally:
        synthetic.unpersist()
    report["synthetic_values_unknown_to_sensitive"] = len(synthetic.unknown_attributes)
    report["unknown_columns"] = synthetic.unknown_columns
    logger.info("verify: %s (min support %s, %d record(s) and %d combination(s) below k=%d)",
                "PASSED" if report["passed"] else "FAILED", report["min_support"], report["records_below_k"],
                report["combinations_below_k"], k)
    return report


def verify_release(spark, data: EncodedData, synthetic: DataFrame, k: int, length: int) -> dict:
    """The checks of :func:`verify` on synthetic attribute sets already in the sensitive id space
    (``attrs, weight``: distinct sets with their number of records), e.g. before a pipeline run
    commits its release."""
    weighted = synthetic.select(F.array_sort("attrs").alias("attrs"), "weight")
    n_headers = len(data.headers)
    report = audit(spark, data, weighted, k, min(length, n_headers) if length > 0 else n_headers)
    report["synthetic_values_unknown_to_sensitive"] = 0
    report["unknown_columns"] = []
    return report


def require_k_synthetic(spark, data: EncodedData, synthetic: DataFrame, config: Config, length: int) -> dict:
    """Refuses a release whose synthetic records break the guarantee of their synthesis mode:
    for row_seeded / value_seeded / unseeded every record and combination up to ``length`` must
    have support ≥ k; for aggregate_seeded on k-anonymous aggregates every combination up to
    ``length`` (= R); DP aggregate_seeded has no k guarantee and is not checked.

    Args:
        synthetic: ``attrs, weight`` distinct synthetic attribute sets.

    Returns:
        The report of :func:`verify_release` (or ``{}`` when not applicable).

    Raises:
        PrivacyCheckError: If the guarantee does not hold (the message holds counts only).
    """
    if config.synthesis_mode == "aggregate_seeded" and config.dp_aggregates:
        logger.info("verify: DP aggregate_seeded release, no k-anonymity check applies")
        return {}
    report = verify_release(spark, data, synthetic, config.k, length)
    if config.synthesis_mode == "aggregate_seeded":
        failed = report["combinations_below_k"] > 0
    else:
        failed = not report["passed"]
    if failed:
        raise PrivacyCheckError(
            f"The synthetic data fails the k = {config.k} check: {report['records_below_k']} record(s) and "
            f"{report['combinations_below_k']} combination(s) of up to {report['length']} attributes describe fewer "
            "than k sensitive records. Nothing was committed; report this as a bug with the config used.")
    logger.info("verify: release passes the k = %d check (min record support %s)", config.k, report["min_support"])
    return report
