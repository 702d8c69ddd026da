"""Input: where the sensitive table is, which files of it are read, and which of its columns are used.

The module's one job is to turn ``sensitive_microdata_path`` / ``input_format`` into a
DataFrame of raw string cells with positional column names ``c0 .. c{n-1}`` plus the raw header
names, and to resolve the configured column names (``use_columns``, ``sensitive_zeros``,
``multi_value_columns``, ``subject_id``) against those headers.

What is read is what the user meant: a folder or glob reads only the data files of the declared
format (``*.csv``, ``*.tsv``, ``*.tab`` with an optional ``.gz``/``.bz2``/... suffix for csv;
Parquet files for parquet), and fails when there are none; every CSV file must have the same
header; the output of a run may not be read back as its input (:func:`check_output_overlap`).
Before Spark parses anything, the first bytes of each CSV file are checked on the driver: format
(a Parquet or gzip file under the wrong name), encoding, header (one line, no empty or
backtick name among the used columns, not a record, not one column holding another delimiter).
Rows whose number of fields differs from the header and cells that are not valid in the
declared encoding fail the Spark job with a marker (no executor ever logs a row), and the error
names the file, the line numbers and the field counts (:func:`malformed_rows_as_input_error`).

Only the first bytes of each file reach the driver. Errors name files, line numbers, column
positions and counts, and the names the user configured, never a cell value nor a header name
read from the data (a file without a header line would show a record).
"""

from __future__ import annotations

import csv
import logging
import math
import re
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ksynth_spark import io
from ksynth_spark.config import Config
from ksynth_spark.errors import InputDataError, OutputError

logger = logging.getLogger(__name__)

#: Characters replaced in header names and values (applied in this order, after trimming).
ESCAPES = ((";", "<semicolon>"), (":", "<colon>"), ("\t", "<tab>"), ("\r", "<cr>"), ("\n", "<lf>"))
CSV_EXTENSIONS = (".csv", ".tsv", ".tab")
COMPRESSED_EXTENSIONS = (".gz", ".bz2", ".deflate", ".zst", ".lz4", ".snappy")
PARQUET_EXTENSIONS = (".parquet", ".pq", ".parq")
#: Bytes of each CSV file read on the driver to check its header, format and encoding.
HEAD_BYTES = 1 << 16
_MAX_HEADER_BYTES = 1 << 20
_CORRUPT = "__ksynth_corrupt"
_MALFORMED = "ksynth-malformed-row"
_ENCODING = "ksynth-bad-encoding"
_MARK_RE = re.compile(r"(ksynth-malformed-row|ksynth-bad-encoding):(\d+):([0-9a-f]*):(\S+)")
_COMMON_DELIMITERS = {",": "','", ";": "';'", "\t": "'\\t' (tab)", "|": "'|'"}
_SPARK_ENCODINGS = {"utf-8": "UTF-8", "utf8": "UTF-8", "latin-1": "ISO-8859-1", "latin1": "ISO-8859-1",
                    "iso-8859-1": "ISO-8859-1", "cp1252": "windows-1252", "windows-1252": "windows-1252"}


def normalise_name(raw: str) -> str:
    """Header names and values: trim, then ``;`` ``:`` tab CR LF → ``<semicolon>`` ``<colon>``
    ``<tab>`` ``<cr>`` ``<lf>``."""
    text = raw.strip()
    for char, escaped in ESCAPES:
        text = text.replace(char, escaped)
    return text


def match_key(raw: str) -> str:
    """Key used to match configured names against raw headers: ``lower(trim(x))``."""
    return raw.strip().lower()


def input_encoding(config: Config) -> str:
    """The declared encoding of CSV input (``sensitive_microdata_encoding``: utf-8, latin-1 or cp1252)."""
    return config.sensitive_microdata_encoding


@dataclass(frozen=True)
class Column:
    """A used input column: its positional name in the raw DataFrame and its normalised name."""

    source: str          # name of the column in the raw DataFrame (positional: c0, c1, ...)
    name: str            # normalised header
    sensitive_zero: bool
    delimiter: str | None  # multi-value delimiter, or None


@dataclass(frozen=True)
class SourceFiles:
    """The files that make up a path input.

    Attributes:
        path: The configured path (file, folder or glob).
        files: The data files to read, sorted by path.
        folder: The folder (or the glob's folder) when the path is not a single file, else None.
        ignored: Names of entries left out because they are not of the declared format.
    """

    path: str
    files: tuple[io.FileInfo, ...]
    folder: str | None
    ignored: tuple[str, ...]


# ---------------------------------------------------------------------------------- files
def _stem(name: str) -> str:
    lower = name.lower()
    for suffix in COMPRESSED_EXTENSIONS:
        if lower.endswith(suffix):
            return lower[: -len(suffix)]
    return lower


def _glob_folder(path: str) -> str:
    parts = path.rstrip("/").split("/")
    kept = []
    for part in parts:
        if io.has_glob(part):
            break
        kept.append(part)
    return "/".join(kept) or "/"


def source_files(spark, config: Config) -> SourceFiles:
    """The data files of ``sensitive_microdata_path`` for ``input_format`` csv or parquet.

    Raises:
        InputDataError: Missing path, or a folder/glob without data files of the format.
    """
    path, fmt = config.sensitive_microdata_path, config.input_format
    found = io.list_files(spark, path, recursive=fmt == "parquet")
    top = None if io.has_glob(path) else io.status(spark, path)
    if not found and top is None:
        raise InputDataError(f"Sensitive data not found: {path}. Check sensitive_microdata_path "
                             "(relative paths are resolved against the config file's directory).")
    if top is not None and not top.is_dir:
        return SourceFiles(path, (top,), None, ())
    folder = _glob_folder(path) if io.has_glob(path) else path
    extensions = CSV_EXTENSIONS if fmt == "csv" else PARQUET_EXTENSIONS
    files, ignored = [], []
    for info in found:
        if info.is_dir:
            continue
        if _stem(info.name).endswith(extensions) if fmt == "csv" else info.name.lower().endswith(extensions):
            if info.length > 0:
                files.append(info)
        else:
            ignored.append(info.name)
    if ignored:
        logger.info("Reading %d %s file(s) of %s; ignoring %d other file(s)", len(files), fmt, path, len(ignored))
    if not files:
        kinds = "*.csv, *.tsv or *.tab files (optionally .gz/.bz2)" if fmt == "csv" else "Parquet (*.parquet) files"
        others = f" (it holds {len(ignored)} other file(s), e.g. {ignored[0]})" if ignored else ""
        raise InputDataError(f"{path} holds no {fmt} data files{others}: point sensitive_microdata_path to a file or "
                             f"a folder/glob of {kinds}, or fix input_format.")
    return SourceFiles(path, tuple(files), folder, tuple(ignored))


def check_output_overlap(spark, config: Config) -> None:
    """Refuses an ``output_dir`` that overlaps the input: ``output_dir`` equal to the input
    folder (or the glob's folder, or the Delta table) or inside it, or input files inside the
    release areas of ``output_dir`` (``release/``, ``sensitive/``, ``tables/``, staging).

    Raises:
        OutputError: The input and the output overlap.
        InputDataError: The input cannot be listed (see :func:`source_files`).
    """
    if config.input_format == "table" or not io.exists(spark, config.sensitive_microdata_path):
        return  # a missing input is reported by the stage that reads it
    out = io.qualified(spark, config.output_dir)
    managed = [f"{out}/{area}" for area in io.AREAS] + [f"{out}/{io.STAGING_PREFIX}"]

    def inside(path: str, folder: str) -> bool:
        return path == folder or path.startswith(folder.rstrip("/") + "/")

    def is_output(path: str) -> bool:
        return any(inside(path, area) or path.startswith(area) and area.endswith(io.STAGING_PREFIX)
                   for area in managed)

    path = config.sensitive_microdata_path
    folder: str | None
    if config.input_format == "delta":
        folder = io.qualified(spark, path)
        files = [folder]
    else:
        source = source_files(spark, config)
        folder = io.qualified(spark, source.folder) if source.folder is not None else None
        files = [info.path for info in source.files]
    if folder is not None and inside(out, folder):
        raise OutputError(f"output_dir {config.output_dir} is the input folder or inside it: a later run would read "
                          "the release as sensitive data. Choose an output_dir outside the input folder.")
    for file in ([folder] if folder else []) + files:
        if is_output(file):
            raise OutputError(f"The input {path} includes outputs of ksynth under {config.output_dir} "
                              f"({file.rsplit('/', 1)[-1]}): point sensitive_microdata_path to the sensitive data "
                              "only, or use another output_dir.")


# ---------------------------------------------------------------------------------- reading
def read_raw(spark, config: Config) -> tuple[DataFrame, list[str]]:
    """Reads the sensitive table with every cell as a string.

    Returns:
        ``(df, headers)``: df has positional string columns ``c0 .. c{n-1}`` (null = empty
        cell) and headers are the raw header names. Only the first bytes of each file are read
        on the driver.

    Raises:
        InputDataError: Missing path, no data files, unreadable or mislabelled format, bad
            encoding, no header or a header that cannot be used. Rows whose number of fields
            differs from the header fail later, when Spark reads them (see
            :func:`malformed_rows_as_input_error`).
    """
    path = config.sensitive_microdata_path
    fmt = config.input_format
    try:
        if fmt == "table":
            if not spark.catalog.tableExists(path):
                raise InputDataError(f"Sensitive table '{path}' does not exist in the catalog. "
                                     "Set sensitive_microdata_path to an existing table name (db.table).")
            df = spark.table(path)
        elif fmt == "delta":
            if not io.exists(spark, path):
                raise InputDataError(f"Sensitive data not found: {path}. Check sensitive_microdata_path.")
            if not io.exists(spark, f"{path.rstrip('/')}/_delta_log"):
                raise InputDataError(f"{path} is not a Delta table (it has no _delta_log folder): set input_format "
                                     "to csv or parquet to match the data.")
            df = spark.read.format("delta").load(path)
        else:
            source = source_files(spark, config)
            if fmt == "csv":
                return _read_csv(spark, source, config.sensitive_microdata_delimiter, input_encoding(config))
            df = _read_parquet(spark, source)
        headers = list(df.columns)
        df = df.select([F.col(_quoted(h)).cast("string").alias(f"c{i}") for i, h in enumerate(headers)])
        return df, headers
    except InputDataError:
        raise
    except Exception as exc:  # Spark's message may quote file content; do not pass it on
        logger.debug("Reading %s failed", path, exc_info=True)
        raise InputDataError(
            f"Could not read {path} as {fmt} ({io.java_error_name(exc)}). Check input_format "
            "(csv, parquet, delta or table) and sensitive_microdata_delimiter match the data."
        ) from None


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _read_parquet(spark, source: SourceFiles) -> DataFrame:
    for info in source.files[:50]:
        try:
            magic = io.read_head(spark, info.path, 4, decompress=False)
        except OSError as exc:
            raise InputDataError(f"{info.path} cannot be read ({exc}).") from None
        if magic != b"PAR1":
            raise InputDataError(f"{info.path} is not a Parquet file: set input_format: csv for CSV/TSV files "
                                 "(or point sensitive_microdata_path to the Parquet data).")
    reader = spark.read
    if source.folder is not None and not io.has_glob(source.path):
        reader = reader.option("basePath", source.path)
    return reader.parquet(*[info.path for info in source.files])


def _label(uri: str) -> str:
    """A file's path as the user knows it (``file:`` URIs as local paths)."""
    return "/" + uri[len("file:"):].lstrip("/") if uri.startswith("file:") else uri


def _decode(head: bytes, encoding: str, label: str, complete: bool) -> str:
    try:
        return head.decode(encoding)
    except UnicodeDecodeError as exc:
        if not complete and exc.start >= len(head) - 4:  # a character cut at the end of the sample
            return head[: exc.start].decode(encoding)
        if encoding.replace("-", "") == "utf8":
            fix = ("save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8), or declare its encoding with "
                   "sensitive_microdata_encoding (e.g. latin-1)")
        else:
            fix = "fix sensitive_microdata_encoding"
        raise InputDataError(f"{label} is not valid {encoding} text (byte {exc.start + 1} cannot be decoded): "
                             f"{fix}.") from None


def _file_head(spark, info: io.FileInfo, encoding: str) -> tuple[str, bool]:
    """The decoded first bytes of a CSV file and whether they are the whole file."""
    label = _label(info.path)
    try:
        raw = io.read_head(spark, info.path, HEAD_BYTES, decompress=False)
        codec = _stem(info.name) != info.name.lower()
        if not codec and raw[:2] == b"\x1f\x8b":
            raise InputDataError(f"{label} is gzip-compressed but its name does not end in .gz: rename it to "
                                 f"{info.name}.gz so that it is decompressed.")
        if raw[:4] == b"PAR1":
            raise InputDataError(f"{label} is a Parquet file: set input_format: parquet.")
        if raw[:4] == b"PK\x03\x04":
            raise InputDataError(f"{label} is a zip archive: unzip it and point sensitive_microdata_path to the CSV.")
        head = io.read_head(spark, info.path, HEAD_BYTES) if codec else raw
        if b"\n" not in head and len(head) == HEAD_BYTES:
            head = io.read_head(spark, info.path, _MAX_HEADER_BYTES)
    except OSError as exc:
        raise InputDataError(f"{label} cannot be read: {exc} (a corrupt or truncated compressed file?). "
                             "Replace the file with a valid copy.") from None
    complete = len(head) < HEAD_BYTES
    return _decode(head, encoding, label, complete), complete


def _split_header(line: str, delimiter: str, label: str) -> list[str]:
    if len(delimiter) != 1:
        return line.split(delimiter)
    try:
        return next(csv.reader([line], delimiter=delimiter, quotechar='"', strict=True))
    except (csv.Error, StopIteration):
        raise InputDataError(f"The header line of {label} has broken quoting (a column name with a line break or an "
                             "unclosed quote): put every column name on the first line.") from None


def _looks_like_a_record(headers: list[str], sample: list[list[str]]) -> str | None:
    """Why the header looks like a data record (names that are numbers, or that also occur as
    values of their own column), or None."""
    names = [h.strip() for h in headers]
    numeric = sum(1 for n in names if re.fullmatch(r"[+-]?(\d+([.,]\d*)?|[.,]\d+)", n))
    if numeric and numeric * 2 >= len(names):
        return f"{numeric} of its {len(names)} names are numbers"
    if len(names) >= 2 and sample:
        values = [{row[i].strip() for row in sample if i < len(row)} for i in range(len(names))]
        repeated = sum(1 for i, n in enumerate(names) if n and n in values[i])
        if repeated >= max(2, math.ceil(len(names) / 2)):
            return f"{repeated} of its {len(names)} names also occur as values in their own column"
    return None


def _csv_header(spark, info: io.FileInfo, delimiter: str, encoding: str) -> list[str] | None:
    """The header of one CSV file (None for a file without any line), after the driver-side checks."""
    label = _label(info.path)
    text, complete = _file_head(spark, info, encoding)
    text = text.lstrip("\ufeff")
    if not text.strip():
        return None
    lines = text.split("\n")
    if not complete:
        lines = lines[:-1]  # the last one may be cut
    line = lines[0].rstrip("\r")
    headers = _split_header(line, delimiter, label)
    if len(headers) == 1:
        for other, shown in _COMMON_DELIMITERS.items():
            if other != delimiter and other in headers[0]:
                raise InputDataError(f"{label} reads as one column whose header contains {shown}: set "
                                     f"sensitive_microdata_delimiter to {shown.split(' ')[0]} (it is now "
                                     f"{delimiter!r}).")
    sample = []
    if len(delimiter) == 1:
        body = [raw.rstrip("\r") for raw in lines[1:201] if raw.strip()]
        sample = [row for row in csv.reader(body, delimiter=delimiter, quotechar='"')]
    reason = _looks_like_a_record(headers, sample)
    if reason:
        raise InputDataError(f"The first line of {label} looks like a record, not a header ({reason}): add a header "
                             "line naming the columns (names are not shown here, as they could be data).")
    return headers


def _read_csv(spark, source: SourceFiles, delimiter: str, encoding: str) -> tuple[DataFrame, list[str]]:
    by_header: dict[tuple[str, ...], list[io.FileInfo]] = {}
    with ThreadPoolExecutor(max_workers=min(16, len(source.files)), thread_name_prefix="ksynth-head") as pool:
        found = list(pool.map(lambda info: _csv_header(spark, info, delimiter, encoding), source.files))
    for info, headers in zip(source.files, found, strict=True):
        if headers is not None:
            by_header.setdefault(tuple(headers), []).append(info)
    if not by_header:
        raise InputDataError(f"{source.path} is empty: the sensitive file needs a header row and at least one data "
                             "row.")
    if len(by_header) > 1:
        groups = sorted(by_header.values(), key=len, reverse=True)
        raise InputDataError(
            f"The files of {source.path} do not share one header: {groups[0][0].name} and {groups[1][0].name} have "
            f"different columns ({len(by_header)} different headers in {len(source.files)} files). Put only files "
            "with the same columns in the input.")
    headers = list(next(iter(by_header)))
    files = [info.path for group in by_header.values() for info in group]
    n = len(headers)
    schema = ", ".join(f"c{i} string" for i in range(n)) + f", {_CORRUPT} string"
    reader = (
        spark.read.schema(schema)
        .option("header", "true")
        .option("enforceSchema", "true")
        .option("sep", delimiter)
        .option("quote", '"')
        .option("escape", '"')
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", _CORRUPT)
        .option("columnPruning", "false")  # every row is split in full, so a ragged row is always seen
        .option("ignoreLeadingWhiteSpace", "false")
        .option("ignoreTrailingWhiteSpace", "false")
    )
    spark_encoding = _SPARK_ENCODINGS.get(encoding, encoding)
    if spark_encoding != "UTF-8":
        reader = reader.option("encoding", spark_encoding)
    df = reader.csv(files)
    tag = f"{n}:{delimiter.encode('utf-8').hex()}:"
    malformed = F.raise_error(F.concat(F.lit(f"{_MALFORMED}:{tag}"), F.input_file_name()))
    undecodable = F.raise_error(F.concat(F.lit(f"{_ENCODING}:{tag}"), F.input_file_name()))
    checked = [
        F.when(F.col(_CORRUPT).isNotNull(), malformed)
        .when(F.col(f"c{i}").contains("\ufffd"), undecodable)
        .otherwise(F.col(f"c{i}")).alias(f"c{i}")
        for i in range(n)
    ]
    return df.select(checked), headers


# ---------------------------------------------------------------------------------- columns
def select_columns(headers: list[str], config: Config) -> tuple[list[Column], str | None]:
    """Resolves used columns, sensitive zeros, multi-value columns and the subject-id column.

    Returns:
        ``(columns, subject_source)`` in file order.

    Raises:
        InputDataError: Unknown configured column names, or used columns whose header name is
            empty, holds a backtick, or collides with another after normalisation.
    """
    by_key: dict[str, list[int]] = {}
    for i, raw in enumerate(headers):
        by_key.setdefault(match_key(raw), []).append(i)
    known = (f"the header has {len(headers)} column(s); their names are not shown, as a file without a header line "
             "would show a record")

    def resolve(names, key_name: str) -> dict[str, str]:
        found = {}
        for name in names:
            if match_key(name) not in by_key:
                raise InputDataError(
                    f"Column '{name}' in {key_name} is not in the sensitive data ({known}). Fix the name (matching "
                    f"ignores case and surrounding spaces) or remove it from {key_name}."
                )
            found[match_key(name)] = name
        return found

    subject_key = None
    if config.subject_id:
        if match_key(config.subject_id) not in by_key:
            raise InputDataError(f"subject_id column '{config.subject_id}' is not in the sensitive data ({known}). "
                                 "Fix subject_id.")
        subject_key = match_key(config.subject_id)
    wanted = resolve(config.use_columns, "use_columns")
    zeros = resolve(config.sensitive_zeros, "sensitive_zeros")
    multi = {match_key(k): v for k, v in config.multi_value_columns.items()}
    resolve(config.multi_value_columns.keys(), "multi_value_columns")

    columns: list[Column] = []
    positions: dict[str, int] = {}
    for i, raw in enumerate(headers):
        key = match_key(raw)
        if key == subject_key or (wanted and key not in wanted):
            continue
        _check_used_name(raw, i)
        column = Column(f"c{i}", normalise_name(raw), key in zeros, multi.get(key))
        if column.name in positions:
            raise InputDataError(
                f"Columns {positions[column.name] + 1} and {i + 1} of the sensitive data have the same name after "
                "trimming/normalisation. Rename one of them in the data or exclude one with use_columns."
            )
        positions[column.name] = i
        columns.append(column)
    if not columns:
        raise InputDataError("No attribute columns are left to use: check use_columns and subject_id.")
    subject_source = f"c{by_key[subject_key][0]}" if subject_key else None
    if subject_source is not None:
        assert subject_key is not None  # subject_source is only set with a subject key
        _check_used_name(headers[by_key[subject_key][0]], by_key[subject_key][0])
    return columns, subject_source


def _check_used_name(raw: str, index: int) -> None:
    if not raw.strip():
        raise InputDataError(f"Column {index + 1} of the sensitive data has an empty header name: name it in the "
                             "header, or leave it out with use_columns.")
    if "`" in raw:
        raise InputDataError(f"The header name of column {index + 1} of the sensitive data holds a backtick (`), "
                             "which Spark column names cannot hold: rename the column, or leave it out with "
                             "use_columns.")


# ---------------------------------------------------------------------------------- read errors
@contextmanager
def malformed_rows_as_input_error(path: str):
    """Turns a failure of Spark reading the input into a clean :class:`InputDataError`.

    Ragged rows (a number of fields other than the header's, or broken quoting) are located
    by a second pass over the file that failed: its name, the first line numbers and their field
    counts go into the message, never their content. Cells that are not valid in the declared
    encoding, corrupt or truncated compressed files and files that vanished are named too.
    Other failures pass through.
    """
    try:
        yield
    except Exception as exc:
        text = str(exc)
        mark = _MARK_RE.search(text)
        if mark:
            kind, n, delimiter, uri = mark.groups()
            file = urllib.parse.unquote(uri)
            label = _label(file)
            if kind == _ENCODING:
                raise undecodable_input_error(label) from None
            raise InputDataError(_malformed_message(label, file, int(n), bytes.fromhex(delimiter).decode("utf-8"))) \
                from None
        if "MALFORMED" in text.upper():
            raise InputDataError(
                f"{path} has rows whose number of fields differs from the header (or broken quoting). "
                "Every row must have as many fields as the header."
            ) from None
        java = io.java_error_names(exc)
        if any(name in java for name in ("EOFException", "ZipException", "DataFormatException", "ChecksumException")):
            raise InputDataError(f"A compressed file of {path} is corrupt or truncated: replace it with a valid "
                                 "copy.") from None
        if "FileNotFoundException" in java:
            raise InputDataError(f"A file of {path} disappeared while it was read: do not change the input during "
                                 "a run, then run again.") from None
        raise


def malformed_rows_error(path: str, files: list[str], n_fields: int, delimiter: str) -> InputDataError:
    """The error for an input some of whose rows have another number of fields than the header
    (found by a count, e.g. the line-count path of the load stage): it locates the first such
    rows in ``files`` (a second pass, on the error path only) and names the file, the line
    numbers and the field counts, never their content.

    Args:
        path: The configured input path (named when no row can be located).
        files: The input files, in reading order (e.g. ``DataFrame.inputFiles()``).
        n_fields: The number of fields of the header.
        delimiter: The field delimiter.
    """
    for file in files:
        try:
            found = _malformed_lines(file, n_fields, delimiter)
        except Exception:  # best effort: the failure itself is certain
            logger.debug("Locating the malformed rows of %s failed", file, exc_info=True)
            break
        if found:
            return InputDataError(_malformed_message(_label(file), file, n_fields, delimiter, found))
    return InputDataError(_malformed_message(path, path, n_fields, delimiter, []))


def undecodable_input_error(path: str) -> InputDataError:
    """The error for an input whose bytes are not valid in its declared encoding (cells that
    hold U+FFFD after decoding), e.g. found by a count in the load stage."""
    return InputDataError(
        f"{path} holds bytes that are not valid in its declared encoding (they would become U+FFFD): save it as "
        "UTF-8, or declare its encoding with sensitive_microdata_encoding (e.g. latin-1).")


def _malformed_message(label: str, file: str, n_fields: int, delimiter: str,
                       bad: list[tuple[int, int]] | None = None) -> str:
    rule = (f"but the header has {n_fields}. Every row must have as many fields as the header: check "
            "sensitive_microdata_delimiter and quoting (a line break inside a quoted field is not supported).")
    if bad is None:
        try:
            bad = _malformed_lines(file, n_fields, delimiter)
        except Exception:  # the diagnostic is best effort; the failure itself is certain
            logger.debug("Locating the malformed rows of %s failed", label, exc_info=True)
            bad = []
    if not bad:
        return f"{label} has a row whose number of fields differs from the header (or broken quoting), {rule}"
    where = ", ".join(f"line {line} has {count} field(s)" if count >= 0 else f"line {line} has broken quoting"
                      for line, count in bad)
    return f"{label}: {where}, {rule}"


def _malformed_lines(file: str, n_fields: int, delimiter: str, limit: int = 3) -> list[tuple[int, int]]:
    """``(line number, field count)`` of the first rows of ``file`` whose field count is not
    ``n_fields`` (-1: broken quoting); only numbers reach the driver."""
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    assert spark is not None  # called while the run's session is active
    lines = spark.read.text(file).rdd.map(lambda row: row[0]).zipWithIndex()

    def bad_rows(rows):
        import csv as csv_module

        for line, index in rows:
            if index == 0 or line is None or not line.strip():
                continue
            if len(delimiter) == 1:
                try:
                    count = len(next(csv_module.reader([line], delimiter=delimiter, quotechar='"', strict=True)))
                except Exception:
                    count = -1
            else:
                count = len(line.split(delimiter))
            if count != n_fields:
                yield index + 1, count

    return [(int(line), int(count)) for line, count in lines.mapPartitions(bad_rows).take(limit)]
