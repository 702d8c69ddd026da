"""Generate stage: k-synthetic records from the encoded sensitive data (spec §4), on Spark.

Per-record work runs in executors (``mapInArrow``): row_seeded phase 1 over the partitions of
``data.records``, unseeded records over ``spark.range(N)``, suppression of over-represented
attributes. Each task rebuilds the support index from a broadcast of its bitsets (one
``ceil(N/64)``-word bitset per attribute), itself OR-reduced from per-partition partial bitsets:
the driver receives the index, never the records table. The driver runs only what shares global
quotas (the consolidations of spec §4.0, value_seeded and aggregate_seeded) and small
aggregates (per-attribute counts, suppression thresholds).

Randomness comes from :mod:`ksynth_spark.synthesis_kernels` streams keyed by the seed and
logical ids (sensitive record index, synthetic record number), so the output is byte-identical
for a seed whatever the partitioning, ``spark.sql.shuffle.partitions`` or task retries.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Iterator, Optional

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.storagelevel import StorageLevel

from ksynth_spark import synthesis_kernels as K
from ksynth_spark.config import Config
from ksynth_spark.errors import ConfigError
from ksynth_spark.model import EncodedData, arrow_csr

log = logging.getLogger(__name__)

RECORDS_SCHEMA = "record_id long, attrs array<int>"
_KEYED_SCHEMA = "record_id long, attrs array<int>, sort_key long"
_PROGRESS_SECONDS = 10.0


@dataclass
class SynthesisResult:
    """Output of :func:`synthesize`.

    Attributes:
        records: ``syn_id long, attrs array<int>`` (persisted): ``syn_id`` is the 0-based row
            index in the output order of spec §4.0, ``attrs`` the sorted attribute ids.
        n_records: Number of synthetic records.
        expansion_ratio: ``n_records / N`` (aggregate_seeded: over the true N as well).
        seed: The seed actually used (``config.seed`` or a fresh one, logged).
        stats: Figures a data steward checks (records out, attributes suppressed, ...).
    """

    records: DataFrame
    n_records: int
    expansion_ratio: float
    seed: int
    stats: dict = field(default_factory=dict)


# ==================================================================================== entry point
def synthesize(spark, data: EncodedData, config: Config, reportable: Optional[DataFrame] = None,
               reportable_length: Optional[int] = None) -> SynthesisResult:
    """Runs spec §4 in ``config.synthesis_mode``.

    Collected to the driver: the support index (bitset words, not records), per-attribute
    counts, suppression victims' thresholds, and for value_seeded with oversampling or
    aggregate_seeded the ``reportable`` table. Broadcast: the index bitsets and small
    per-attribute arrays. ``data.records`` is never collected; aggregate_seeded does not read it.

    Args:
        spark: The active SparkSession.
        data: Encoded sensitive data.
        config: Effective configuration (mode, k, oversampling, aggregate options, seed).
        reportable: ``attrs, length, protected_count, ...`` aggregates (aggregate_seeded, and
            value_seeded with ``oversampling_ratio``); no ``record_count`` row.
        reportable_length: Reporting length ``R_A`` of ``reportable``.

    Raises:
        ConfigError: A mode needs the reportable aggregates and none were given.
    """
    mode = config.synthesis_mode
    run = _Run(spark, data, config, _resolve_seed(config))
    run.stats.update(mode=mode, seed=run.seed, k=config.k, sensitive_records=data.n_records)
    started = time.monotonic()
    log.info("generate: %s synthesis of %d sensitive records, k = %d", mode, data.n_records, config.k)
    if mode == "aggregate_seeded":
        records = _aggregate_seeded(run, reportable, reportable_length)
    elif mode in ("row_seeded", "unseeded", "value_seeded"):
        index = build_index(spark, data, config.k)
        if mode == "row_seeded":
            records = _row_seeded(run, index)
        elif mode == "unseeded":
            records = _unseeded(run, index)
        else:
            records = _value_seeded(run, index, reportable, reportable_length)
    else:
        raise ConfigError(f"Invalid value for 'synthesis_mode': {mode!r} is not supported.")
    final = number_rows(spark, data, records).persist(StorageLevel.MEMORY_AND_DISK)
    n_records = final.count()
    for intermediate in run.persisted:
        intermediate.unpersist()
    ratio = n_records / data.n_records if data.n_records else 0.0
    stats = run.stats
    if "records_before_suppression" in stats:
        stats["empty_records_dropped"] = stats["records_before_suppression"] - n_records
    if mode == "unseeded":
        stats["empty_records"] = final.filter(F.size("attrs") == 0).count()
    stats.update(records_out=n_records, expansion_ratio=ratio, seconds=round(time.monotonic() - started, 3))
    log.info("generate: %d synthetic records (expansion ratio %.4f), %d attribute occurrences suppressed, "
             "%.1f s", n_records, ratio, stats.get("attributes_suppressed", 0), stats["seconds"])
    return SynthesisResult(final, n_records, ratio, run.seed, stats)


@dataclass
class _Run:
    """One synthesis: its inputs, seed, statistics and the intermediates to release at the end."""

    spark: object
    data: EncodedData
    config: Config
    seed: int
    stats: dict = field(default_factory=dict)
    persisted: list = field(default_factory=list)

    def persist(self, df: DataFrame) -> DataFrame:
        """Persists an intermediate used by several jobs (released after the final count)."""
        df = df.persist(StorageLevel.MEMORY_AND_DISK)
        self.persisted.append(df)
        return df


def _resolve_seed(config: Config) -> int:
    if config.seed is not None:
        return int(config.seed)
    seed = secrets.randbits(63)
    log.info("generate: no seed configured, using seed %d (set 'seed' to reproduce this release)", seed)
    return seed


# ==================================================================================== arrow helpers
def _list_array(offsets: np.ndarray, ids: np.ndarray) -> pa.Array:
    return pa.ListArray.from_arrays(pa.array(np.asarray(offsets, np.int32)), pa.array(np.asarray(ids, np.int32)))


def _keyed_batch(record_ids: np.ndarray, offsets: np.ndarray, ids: np.ndarray, seed: int) -> pa.RecordBatch:
    """``record_id, attrs, sort_key``: the key orders SuppressToTargets (stream ``(seed, SUPPRESS, id)``)."""
    keys = K.uniform_keys(seed, K.PHASE_SUPPRESS, record_ids).view(np.int64)
    return pa.RecordBatch.from_arrays([pa.array(np.asarray(record_ids, np.int64)), _list_array(offsets, ids),
                                       pa.array(keys)], names=["record_id", "attrs", "sort_key"])


def _driver_records(spark, record_ids: np.ndarray, offsets: np.ndarray, ids: np.ndarray, seed: int) -> DataFrame:
    """A DataFrame of records built on the driver (synthetic, never sensitive), with sort keys."""
    return spark.createDataFrame(pa.Table.from_batches([_keyed_batch(record_ids, offsets, ids, seed)]))


def _attribute_space(data: EncodedData) -> K.AttributeSpace:
    return K.AttributeSpace(data.attribute_columns.astype(np.int64), len(data.headers))


class _Progress:
    """Logs ``label`` progress with an ETA at most every few seconds (counts only)."""

    def __init__(self, label: str, total: int):
        self.label, self.total = label, max(1, total)
        self.started = self.last = time.monotonic()

    def __call__(self, built: int, left: int) -> None:
        now = time.monotonic()
        if now - self.last < _PROGRESS_SECONDS and left > 0:
            return
        self.last = now
        done = self.total - left
        eta = (now - self.started) * left / done if done > 0 else float("nan")
        log.info("%s: %d records, quota left %d / %d, ETA %.0f s", self.label, built, left, self.total, eta)


# ==================================================================================== support index
def build_index(spark, data: EncodedData, k: int) -> K.SupportIndex:
    """Builds the ``Rows(a)`` bitset index of spec §1.8 on the executors.

    Each partition emits the non-zero words of its records' bitsets; Spark ORs them per
    ``(attribute, word)``. Collected to the driver: those words only (at most ``A·ceil(N/64)``).
    """
    n_words = max(1, (data.n_records + 63) // 64)

    def partial_words(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            offsets, ids = arrow_csr(batch)
            attr, word, bits = K.partial_bitsets(batch.column("record_id").to_numpy(), offsets, ids, n_words)
            yield pa.RecordBatch.from_arrays([pa.array(attr.astype(np.int32)), pa.array(word.astype(np.int32)),
                                              pa.array(bits)], names=["attr", "word", "bits"])

    started = time.monotonic()
    words = (data.records.select("record_id", "attrs").mapInArrow(partial_words, "attr int, word int, bits long")
             .groupBy("attr", "word").agg(F.bit_or("bits").alias("bits")).toArrow())
    bits = K.assemble_bitsets(words.column("attr").to_numpy(), words.column("word").to_numpy(),
                              words.column("bits").to_numpy(), data.n_attributes, n_words)
    index = K.SupportIndex(bits, _attribute_space(data), data.n_records, k)
    log.info("generate: support index of %d attributes x %d words built in %.1f s", data.n_attributes, n_words,
             time.monotonic() - started)
    return index


@dataclass(frozen=True)
class _IndexBroadcast:
    """The broadcast bitsets of an index, with a token naming this broadcast in the workers."""

    payload: object      # Broadcast of (bits, columns, n_columns, n_records, k)
    token: str


def _broadcast_index(spark, index: K.SupportIndex) -> _IndexBroadcast:
    """Broadcasts what executors need to rebuild the index: the attribute bitsets (A·ceil(N/64)
    words) and the column of every attribute."""
    space = index.space
    payload = (index.bits[:space.n_attrs], space.columns, space.n_columns, index.n_records, index.k)
    return _IndexBroadcast(spark.sparkContext.broadcast(payload), uuid.uuid4().hex)


# The index rebuilt from the last broadcast seen by this Python worker (reused across tasks).
_EXECUTOR_INDEX: dict = {}


def _executor_oracle(shared: _IndexBroadcast, cache_size: int) -> K.SupportOracle:
    """A support oracle for one task: the broadcast index (rebuilt once per Python worker) with a
    fresh LRU cache of ``cache_size`` entries."""
    index = _EXECUTOR_INDEX.get(shared.token)
    if index is None:
        bits, columns, n_columns, n_records, k = shared.payload.value
        index = K.SupportIndex(bits, K.AttributeSpace(columns, n_columns), n_records, k)
        _EXECUTOR_INDEX.clear()
        _EXECUTOR_INDEX[shared.token] = index
    return K.SupportOracle(index, cache_size)


# ==================================================================================== row_seeded
def _row_seeded(run: _Run, index: K.SupportIndex) -> DataFrame:
    """Spec §4.1: phase 1 in executors, phase 2 (consolidation) on the driver, phase 3 distributed."""
    data, config, seed = run.data, run.config, run.seed
    shared = _broadcast_index(run.spark, index)
    cache_size = config.cache_max_size

    def phase1(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        oracle = _executor_oracle(shared, cache_size)
        for batch in batches:
            started = time.monotonic()
            record_ids = batch.column("record_id").to_numpy().astype(np.int64)
            offsets, ids = arrow_csr(batch)
            out_offsets, out_ids = K.row_seeded_phase1(oracle, seed, record_ids, offsets, ids)
            log.info("row_seeded phase 1: %d seed records in %.2f s (cache hits %d, misses %d)",
                     len(record_ids), time.monotonic() - started, oracle.cache.hits, oracle.cache.misses)
            yield _keyed_batch(record_ids, out_offsets, out_ids, seed)

    started = time.monotonic()
    seeded = run.persist(data.records.select("record_id", "attrs").mapInArrow(phase1, _KEYED_SCHEMA))
    used, empty = _attribute_counts(seeded, data.n_attributes)
    run.stats.update(phase1_records=data.n_records - empty, phase1_empty=empty)
    log.info("row_seeded phase 1: %d / %d seed records kept attributes (%d empty), %.1f s",
             data.n_records - empty, data.n_records, empty, time.monotonic() - started)

    quota = int(K.leftover_quotas(index.counts[:data.n_attributes], used, config.k).sum())
    log.info("row_seeded phase 2: consolidating %d leftover attribute occurrences", quota)
    consolidated = K.row_seeded_consolidation(K.SupportOracle(index, cache_size), seed, used,
                                              _Progress("row_seeded phase 2", quota))
    run.stats.update(consolidated_records=consolidated.n_records)
    extra = _driver_records(run.spark, data.n_records + np.arange(consolidated.n_records), consolidated.offsets,
                            consolidated.ids, seed)
    counts = used + np.bincount(consolidated.ids, minlength=data.n_attributes)
    return _suppress(run, seeded.unionByName(extra), counts, data.n_records + consolidated.n_records)


def _attribute_counts(records: DataFrame, n_attrs: int) -> tuple[np.ndarray, int]:
    """Occurrences of every attribute id and the number of empty records (a small aggregate)."""
    rows = (records.select(F.explode_outer("attrs").alias("a")).groupBy("a").count().collect())
    counts = np.zeros(n_attrs, dtype=np.int64)
    empty = 0
    for row in rows:
        if row["a"] is None:
            empty = int(row["count"])
        else:
            counts[int(row["a"])] = int(row["count"])
    return counts, empty


# ==================================================================================== suppression
def _suppress(run: _Run, records: DataFrame, counts: np.ndarray, n_before: int) -> DataFrame:
    """Spec §4.0 SuppressToTargets, distributed: the random order is the records' ``sort_key``.

    Each partition selects its ``e(a)`` smallest-keyed occurrences per over-represented
    attribute; the driver re-selects among those (collected: at most partitions × Σe(a) rows)
    and broadcasts one threshold per attribute; executors then drop occurrences at or below
    it, and records left empty (spec Q10).
    """
    spark, data = run.spark, run.data
    excess = K.excess_counts(counts, data.attribute_counts, run.config.k)
    run.stats["attributes_suppressed"] = int(excess.sum())
    run.stats["records_before_suppression"] = n_before
    if not excess.any():
        log.info("suppression: no attribute over its target")
        return records.filter(F.size("attrs") > 0).select("record_id", "attrs")
    log.info("suppression: removing %d occurrences of %d over-represented attributes", int(excess.sum()),
             int((excess > 0).sum()))
    excess_b = spark.sparkContext.broadcast(excess)

    def victims(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            offsets, ids = arrow_csr(batch)
            attrs, keys, rids = K.smallest_occurrences(batch.column("record_id").to_numpy(),
                                                       batch.column("sort_key").to_numpy().view(np.uint64),
                                                       offsets, ids, excess_b.value)
            yield pa.RecordBatch.from_arrays([pa.array(attrs), pa.array(keys.view(np.int64)), pa.array(rids)],
                                             names=["attr", "sort_key", "record_id"])

    chosen = records.mapInArrow(victims, "attr long, sort_key long, record_id long").toArrow()
    selected = K.select_smallest(chosen.column("attr").to_numpy(), chosen.column("sort_key").to_numpy().view(np.uint64),
                                 chosen.column("record_id").to_numpy(), excess)
    thresholds = spark.sparkContext.broadcast(K.SuppressionThresholds.from_victims(*selected, data.n_attributes))

    def apply(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            record_ids = batch.column("record_id").to_numpy()
            offsets, ids = arrow_csr(batch)
            kept, new_offsets, new_ids, _ = K.apply_suppression(
                record_ids, batch.column("sort_key").to_numpy().view(np.uint64), offsets, ids, thresholds.value)
            yield pa.RecordBatch.from_arrays([pa.array(record_ids[kept]), _list_array(new_offsets, new_ids)],
                                             names=["record_id", "attrs"])

    return records.mapInArrow(apply, RECORDS_SCHEMA)


# ==================================================================================== unseeded
def _unseeded(run: _Run, index: K.SupportIndex) -> DataFrame:
    """Spec §4.2: exactly N records, record ``t`` built in an executor from stream ``(seed, t)``."""
    spark, seed, cache_size = run.spark, run.seed, run.config.cache_max_size
    shared = _broadcast_index(spark, index)

    def generate(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        oracle = _executor_oracle(shared, cache_size)
        for batch in batches:
            started = time.monotonic()
            numbers = batch.column(0).to_numpy().astype(np.int64)
            offsets, ids = K.unseeded_records(oracle, seed, numbers)
            log.info("unseeded: %d records in %.2f s", len(numbers), time.monotonic() - started)
            yield pa.RecordBatch.from_arrays([pa.array(numbers), _list_array(offsets, ids)], names=["record_id", "attrs"])

    partitions = max(1, spark.sparkContext.defaultParallelism * 2)
    return spark.range(0, run.data.n_records, numPartitions=partitions).mapInArrow(generate, RECORDS_SCHEMA)


# ==================================================================================== value_seeded
def _value_seeded(run: _Run, index: K.SupportIndex, reportable: Optional[DataFrame],
                  reportable_length: Optional[int]) -> DataFrame:
    """Spec §4.3 (quota ``floor_k(n(a))``, spec §11): driver consolidation, then suppression."""
    data, config = run.data, run.config
    options = K.ConsolidationOptions(tries=config.oversampling_tries or 1)
    quota_total = int(K.seeded_quotas(data.attribute_counts, config.k).sum())
    if config.oversampling_ratio is not None:
        options.control = collect_aggregates(data, reportable, reportable_length, "value_seeded with oversampling_ratio")
        options.ratio = float(config.oversampling_ratio)
    options.progress = _Progress("value_seeded", quota_total)
    result = K.value_seeded(K.SupportOracle(index, config.cache_max_size), run.seed, options)
    _report_consolidation(result, run.stats)
    built = _driver_records(run.spark, np.arange(result.n_records), result.offsets, result.ids, run.seed)
    return _suppress(run, built, np.bincount(result.ids, minlength=data.n_attributes), result.n_records)


def _report_consolidation(result: K.Consolidation, stats: dict) -> None:
    stats.update(consolidated_records=result.n_records, quota_left=result.quota_left)
    if result.stalled:
        log.warning("consolidation stopped early: the oversampling control rejects every remaining attribute "
                    "(%d units of quota left unused)", result.quota_left)


# ==================================================================================== aggregate_seeded
def collect_aggregates(data: EncodedData, reportable: Optional[DataFrame], length: Optional[int],
                       purpose: str) -> K.AggregateTable:
    """Collects the reportable aggregates (releasable counts) into an :class:`AggregateTable`.

    Raises:
        ConfigError: ``reportable`` is missing.
    """
    if reportable is None:
        raise ConfigError(f"{purpose} needs the reportable aggregates: run the aggregate stage first "
                          "(or drop the option).")
    table = reportable.select("attrs", F.col("protected_count").cast("long").alias("count")).toArrow()
    batch = table.combine_chunks().to_batches()[0] if table.num_rows else None
    if batch is None:
        return K.AggregateTable.from_combos([], [], data.n_attributes, max(1, int(length or 1)))
    offsets, ids = arrow_csr(batch)
    longest = int(np.diff(offsets).max())
    length = max(int(length), longest) if length is not None else longest
    return K.AggregateTable(offsets, ids, batch.column("count").to_numpy(), data.n_attributes, length)


def _aggregate_seeded(run: _Run, reportable: Optional[DataFrame], reportable_length: Optional[int]) -> DataFrame:
    """Spec §4.4 on the driver from ``reportable`` only (``data.records`` is not read)."""
    data, config = run.data, run.config
    table = collect_aggregates(data, reportable, reportable_length, "aggregate_seeded")
    percentile = 95.0 if config.weight_selection_percentile is None else float(config.weight_selection_percentile)
    target = config.aggregate_seeded_target_number_of_records
    log.info("aggregate_seeded: %d aggregate rows, reporting length %d, percentile %.1f, target %s",
             len(table), table.length, percentile, target)
    result = K.aggregate_seeded(table, _attribute_space(data), run.seed, percentile=percentile,
                                scale=config.aggregate_seeded_counts_scale_factor, target=target,
                                use_synthetic_counts=config.use_synthetic_counts,
                                progress=_Progress("aggregate_seeded", int(table.singles().sum())))
    _report_consolidation(result, run.stats)
    return run.spark.createDataFrame(pa.Table.from_batches([pa.RecordBatch.from_arrays(
        [pa.array(np.arange(result.n_records, dtype=np.int64)), _list_array(result.offsets, result.ids)],
        names=["record_id", "attrs"])]))


# ==================================================================================== output order
def number_rows(spark, data: EncodedData, records: DataFrame) -> DataFrame:
    """Spec §4.0 output order, numbered in one partition: ``syn_id long, attrs array<int>``.

    Rows sort by their number of non-empty cells descending, then by their cells in header
    order, compared as strings; here each cell is the rank of its value in its column (0 =
    empty), which orders exactly as the strings do. Equal keys mean identical rows.
    Broadcast: the rank and column of every attribute id.
    """
    ranks = K.value_ranks(data.attribute_columns, list(data.attributes["value"]))
    columns = data.attribute_columns.astype(np.int64)
    n_columns = len(data.headers)

    def sort_cells(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            offsets, ids = arrow_csr(batch)
            cells, non_empty = K.row_cells(offsets, ids, columns, ranks, n_columns)
            cell_lists = pa.FixedSizeListArray.from_arrays(pa.array(cells.ravel()), n_columns) if n_columns else \
                pa.array([[]] * len(non_empty), pa.list_(pa.int32()))
            yield pa.RecordBatch.from_arrays([batch.column(batch.schema.get_field_index("attrs")), pa.array(non_empty),
                                              cell_lists.cast(pa.list_(pa.int32()))],
                                             names=["attrs", "non_empty", "cells"])

    # The exchange puts the key computation in its own stage: chained after a synthesis
    # mapInArrow, each task would hold a second Python worker (about 0.2 GB each).
    partitions = max(1, spark.sparkContext.defaultParallelism)
    keyed = (records.select("attrs").repartition(partitions)
             .mapInArrow(sort_cells, "attrs array<int>, non_empty int, cells array<int>"))
    order = Window.orderBy(F.desc("non_empty"), F.asc("cells"))
    numbered = keyed.select((F.row_number().over(order) - 1).cast("long").alias("syn_id"), "attrs")
    return numbered


# ==================================================================================== rendering
def _attribute_lookup(data: EncodedData) -> tuple[np.ndarray, np.ndarray]:
    return data.attribute_columns.astype(np.int64), np.array(list(data.attributes["value"]), dtype=object)


def microdata_rows(spark, data: EncodedData, result: SynthesisResult) -> DataFrame:
    """Synthetic microdata: ``syn_id`` and one string column per header (``""`` when absent),
    ordered by ``syn_id``. Broadcast: the value and column of every attribute id."""
    columns, values = _attribute_lookup(data)
    headers = list(data.headers)

    def render(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            offsets, ids = arrow_csr(batch)
            n = len(offsets) - 1
            cells = np.full((n, len(headers)), "", dtype=object)
            owner = np.repeat(np.arange(n), np.diff(offsets))
            cells[owner, columns[ids]] = values[ids]
            arrays = [batch.column(batch.schema.get_field_index("syn_id"))]
            arrays += [pa.array(cells[:, c].tolist(), pa.string()) for c in range(len(headers))]
            yield pa.RecordBatch.from_arrays(arrays, names=["syn_id"] + [f"c{c}" for c in range(len(headers))])

    schema = "syn_id long" + "".join(f", c{c} string" for c in range(len(headers)))
    rendered = result.records.select("syn_id", "attrs").mapInArrow(render, schema)
    return rendered.select("syn_id", *[F.col(f"c{c}").alias(h) for c, h in enumerate(headers)]).orderBy("syn_id")


def long_form_rows(spark, data: EncodedData, result: SynthesisResult) -> DataFrame:
    """``Id, Attribute, Value, AttributeValue`` (``"column:value"``): one row per non-empty
    cell, ordered by ``Id`` then column order. Broadcast-joins the (small) attribute table."""
    attributes = spark.createDataFrame(
        data.attributes[["attr_id", "column_index", "column", "value"]].astype(
            {"attr_id": "int64", "column_index": "int64"}))
    cells = result.records.select(F.col("syn_id").alias("Id"), F.explode("attrs").alias("attr_id"))
    return (cells.join(F.broadcast(attributes), "attr_id")
            .select("Id", F.col("column").alias("Attribute"), F.col("value").alias("Value"),
                    F.concat_ws(":", "column", "value").alias("AttributeValue"), "column_index")
            .orderBy("Id", "column_index").drop("column_index"))
