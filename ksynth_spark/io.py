"""I/O layer: the only module that touches storage (Delta/Parquet tables, TSV and text files).

Paths go through Hadoop's FileSystem API, so local paths, ``dbfs:/``, ``s3a://``, ``abfss://``
and HDFS work alike. A release is written into a staging directory and committed by renames at
the end, so a failed run never leaves a partial ``release/`` behind.

Layout under ``output_dir``:
    release/    publishable files (reportable aggregates, synthetic microdata, summaries)
    sensitive/  files that reveal sensitive counts or record-level risk (keep restricted)
    tables/     Delta/Parquet working tables for later stages and SQL users (restricted:
                they include the encoded sensitive records and sensitive aggregates)
"""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Optional

log = logging.getLogger(__name__)

AREAS = ("release", "sensitive", "tables")


def _path(spark, path: str):
    jvm = spark._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    fs = hpath.getFileSystem(spark._jsc.hadoopConfiguration())
    if fs.getScheme() == "file":
        fs.setWriteChecksum(False)  # no hidden .crc files next to released local files
    return fs, hpath


def exists(spark, path: str) -> bool:
    """True if ``path`` (file or directory; glob patterns allowed) exists."""
    fs, hpath = _path(spark, path)
    if any(ch in path for ch in "*?["):
        found = fs.globStatus(hpath)
        return found is not None and len(found) > 0
    return bool(fs.exists(hpath))


def delete(spark, path: str) -> None:
    """Deletes a file or directory tree if it exists."""
    fs, hpath = _path(spark, path)
    if fs.exists(hpath):
        fs.delete(hpath, True)


def list_names(spark, path: str) -> list[str]:
    """Names of the entries directly under directory ``path`` (empty if missing)."""
    fs, hpath = _path(spark, path)
    if not fs.exists(hpath):
        return []
    return sorted(status.getPath().getName() for status in fs.listStatus(hpath))


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


def tsv_text(header: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    """Formats a small table as TSV text (``\\n`` line ends, header first)."""
    lines = ["\t".join(header)]
    lines.extend("\t".join(_cell(v) for v in row) for row in rows)
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if value != int(value) or abs(value) >= 1e16 else repr(value)
    return str(value)


def write_tsv(spark, df, path: str, header: Optional[list[str]] = None) -> None:
    """Writes a Spark DataFrame as ONE tab-separated file at ``path``, in the DataFrame's order.

    The DataFrame must already be in its final order; it is written by a single task (its
    rows are not collected to the driver). Cells are written verbatim: no quoting, empty strings
    as empty cells (values never contain tabs or newlines after normalisation).
    """
    tmp = f"{path}.parts-{uuid.uuid4().hex[:8]}"
    columns = header or df.columns
    (
        df.toDF(*columns)
        .coalesce(1)
        .write.mode("overwrite")
        .option("sep", "\t")
        .option("header", "true")
        .option("quote", "")
        .option("escape", "")
        .option("emptyValue", "")
        .option("nullValue", "")
        .option("lineSep", "\n")
        .option("ignoreLeadingWhiteSpace", "false")
        .option("ignoreTrailingWhiteSpace", "false")
        .csv(tmp)
    )
    fs, tmp_path = _path(spark, tmp)
    parts = [s.getPath() for s in fs.listStatus(tmp_path) if s.getPath().getName().startswith("part-")]
    fs_out, out_path = _path(spark, path)
    if fs_out.exists(out_path):
        fs_out.delete(out_path, True)
    if parts:
        fs.rename(parts[0], out_path)
    else:  # an empty DataFrame writes no part file: write the header alone
        write_text(spark, path, "\t".join(columns) + "\n")
    fs.delete(tmp_path, True)


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
    """
    with ThreadPoolExecutor(max_workers=max(1, min(len(writes), 8)), thread_name_prefix="ksynth-write") as pool:
        futures = [pool.submit(write) for write in writes]
    for future in futures:
        future.result()


def read_table(spark, path: str, table_format: str):
    """Reads a table directory written by :func:`write_table`."""
    return spark.read.format(table_format).load(path)


class Staging:
    """A staging directory under ``output_dir`` whose areas are committed by rename at the end.

    Usage::

        staging = Staging(spark, output_dir)
        ... write into staging.path("release", "my_file.tsv") ...
        staging.commit()          # replaces output_dir/release etc. by the staged ones
        # on error: staging.abort() removes everything staged; nothing is half-written
    """

    def __init__(self, spark, output_dir: str):
        self.spark = spark
        self.output_dir = output_dir.rstrip("/") or "/"
        self.root = f"{self.output_dir}/.staging-{uuid.uuid4().hex[:12]}"
        self._areas: set[str] = set()

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

    def commit(self) -> None:
        """Moves every staged entry into place, replacing older ones of the same name.

        Each staged area directory is merged entry by entry (file or table directory), so a
        stage run alone (e.g. ``generate``) replaces its own outputs and keeps the others.
        """
        fs, root = _path(self.spark, self.root)
        if not fs.exists(root):
            return
        for status in fs.listStatus(root):
            name = status.getPath().getName()
            if name.endswith(".crc"):
                continue
            if status.isDirectory() and name in AREAS:
                _, target_dir = _path(self.spark, self.final_path(name))
                fs.mkdirs(target_dir)
                for entry in fs.listStatus(status.getPath()):
                    if entry.getPath().getName().endswith(".crc"):
                        continue
                    self._replace(fs, entry.getPath(), self.final_path(name, entry.getPath().getName()))
            else:
                self._replace(fs, status.getPath(), self.final_path("", name))
        fs.delete(root, True)
        log.info("Committed outputs to %s", self.output_dir)

    def _replace(self, fs, source, target: str) -> None:
        _, target_path = _path(self.spark, target)
        if fs.exists(target_path):
            fs.delete(target_path, True)
        if not fs.rename(source, target_path):
            raise OSError(f"could not move {source} to {target}")

    def abort(self) -> None:
        """Removes the staging directory (nothing is committed)."""
        delete(self.spark, self.root)
