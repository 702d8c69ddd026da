"""Generate stage: k-synthetic records from the encoded sensitive data (spec §4), on Spark.

Everything per record runs in executors and costs what the *distinct* data costs:

* the support index is built from the D distinct sensitive rows (collected once: attribute ids
  and multiplicities, never the N records), broadcast, and rebuilt once per Python worker,
  which also keeps its support cache across tasks;
* row_seeded phase 1 grows each distinct row's copies together (:mod:`.seeded`);
* the quota-driven steps (row_seeded phase 2, value_seeded, aggregate_seeded) split every
  quota exactly across a fixed number of logical tasks (:mod:`.consolidation`);
* suppression selects its victims per partition; the driver merges at most partitions × Σe(a)
  candidates (:mod:`.suppression`);
* unseeded draws the N records together as merged runs, level by level (:mod:`.unseeded`).

Synthetic records travel as *groups*: an attribute set and its number of copies. The result is
the distinct synthetic records with their counts in output order (spec §4.0), each with the
synthetic row number ``syn_start`` of its first copy; the writers expand them.

Randomness comes from :mod:`ksynth_spark.randomness` streams keyed by the seed and logical ids
(distinct row content, consolidation task, unseeded state, group and copy), so the output is
byte-identical for a seed whatever the partitioning, ``spark.sql.shuffle.partitions`` or task
retries.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.storagelevel import StorageLevel

from ksynth_spark.arrow_jobs import broadcast, csr, list_array, map_batches, numbers, record_batch
from ksynth_spark.config import Config
from ksynth_spark.model import EncodedData
from ksynth_spark.randomness import (
    PHASE_AGGREGATE_SEEDED,
    PHASE_CONSOLIDATE,
    PHASE_UNSEEDED,
    PHASE_VALUE_SEEDED,
    RandomStream,
    mix64,
    row_hashes,
    stream_base,
)
from ksynth_spark.synthesis.aggregate_table import AggregateTable
from ksynth_spark.synthesis.consolidation import (
    AggregateSampler,
    ConsolidationOptions,
    SeedSampler,
    consolidate,
    leftover_quotas,
    seeded_quotas,
    split_quota,
    task_count,
)
from ksynth_spark.synthesis.index import AttributeSpace, DistinctIndex
from ksynth_spark.synthesis.order import row_cells, value_ranks
from ksynth_spark.synthesis.paths import SupportOracle
from ksynth_spark.synthesis.runs import StateLevel, merge_states
from ksynth_spark.synthesis.seeded import grow_rows
from ksynth_spark.synthesis.suppression import (
    Occurrences,
    SuppressionThresholds,
    apply_suppression,
    select_smallest,
    smallest_occurrences,
)
from ksynth_spark.synthesis.unseeded import Expander

if TYPE_CHECKING:
    from pyspark import Broadcast

logger = logging.getLogger(__name__)

GROUPS_SCHEMA = "group long, attrs array<int>, count long"
RECORDS_SCHEMA = "syn_start long, count long, attrs array<int>"
#: Distinct sensitive rows per phase-1 task (small tasks give progress and balance).
ROWS_PER_TASK = 20_000
#: unseeded states per task of a level (before merging: an upper bound).
STATES_PER_TASK = 100_000


@dataclass
class SynthesisResult:
    """Output of :func:`synthesize`.

    Attributes:
        records: ``syn_start long, count long, attrs array<int>`` (persisted): the distinct
            synthetic records in output order; copies ``syn_start .. syn_start+count-1`` are the
            0-based synthetic row numbers of the record.
        n_records: Number of synthetic records (Σ count).
        n_distinct: Number of distinct synthetic records.
        records_per_sensitive_record: ``n_records / N`` (the exact N; the published expansion
            ratio of the evaluation divides by the published record count instead).
        stats: Figures a data steward checks (records out, occurrences suppressed, ...).
    """

    records: DataFrame
    n_records: int
    n_distinct: int
    records_per_sensitive_record: float
    stats: dict = field(default_factory=dict)

    def weighted(self) -> DataFrame:
        """``attrs, weight``: the distinct synthetic records with their counts."""
        return self.records.select("attrs", F.col("count").alias("weight"))


# ==================================================================================== executor state
# The index and support cache rebuilt from the last broadcast seen by this Python worker
# (reused across tasks: building the index and warming the cache are paid once per worker).
_WORKER: dict = {}


@dataclass(frozen=True)
class _Shared:
    """What executors read: the broadcast index and a token naming it in the workers."""

    index: Broadcast[DistinctIndex]
    token: str
    cache_size: int


def _worker_state(shared: _Shared, name: str, build):
    """What this Python worker built from the broadcast index under ``name`` (built on first
    use; whatever it kept for another broadcast is dropped)."""
    key = (shared.token, name)
    value = _WORKER.get(key)
    if value is None:
        if any(token != shared.token for token, _ in _WORKER):
            _WORKER.clear()
        value = _WORKER[key] = build(shared.index.value)
    return value


def _worker_oracle(shared: _Shared) -> SupportOracle:
    return _worker_state(shared, "oracle", lambda index: SupportOracle(index, shared.cache_size))


def _worker_expander(shared: _Shared) -> Expander:
    return _worker_state(shared, "expander", Expander)


@dataclass
class _Run:
    """One synthesis: its inputs, statistics and the intermediates to release at the end."""

    spark: SparkSession
    data: EncodedData
    config: Config
    stats: dict = field(default_factory=dict)
    persisted: list = field(default_factory=list)

    @property
    def seed(self) -> int:
        seed = self.config.seed
        assert seed is not None  # Config always sets it (drawing one when none is configured)
        return int(seed)

    @property
    def space(self) -> AttributeSpace:
        return AttributeSpace(self.data.attribute_columns.astype(np.int64), len(self.data.headers))

    def persist(self, df: DataFrame) -> DataFrame:
        """Persists and materialises an intermediate (released when the synthesis ends)."""
        df = df.persist(StorageLevel.MEMORY_AND_DISK)
        self.persisted.append(df)
        return df


# ==================================================================================== entry point
def synthesize(spark, data: EncodedData, config: Config, reportable: DataFrame | None = None,
               reportable_length: int | None = None) -> SynthesisResult:
    """Runs spec §4 in ``config.synthesis_mode``.

    Collected to the driver: the distinct sensitive rows (attribute ids and multiplicities, to
    build the support index, which is broadcast), per-attribute counts of the phase-1 output,
    suppression candidates (at most partitions × Σe(a) rows), per-partition record counts of
    the ordered output, and for aggregate_seeded and value_seeded with oversampling the
    reportable aggregates (publishable; broadcast). aggregate_seeded reads no sensitive row.

    Args:
        spark: The active SparkSession.
        data: Encoded sensitive data.
        config: Effective configuration (mode, k, oversampling, aggregate options, seed).
        reportable: ``attrs, length, protected_count`` aggregates (aggregate_seeded, and
            value_seeded with ``oversampling_ratio``).
        reportable_length: Reporting length ``R_A`` of ``reportable``.
    """
    mode = config.synthesis_mode
    run = _Run(spark, data, config)
    run.stats.update(mode=mode, seed=run.seed, k=config.k, sensitive_records=data.n_records,
                     distinct_sensitive_rows=data.n_rows)
    started = time.monotonic()
    logger.info("generate: %s synthesis of %d sensitive records (%d distinct rows), k = %d", mode, data.n_records,
                data.n_rows, config.k)
    if mode == "aggregate_seeded":
        groups = _aggregate_seeded(run, _table(data, reportable, reportable_length))
    else:
        with _shared_index(run) as shared:
            if mode == "row_seeded":
                groups = _row_seeded(run, shared)
            elif mode == "unseeded":
                groups = _unseeded(run, shared)
            else:
                control = _table(data, reportable, reportable_length) if config.oversampling_ratio is not None else None
                groups = _value_seeded(run, shared, control)
            groups = run.persist(groups)
            groups.count()
    records = _ordered(run, groups, keep_empty=mode == "unseeded")
    n_records, n_distinct = run.stats["records_out"], run.stats["distinct_records_out"]
    for intermediate in run.persisted:
        intermediate.unpersist()
    ratio = n_records / data.n_records if data.n_records else 0.0
    run.stats.update(records_per_sensitive_record=ratio, seconds=round(time.monotonic() - started, 3))
    logger.info("generate: %d synthetic records (%d distinct, %.4f per sensitive record), %d attribute occurrences "
                "suppressed, %.1f s", n_records, n_distinct, ratio, run.stats.get("occurrences_suppressed", 0),
                run.stats["seconds"])
    return SynthesisResult(records, n_records, n_distinct, ratio, run.stats)


class _shared_index:
    """Context manager: the support index built from the distinct rows and broadcast."""

    def __init__(self, run: _Run):
        self.run = run

    def __enter__(self) -> _Shared:
        run = self.run
        started = time.monotonic()
        table = run.data.rows.select("attrs", "weight").toArrow()
        offsets, ids = csr(table)
        # The rows themselves (and every value's rows, with running weights) serve the histogram
        # supports of unseeded's levels and value_seeded's row proposals; row_seeded's phase 1
        # asks few supports per step and its phase 2 consolidates small leftovers.
        index = DistinctIndex(offsets, ids, numbers(table, "weight"), run.space, run.config.k,
                              keep_rows=run.config.synthesis_mode in ("unseeded", "value_seeded"),
                              postings=run.config.synthesis_mode == "value_seeded")
        self._broadcast = broadcast(run.spark, index)
        handle = self._broadcast.__enter__()
        logger.info("generate: support index over %d distinct rows (%.1f MB) built and broadcast in %.1f s",
                    index.n_rows, index.nbytes / 1e6, time.monotonic() - started)
        self.index = index
        return _Shared(handle, uuid.uuid4().hex, run.config.cache_max_size)

    def __exit__(self, *exc) -> None:
        self._broadcast.__exit__(*exc)


def _tasks(n_items: int, per_task: int, spark) -> int:
    """Partitions for ``n_items`` units of executor work: at least two per core."""
    return max(2 * spark.sparkContext.defaultParallelism, -(-n_items // per_task))


def _groups_batch(groups: np.ndarray, offsets: np.ndarray, ids: np.ndarray, counts: np.ndarray) -> pa.RecordBatch:
    return record_batch(group=np.asarray(groups, np.int64), attrs=list_array(offsets, ids),
                        count=np.asarray(counts, np.int64))


def _group_ids(namespace: int, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Logical group ids from two ids (int64), distinct per ``namespace`` (a phase tag)."""
    salt = mix64(np.asarray(second, np.uint64) + np.uint64(namespace))
    mixed = mix64(np.asarray(first, np.int64).view(np.uint64) ^ salt)
    return mixed.view(np.int64)


# ==================================================================================== row_seeded
def _row_seeded(run: _Run, shared: _Shared) -> DataFrame:
    """Spec §4.1: phase 1 over distinct rows, phase 2 in logical tasks, phase 3 distributed."""
    data, config, seed = run.data, run.config, run.seed

    def phase1(batch: pa.RecordBatch, oracle: SupportOracle) -> pa.RecordBatch:
        offsets, ids = csr(batch)
        hashes = row_hashes(offsets, ids)
        grown = grow_rows(oracle, seed, hashes, offsets, ids, numbers(batch, "weight"))
        set_offsets = np.concatenate([[0], np.cumsum(grown.sizes)])
        set_ids = grown.ids[np.arange(grown.ids.shape[1])[None, :] < grown.sizes[:, None]]
        return _groups_batch(_group_ids(1, hashes[grown.row], grown.leaf), set_offsets, set_ids, grown.runs)

    started = time.monotonic()
    # Contiguous ranges of rows in attribute order: neighbouring rows share most partial
    # records, so the worker's support cache keeps hitting (random rows made phase 1 three
    # times slower at 10^7 records).
    rows = (data.rows.select("attrs", "weight")
            .repartitionByRange(_tasks(data.n_rows, ROWS_PER_TASK, run.spark), "attrs")
            .sortWithinPartitions("attrs"))
    seeded = run.persist(map_batches(rows, GROUPS_SCHEMA, phase1, setup=lambda: _worker_oracle(shared)))
    used, empty = _attribute_counts(seeded, data.n_attributes)
    run.stats.update(phase1_records=data.n_records - empty, phase1_empty=empty)
    logger.info("row_seeded phase 1: %d / %d seed records kept attributes (%d empty), %.1f s",
                data.n_records - empty, data.n_records, empty, time.monotonic() - started)
    quota = leftover_quotas(data.attribute_counts, used, config.k)
    consolidated = _consolidation_tasks(run, shared, quota, PHASE_CONSOLIDATE, "row_seeded phase 2")
    counts = used + _attribute_counts(consolidated, data.n_attributes)[0]
    return _suppress(run, seeded.unionByName(consolidated), counts)


def _attribute_counts(groups: DataFrame, n_attrs: int) -> tuple[np.ndarray, int]:
    """Occurrences of every attribute id and the number of empty records (a small aggregate:
    one row per attribute)."""
    rows = (groups.select(F.explode_outer("attrs").alias("a"), "count").groupBy("a")
            .agg(F.sum("count").alias("n")).collect())
    counts = np.zeros(n_attrs, dtype=np.int64)
    empty = 0
    for row in rows:
        if row["a"] is None:
            empty = int(row["n"])
        else:
            counts[int(row["a"])] = int(row["n"])
    return counts, empty


# ==================================================================================== consolidation
def _consolidation_tasks(run: _Run, shared: _Shared | None, quota: np.ndarray, phase: int, label: str, *,
                         table: AggregateTable | None = None, options: dict | None = None) -> DataFrame:
    """Spec §4.0 Consolidate of ``quota``, split exactly across logical tasks run in executors.

    Broadcast: the ``(tasks, A)`` quota shares (and, for the aggregate sampler or the
    oversampling control, the aggregate table). Each task ``j`` uses stream ``(seed, phase, j)``.
    """
    options = dict(options or {})
    total = int(quota.sum())
    n_tasks = task_count(total)
    shares = split_quota(quota, n_tasks)
    target = options.pop("target", None)
    targets = split_quota(np.array([target]), n_tasks)[:, 0] if target is not None else None
    ceilings = options.pop("ceilings", None)
    ceiling_shares = split_quota(ceilings, n_tasks) if ceilings is not None else None
    space, seed, config = run.space, run.seed, run.config
    logger.info("%s: consolidating %d attribute occurrences in %d task(s)", label, total, n_tasks)
    payload = {"shares": shares, "targets": targets, "ceilings": ceiling_shares, "table": table}

    def build(batch: pa.RecordBatch, shipped: dict) -> list[pa.RecordBatch]:
        outputs = []
        for task in numbers(batch, "id"):
            share, stream = shipped["shares"][task], RandomStream(seed, phase, int(task))
            if shared is None:                                  # aggregate_seeded: the table only
                targets = shipped["targets"]
                built = consolidate(share, AggregateSampler(shipped["table"], **options), space, stream,
                                    ConsolidationOptions(target=None if targets is None else int(targets[task])))
            else:                                               # SeedSampler (with the oversampling control)
                built = consolidate(share, SeedSampler(_worker_oracle(shared)), space, stream, ConsolidationOptions(
                    control=shipped["table"], tries=int(config.oversampling_tries or 1),
                    ceilings=None if shipped["ceilings"] is None else shipped["ceilings"][task]))
            if built.stalled:
                logger.warning("%s: task %d stopped early (%d units of quota unused)", label, task, built.quota_left)
            outputs.append(_groups_batch(_group_ids(phase, np.full(built.n_records, task), np.arange(built.n_records)),
                                         built.offsets, built.ids, np.ones(built.n_records, np.int64)))
        return outputs

    started = time.monotonic()
    with broadcast(run.spark, payload) as shipped:
        tasks = run.spark.range(0, n_tasks, numPartitions=max(1, n_tasks))
        groups = run.persist(map_batches(tasks, GROUPS_SCHEMA, build, setup=lambda: shipped.value))
        totals = groups.agg(F.sum("count")).first()
        assert totals is not None  # a global aggregate has one row
        n_records = totals[0] or 0
    run.stats.setdefault("consolidated_records", 0)
    run.stats["consolidated_records"] += int(n_records)
    logger.info("%s: %d records in %.1f s", label, n_records, time.monotonic() - started)
    return groups


def _value_seeded(run: _Run, shared: _Shared, control: AggregateTable | None) -> DataFrame:
    """Spec §4.3 (quota ``floor_k(n(a))``, spec §11), then suppression."""
    data, config = run.data, run.config
    quota = seeded_quotas(data.attribute_counts, config.k)
    options = {}
    if control is not None:
        assert config.oversampling_ratio is not None  # the control table is only built with a ratio
        options["ceilings"] = np.floor(control.counts * (1.0 + float(config.oversampling_ratio))).astype(np.int64)
    groups = _consolidation_tasks(run, shared, quota, PHASE_VALUE_SEEDED, "value_seeded", table=control,
                                  options=options)
    return _suppress(run, groups, _attribute_counts(groups, data.n_attributes)[0])


def _table(data: EncodedData, reportable: DataFrame | None, length: int | None) -> AggregateTable:
    """The reportable aggregates (publishable counts) as an :class:`AggregateTable` (collected).

    Raises:
        ValueError: ``reportable`` is missing (the pipeline always passes it for these modes).
    """
    if reportable is None:
        raise ValueError("this synthesis mode needs the reportable aggregates")
    table = reportable.select("attrs", F.col("protected_count").cast("long").alias("count")).toArrow()
    if not table.num_rows:
        return AggregateTable.from_combos([], [], data.n_attributes, max(1, int(length or 1)))
    offsets, ids = csr(table)
    longest = int(np.diff(offsets).max())
    return AggregateTable(offsets, ids, numbers(table, "count"), data.n_attributes,
                          max(int(length), longest) if length is not None else longest)


def _aggregate_seeded(run: _Run, table: AggregateTable) -> DataFrame:
    """Spec §4.4 from the reportable aggregates only (the sensitive rows are not read)."""
    config = run.config
    if config.aggregate_seeded_counts_scale_factor is not None:
        table = table.with_counts(table.scaled_counts(config.aggregate_seeded_counts_scale_factor))
    percentile = 95.0 if config.weight_selection_percentile is None else float(config.weight_selection_percentile)
    target = config.aggregate_seeded_target_number_of_records
    logger.info("aggregate_seeded: %d aggregate rows, reporting length %d, percentile %.1f, target %s",
                len(table), table.length, percentile, target)
    options = {"percentile": percentile, "use_synthetic_counts": config.use_synthetic_counts, "target": target}
    groups = _consolidation_tasks(run, None, table.singles(), PHASE_AGGREGATE_SEEDED, "aggregate_seeded",
                                  table=table, options=options)
    return groups


# ==================================================================================== suppression
def _suppress(run: _Run, groups: DataFrame, counts: np.ndarray) -> DataFrame:
    """Spec §4.0 SuppressToTargets on groups (see :mod:`.suppression`); records left empty are
    dropped (spec Q10). Collected: the candidates of every partition (≤ partitions × Σe(a))."""
    data, seed = run.data, run.seed
    targets = seeded_quotas(data.attribute_counts, run.config.k)
    excess = np.where((data.attribute_counts >= run.config.k) & (counts > targets), counts - targets, 0)
    run.stats["occurrences_suppressed"] = int(excess.sum())
    nonempty = groups.filter(F.size("attrs") > 0)
    if not excess.any():
        logger.info("suppression: no attribute over its target")
        return nonempty
    logger.info("suppression: removing %d occurrences of %d over-represented attributes", int(excess.sum()),
                int((excess > 0).sum()))

    def candidates(batch: pa.RecordBatch, shipped) -> pa.RecordBatch:
        offsets, ids = csr(batch)
        found = smallest_occurrences(seed, numbers(batch, "group"), numbers(batch, "count"), offsets, ids,
                                     shipped.value)
        return record_batch(attr=found.attr, key=found.key.view(np.int64), group=found.group, copy=found.copy)

    with broadcast(run.spark, excess) as shipped:
        found = map_batches(nonempty, "attr long, key long, group long, copy long", candidates,
                            setup=lambda: shipped).toArrow()
    victims = select_smallest(Occurrences(numbers(found, "attr"), numbers(found, "key").view(np.uint64),
                                          numbers(found, "group"), numbers(found, "copy")), excess)
    thresholds = SuppressionThresholds.from_victims(victims, data.n_attributes)
    bound = int(excess.sum())

    def apply(batch: pa.RecordBatch, shipped) -> pa.RecordBatch:
        offsets, ids = csr(batch)
        groups_in = numbers(batch, "group")
        new_offsets, new_ids, new_counts = apply_suppression(seed, shipped.value, groups_in, numbers(batch, "count"),
                                                             offsets, ids, bound)
        return _groups_batch(np.zeros(len(new_counts), np.int64), new_offsets, new_ids, new_counts)

    with broadcast(run.spark, thresholds) as shipped:
        suppressed = run.persist(map_batches(nonempty, GROUPS_SCHEMA, apply, setup=lambda: shipped))
        suppressed.count()
    return suppressed


# ==================================================================================== unseeded
def _unseeded(run: _Run, shared: _Shared) -> DataFrame:
    """Spec §4.2 as merged runs (:mod:`.unseeded`): the N runs start in the empty state; each
    level splits the runs of every distinct state in executors and merges the children that
    coincide (a shuffle on the state), until every run has ended. Collected per level: the
    number of states and of finished runs (two numbers)."""
    n, n_columns = run.data.n_records, run.space.n_columns
    base = stream_base(run.seed, PHASE_UNSEEDED)

    def expand(batch: pa.RecordBatch, expander: Expander) -> list[pa.RecordBatch]:
        offsets, ids = csr(batch)
        runs = numbers(batch, "count")
        width = int(offsets[1] - offsets[0]) if len(runs) else 0
        out = expander.expand(StateLevel(np.asarray(ids, np.int64).reshape(len(runs), width), runs), base)
        children = merge_states(out.children)
        done = out.finished
        size = children.ids.shape[1]
        return [record_batch(kind=np.zeros(len(children.runs), np.int32),
                             attrs=list_array(np.arange(len(children.runs) + 1, dtype=np.int64) * size,
                                              children.ids.ravel()),
                             count=children.runs),
                record_batch(kind=np.ones(len(done.runs), np.int32),
                             attrs=list_array(np.concatenate([[0], np.cumsum(done.sizes)]),
                                              done.ids[np.arange(done.ids.shape[1])[None, :] < done.sizes[:, None]]),
                             count=done.runs)]

    states = run.spark.range(1).select(F.array().cast("array<int>").alias("attrs"),
                                       F.lit(n).cast("long").alias("count"))
    finished, ended = [], 0
    for level in range(n_columns + 1):
        started = time.monotonic()
        out = run.persist(map_batches(states.sortWithinPartitions("attrs"), "kind int, attrs array<int>, count long",
                                      expand, setup=lambda: _worker_expander(shared)))
        totals = {row["kind"]: (int(row["rows"]), int(row["runs"]))
                  for row in out.groupBy("kind").agg(F.count(F.lit(1)).alias("rows"), F.sum("count").alias("runs"))
                  .collect()}
        finished.append(out.filter(F.col("kind") == 1).select(F.lit(0).cast("long").alias("group"), "attrs", "count"))
        ended += totals.get(1, (0, 0))[1]
        if 0 in totals:
            # Materialised here so that the next level's plan starts from these states, not from
            # every level before (a plan nested level after level took gigabytes to print).
            tasks = _tasks(totals[0][0], STATES_PER_TASK, run.spark)
            states = (out.filter(F.col("kind") == 0).repartition(tasks, "attrs").groupBy("attrs")
                      .agg(F.sum("count").alias("count")).localCheckpoint(eager=True))
        logger.info("unseeded: level %d / %d in %.1f s: %d of %d records complete", level + 1, n_columns + 1,
                    time.monotonic() - started, ended, n)
        if 0 not in totals:
            break
    groups = finished[0]
    for part in finished[1:]:
        groups = groups.unionByName(part)
    return groups


# ==================================================================================== output order
def _ordered(run: _Run, groups: DataFrame, keep_empty: bool) -> DataFrame:
    """The distinct synthetic records with counts, in spec §4.0 output order, numbered.

    Identical records are merged; the distinct records are sorted by (non-empty cells
    descending, cells ascending; see :mod:`.order`) and ``syn_start`` is the running count of
    the copies before each. Collected: three totals. Broadcast (in the closure): the rank and
    column of every attribute id.
    """
    data = run.data
    merged = groups.groupBy("attrs").agg(F.sum("count").alias("count"))
    if not keep_empty:
        merged = merged.filter(F.size("attrs") > 0)
    ranks = value_ranks(data.attribute_columns, list(data.attributes["value"]))
    columns = data.attribute_columns.astype(np.int64)
    n_columns = len(data.headers)

    def sort_cells(batch: pa.RecordBatch) -> pa.RecordBatch:
        offsets, ids = csr(batch)
        cells, non_empty = row_cells(offsets, ids, columns, ranks, n_columns)
        cell_lists = pa.ListArray.from_arrays(pa.array(np.arange(len(non_empty) + 1, dtype=np.int32) * n_columns),
                                              pa.array(cells.ravel()))
        return record_batch(attrs=batch.column("attrs"), count=batch.column("count"), non_empty=non_empty,
                            cells=cell_lists)

    keyed = map_batches(merged, "attrs array<int>, count long, non_empty int, cells array<int>", sort_cells)
    # A running sum in the unique total order of the distinct records: the same numbering
    # whatever the partitioning (one task sorts the distinct records, not the N copies).
    order = Window.orderBy(F.desc("non_empty"), F.asc("cells")).rowsBetween(Window.unboundedPreceding,
                                                                            Window.currentRow)
    numbered = keyed.select((F.sum("count").over(order) - F.col("count")).alias("syn_start"), "count", "attrs")
    numbered = numbered.persist(StorageLevel.MEMORY_AND_DISK)
    totals = numbered.agg(F.sum("count").alias("n"), F.count(F.lit(1)).alias("d"),
                          F.sum(F.when(F.size("attrs") == 0, F.col("count")).otherwise(0)).alias("empty")).first()
    run.stats["records_out"] = int(totals["n"] or 0)
    run.stats["distinct_records_out"] = int(totals["d"])
    if keep_empty:
        run.stats["empty_records"] = int(totals["empty"] or 0)
    return numbered


# ==================================================================================== rendering
#: Synthetic rows rendered per output batch (bounds executor memory whatever the copy counts).
_ROWS_PER_BATCH = 65_536


def _copies(batch: pa.RecordBatch):
    """Yields ``(record, syn_id)`` arrays for chunks of the copies of a batch of numbered
    records: the record position in the batch and the synthetic row number of each copy."""
    counts = numbers(batch, "count")
    starts = numbers(batch, "syn_start")
    ends = np.cumsum(counts)
    total = int(ends[-1]) if counts.size else 0
    for first in range(0, total, _ROWS_PER_BATCH):
        flat = np.arange(first, min(total, first + _ROWS_PER_BATCH), dtype=np.int64)
        record = np.searchsorted(ends, flat, side="right")
        yield record, starts[record] + flat - (ends[record] - counts[record])


#: Copies of synthetic records per partition of the expanded outputs, and the most copies of
#: one distinct record expanded as one unit (larger counts are cut into chunks).
_COPIES_PER_PARTITION = 500_000
_COPIES_PER_CHUNK = 100_000


def _in_syn_order(records: DataFrame) -> DataFrame:
    """The numbered records to expand, in ``syn_start`` order over partitions of about
    :data:`_COPIES_PER_PARTITION` copies each (an explicit range partitioning, so adaptive query
    execution cannot merge them into a few huge tasks); a record with many copies is cut into
    chunks first, so that no task expands more than its share. Collected to the driver: the
    total number of copies (one number)."""
    row = records.agg(F.sum("count").alias("n")).first()
    assert row is not None  # a global aggregate has one row
    total = int(row["n"] or 0)
    chunk = _COPIES_PER_CHUNK
    pieces = records.select("syn_start", "count", "attrs",
                            F.explode(F.sequence(F.lit(0), F.floor((F.col("count") - 1) / chunk).cast("long")))
                            .alias("piece"))
    chunks = pieces.select((F.col("syn_start") + F.col("piece") * chunk).alias("syn_start"),
                           F.least(F.lit(chunk).cast("long"), F.col("count") - F.col("piece") * chunk).alias("count"),
                           "attrs")
    partitions = max(1, -(-total // _COPIES_PER_PARTITION))
    return chunks.repartitionByRange(partitions, "syn_start").sortWithinPartitions("syn_start")


def _lookup(values: list[str]) -> pa.Array:
    """Arrow strings with ``""`` at position 0 and ``values[i]`` at ``i + 1`` (for ``take``)."""
    return pa.array([""] + list(values), pa.string())


def microdata_rows(data: EncodedData, records: DataFrame, headers: list[str]) -> DataFrame:
    """The synthetic microdata, one row per synthetic record: ``syn_id`` and one string column
    per header (``""`` when absent), in ``syn_id`` order. Broadcast (in the closure): the value
    and column of every attribute id."""
    position = {h: i for i, h in enumerate(data.headers)}
    wanted = [position[h] for h in headers]
    column_of = np.full(len(data.headers), -1, dtype=np.int64)
    column_of[wanted] = np.arange(len(wanted))
    attr_column = column_of[data.attribute_columns.astype(np.int64)]
    values = _lookup(list(data.attributes["value"]))

    def render(batch: pa.RecordBatch):
        offsets, ids = csr(batch)
        cells = np.zeros((batch.num_rows, len(wanted)), dtype=np.int64)     # attribute id + 1, 0 = empty
        owner = np.repeat(np.arange(batch.num_rows), np.diff(offsets))
        shown = attr_column[ids] >= 0
        cells[owner[shown], attr_column[ids[shown]]] = ids[shown] + 1
        for record, syn_id in _copies(batch):
            columns = {"syn_id": syn_id}
            columns.update({f"c{c}": values.take(pa.array(cells[record, c])) for c in range(len(wanted))})
            yield record_batch(**columns)

    schema = "syn_id long" + "".join(f", c{c} string" for c in range(len(wanted)))
    rendered = map_batches(_in_syn_order(records), schema, render)
    return rendered.select("syn_id", *[F.col(f"c{c}").alias(h) for c, h in enumerate(headers)])


def long_form_rows(data: EncodedData, records: DataFrame) -> DataFrame:
    """``Id, Attribute, Value, AttributeValue`` (``"column:value"``): one row per non-empty cell
    of every synthetic record, ordered by ``Id`` then column. Broadcast (in the closure): the
    column name and value of every attribute id."""
    names = _lookup(list(data.attributes["column"]))
    values = _lookup(list(data.attributes["value"]))
    labels = _lookup(data.labels())
    column_index = data.attribute_columns.astype(np.int64)

    def render(batch: pa.RecordBatch):
        offsets, ids = csr(batch)
        sizes = np.diff(offsets)
        owner = np.repeat(np.arange(batch.num_rows), sizes)
        ids = ids[np.lexsort((column_index[ids], owner))]           # a record's cells in column order
        for record, syn_id in _copies(batch):
            per = sizes[record]
            first = np.repeat(offsets[record], per)
            within = np.arange(int(per.sum())) - np.repeat(np.cumsum(per) - per, per)
            taken = pa.array(ids[first + within] + 1)
            yield record_batch(Id=np.repeat(syn_id, per), Attribute=names.take(taken), Value=values.take(taken),
                               AttributeValue=labels.take(taken))

    return map_batches(_in_syn_order(records), "Id long, Attribute string, Value string, AttributeValue string",
                       render)
