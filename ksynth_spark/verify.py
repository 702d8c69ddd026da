"""Independent k-anonymity audit of a synthetic dataset against the sensitive table.

The module's one job: check, for ANY synthetic dataset (TSV, CSV, Parquet or Delta, whoever
made it), that every synthetic record and every synthetic combination of up to ``length``
attributes describes at least ``k`` sensitive records. It shares no code with the synthesizer:
both tables are parsed with the load stage's rules (:mod:`ksynth_spark.load`), and supports are
counted with per-attribute bitsets of the sensitive records.

How it runs (what reaches the driver):

* The sensitive records are encoded by :func:`ksynth_spark.load.load_encoded`. Executors turn
  them into per-attribute bitsets (bit ``r`` of attribute ``a`` set iff record ``r`` holds ``a``)
  and OR-reduce them in Spark (``bit_or``); the non-zero words are collected to the driver as
  one ``A × ⌈N/64⌉`` uint64 matrix and broadcast. No sensitive record is collected as a row.
* The synthetic file is read with the same normalisation (trim, ``;``/``:`` escapes, empty and
  ``0`` cells absent outside sensitive-zero columns, multi-value expansion) and its
  ``(column, value)`` pairs are mapped to the sensitive attribute ids. A value absent from the
  sensitive data gets a fresh id whose bitset is empty (support 0). Columns unknown to the
  sensitive data are listed by name and ignored (no sensitive individual has such an
  attribute, so they cannot single anyone out).
* Executors compute ``support`` = popcount(AND of the bitsets) for every distinct synthetic
  record and every distinct synthetic combination up to ``length``; only per-length counts and
  the minimum come back.

The report holds counts and column names only, never a value. The broadcast matrix needs
``A · N / 8`` bytes (about 0.8 MB for the Adult extract); very wide or very long tables need
driver and executor memory to match.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.storagelevel import StorageLevel

from ksynth_spark.aggregate import count_combinations_df
from ksynth_spark.combinations import records_by_size
from ksynth_spark.config import Config
from ksynth_spark.errors import InputDataError, PrivacyCheckError
from ksynth_spark.load import (
    _ROW,
    _Column,
    _long_attributes,
    _malformed_rows_as_input_error,
    load_encoded,
    match_key,
    normalise_name,
    parse_rows,
    read_raw,
    with_row_index,
)
from ksynth_spark.model import EncodedData, arrow_csr, floor_k

log = logging.getLogger(__name__)

SYNTHETIC_FORMATS = ("tsv", "csv", "parquet", "delta")
_EXTENSIONS = {".tsv": "tsv", ".tab": "tsv", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
# Bitset words ANDed at once per kernel block (bounds executor memory to ~16 MB per block).
_BLOCK_WORDS = 2_000_000


# ---------------------------------------------------------------------------------- bitsets
def _popcount_rows(words: np.ndarray) -> np.ndarray:
    """Number of set bits per row of a uint64 matrix."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(words).sum(axis=1, dtype=np.int64)
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)
    return table[words.view(np.uint8)].reshape(words.shape[0], -1).sum(axis=1)


def sensitive_bitsets(data: EncodedData) -> np.ndarray:
    """Per-attribute bitsets of the sensitive records, built on executors.

    Each partition emits ``(attr_id, word, bits)`` for the words its records touch; Spark
    OR-reduces them per ``(attr_id, word)``. The reduced non-zero words are collected to the
    driver (at most ``A · ⌈N/64⌉`` rows of three numbers).

    Returns:
        uint64 matrix of shape ``(A, ⌈N/64⌉)``.
    """
    n_words = max(1, -(-data.n_records // 64))

    def kernel(batches):
        for batch in batches:
            offsets, ids = arrow_csr(batch)
            record_ids = np.asarray(batch.column(batch.schema.get_field_index("record_id")), dtype=np.int64)
            owners = np.repeat(record_ids, np.diff(offsets))
            bits = np.left_shift(np.uint64(1), (owners & 63).astype(np.uint64))
            keys = ids * n_words + (owners >> 6)
            if not keys.size:
                continue
            order = np.argsort(keys, kind="stable")
            keys, bits = keys[order], bits[order]
            starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
            merged = np.bitwise_or.reduceat(bits, starts)
            yield pa.RecordBatch.from_arrays(
                [pa.array((keys[starts] // n_words).astype(np.int32)), pa.array((keys[starts] % n_words).astype(np.int32)),
                 pa.array(merged.view(np.int64))],
                names=["attr_id", "word", "bits"])

    reduced = (data.records.mapInArrow(kernel, "attr_id int, word int, bits long")
               .groupBy("attr_id", "word").agg(F.bit_or("bits").alias("bits")).toArrow())
    matrix = np.zeros((data.n_attributes, n_words), dtype=np.uint64)
    if reduced.num_rows:
        matrix[reduced.column("attr_id").to_numpy(), reduced.column("word").to_numpy()] = (
            reduced.column("bits").to_numpy().astype(np.int64).view(np.uint64))
    return matrix


def set_supports(bitsets: np.ndarray, n_records: int, offsets: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Support of every attribute set of a CSR batch: popcount of the AND of its bitsets.

    The empty set has support ``n_records``; ids beyond the bitset rows must not occur (the
    caller appends empty rows for attributes unknown to the sensitive data).
    """
    supports = np.full(len(offsets) - 1, n_records, dtype=np.int64)
    block = max(1, _BLOCK_WORDS // bitsets.shape[1])
    for rows, matrix in records_by_size(offsets, ids):
        for start in range(0, len(rows), block):
            part = matrix[start:start + block]
            acc = bitsets[part[:, 0]]
            for j in range(1, part.shape[1]):
                acc &= bitsets[part[:, j]]
            supports[rows[start:start + block]] = _popcount_rows(acc)
    return supports


def _supports(spark, sets: DataFrame, bitsets, n_records: int) -> DataFrame:
    """``length, support, weight`` for each row of ``sets`` (``attrs, weight``), on executors."""
    def kernel(batches):
        bits = bitsets.value
        for batch in batches:
            offsets, ids = arrow_csr(batch)
            weights = np.asarray(batch.column(batch.schema.get_field_index("weight")), dtype=np.int64)
            supports = set_supports(bits, n_records, offsets, ids)
            yield pa.RecordBatch.from_arrays([pa.array(np.diff(offsets).astype(np.int32)), pa.array(supports),
                                              pa.array(weights)], names=["length", "support", "weight"])

    return sets.select("attrs", "weight").mapInArrow(kernel, "length int, support long, weight long")


# ---------------------------------------------------------------------------------- the audit
def audit(spark, data: EncodedData, synthetic: DataFrame, k: int, length: int) -> dict:
    """Runs every check on encoded synthetic records (``attrs``: sorted ids of ``data``'s
    attribute table, which may be extended by :func:`with_unknown_attributes`).

    Collected to the driver: the bitset matrix (then broadcast), one row of record figures,
    per-length combination figures and the synthetic single-attribute counts (≤ one row per
    attribute). Never a record or a value.

    Returns:
        The report (see :func:`verify`), without the input-specific keys.
    """
    bitsets = sensitive_bitsets(data)
    log.info("verify: broadcasting %d attribute bitsets (%.1f MB)", bitsets.shape[0], bitsets.nbytes / 1e6)
    shared = spark.sparkContext.broadcast(bitsets)
    try:
        counts = count_combinations_df(synthetic, data, length)
        records = _supports(spark, counts.rows, shared, data.n_records).agg(
            F.count(F.lit(1)).alias("distinct"), F.sum("weight").alias("total"), F.min("support").alias("min_support"),
            F.sum(F.when(F.col("support") < k, F.col("weight")).otherwise(0)).alias("below"),
        ).first()
        combos = (_supports(spark, counts.decoded.withColumnRenamed("count", "weight"), shared, data.n_records)
                  .groupBy("length")
                  .agg(F.count(F.lit(1)).alias("n"), F.sum((F.col("support") < k).cast("long")).alias("below"))
                  .orderBy("length").collect())
        singles = counts.decoded.filter(F.col("length") == 1).select(F.col("attrs")[0].alias("a"), "count").collect()
    finally:
        shared.unpersist()
        for df in (counts.rows, counts.packed, counts.decoded):
            df.unpersist()
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
        "combinations_below_k_by_length": {str(l): below_by_length.get(l, 0) for l in range(1, length + 1)},
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
        records: ``attrs array<int>`` per synthetic row (persisted).
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


def detect_format(path: str, requested: Optional[str]) -> str:
    """The synthetic file's format: ``requested`` or from the extension (``.gz``/``.bz2`` ignored).

    Raises:
        InputDataError: Unknown requested format, or an extension that does not tell.
    """
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
                       sensitive_config: Config) -> tuple[list[_Column], list[str]]:
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
        columns.append(_Column(f"c{i}", name, match_key(raw) in zero_keys, multi_sources.get(name)))
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
                     input_format="csv" if fmt in ("tsv", "csv") else fmt,
                     sensitive_microdata_delimiter="\t" if fmt == "tsv" else ",",
                     subject_id=None, use_columns=[], record_limit=-1, sensitive_zeros=[], multi_value_columns={})
    raw, raw_headers = read_raw(spark, config)
    columns, unknown_columns = _synthetic_columns(raw_headers, data, sensitive_config)
    with _malformed_rows_as_input_error(path):
        rows = parse_rows(with_row_index(raw), columns, None).persist(StorageLevel.MEMORY_AND_DISK)
        rows.count()
    ids = F.broadcast(spark.createDataFrame(data.attributes[["column", "value", "attr_id"]]))
    mapped = _long_attributes(rows, columns).drop("source").join(ids, ["column", "value"], "left")
    unknown = (mapped.filter(F.col("attr_id").isNull()).select("column", "value").distinct()
               .withColumn("unknown_id", (F.row_number().over(Window.orderBy("column", "value")) - 1
                                          + data.n_attributes).cast("int"))
               .persist(StorageLevel.MEMORY_AND_DISK))
    unknown_attributes = [r["column"] for r in unknown.orderBy("unknown_id").select("column").collect()]
    encoded = (mapped.join(F.broadcast(unknown), ["column", "value"], "left")
               .groupBy(_ROW)
               .agg(F.array_sort(F.collect_list(F.coalesce("attr_id", "unknown_id").cast("int"))).alias("attrs")))
    records = (rows.select(_ROW).join(encoded, _ROW, "left")
               .select(F.coalesce("attrs", F.array().cast("array<int>")).alias("attrs")))
    if unknown_columns:
        log.warning("verify: %d synthetic column(s) are not in the sensitive data and are ignored: %s",
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
def _length(config: Config, length: Optional[int], n_headers: int) -> int:
    """``length`` (≤ 0 = all columns) or the config's reporting length, capped at the columns."""
    requested = config.reporting_length if length is None else length
    return max(1, replace(config, reporting_length=requested).effective_reporting_length(n_headers))


def _check_k(k: int) -> None:
    if not isinstance(k, int) or k < 1:
        raise InputDataError(f"k must be an integer >= 1, got {k!r}.")


def verify(spark, sensitive_config: Config, synthetic_path: str, k: int, length: Optional[int],
           synthetic_format: Optional[str] = None) -> dict:
    """Audits a synthetic file against the sensitive table of ``sensitive_config`` at resolution k.

    Args:
        spark: The SparkSession.
        sensitive_config: Where and how to read the sensitive table (path, delimiter, format,
            use_columns, sensitive_zeros, multi_value_columns, subject_id, record_limit).
        synthetic_path: The synthetic dataset (TSV/CSV/Parquet/Delta).
        k: The resolution to check.
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
    _check_k(k)
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
    log.info("verify: %s (min support %s, %d record(s) and %d combination(s) below k=%d)",
             "PASSED" if report["passed"] else "FAILED", report["min_support"], report["records_below_k"],
             report["combinations_below_k"], k)
    return report


def verify_release(spark, data: EncodedData, synthetic_records: DataFrame, k: int, length: int) -> dict:
    """The checks of :func:`verify` on in-memory synthetic records (``attrs`` in the sensitive
    attribute-id space), e.g. before a pipeline run commits its release."""
    _check_k(k)
    records = synthetic_records.select(F.array_sort("attrs").alias("attrs"))
    n_headers = len(data.headers)
    report = audit(spark, data, records, k, min(length, n_headers) if length > 0 else n_headers)
    report["synthetic_values_unknown_to_sensitive"] = 0
    report["unknown_columns"] = []
    return report


def require_k_synthetic(spark, data: EncodedData, synthetic_records: DataFrame, config: Config, length: int) -> dict:
    """Refuses a release whose synthetic records break the guarantee of their synthesis mode
    (spec §4.5): for row_seeded / value_seeded / unseeded every record and combination up to
    ``length`` must have support ≥ k; for aggregate_seeded on k-anonymous aggregates every
    combination up to ``length`` (= R); DP aggregate_seeded has no k guarantee and is not checked.

    Returns:
        The report of :func:`verify_release` (or ``{}`` when not applicable).

    Raises:
        PrivacyCheckError: If the guarantee does not hold (the message holds counts only).
    """
    if config.synthesis_mode == "aggregate_seeded" and config.dp_aggregates:
        log.info("verify: DP aggregate_seeded release, no k-anonymity check applies")
        return {}
    report = verify_release(spark, data, synthetic_records, config.k, length)
    if config.synthesis_mode == "aggregate_seeded":
        failed = report["combinations_below_k"] > 0
    else:
        failed = not report["passed"]
    if failed:
        raise PrivacyCheckError(
            f"The synthetic data fails the k = {config.k} check: {report['records_below_k']} record(s) and "
            f"{report['combinations_below_k']} combination(s) of up to {report['length']} attributes describe fewer "
            "than k sensitive records. Nothing was committed; report this as a bug with the config used.")
    log.info("verify: release passes the k = %d check (min record support %s)", config.k, report["min_support"])
    return report
