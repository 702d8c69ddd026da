"""I/O layer: the only module that touches storage (Delta/Parquet tables, TSV and text files).

Paths go through Hadoop's FileSystem API, so local paths, ``dbfs:/``, ``s3a://``, ``abfss://``
and HDFS work alike.

Layout under ``output_dir``:
    release/    publishable files (reportable aggregates, synthetic microdata, summaries)
    sensitive/  files that reveal sensitive counts or record-level risk (keep restricted)
    tables/     Delta/Parquet working tables for later stages and SQL users (restricted:
                they include the encoded sensitive records and sensitive aggregates)

**Commit.** A run writes into ``output_dir/.staging-<run id>/`` and commits with a journal
(:class:`Staging`): once everything is staged, the list of moves (staged entry → its place) is
written to ``.staging-<id>/_commit.json`` by a write-then-rename, which is the commit point.
The moves are then done one by one, each one "delete the old entry, rename the staged one" and
idempotent. A process killed before the journal exists has committed nothing: the next run on
that ``output_dir`` removes its staging directory. A process killed after it has decided to
commit: the next run rolls the journal forward (:func:`recover_interrupted`), so a release is
never left half old, half new. Recovery must run under the run lock (:mod:`ksynth_spark.run_state`).

**TSV cells.** Values and headers never hold a tab, CR or LF after normalisation
(:mod:`ksynth_spark.inputs` escapes them as ``<tab>``, ``<cr>``, ``<lf>``, like ``;`` and ``:``);
the writers here escape them again so that a TSV always parses. Cells starting with ``=``,
``+``, ``-`` or ``@`` are written as they are (spreadsheets may read them as formulas); with
``spreadsheet_safe`` they are prefixed with ``'`` (:func:`spreadsheet_safe_text`).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass

logger = logging.getLogger(__name__)

AREAS = ("release", "sensitive", "tables")
#: Name prefix of the staging directory of a run under ``output_dir``.
STAGING_PREFIX = ".staging-"
#: The commit journal inside a staging directory.
JOURNAL = "_commit.json"
_GLOB_CHARS = "*?[{"
#: The escapes of characters that would break a TSV (applied at normalisation, and again here).
TSV_ESCAPES = (("\t", "<tab>"), ("\r", "<cr>"), ("\n", "<lf>"))
#: First characters a spreadsheet may read as the start of a formula.
FORMULA_STARTS = ("=", "+", "-", "@")


@dataclass(frozen=True)
class FileInfo:
    """A file or directory found by :func:`list_files`.

    Attributes:
        path: Fully qualified path (``file:/data/x.csv``, ``s3a://bucket/x.csv``).
        name: The last path component.
        length: Size in bytes (0 for a directory).
        is_dir: Whether it is a directory.
    """

    path: str
    name: str
    length: int
    is_dir: bool


def _path(spark, path: str):
    jvm = spark._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    fs = hpath.getFileSystem(spark._jsc.hadoopConfiguration())
    if fs.getScheme() == "file":
        fs.setWriteChecksum(False)  # no hidden .crc files next to released local files
    return fs, hpath


def has_glob(path: str) -> bool:
    """Whether ``path`` holds a Hadoop glob pattern."""
    return any(ch in path for ch in _GLOB_CHARS)


def exists(spark, path: str) -> bool:
    """True if ``path`` (file or directory; glob patterns allowed) exists."""
    fs, hpath = _path(spark, path)
    if has_glob(path):
        found = fs.globStatus(hpath)
        return found is not None and len(found) > 0
    return bool(fs.exists(hpath))


def qualified(spark, path: str) -> str:
    """``path`` fully qualified (scheme, authority, absolute path), without a trailing slash."""
    fs, hpath = _path(spark, path)
    return str(fs.makeQualified(hpath).toString())


def local_path(spark, path: str) -> str | None:
    """The operating-system path of ``path`` when it is on the local file system, else None."""
    fs, hpath = _path(spark, path)
    if fs.getScheme() != "file":
        return None
    return str(fs.makeQualified(hpath).toUri().getPath())


def _info(status) -> FileInfo:
    path = status.getPath()
    is_dir = bool(status.isDirectory())
    return FileInfo(str(path.toString()), str(path.getName()), 0 if is_dir else int(status.getLen()), is_dir)


def status(spark, path: str) -> FileInfo | None:
    """The file or directory at ``path`` (no glob), or None when it does not exist."""
    fs, hpath = _path(spark, path)
    if not fs.exists(hpath):
        return None
    return _info(fs.getFileStatus(hpath))


def list_files(spark, path: str, recursive: bool = False) -> list[FileInfo]:
    """The entries ``path`` names: the matches of a glob, the entries of a directory (its files
    only and, with ``recursive``, those of its subdirectories), or the file itself; sorted by path.

    Hidden entries (names starting with ``.`` or ``_``, as Spark skips them) are left out of
    directory listings.
    """
    fs, hpath = _path(spark, path)
    if has_glob(path):
        found = fs.globStatus(hpath) or []
        tops = [_info(s) for s in found]
    elif fs.exists(hpath):
        tops = [_info(fs.getFileStatus(hpath))]
    else:
        return []
    result: list[FileInfo] = []
    for top in tops:
        if not top.is_dir:
            result.append(top)
            continue
        pending = [top.path]
        while pending:
            directory = pending.pop()
            dfs, dpath = _path(spark, directory)
            for entry in dfs.listStatus(dpath):
                info = _info(entry)
                if info.name.startswith((".", "_")):
                    continue
                if not info.is_dir:
                    result.append(info)
                elif recursive:
                    pending.append(info.path)
    return sorted(result, key=lambda f: f.path)


def read_head(spark, path: str, max_bytes: int, decompress: bool = True) -> bytes:
    """The first ``max_bytes`` bytes of a file, decompressed when its name tells a codec
    (``.gz``, ``.bz2``, ...) and ``decompress`` is set.

    Raises:
        OSError: The file cannot be opened or decompressed (the message names the Java error
            class only, never file content).
    """
    fs, hpath = _path(spark, path)
    stream = None
    try:
        stream = fs.open(hpath)
        if decompress:
            factory = spark._jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(spark._jsc.hadoopConfiguration())
            codec = factory.getCodec(hpath)
            if codec is not None:
                stream = codec.createInputStream(stream)
        return bytes(stream.readNBytes(max_bytes))
    except Exception as exc:  # py4j wraps the Java exception; its message may quote bytes
        raise OSError(f"cannot read {path} ({java_error_name(exc)})") from None
    finally:
        if stream is not None:
            try:
                stream.close()
            except Exception:  # closing a broken codec stream may fail again
                logger.debug("could not close %s", path, exc_info=True)


def java_error_name(exc: BaseException) -> str:
    """The class name of the Java exception behind a py4j error (or the Python class name)."""
    java = getattr(exc, "java_exception", None)
    if java is not None:
        try:
            return str(java.getClass().getSimpleName())
        except Exception:  # the gateway may be gone
            pass
    return type(exc).__name__


def java_error_names(exc: BaseException) -> str:
    """Class names of the Java exception behind a py4j error and of its causes (never their
    messages, which may quote data), space-separated."""
    names: list[str] = []
    java = getattr(exc, "java_exception", None)
    try:
        while java is not None and len(names) < 20:
            names.append(str(java.getClass().getName()))
            java = java.getCause()
    except Exception:  # the gateway may be unusable: fall back to the class names in the text
        pass
    if not names:
        names = re.findall(r"\b(?:java|org)\.[\w.$]+(?:Exception|Error)\b", str(exc))
    return " ".join(names)


def delete(spark, path: str) -> None:
    """Deletes a file or directory tree if it exists."""
    fs, hpath = _path(spark, path)
    if fs.exists(hpath):
        fs.delete(hpath, True)


def mkdirs(spark, path: str) -> None:
    """Creates directory ``path`` and its parents (no error when it exists)."""
    fs, hpath = _path(spark, path)
    if not fs.mkdirs(hpath):
        raise OSError(f"could not create directory {path}")


def list_names(spark, path: str) -> list[str]:
    """Names of the entries directly under directory ``path`` (empty if missing)."""
    fs, hpath = _path(spark, path)
    if not fs.exists(hpath):
        return []
    return sorted(status.getPath().getName() for status in fs.listStatus(hpath))


def size_of(spark, path: str) -> int:
    """Bytes under ``path`` (a file or a directory tree)."""
    fs, hpath = _path(spark, path)
    return int(fs.getContentSummary(hpath).getLength())


def write_bytes(spark, path: str, content: bytes) -> None:
    """Writes ``content`` to ``path`` (overwriting), creating parent directories."""
    fs, hpath = _path(spark, path)
    stream = fs.create(hpath, True)
    try:
        # py4j passes bytes as a Java byte[]; write in slices to keep each call small.
        step = 1 << 20
        for start in range(0, len(content), step):
            stream.write(bytearray(content[start:start + step]))
    finally:
        stream.close()


def write_text(spark, path: str, text: str) -> None:
    """Writes UTF-8 ``text`` to ``path``."""
    write_bytes(spark, path, text.encode("utf-8"))


def read_bytes(spark, path: str) -> bytes:
    """Reads a small file through Hadoop's FileSystem API (every supported file system)."""
    fs, hpath = _path(spark, path)
    length = int(fs.getFileStatus(hpath).getLen())
    stream = fs.open(hpath)
    try:
        buffer = spark._jvm.java.io.ByteArrayOutputStream(max(1, length))
        spark._jvm.org.apache.hadoop.io.IOUtils.copyBytes(stream, buffer, 1 << 16, False)
        return bytes(buffer.toByteArray())
    finally:
        stream.close()


def read_text(spark, path: str) -> str:
    """Reads a small UTF-8 text file (every supported file system)."""
    return read_bytes(spark, path).decode("utf-8")


# ---------------------------------------------------------------------------------- TSV cells
def escape_tsv_text(text: str) -> str:
    """``text`` with tab, CR and LF replaced by ``<tab>``, ``<cr>``, ``<lf>``."""
    for raw, escaped in TSV_ESCAPES:
        text = text.replace(raw, escaped)
    return text


def spreadsheet_safe_text(text: str) -> str:
    """``text`` prefixed with ``'`` when a spreadsheet could read it as a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def tsv_text(header: Iterable[str], rows: Iterable[Iterable[object]], spreadsheet_safe: bool = False) -> str:
    """Formats a small table as TSV text (``\\n`` line ends, header first; cells escaped)."""
    def line(cells: Iterable[object]) -> str:
        return "\t".join(_cell(v, spreadsheet_safe) for v in cells)

    lines = [line(header)]
    lines.extend(line(row) for row in rows)
    return "\n".join(lines) + "\n"


def _cell(value: object, spreadsheet_safe: bool = False) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        text = escape_tsv_text(value)
        return spreadsheet_safe_text(text) if spreadsheet_safe else text
    return str(value)


def _tsv_columns(df, spreadsheet_safe: bool) -> list:
    """The columns of ``df`` with string cells escaped (and made spreadsheet-safe)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    columns = []
    for field in df.schema.fields:
        column = F.col("`" + field.name.replace("`", "``") + "`")
        if isinstance(field.dataType, StringType):
            for raw, escaped in TSV_ESCAPES:
                column = F.replace(column, F.lit(raw), F.lit(escaped))
            if spreadsheet_safe:
                starts = "^[" + re.escape("".join(FORMULA_STARTS)) + "]"
                column = F.when(column.rlike(starts), F.concat(F.lit("'"), column)).otherwise(column)
        columns.append(column.alias(field.name))
    return columns


def write_tsv(spark, df, path: str, header: list[str] | None = None, spreadsheet_safe: bool = False) -> None:
    """Writes a Spark DataFrame as ONE tab-separated file at ``path``, in the DataFrame's order.

    The DataFrame must already be in its final order (partition by partition, e.g. after
    ``orderBy``). Every partition is written by its own task, in parallel, as a part file without
    header; the header line and the parts, in partition order, are then concatenated into
    ``path`` (by the operating system's file calls on a local file system, else by the JVM's
    streams); nothing passes through Python memory. No quoting: empty strings and nulls as empty
    cells; tab, CR and LF in string cells and in the header are escaped; with
    ``spreadsheet_safe`` cells starting with ``=``, ``+``, ``-`` or ``@`` get a leading ``'``.
    """
    tmp = f"{path}.parts-{uuid.uuid4().hex[:8]}"
    names = header or df.columns
    columns = [escape_tsv_text(c) for c in names]
    if spreadsheet_safe:
        columns = [spreadsheet_safe_text(c) for c in columns]
    (
        df.select(_tsv_columns(df, spreadsheet_safe))
        .write.mode("overwrite")
        .option("sep", "\t")
        .option("header", "false")
        .option("quote", "")
        .option("escape", "")
        .option("emptyValue", "")
        .option("nullValue", "")
        .option("lineSep", "\n")
        .option("ignoreLeadingWhiteSpace", "false")
        .option("ignoreTrailingWhiteSpace", "false")
        .csv(tmp)
    )
    try:
        parts = sorted(name for name in list_names(spark, tmp) if name.startswith("part-"))
        _concatenate(spark, ("\t".join(columns) + "\n").encode("utf-8"), [f"{tmp}/{name}" for name in parts], path)
    finally:
        delete(spark, tmp)


def _concatenate(spark, head: bytes, parts: list[str], path: str) -> None:
    """Writes ``head`` followed by the files ``parts`` (in order) to ``path`` (overwriting)."""
    local = local_path(spark, path)
    if local is not None and all(local_path(spark, part) is not None for part in parts):
        with open(local, "wb") as out:
            out.write(head)
            for part in parts:
                with open(str(local_path(spark, part)), "rb") as source:
                    shutil.copyfileobj(source, out, 1 << 22)
        return
    fs, hpath = _path(spark, path)
    stream = fs.create(hpath, True)
    try:
        stream.write(bytearray(head))
        for part in parts:
            part_fs, part_path = _path(spark, part)
            source = part_fs.open(part_path)
            try:
                spark._jvm.org.apache.hadoop.io.IOUtils.copyBytes(source, stream, 1 << 20, False)
            finally:
                source.close()
    finally:
        stream.close()


def write_table(df, path: str, table_format: str) -> None:
    """Writes ``df`` as a Delta or Parquet table directory at ``path`` (overwrite)."""
    writer = df.write.mode("overwrite")
    if table_format == "delta":
        writer = writer.option("overwriteSchema", "true")
    writer.format(table_format).save(path)


def save_as_table(df, table: str, table_format: str) -> None:
    """Writes ``df`` as the managed catalog table ``table`` (overwrite, schema replaced)."""
    df.write.mode("overwrite").format(table_format).option("overwriteSchema", "true").saveAsTable(table)


def run_concurrently(writes: list[Callable[[], None]]) -> None:
    """Runs independent writes from parallel driver threads and re-raises the first failure.

    Each write is a Spark job plus driver-side work (Delta log commit, file renames); running
    them together overlaps that driver work. Failures leave files in the staging area only.
    When the calling thread is interrupted (a signal), writes not yet started are cancelled.
    """
    pool = ThreadPoolExecutor(max_workers=max(1, min(len(writes), 8)), thread_name_prefix="ksynth-write")
    interrupted = True
    try:
        futures = [pool.submit(write) for write in writes]
        wait_for(futures)
        interrupted = False
    finally:
        pool.shutdown(wait=True, cancel_futures=interrupted)
    for future in futures:
        future.result()


def read_table(spark, path: str, table_format: str):
    """Reads a table directory written by :func:`write_table`."""
    return spark.read.format(table_format).load(path)


# ---------------------------------------------------------------------------------- staging and commit
class Staging:
    """A staging directory under ``output_dir`` whose entries are committed through a journal.

    Usage::

        staging = Staging(spark, output_dir)
        ... write into staging.path("release", "my_file.tsv") ...
        staging.commit()          # replaces output_dir/release/my_file.tsv etc. by the staged ones
        # on error: staging.abort() removes everything staged; nothing is half-written

    Each staged area directory is merged entry by entry (file or table directory), so a stage
    run alone (e.g. ``generate``) replaces its own outputs and keeps the others.
    """

    def __init__(self, spark, output_dir: str, run_id: str | None = None):
        self.spark = spark
        self.output_dir = output_dir.rstrip("/") or "/"
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.root = f"{self.output_dir}/{STAGING_PREFIX}{self.run_id}"
        self._areas: set[str] = set()
        self.committing = False

    def path(self, area: str, name: str = "") -> str:
        """Staged path of ``name`` inside ``area`` (release, sensitive or tables), or of a top-level file."""
        if area and area not in AREAS:
            raise ValueError(f"unknown output area {area!r}")
        if area:
            self._areas.add(area)
        parts = [self.root] + [p for p in (area, name) if p]
        return "/".join(parts)

    def final_path(self, area: str, name: str = "") -> str:
        """Where ``name`` of ``area`` lives after commit."""
        return "/".join([self.output_dir] + [p for p in (area, name) if p])

    def planned_moves(self) -> list[tuple[str, str]]:
        """``(staged, final)`` relative paths of every staged entry: working tables first, then
        ``sensitive/``, ``release/`` and the top-level files (the effective config last)."""
        fs, root = _path(self.spark, self.root)
        if not fs.exists(root):
            return []
        by_area: dict[str, list[tuple[str, str]]] = {area: [] for area in (*AREAS, "")}
        for entry in fs.listStatus(root):
            name = str(entry.getPath().getName())
            if name.endswith(".crc") or name.startswith(JOURNAL):
                continue
            if entry.isDirectory() and name in AREAS:
                for inner in fs.listStatus(entry.getPath()):
                    inner_name = str(inner.getPath().getName())
                    if not inner_name.endswith(".crc"):
                        by_area[name].append((f"{name}/{inner_name}", f"{name}/{inner_name}"))
            else:
                by_area[""].append((name, name))
        order = ("tables", "sensitive", "release", "")
        return [move for area in order for move in sorted(by_area[area])]

    def commit(self, owned: Iterable[str] = ()) -> None:
        """Writes the journal (the commit point), then moves every staged entry into place.

        Args:
            owned: Paths (relative to ``output_dir``) of every output the run's stages produce
                in some configuration; those that exist but were not staged this time (e.g. an
                evaluation file that moved from ``release/`` to ``sensitive/``, a chart of a
                column no longer used) are removed in the same commit, so a rerun stage never
                leaves outputs of its previous run beside its new ones.
        """
        moves = self.planned_moves()
        if not moves and not exists(self.spark, self.root):
            return
        self.committing = True
        targets = {target for _, target in moves}
        removals = sorted(p for p in set(owned) - targets if exists(self.spark, f"{self.output_dir}/{p}"))
        journal = {"run_id": self.run_id, "moves": [list(m) for m in moves], "removals": removals}
        tmp = f"{self.root}/{JOURNAL}.tmp"
        write_text(self.spark, tmp, json.dumps(journal))
        fs, tmp_path = _path(self.spark, tmp)
        if not fs.rename(tmp_path, _path(self.spark, f"{self.root}/{JOURNAL}")[1]):
            raise OSError(f"could not write the commit journal under {self.root}")
        roll_forward(self.spark, self.root, self.output_dir, moves, removals)
        logger.info("Committed %d outputs to %s%s", len(moves), self.output_dir,
                    f" (removed {len(removals)} output(s) of the previous run that this run did not produce)"
                    if removals else "")

    def decided(self) -> bool:
        """Whether the commit journal has been written (the commit must then be completed)."""
        return exists(self.spark, f"{self.root}/{JOURNAL}")

    def abort(self) -> None:
        """Removes the staging directory (nothing is committed), unless the commit was decided,
        in which case the commit is completed."""
        if self.decided():
            logger.warning("The commit had started: completing it")
            recover_one(self.spark, self.output_dir, self.root)
            return
        delete(self.spark, self.root)


def _move(fs, source, target) -> None:
    """Replaces ``target`` by ``source`` (one rename after deleting the old entry)."""
    if fs.exists(target):
        fs.delete(target, True)
    parent = target.getParent()
    if parent is not None and not fs.exists(parent):
        fs.mkdirs(parent)
    if not fs.rename(source, target):
        raise OSError(f"could not move {source} to {target}")


def roll_forward(spark, root: str, output_dir: str, moves: list[tuple[str, str]],
                 removals: Iterable[str] = ()) -> None:
    """Does the ``moves`` of a journal whose staged source still exists and its ``removals``
    (idempotent), then removes the journal and the staging directory."""
    fs, _ = _path(spark, root)
    for source, target in moves:
        _, source_path = _path(spark, f"{root}/{source}")
        if fs.exists(source_path):
            _move(fs, source_path, _path(spark, f"{output_dir}/{target}")[1])
    for stale in removals:
        delete(spark, f"{output_dir}/{stale}")
    delete(spark, f"{root}/{JOURNAL}")
    delete(spark, root)


def recover_one(spark, output_dir: str, root: str) -> None:
    """Completes (journal present) or removes (no journal) the staging directory ``root``."""
    journal = f"{root}/{JOURNAL}"
    if exists(spark, journal):
        record = json.loads(read_text(spark, journal))
        moves = [(str(m[0]), str(m[1])) for m in record["moves"]]
        logger.warning("Completing the interrupted commit %s (%d outputs) in %s", root.rsplit("/", 1)[-1],
                       len(moves), output_dir)
        roll_forward(spark, root, output_dir, moves, record.get("removals", ()))
        return
    size = size_of(spark, root)
    delete(spark, root)
    logger.warning("Removed the staged outputs of an interrupted run: %s (%.1f MB) in %s", root.rsplit("/", 1)[-1],
                size / 1e6, output_dir)


def recover_interrupted(spark, output_dir: str, keep: str | None = None) -> int:
    """Completes the decided commits and removes the staging directories of interrupted runs
    under ``output_dir`` (every one but ``keep``). Call it only while holding the run lock.

    Returns:
        The number of staging directories handled.
    """
    root = output_dir.rstrip("/") or "/"
    handled = 0
    for name in list_names(spark, root):
        if name.startswith(STAGING_PREFIX) and f"{root}/{name}" != keep:
            recover_one(spark, root, f"{root}/{name}")
            handled += 1
    return handled
