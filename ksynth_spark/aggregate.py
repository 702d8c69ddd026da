"""Aggregate stage: sensitive and k-anonymous combination counts and risk statistics (spec §2).

Counting runs on executors: identical records are first merged into (attribute set, weight)
rows, then each partition enumerates the combinations of its rows with the numpy kernels of
:mod:`ksynth_spark.combinations` and emits partial counts per packed key, which Spark sums.
Results do not depend on partitioning (invariant A5): the kernels only add integers.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.storagelevel import StorageLevel

from ksynth_spark.arrow_jobs import broadcast, csr, map_batches, map_partitions, numbers, record_batch
from ksynth_spark.combinations import (
    ColumnLayout,
    ComboCodec,
    column_set_shards,
    count_by_column_sets,
    count_combinations,
    fits_column_sets,
    shortest_member_length,
    shortest_member_length_by_column_sets,
    sortable,
    walk_column_sets,
)
from ksynth_spark.config import Config
from ksynth_spark.model import EncodedData
from ksynth_spark.numerics import floor_k

log = logging.getLogger(__name__)


@dataclass
class AggregateResult:
    """Outputs of the aggregate stage.

    Attributes:
        sensitive: ``attrs, length, count, selections`` for every combination (persisted; sensitive).
        reportable: ``attrs, length, protected_count, selections`` (count ≥ k, floored to k).
        reporting_length: Effective R (spec §2.1).
        n_records: N.
        protected_record_count: floor_k(N).
        rare_by_length: Small table ``sen_combo_length, combo_count, rare_count, rare_proportion``.
        records_analysis: Small table of spec §2.6 (protected) per length, plus totals in ``attrs``.
    """

    sensitive: DataFrame
    reportable: DataFrame
    reporting_length: int
    n_records: int
    protected_record_count: int
    rare_by_length: pd.DataFrame
    records_analysis: pd.DataFrame
    risk_totals: dict


# ---------------------------------------------------------------------------------- counting
#: Distinct rows per counting task beyond which more tasks are used than there are cores.
ROWS_PER_COUNTING_TASK = 1_000_000


def counting_partitions(spark, n_rows: int) -> int:
    """Tasks for the counting pass over ``n_rows`` distinct rows: one per core, more only for
    very large tables.

    Every task emits one partial count per distinct combination it sees, and Spark then sums
    the partials, so extra tasks cost shuffle volume (8 tasks instead of 2 shuffle 2.6 M
    instead of 1.1 M partial counts on adult at L=4, and take twice as long).
    """
    cores = max(1, spark.sparkContext.defaultParallelism)
    return max(cores, -(-int(n_rows) // ROWS_PER_COUNTING_TASK))


def counting_rows(rows: DataFrame, partitions: int) -> DataFrame:
    """``attrs, weight`` of distinct rows spread over exactly ``partitions`` partitions."""
    rows = rows.select("attrs", "weight")
    if rows.rdd.getNumPartitions() > partitions:
        return rows.coalesce(partitions)
    return rows.repartition(partitions)


def _key_columns(codec: ComboCodec) -> list[str]:
    return [f"k{i}" for i in range(codec.n_words)]


def count_packed(rows: DataFrame, codec: ComboCodec, layout: ColumnLayout, max_length: int) -> DataFrame:
    """Counts weighted combinations of ``rows`` (``attrs, weight``) on executors.

    Each partition walks column sets over its rows (:func:`count_by_column_sets`), or, when a
    column-set code space would not fit in int64, enumerates packed combinations instead.

    Returns:
        DataFrame ``k0..k{w-1}, count`` (one row per distinct packed combination).
    """
    keys = _key_columns(codec)
    schema = ", ".join(f"{k} long" for k in keys) + ", count long"
    by_column_sets = fits_column_sets(layout, max_length)

    def kernel(table: pa.Table):
        offsets, ids = csr(table)
        weights = numbers(table, "weight")
        if by_column_sets:
            parts = count_by_column_sets(codec, layout, offsets, ids, weights, max_length)
        else:
            parts = count_combinations(codec, offsets, ids, weights, max_length)
        for packed, counts in parts:
            columns = [pa.array(packed[:, i]) for i in range(codec.n_words)] + [pa.array(counts)]
            yield pa.RecordBatch.from_arrays(columns, names=keys + ["count"])

    return map_partitions(rows, schema, kernel).groupBy(*keys).agg(F.sum("count").alias("count"))


def decode_keys(packed: DataFrame, codec: ComboCodec) -> DataFrame:
    """Unpacks ``k0..`` into ``attrs array<int>`` and ``length`` with SQL expressions (JVM only)."""
    mask = (1 << codec.bits) - 1
    slots = []
    for slot in range(codec.max_length):
        word, pos = divmod(slot, codec.per_word)
        slots.append((F.shiftright(F.col(f"k{word}"), codec.bits * pos).bitwiseAND(F.lit(mask)) - 1).cast("int"))
    attrs = F.filter(F.array(*slots), lambda x: x >= 0)
    return packed.select(attrs.alias("attrs"), *[c for c in packed.columns if not c.startswith("k")]).withColumn(
        "length", F.size("attrs").cast("int")
    )


def with_selections(df: DataFrame, data: EncodedData, order: str = "ordinal") -> DataFrame:
    """Adds the ``selections`` string of spec §6.2 (``col:value`` joined by ``;``).

    The attribute labels (small) are embedded in the query plan as a literal array.
    """
    labels = data.labels()
    ranks = data.selection_ranks(order)
    if np.array_equal(ranks, np.arange(len(ranks))):  # ordinal order: ``attrs`` is already sorted by rank
        label_lit = F.array(*[F.lit(s) for s in labels])
        labels_of = F.transform("attrs", lambda a: F.element_at(label_lit, a + 1))
        return df.withColumn("selections", F.array_join(labels_of, ";"))
    by_rank = [labels[i] for i in np.argsort(ranks)]
    rank_lit = F.array(*[F.lit(int(r)) for r in ranks])
    label_lit = F.array(*[F.lit(s) for s in by_rank])
    ranked = F.array_sort(F.transform("attrs", lambda a: F.element_at(rank_lit, a + 1)))
    return df.withColumn("selections", F.array_join(F.transform(ranked, lambda r: F.element_at(label_lit, r + 1)), ";"))


@dataclass
class CombinationCounts:
    """Counted combinations of a records table (``rows`` and ``packed`` persisted: call
    :meth:`release` once ``decoded`` has been persisted or written).

    Attributes:
        rows: Distinct attribute sets with their weights (``attrs, weight``).
        packed: ``k0.., count`` keyed by packed combination (fast set lookups).
        decoded: ``attrs, length, count``.
        codec: The packing used for ``packed``.
        layout: The attribute→column layout.
        shortest: Records per (shortest unique length, shortest rare length) when the counting
            pass computed them (``lu, lq, n``; 0 = none), else None.
    """

    rows: DataFrame
    packed: DataFrame
    decoded: DataFrame
    codec: ComboCodec
    layout: ColumnLayout
    shortest: pd.DataFrame | None = None

    def release(self) -> None:
        """Drops the cached intermediate tables."""
        self.rows.unpersist()
        self.packed.unpersist()

    def rare_keys(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Sorted :func:`sortable` views of the packed keys with count < k and of those with
        count 1, for membership tests on executors. Collected to the driver: combination keys
        only (8 bytes per key and word), never records."""
        keys = _key_columns(self.codec)
        rare = self.packed.filter(F.col("count") < k).select(*keys, (F.col("count") == 1).alias("unique")).toArrow()
        packed = (np.column_stack([rare.column(c).to_numpy() for c in keys]) if rare.num_rows
                  else np.zeros((0, len(keys)), np.int64))
        unique = rare.column("unique").to_numpy(zero_copy_only=False).astype(bool)
        return np.sort(sortable(packed)), np.sort(sortable(packed[unique]))


#: Counting tasks per core of the column-set shards (a few per core balance the shards).
SHARDS_PER_CORE = 3


@dataclass(frozen=True)
class _ShardInputs:
    """What every counting task reads (broadcast): the distinct rows as a codes matrix."""

    codes: np.ndarray
    weights: np.ndarray
    shards: list
    k: int | None


def _count_by_shards(weighted: DataFrame, codec: ComboCodec, layout: ColumnLayout, max_length: int,
                     k: int | None) -> tuple[DataFrame, DataFrame, pd.DataFrame | None]:
    """Counts every combination with the column sets split across tasks; every task walks its
    column sets over ALL distinct rows, so its counts are final (no partial counts to shuffle)
    and, with ``k``, it also finds each row's shortest unique and rare combination.

    Collected to the driver and broadcast: the distinct rows as a ``D × C`` codes matrix and
    their weights (``4·C + 8`` bytes per distinct row). Collected back: per task, two bytes per
    distinct row (the shortest lengths), when ``k`` is given.

    Returns:
        ``(rows, packed, shortest)``: the persisted distinct rows, the persisted ``k0.., count``
        table, and (with ``k``) ``lu, lq, n``: records per (shortest unique length, shortest
        rare length), 0 = none.
    """
    spark = weighted.sparkSession
    rows = weighted.select("attrs", "weight").persist(StorageLevel.MEMORY_AND_DISK)
    table = rows.toArrow()
    offsets, ids = csr(table)
    weights = numbers(table, "weight")
    codes = layout.wide_codes(offsets, ids)
    n_tasks = max(1, spark.sparkContext.defaultParallelism * SHARDS_PER_CORE)
    shards = column_set_shards(layout, max_length, n_tasks)
    keys = _key_columns(codec)
    schema = ", ".join(f"{c} long" for c in keys) + ", count long, shortest binary"

    def kernel(batch: pa.RecordBatch, shared):
        inputs = shared.value
        weights_f = inputs.weights.astype(np.float64)
        n = inputs.codes.shape[0]
        for task in numbers(batch, "id"):
            unique = np.zeros(n, np.uint8)
            rare = np.zeros(n, np.uint8)
            for group in walk_column_sets(layout, inputs.codes, max_length, roots=inputs.shards[task]):
                counts = np.rint(np.bincount(group.inverse, weights=weights_f[group.rows],
                                             minlength=len(group.distinct_attrs))).astype(np.int64)
                packed = codec.pack(group.distinct_attrs)
                yield pa.RecordBatch.from_arrays([pa.array(packed[:, i]) for i in range(codec.n_words)]
                                                 + [pa.array(counts), pa.nulls(len(counts), pa.binary())],
                                                 names=keys + ["count", "shortest"])
                if inputs.k is not None:
                    size = len(group.columns)
                    for lengths, hit in ((unique, counts == 1), (rare, counts < inputs.k)):
                        found = group.rows[hit[group.inverse]]
                        current = lengths[found]
                        lengths[found[(current == 0) | (current > size)]] = size
            if inputs.k is not None:
                blob = pa.array([np.concatenate([unique, rare]).tobytes()], pa.binary())
                yield pa.RecordBatch.from_arrays([pa.array([int(task)])] + [pa.array([0])] * (codec.n_words - 1)
                                                 + [pa.array([-1]), blob], names=keys + ["count", "shortest"])

    with broadcast(spark, _ShardInputs(codes, weights, shards, k)) as shared:
        tasks = spark.range(0, len(shards), numPartitions=len(shards))
        out = map_batches(tasks, schema, kernel, setup=lambda: shared).persist(StorageLevel.MEMORY_AND_DISK)
        packed = out.filter(F.col("count") >= 0).select(*keys, "count").persist(StorageLevel.MEMORY_AND_DISK)
        packed.count()
        blobs = out.filter(F.col("count") < 0).select("shortest").collect() if k is not None else []
    out.unpersist()
    shortest = None
    if k is not None:
        n = len(weights)
        unique = np.zeros(n, np.uint8)
        rare = np.zeros(n, np.uint8)
        for blob in blobs:
            arrays = np.frombuffer(blob["shortest"], dtype=np.uint8)
            for lengths, part in ((unique, arrays[:n]), (rare, arrays[n:])):
                take = (part > 0) & ((lengths == 0) | (part < lengths))
                lengths[take] = part[take]
        shortest = (pd.DataFrame({"lu": unique.astype(int), "lq": rare.astype(int), "n": weights})
                    .groupby(["lu", "lq"], as_index=False)["n"].sum())
    return rows, packed, shortest


def count_combinations_df(weighted: DataFrame, data: EncodedData, max_length: int,
                          k: int | None = None) -> CombinationCounts:
    """Counts every combination of length 1..max_length of weighted distinct attribute sets
    (``attrs, weight``; ids of ``data.attributes``) on executors.

    When every column set's code space fits int64 (always, but for columns with extreme
    numbers of values), the column sets are split across tasks (:func:`_count_by_shards`);
    with ``k`` the records analysis is computed in the same pass. Otherwise the rows are split
    across tasks that enumerate combinations, and Spark sums their partial counts.
    """
    codec = ComboCodec(max(1, data.n_attributes), max(1, max_length))
    layout = ColumnLayout.from_attr_columns(data.attribute_columns, len(data.headers))
    if fits_column_sets(layout, max_length):
        rows, packed, shortest = _count_by_shards(weighted, codec, layout, max_length, k)
        return CombinationCounts(rows, packed, decode_keys(packed, codec), codec, layout, shortest)
    partitions = counting_partitions(weighted.sparkSession, data.n_rows)
    rows = counting_rows(weighted, partitions).persist(StorageLevel.MEMORY_AND_DISK)
    packed = count_packed(rows, codec, layout, max_length).persist(StorageLevel.MEMORY_AND_DISK)
    return CombinationCounts(rows, packed, decode_keys(packed, codec), codec, layout)


# ---------------------------------------------------------------------------------- protection and statistics
def protect(sensitive: DataFrame, k: int) -> DataFrame:
    """Spec §2.4: ``protected = floor_k(count)``; combinations with count < k are dropped."""
    return sensitive.filter(F.col("count") >= k).select(
        "attrs", "length", (F.floor(F.col("count") / k) * k).cast("long").alias("protected_count"),
        *(["selections"] if "selections" in sensitive.columns else []),
    )


def rare_by_length(sensitive: DataFrame, k: int) -> pd.DataFrame:
    """Spec §2.5 per length (a small aggregate collected to the driver)."""
    rows = (
        sensitive.groupBy("length")
        .agg(F.count(F.lit(1)).alias("combo_count"), F.sum((F.col("count") < k).cast("long")).alias("rare_count"))
        .orderBy("length")
        .collect()
    )
    table = pd.DataFrame(
        [(int(r["length"]), int(r["combo_count"]), int(r["rare_count"])) for r in rows],
        columns=["sen_combo_length", "combo_count", "rare_count"],
    )
    share = table["rare_count"] / table["combo_count"].clip(lower=1)
    table["rare_proportion"] = np.where(table["combo_count"] > 0, share, 0.0)
    return table


def records_analysis(spark, counts: CombinationCounts, max_length: int, k: int,
                     n_records: int) -> tuple[pd.DataFrame, dict]:
    """Records with unique / rare combinations at their shortest length (protected counts).

    Every record is counted at most once: as unique at the shortest length where one of its
    combinations is seen once, otherwise as rare at the shortest length where one is seen fewer
    than k times. The shortest lengths come from the counting pass (or, for tables counted by
    enumeration, from :func:`_shortest_by_broadcast`); only per-length record counts are kept.
    """
    if counts.shortest is not None:
        lengths = counts.shortest.to_dict("records")
    else:
        lengths = _shortest_by_broadcast(spark, counts, max_length, k)
    unique = np.zeros(max_length + 1, dtype=np.int64)
    rare_only = np.zeros(max_length + 1, dtype=np.int64)
    for r in lengths:
        if r["lu"] > 0:
            unique[r["lu"]] += r["n"]
        elif r["lq"] > 0:
            rare_only[r["lq"]] += r["n"]
    return _analysis_table(unique, rare_only, k, n_records, max_length)


def _shortest_by_broadcast(spark, counts: CombinationCounts, max_length: int, k: int) -> list:
    """``lu, lq, n`` rows of the records analysis when counting did not compute them: the
    packed keys of rare combinations (count < k) are collected to the driver and broadcast (8
    bytes per key per word); executors find each distinct row's shortest unique and rare length."""
    codec, layout = counts.codec, counts.layout
    by_column_sets = fits_column_sets(layout, max_length)

    def shortest(offsets, ids, members):
        if by_column_sets:
            return shortest_member_length_by_column_sets(codec, layout, offsets, ids, members, max_length)
        return shortest_member_length(codec, offsets, ids, members, max_length)

    def kernel(batch: pa.RecordBatch, shared) -> pa.RecordBatch:
        rare_sorted, unique_sorted = shared.value
        offsets, ids = csr(batch)
        return record_batch(lu=shortest(offsets, ids, unique_sorted), lq=shortest(offsets, ids, rare_sorted),
                            weight=numbers(batch, "weight"))

    with broadcast(spark, counts.rare_keys(k)) as shared:
        return (map_batches(counts.rows, "lu int, lq int, weight long", kernel, setup=lambda: shared)
                .groupBy("lu", "lq").agg(F.sum("weight").alias("n")).collect())


def _analysis_table(unique: np.ndarray, rare: np.ndarray, k: int, n_records: int, max_length: int):
    base = floor_k(n_records, k)

    def pct(x):
        return 100.0 * x / base if base else 0.0

    rows = []
    for length in range(1, max_length + 1):
        u, q = int(floor_k(unique[length], k)), int(floor_k(rare[length], k))
        rows.append((length, q, pct(q), u, pct(u), u + q, pct(u + q)))
    table = pd.DataFrame(rows, columns=["combo_length", "sen_rare", "sen_rare_pct", "sen_unique", "sen_unique_pct",
                                        "sen_risky", "sen_risky_pct"])
    totals = {
        "unique_identifiable": int(table["sen_unique"].sum()),
        "rare_identifiable": int(table["sen_rare"].sum()),
        "risky_identifiable": int(table["sen_risky"].sum()),
    }
    totals["risky_identifiable_pct"] = pct(totals["risky_identifiable"])
    return table, totals


# ---------------------------------------------------------------------------------- stage
def aggregate(spark, data: EncodedData, config: Config) -> AggregateResult:
    """Runs spec §2 on the encoded records.

    Collected to the driver: per-length statistics, per-length record counts, and the packed
    keys of rare combinations (for the records analysis broadcast). Never the records.
    """
    k = config.k
    length = config.effective_reporting_length(len(data.headers))
    started = time.monotonic()
    log.info("aggregate: counting combinations of length 1..%d over %d records", length, data.n_records)
    counts = count_combinations_df(data.rows, data, length, k)
    sensitive = with_selections(counts.decoded, data, config.selection_order).persist(StorageLevel.MEMORY_AND_DISK)
    by_length = rare_by_length(sensitive, k)  # the first job over ``sensitive``: fills its cache
    log.info("aggregate: %d distinct combinations counted in %.1f s", int(by_length["combo_count"].sum()),
             time.monotonic() - started)
    analysis, totals = records_analysis(spark, counts, length, k, data.n_records)
    counts.release()
    log.info("aggregate: records analysis done (%.1f s total)", time.monotonic() - started)
    return AggregateResult(
        sensitive=sensitive,
        reportable=protect(sensitive, k),
        reporting_length=length,
        n_records=data.n_records,
        protected_record_count=int(floor_k(data.n_records, k)),
        rare_by_length=by_length,
        records_analysis=analysis,
        risk_totals=totals,
    )


def ordered_for_file(df: DataFrame, count_column: str, record_count: int) -> DataFrame:
    """Rows of an aggregates TSV (spec §6.2): ``record_count`` first, then length ascending,
    count descending, selections ascending.

    A global sort (range-partitioned, in parallel): the file is written partition by partition
    and the parts are concatenated in order (:func:`ksynth_spark.io.write_tsv`), so a table of
    10^8 combinations is never sorted or written by one task. ``selections`` is unique, so the
    order is total and the file the same for any partitioning."""
    # Built from literals, not from a Python list: a list would need a Python worker to decode it.
    head = df.sparkSession.range(1).select(F.lit("record_count").alias("selections"),
                                           F.lit(int(record_count)).cast("long").alias(count_column),
                                           F.lit(0).alias("length"))
    body = df.select("selections", F.col(count_column).cast("long"), "length")
    ordered = head.unionByName(body).orderBy("length", F.desc(count_column), "selections")
    return ordered.select("selections", count_column)
