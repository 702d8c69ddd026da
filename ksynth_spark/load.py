"""Load stage: from the sensitive table to encoded attribute sets (spec §1), on the cluster.

Order of operations (spec §1.7): read (all cells as strings) → column metadata →
``record_limit`` → per-row normalisation / zero rule / multi-value split → subject-id join →
multi-value expansion → dictionary encoding. Only small metadata reaches the driver: the header
row, per-partition row counts, conflict flags per column and the attribute dictionary
(distinct attributes with their counts). The sensitive rows themselves are never collected.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.storagelevel import StorageLevel

from ksynth_spark import io
from ksynth_spark.config import Config
from ksynth_spark.errors import InputDataError
from ksynth_spark.model import EncodedData, MultiValueSource, attribute_table

log = logging.getLogger(__name__)

_ROW = "__row_index"
_SUBJECT = "__subject"


def normalise_name(raw: str) -> str:
    """Spec §1.3 for header names and values: trim, ``;`` → ``<semicolon>``, ``:`` → ``<colon>``."""
    return raw.strip().replace(";", "<semicolon>").replace(":", "<colon>")


def match_key(raw: str) -> str:
    """Key used to match configured names against raw headers (spec §1.2): ``lower(trim(x))``."""
    return raw.strip().lower()


@dataclass
class _Column:
    """A used input column: its position name in the raw DataFrame and its normalised name."""

    source: str          # name of the column in the raw DataFrame (positional)
    name: str            # normalised header (spec §1.3)
    sensitive_zero: bool
    delimiter: Optional[str]  # multi-value delimiter, or None


# ---------------------------------------------------------------------------------- reading
def read_raw(spark, config: Config) -> tuple[DataFrame, list[str]]:
    """Reads the sensitive table with every cell as a string.

    Returns:
        ``(df, headers)``: df has positional string columns ``c0 .. c{n-1}`` (null = empty
        cell) and headers are the raw header names. Only the header row is read on the driver.

    Raises:
        InputDataError: Missing path, unreadable format, no header, or rows whose number of
            fields differs from the header.
    """
    path = config.sensitive_microdata_path
    fmt = config.input_format
    try:
        if fmt == "table":
            if not spark.catalog.tableExists(path):
                raise InputDataError(f"Sensitive table '{path}' does not exist in the catalog. "
                                     "Set sensitive_microdata_path to an existing table name (db.table).")
            df = spark.table(path)
        else:
            if not io.exists(spark, path):
                raise InputDataError(f"Sensitive data not found: {path}. Check sensitive_microdata_path "
                                     "(relative paths are resolved against the config file's directory).")
            if fmt == "csv":
                return _read_csv(spark, path, config.sensitive_microdata_delimiter)
            df = spark.read.format(fmt).load(path)
        headers = list(df.columns)
        df = df.select([F.col(f"`{h}`").cast("string").alias(f"c{i}") for i, h in enumerate(headers)])
        return df, headers
    except InputDataError:
        raise
    except Exception as exc:  # Spark's message may quote file content; do not pass it on
        raise InputDataError(
            f"Could not read {path} as {fmt} ({type(exc).__name__}). Check input_format "
            "(csv, parquet, delta or table) and sensitive_microdata_delimiter match the data."
        ) from None


def _read_csv(spark, path: str, delimiter: str) -> tuple[DataFrame, list[str]]:
    import csv

    first = spark.read.text(path).limit(1).collect()
    if not first or not first[0][0].strip():
        raise InputDataError(f"{path} is empty: the sensitive file needs a header row and at least one data row.")
    line = first[0][0].lstrip("\ufeff")
    headers = next(csv.reader([line], delimiter=delimiter, quotechar='"')) if len(delimiter) == 1 else line.split(delimiter)
    schema = ", ".join(f"c{i} string" for i in range(len(headers)))
    df = (
        spark.read.schema(schema)
        .option("header", "true")
        .option("enforceSchema", "true")
        .option("sep", delimiter)
        .option("quote", '"')
        .option("escape", '"')
        .option("mode", "FAILFAST")
        .option("ignoreLeadingWhiteSpace", "false")
        .option("ignoreTrailingWhiteSpace", "false")
        .csv(path)
    )
    return df, headers


# ---------------------------------------------------------------------------------- columns
def select_columns(headers: list[str], config: Config) -> tuple[list[_Column], Optional[str]]:
    """Resolves used columns, sensitive zeros, multi-value columns and the subject-id column.

    Returns:
        ``(columns, subject_source)`` in file order.

    Raises:
        InputDataError: Unknown configured column names or colliding normalised names.
    """
    by_key: dict[str, list[int]] = {}
    for i, raw in enumerate(headers):
        by_key.setdefault(match_key(raw), []).append(i)

    def resolve(names, key_name: str) -> dict[str, str]:
        found = {}
        for name in names:
            if match_key(name) not in by_key:
                raise InputDataError(
                    f"Column '{name}' in {key_name} is not in the sensitive data. Known columns: "
                    + ", ".join(repr(h) for h in headers) + f". Fix or remove it from {key_name}."
                )
            found[match_key(name)] = name
        return found

    subject_key = None
    if config.subject_id:
        if match_key(config.subject_id) not in by_key:
            raise InputDataError(f"subject_id column '{config.subject_id}' is not in the sensitive data. Known "
                                 "columns: " + ", ".join(repr(h) for h in headers) + ".")
        subject_key = match_key(config.subject_id)
    wanted = resolve(config.use_columns, "use_columns")
    zeros = resolve(config.sensitive_zeros, "sensitive_zeros")
    multi = {match_key(k): v for k, v in config.multi_value_columns.items()}
    resolve(config.multi_value_columns.keys(), "multi_value_columns")

    columns: list[_Column] = []
    for i, raw in enumerate(headers):
        key = match_key(raw)
        if key == subject_key or (wanted and key not in wanted):
            continue
        columns.append(_Column(f"c{i}", normalise_name(raw), key in zeros, multi.get(key)))
    if not columns:
        raise InputDataError("No attribute columns are left to use: check use_columns and subject_id.")
    seen: dict[str, str] = {}
    for column in columns:
        if column.name in seen:
            raise InputDataError(
                f"Two used columns have the same name '{column.name}' after trimming/normalisation. "
                "Rename one of them in the data or exclude one with use_columns."
            )
        seen[column.name] = column.source
    subject_source = f"c{by_key[subject_key][0]}" if subject_key else None
    return columns, subject_source


# ---------------------------------------------------------------------------------- rows
def with_row_index(df: DataFrame, name: str = _ROW) -> DataFrame:
    """Adds a 0-based consecutive row index in the DataFrame's current order (no collect).

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
    value = F.regexp_replace(F.regexp_replace(F.trim(col), ";", "<semicolon>"), ":", "<colon>")
    absent = (value == "") | (F.lit(not sensitive_zero) & (value == "0"))
    return F.when(col.isNull() | absent, None).otherwise(value)


def _pieces(col, column: _Column):
    split = F.split(F.coalesce(col, F.lit("")), re.escape(column.delimiter), -1)
    normalised = F.transform(split, lambda piece: _normalised_value(piece, column.sensitive_zero))
    return F.array_sort(F.array_distinct(F.filter(normalised, lambda piece: piece.isNotNull())))


def parse_rows(df: DataFrame, columns: list[_Column], subject_source: Optional[str]) -> DataFrame:
    """Per-row normalisation (spec §1.3–§1.6): single-value columns become nullable strings,
    multi-value columns become sorted arrays of distinct pieces."""
    selected = [F.col(_ROW)]
    if subject_source:
        selected.append(F.lower(F.trim(F.coalesce(F.col(subject_source), F.lit("")))).alias(_SUBJECT))
    for column in columns:
        source = F.col(column.source)
        value = _pieces(source, column) if column.delimiter else _normalised_value(source, column.sensitive_zero)
        selected.append(value.alias(column.source))
    return df.select(selected)


def join_subjects(df: DataFrame, columns: list[_Column], subject_id: str) -> DataFrame:
    """Spec §1.7: merges rows per subject id; records ordered by id.

    Collected to the driver: the number of rows with an empty id and one conflict flag per
    single-value column (never a value).

    Raises:
        InputDataError: Empty ids, or single-value columns with conflicting values.
    """
    empty_ids = df.filter(F.col(_SUBJECT) == "").limit(1).count()
    if empty_ids:
        raise InputDataError(f"Some records have a missing/empty Subject ID in column '{subject_id}'. "
                             "Fill the ids or remove those rows.")
    aggregations, conflicts = [], []
    for column in columns:
        c = F.col(column.source)
        if column.delimiter:
            aggregations.append(F.array_sort(F.array_distinct(F.flatten(F.collect_list(c)))).alias(column.source))
        else:
            aggregations.append(F.min_by(c, F.when(c.isNotNull(), F.col(_ROW))).alias(column.source))
            aggregations.append((F.countDistinct(c) > 1).alias(f"{column.source}__conflict"))
            conflicts.append(column)
    grouped = df.groupBy(_SUBJECT).agg(*aggregations).persist(StorageLevel.MEMORY_AND_DISK)
    if conflicts:
        flags = grouped.agg(*[F.max(f"{c.source}__conflict").alias(c.source) for c in conflicts]).first()
        flagged = [c.name for c in conflicts if flags[c.source]]
        if flagged:
            raise InputDataError(
                "Records with the same subject id have different values in column(s): " + ", ".join(flagged)
                + ". Declare them as multi_value_columns or fix the data."
            )
    merged = grouped.select(_SUBJECT, *[c.source for c in columns]).orderBy(_SUBJECT)
    return with_row_index(merged)


# ---------------------------------------------------------------------------------- encoding
def _expanded_attribute(name: str):
    """Element function for ``F.transform``: a piece becomes attribute ``(<name>_<piece>, "1")``.

    (A factory, because ``F.transform`` reads a second lambda parameter as the element index.)
    """
    def piece_to_attribute(piece):
        return F.struct(F.concat(F.lit(name + "_"), piece).alias("column"), F.lit("1").alias("value"),
                        F.lit(name).alias("source"))
    return piece_to_attribute


def _long_attributes(df: DataFrame, columns: list[_Column]) -> DataFrame:
    """(row, column, value) for every present attribute; multi-value pieces expand to
    ``<header>_<piece>`` with value ``"1"``."""
    parts = []
    for column in columns:
        c = F.col(column.source)
        if column.delimiter:
            parts.append(F.transform(c, _expanded_attribute(column.name)))
        else:
            parts.append(F.when(c.isNull(), F.array()).otherwise(F.array(F.struct(
                F.lit(column.name).alias("column"), c.alias("value"), F.lit(column.name).alias("source")))))
    exploded = df.select(F.col(_ROW), F.explode(F.flatten(F.array(*parts))).alias("a"))
    return exploded.select(_ROW, "a.column", "a.value", "a.source")


def final_headers(columns: list[_Column], expanded: dict[str, list[str]]) -> tuple[list[str], dict[str, MultiValueSource]]:
    """Spec §1.6: expanded columns replace their source, sorted among themselves.

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


def _attribute_ids(attributes, columns: list[_Column], multi_value: dict[str, MultiValueSource]) -> list:
    """One ``array<int>`` expression per used column: the attribute ids of a parsed row's cells.

    Each column's value→id dictionary (small: distinct values only) is a literal map in the
    query plan, so encoding is a single narrow projection with no join or shuffle. A multi-value
    column maps each piece to the id of its expanded attribute ``(<column>_<piece>, "1")``.
    """
    ids_by_column: dict[str, dict[str, int]] = {}
    for attr_id, column, value in zip(attributes["attr_id"], attributes["column"], attributes["value"]):
        ids_by_column.setdefault(column, {})[value] = int(attr_id)
    parts = []
    for column in columns:
        c = F.col(column.source)
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


def encode(spark, rows: DataFrame, columns: list[_Column]) -> tuple[DataFrame, list[str], object, dict]:
    """Dictionary-encodes the parsed rows.

    Collected to the driver: the distinct attributes with their counts (the attribute table).

    Returns:
        ``(records, headers, attributes, multi_value)``; records has ``record_id, attrs``.
    """
    distinct = _long_attributes(rows, columns).groupBy("column", "value", "source").count().collect()
    expanded: dict[str, list[str]] = {}
    for row in distinct:
        if row["column"] != row["source"]:
            expanded.setdefault(row["source"], []).append(row["column"])
    headers, multi_value = final_headers(columns, expanded)
    attributes = attribute_table([(r["column"], r["value"], int(r["count"])) for r in distinct], headers)
    parts = _attribute_ids(attributes, columns, multi_value)
    ids = F.flatten(F.array(*parts)) if parts else F.array()
    attrs = F.array_sort(F.filter(ids, lambda x: x.isNotNull())).cast("array<int>")
    records = rows.select(F.col(_ROW).alias("record_id"), attrs.alias("attrs"))
    return records, headers, attributes, multi_value


@contextmanager
def _malformed_rows_as_input_error(path: str):
    """Turns Spark's malformed-CSV failure (whose message quotes the row) into a clean error."""
    try:
        yield
    except Exception as exc:
        if "MALFORMED" in str(exc).upper():
            raise InputDataError(
                f"{path} has rows whose number of fields differs from the header (or broken quoting). "
                "Every row must have as many fields as the header."
            ) from None
        raise


def load_encoded(spark, config: Config) -> EncodedData:
    """Runs the whole load stage and returns the encoded, persisted records.

    Raises:
        InputDataError: For every unusable input (see the functions above).
    """
    raw, raw_headers = read_raw(spark, config)
    columns, subject_source = select_columns(raw_headers, config)
    with _malformed_rows_as_input_error(config.sensitive_microdata_path):
        indexed = with_row_index(raw)
        if config.record_limit > 0:
            indexed = indexed.filter(F.col(_ROW) < config.record_limit)
        parsed = parse_rows(indexed, columns, subject_source).persist(StorageLevel.MEMORY_AND_DISK)
        rows = join_subjects(parsed, columns, config.subject_id) if subject_source else parsed
        records, headers, attributes, multi_value = encode(spark, rows, columns)
        records = records.persist(StorageLevel.MEMORY_AND_DISK)
        n_records = records.count()
    parsed.unpersist()
    if n_records == 0:
        records.unpersist()
        raise InputDataError(f"{config.sensitive_microdata_path} has a header but no data rows: nothing to release.")
    log.info("Loaded %d records, %d columns, %d distinct attributes", n_records, len(headers), len(attributes))
    return EncodedData(records=records, attributes=attributes, headers=headers, n_records=n_records,
                       multi_value=multi_value)
