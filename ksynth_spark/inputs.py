"""Input: where the sensitive table is, how it reads, and which of its columns are used.

The module's one job is to turn ``sensitive_microdata_path`` / ``input_format`` into a
DataFrame of raw string cells with positional column names ``c0 .. c{n-1}`` plus the raw header
names, and to resolve the configured column names (``use_columns``, ``sensitive_zeros``,
``multi_value_columns``, ``subject_id``) against those headers. Only the header row reaches the
driver. Errors name files, line numbers, column counts and configured names, never a cell value.
"""

from __future__ import annotations

import csv
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ksynth_spark import io
from ksynth_spark.config import Config
from ksynth_spark.errors import InputDataError


def normalise_name(raw: str) -> str:
    """Header names and values: trim, ``;`` → ``<semicolon>``, ``:`` → ``<colon>``."""
    return raw.strip().replace(";", "<semicolon>").replace(":", "<colon>")


def match_key(raw: str) -> str:
    """Key used to match configured names against raw headers: ``lower(trim(x))``."""
    return raw.strip().lower()


@dataclass(frozen=True)
class Column:
    """A used input column: its positional name in the raw DataFrame and its normalised name."""

    source: str          # name of the column in the raw DataFrame (positional: c0, c1, ...)
    name: str            # normalised header
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
def select_columns(headers: list[str], config: Config) -> tuple[list[Column], Optional[str]]:
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

    columns: list[Column] = []
    for i, raw in enumerate(headers):
        key = match_key(raw)
        if key == subject_key or (wanted and key not in wanted):
            continue
        columns.append(Column(f"c{i}", normalise_name(raw), key in zeros, multi.get(key)))
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


@contextmanager
def malformed_rows_as_input_error(path: str):
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
