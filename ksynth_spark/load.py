"""Load stage: from the sensitive table to encoded distinct rows, on the cluster.

Order of operations: read (every cell a string) → column metadata → ``record_limit`` →
per-row normalisation / zero rule / multi-value split → subject-id join → multi-value
expansion → dictionary encoding → distinct rows with their multiplicities.

At disk speed: without ``subject_id`` and ``record_limit`` the input is read exactly once, and
the first thing done with it is to count identical raw rows (a hash aggregation with partial
counts in every task). Everything after that — normalisation, the attribute dictionary,
encoding — runs on the distinct raw rows, whose number follows the variety of the data, not
N. ``subject_id`` (records merged per subject) and ``record_limit`` (the first rows of the file)
need a pass per record first.

Only small metadata reaches the driver: the header row, per-partition row counts (with
``record_limit``), conflict flags per column (with ``subject_id``), and the attribute
dictionary (distinct attributes with their counts). The sensitive rows are never collected.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.storagelevel import StorageLevel

from ksynth_spark.config import Config
from ksynth_spark.errors import InputDataError
from ksynth_spark.inputs import (
    Column,
    malformed_rows_as_input_error,
    malformed_rows_error,
    read_raw,
    select_columns,
    undecodable_input_error,
)
from ksynth_spark.model import EncodedData, MultiValueSource, attribute_table

logger = logging.getLogger(__name__)

ROW_INDEX = "__row_index"
_SUBJECT = "__subject"
_WEIGHT = "__weight"


# ---------------------------------------------------------------------------------- rows
def with_row_index(df: DataFrame, name: str = ROW_INDEX) -> DataFrame:
    """Adds a 0-based consecutive row index in the DataFrame's current order (no collect of rows).

    A single-partition input (e.g. a gzip CSV) is numbered by ``monotonically_increasing_id``
    alone. Otherwise per-partition offsets are added (a small aggregate collected to the driver)
    and the input is persisted first so both passes see the same partitions.
    """
    if df.rdd.getNumPartitions() == 1:
        return df.withColumn(name, F.monotonically_increasing_id())
    marked = df.withColumn("__mono", F.monotonically_increasing_id()).withColumn("__pid", F.spark_partition_id())
    marked = marked.persist(StorageLevel.MEMORY_AND_DISK)
    counts = sorted((r["__pid"], r["count"]) for r in marked.groupBy("__pid").count().collect())
    offsets, running = [], 0
    for pid, count in counts:
        offsets.append((pid, running))
        running += count
    if not offsets:
        return marked.withColumn(name, F.lit(0).cast("long")).drop("__mono", "__pid")
    offset_col = F.create_map(*[F.lit(x) for pair in offsets for x in pair])
    local = F.col("__mono") - F.shiftleft(F.col("__pid").cast("long"), 33)
    return marked.withColumn(name, (offset_col[F.col("__pid")] + local).cast("long")).drop("__mono", "__pid")


def _normalised_value(col, sensitive_zero: bool):
    value = F.replace(F.replace(F.trim(col), F.lit(";"), F.lit("<semicolon>")), F.lit(":"), F.lit("<colon>"))
    absent = (value == "") | (F.lit(not sensitive_zero) & (value == "0"))
    return F.when(col.isNull() | absent, None).otherwise(value)


def _pieces(col, column: Column):
    split = F.split(F.coalesce(col, F.lit("")), re.escape(column.delimiter or ""), -1)
    normalised = F.transform(split, lambda piece: _normalised_value(piece, column.sensitive_zero))
    return F.array_sort(F.array_distinct(F.filter(normalised, lambda piece: piece.isNotNull())))


def parse_rows(df: DataFrame, columns: list[Column], keep: list[str]) -> DataFrame:
    """Per-row normalisation: single-value columns become nullable strings, multi-value columns
    sorted arrays of distinct pieces; the columns named in ``keep`` pass through."""
    selected = [F.col(name) for name in keep]
    for column in columns:
        source = F.col(column.source)
        value = _pieces(source, column) if column.delimiter else _normalised_value(source, column.sensitive_zero)
        selected.append(value.alias(column.source))
    return df.select(selected)


def join_subjects(df: DataFrame, columns: list[Column], subject_source: str, subject_id: str) -> DataFrame:
    """Merges rows per subject id (``lower(trim(id))``): one record per subject.

    Collected to the driver: whether a row has an empty id, and one conflict flag per
    single-value column (never a value).

    Raises:
        InputDataError: Empty ids, or single-value columns with conflicting values.
    """
    with_subject = df.withColumn(_SUBJECT, F.lower(F.trim(F.coalesce(F.col(subject_source), F.lit("")))))
    if with_subject.filter(F.col(_SUBJECT) == "").limit(1).count():
        raise InputDataError(f"Some records have a missing/empty subject id in column '{subject_id}'. "
                             "Fill the ids or remove those rows.")
    parsed = parse_rows(with_subject, columns, [_SUBJECT, ROW_INDEX])
    aggregations, conflicts = [], []
    for column in columns:
        c = F.col(column.source)
        if column.delimiter:
            aggregations.append(F.array_sort(F.array_distinct(F.flatten(F.collect_list(c)))).alias(column.source))
        else:
            aggregations.append(F.min_by(c, F.when(c.isNotNull(), F.col(ROW_INDEX))).alias(column.source))
            aggregations.append((F.countDistinct(c) > 1).alias(f"{column.source}__conflict"))
            conflicts.append(column)
    grouped = parsed.groupBy(_SUBJECT).agg(*aggregations).persist(StorageLevel.MEMORY_AND_DISK)
    if conflicts:
        flags = grouped.agg(*[F.max(f"{c.source}__conflict").alias(c.source) for c in conflicts]).first()
        assert flags is not None  # a global aggregate has one row
        flagged = [c.name for c in conflicts if flags[c.source]]
        if flagged:
            raise InputDataError(
                "Records with the same subject id have different values in column(s): " + ", ".join(flagged)
                + ". Declare them as multi_value_columns or fix the data."
            )
    return grouped.select(*[c.source for c in columns]).withColumn(_WEIGHT, F.lit(1).cast("long"))


# ---------------------------------------------------------------------------------- encoding
def _expanded_attribute(name: str):
    """Element function for ``F.transform``: a piece becomes attribute ``(<name>_<piece>, "1")``.

    (A factory, because ``F.transform`` reads a second lambda parameter as the element index.)
    """
    def piece_to_attribute(piece):
        return F.struct(F.concat(F.lit(name + "_"), piece).alias("column"), F.lit("1").alias("value"),
                        F.lit(name).alias("source"))
    return piece_to_attribute


def long_attributes(df: DataFrame, columns: list[Column], keep: list[str]) -> DataFrame:
    """``keep`` columns plus ``column, value, source`` for every present attribute of every row;
    multi-value pieces expand to ``<header>_<piece>`` with value ``"1"``."""
    parts = []
    for column in columns:
        c = F.col(column.source)
        if column.delimiter:
            parts.append(F.transform(c, _expanded_attribute(column.name)))
        else:
            parts.append(F.when(c.isNull(), F.array()).otherwise(F.array(F.struct(
                F.lit(column.name).alias("column"), c.alias("value"), F.lit(column.name).alias("source")))))
    exploded = df.select(*[F.col(k) for k in keep], F.explode(F.flatten(F.array(*parts))).alias("a"))
    return exploded.select(*keep, "a.column", "a.value", "a.source")


def final_headers(columns: list[Column],
                  expanded: dict[str, list[str]]) -> tuple[list[str], dict[str, MultiValueSource]]:
    """Expanded multi-value columns replace their source, sorted among themselves.

    Raises:
        InputDataError: If an expanded name equals another column name.
    """
    headers: list[str] = []
    sources: dict[str, MultiValueSource] = {}
    for column in columns:
        if column.delimiter:
            for name in sorted(expanded.get(column.name, [])):
                headers.append(name)
                sources[name] = MultiValueSource(column.name, name[len(column.name) + 1:], column.delimiter)
        else:
            headers.append(column.name)
    if len(set(headers)) != len(headers):
        raise InputDataError("A multi-value column expands to a column name that already exists "
                             "(<column>_<value> equals another header). Rename that column in the data.")
    return headers, sources


def _lookup_in(lookup):
    """Element function for ``F.transform``: a piece becomes its id in map ``lookup``."""
    def piece_to_id(piece):
        return F.try_element_at(lookup, piece)
    return piece_to_id


#: A column with more distinct values than this is encoded by a broadcast join with its
#: dictionary instead of a literal map in the query plan (a plan holding a map of 100,000
#: literals took minutes to analyse; a join of that size takes a second).
_LITERAL_MAP_MAX = 1_000


def _ids_by_column(attributes) -> dict[str, dict[str, int]]:
    """``column -> value -> attribute id`` from the attribute table."""
    ids_by_column: dict[str, dict[str, int]] = {}
    for attr_id, column, value in zip(attributes["attr_id"], attributes["column"], attributes["value"], strict=True):
        ids_by_column.setdefault(column, {})[value] = int(attr_id)
    return ids_by_column


def _join_large_dictionaries(rows: DataFrame, columns: list[Column],
                             ids_by_column: dict[str, dict[str, int]]) -> tuple[DataFrame, dict[str, str]]:
    """Joins every plain column with more than :data:`_LITERAL_MAP_MAX` values to its dictionary
    (broadcast: distinct values only). Returns the rows with one id column per such column and
    ``column name -> id column``."""
    joined: dict[str, str] = {}
    for position, column in enumerate(columns):
        by_value = ids_by_column.get(column.name, {})
        if column.delimiter or len(by_value) <= _LITERAL_MAP_MAX:
            continue
        key, ident = f"__dict_value_{position}", f"__dict_id_{position}"
        dictionary = rows.sparkSession.createDataFrame(
            pd.DataFrame({key: list(by_value), ident: np.fromiter(by_value.values(), np.int32, len(by_value))}))
        rows = rows.join(F.broadcast(dictionary), F.col(column.source) == F.col(key), "left").drop(key)
        joined[column.name] = ident
    return rows, joined


def _attribute_ids(ids_by_column: dict[str, dict[str, int]], columns: list[Column],
                   multi_value: dict[str, MultiValueSource], joined: dict[str, str]) -> list:
    """One ``array<int>`` expression per used column: the attribute ids of a parsed row's cells.

    Each column's value→id dictionary (small: distinct values only) is a literal map in the
    query plan, so encoding is a single narrow projection with no join or shuffle; a column
    with many values reads its id from the column ``joined`` names instead. A multi-value
    column maps each piece to the id of its expanded attribute ``(<column>_<piece>, "1")``.
    """
    parts = []
    for column in columns:
        c = F.col(column.source)
        if column.name in joined:
            parts.append(F.array(F.col(joined[column.name])))
            continue
        if column.delimiter:
            by_piece = {source.piece: ids_by_column[name]["1"] for name, source in multi_value.items()
                        if source.source == column.name}
        else:
            by_piece = ids_by_column.get(column.name, {})
        if not by_piece:
            continue
        lookup = F.create_map(*[F.lit(x) for item in by_piece.items() for x in item])
        if column.delimiter:
            parts.append(F.transform(c, _lookup_in(lookup)))
        else:
            parts.append(F.array(F.when(c.isNotNull(), F.try_element_at(lookup, c))))
    return parts


def encode(rows: DataFrame, columns: list[Column]) -> tuple[DataFrame, list[str], pd.DataFrame, dict]:
    """Dictionary-encodes weighted parsed rows (``__weight`` = records per row) into distinct rows.

    Collected to the driver: the distinct attributes with their counts (the attribute table).

    Returns:
        ``(rows, headers, attributes, multi_value)``; rows has ``attrs, weight`` (distinct).
    """
    distinct = (long_attributes(rows, columns, [_WEIGHT]).groupBy("column", "value", "source")
                .agg(F.sum(_WEIGHT).alias("count")).collect())
    expanded: dict[str, list[str]] = {}
    for row in distinct:
        if row["column"] != row["source"]:
            expanded.setdefault(row["source"], []).append(row["column"])
    headers, multi_value = final_headers(columns, expanded)
    attributes = attribute_table([(r["column"], r["value"], int(r["count"])) for r in distinct], headers)
    ids_by_column = _ids_by_column(attributes)
    rows, joined = _join_large_dictionaries(rows, columns, ids_by_column)
    parts = _attribute_ids(ids_by_column, columns, multi_value, joined)
    ids = F.flatten(F.array(*parts)) if parts else F.array()
    attrs = F.array_sort(F.filter(ids, lambda x: x.isNotNull())).cast("array<int>")
    encoded = (rows.select(attrs.alias("attrs"), F.col(_WEIGHT)).groupBy("attrs")
               .agg(F.sum(_WEIGHT).alias("weight")))
    return encoded, headers, attributes, multi_value


# ---------------------------------------------------------------------------------- stage
def _csv_line_counts(spark, raw: DataFrame, headers: list[str], config: Config, cached: list) -> DataFrame:
    """Distinct data lines of the CSV input with their counts, parsed: ``c0..c{n-1}, __weight``.

    The input is read once as text and identical lines are counted first (grouping one string
    column is several times faster than grouping the parsed columns: 27 s against 107 s for the
    10^7-row table on 2 cores); only the distinct lines are then parsed with the CSV parser and
    the same options as :func:`ksynth_spark.inputs.read_raw`. The header line of every file
    (with or without a byte-order mark) is removed. Collected to the driver: the counts of the
    distinct lines that equal the header (at most two numbers) and the numbers of malformed and
    undecodable lines. Only used for UTF-8 input (the text reader has no encoding option).

    Raises:
        InputDataError: Lines whose number of fields differs from the header (named by line number),
            or bytes that are not valid UTF-8.
    """
    files = raw.inputFiles()
    n = len(headers)
    counted = (spark.read.text(files).filter(F.col("value") != "").groupBy("value")
               .agg(F.count(F.lit(1)).alias(_WEIGHT)))
    schema = ", ".join(f"c{i} string" for i in range(n)) + ", __bad string"
    options = {"sep": config.sensitive_microdata_delimiter, "quote": '"', "escape": '"', "mode": "PERMISSIVE",
               "columnNameOfCorruptRecord": "__bad", "ignoreLeadingWhiteSpace": "false",
               "ignoreTrailingWhiteSpace": "false"}
    parsed = counted.select(F.from_csv("value", schema, options).alias("r"), "value", _WEIGHT).select(
        "r.*", F.col("value").startswith("\ufeff").alias("__bom"), _WEIGHT).persist(StorageLevel.MEMORY_AND_DISK)
    cached.append(parsed)
    first = F.regexp_replace(F.col("c0"), "^\ufeff", "")
    is_header = F.lit(True)
    for i, header in enumerate(headers):
        is_header = is_header & ((first if i == 0 else F.col(f"c{i}")) == F.lit(header))
    undecodable = F.lit(False)
    for i in range(n):
        undecodable = undecodable | F.col(f"c{i}").contains("\ufffd")
    checks = parsed.agg(
        F.sum(F.when(F.col("__bad").isNotNull(), F.col(_WEIGHT)).otherwise(0)).alias("bad"),
        F.sum(F.when(undecodable, F.col(_WEIGHT)).otherwise(0)).alias("undecodable"),
        F.sum(F.when(is_header & F.col("__bom"), F.col(_WEIGHT)).otherwise(0)).alias("bom_headers")).first()
    if checks["bad"]:
        raise malformed_rows_error(config.sensitive_microdata_path, files, n, config.sensitive_microdata_delimiter)
    if checks["undecodable"]:
        raise undecodable_input_error(config.sensitive_microdata_path)
    plain_headers = len(files) - int(checks["bom_headers"] or 0)
    weight = F.when(is_header & F.col("__bom"), F.lit(0)).when(is_header, F.col(_WEIGHT) - plain_headers) \
        .otherwise(F.col(_WEIGHT))
    return parsed.select(*[F.col(f"c{i}") for i in range(n)], weight.alias(_WEIGHT)).filter(F.col(_WEIGHT) > 0)


def _weighted_rows(spark, raw: DataFrame, headers: list[str], columns: list[Column], subject_source: str | None,
                   config: Config, cached: list) -> DataFrame:
    """Parsed rows with a ``__weight`` column (records per row).

    Fast path: identical rows are counted first (one read of the input), then parsed. With
    ``record_limit`` the rows are numbered first; with ``subject_id`` records are merged.
    """
    used = [c.source for c in columns]
    if config.record_limit > 0 or subject_source:
        indexed = with_row_index(raw)
        if config.record_limit > 0:
            indexed = indexed.filter(F.col(ROW_INDEX) < config.record_limit)
        if subject_source:
            return join_subjects(indexed, columns, subject_source, config.subject_id or "")
        raw = indexed.drop(ROW_INDEX)
        counted = raw.groupBy(*used).agg(F.count(F.lit(1)).alias(_WEIGHT))
    elif config.input_format == "csv" and config.sensitive_microdata_encoding == "utf-8":
        counted = _csv_line_counts(spark, raw, headers, config, cached)
    else:
        counted = raw.groupBy(*used).agg(F.count(F.lit(1)).alias(_WEIGHT))
    return parse_rows(counted, columns, [_WEIGHT])


def load_encoded(spark, config: Config) -> EncodedData:
    """Runs the whole load stage and returns the encoded, persisted distinct rows.

    Raises:
        InputDataError: For every unusable input (see :mod:`ksynth_spark.inputs`).
    """
    raw, raw_headers = read_raw(spark, config)
    columns, subject_source = select_columns(raw_headers, config)
    cached: list = []
    try:
        with malformed_rows_as_input_error(config.sensitive_microdata_path):
            weighted = _weighted_rows(spark, raw, raw_headers, columns, subject_source, config, cached)
            cached.append(weighted.persist(StorageLevel.MEMORY_AND_DISK))
            rows, headers, attributes, multi_value = encode(weighted, columns)
            rows = rows.persist(StorageLevel.MEMORY_AND_DISK)
            totals = rows.agg(F.count(F.lit(1)).alias("d"), F.sum("weight").alias("n")).first()
    finally:
        for frame in cached:
            frame.unpersist()
    assert totals is not None  # a global aggregate has one row
    n_rows, n_records = int(totals["d"]), int(totals["n"] or 0)
    if n_records == 0:
        rows.unpersist()
        raise InputDataError(f"{config.sensitive_microdata_path} has a header but no data rows: nothing to release.")
    logger.info("Loaded %d records (%d distinct rows), %d columns, %d distinct attributes", n_records, n_rows,
                len(headers), len(attributes))
    return EncodedData(rows=rows, attributes=attributes, headers=headers, n_records=n_records, n_rows=n_rows,
                       multi_value=multi_value)
