"""Spark plumbing written once: executor jobs over Arrow batches and broadcasts.

Every stage ships numpy kernels to the executors the same way: ``mapInArrow`` over a
DataFrame's Arrow batches (:func:`map_batches`), attribute sets passed as CSR arrays
(:func:`csr`, :func:`list_array`), and small driver-side values shipped with a broadcast that
is released when the job is done (:func:`broadcast`). This module imports no pyspark: it is
handed the session and DataFrames.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa

#: What a batch function may return: one batch, several, or None for nothing.
BatchResult: TypeAlias = pa.RecordBatch | Iterable[pa.RecordBatch] | None


def csr(batch: pa.RecordBatch | pa.Table, column: str = "attrs") -> tuple[np.ndarray, np.ndarray]:
    """Zero-based CSR ``(offsets, ids)`` (int64) of a ``list<int>`` Arrow column of a RecordBatch
    or Table, as the numpy kernels take attribute sets (null lists are empty)."""
    array = batch.column(column)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    offsets = np.asarray(array.offsets, dtype=np.int64)
    values = np.asarray(array.values, dtype=np.int64)
    return offsets - offsets[0], values[offsets[0]:offsets[-1]]


def list_array(offsets: np.ndarray, ids: np.ndarray) -> pa.Array:
    """The Arrow ``list<int32>`` array of CSR attribute sets (inverse of :func:`csr`)."""
    return pa.ListArray.from_arrays(pa.array(np.asarray(offsets, np.int32)), pa.array(np.asarray(ids, np.int32)))


def numbers(batch: pa.RecordBatch, column: str, dtype=np.int64) -> np.ndarray:
    """A numeric column of a batch as a numpy array of ``dtype``."""
    return np.asarray(batch.column(column).to_numpy(zero_copy_only=False), dtype=dtype)


def record_batch(**columns: Any) -> pa.RecordBatch:
    """A RecordBatch from named numpy arrays or Arrow arrays, in keyword order."""
    return pa.RecordBatch.from_arrays([c if isinstance(c, pa.Array) else pa.array(c) for c in columns.values()],
                                      names=list(columns))


def map_batches(df, schema: str, fn: Callable[..., BatchResult], *, setup: Callable[[], Any] | None = None):
    """Runs ``fn`` on every Arrow batch of ``df`` in the executors (``mapInArrow``).

    Args:
        df: The input DataFrame (only the columns ``fn`` reads should be selected).
        schema: DDL schema of the output rows.
        fn: ``fn(batch)``, or ``fn(batch, context)`` with ``setup``; returns a RecordBatch, an
            iterable of them, or None.
        setup: Called once per task before the first batch (e.g. to read a broadcast and build
            an index); its result is passed to ``fn`` as ``context``.

    Returns:
        The output DataFrame (lazy).
    """
    def kernel(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        context = setup() if setup is not None else None
        for batch in batches:
            out = fn(batch, context) if setup is not None else fn(batch)
            if out is None:
                continue
            if isinstance(out, pa.RecordBatch):
                yield out
            else:
                yield from out

    return df.mapInArrow(kernel, schema)


def map_partitions(df, schema: str, fn: Callable[[pa.Table], BatchResult]):
    """Runs ``fn`` once per partition of ``df`` on all its rows as one Arrow Table (for kernels
    that must see a whole partition, e.g. to reduce partial counts before the shuffle); empty
    partitions are skipped. Returns the output DataFrame (lazy)."""
    def kernel(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        collected = list(batches)
        if not collected:
            return
        table = pa.Table.from_batches(collected)
        if table.num_rows == 0:
            return
        out = fn(table)
        if out is None:
            return
        if isinstance(out, pa.RecordBatch):
            yield out
        else:
            yield from out

    return df.mapInArrow(kernel, schema)


@contextmanager
def broadcast(spark, value: Any):
    """Ships ``value`` to the executors for the jobs run inside the ``with`` block.

    Yields the broadcast handle (read ``handle.value`` in executor code). Its executor copies
    are released at the end of the block, so every job that reads it must have run (or have
    been persisted and materialised) by then.
    """
    handle = spark.sparkContext.broadcast(value)
    try:
        yield handle
    finally:
        handle.unpersist()
