"""Evaluate stage: how private and how useful is a synthetic dataset (spec §5)?

The module's one job is to compute the evaluation of a release: it compares the synthetic
records with the sensitive aggregates ``S`` and the published aggregates ``P`` and returns an
:class:`EvaluationResult`; it writes nothing (the renderers of :mod:`ksynth_spark.report.evaluation`
turn the result into files, the pipeline writes them). All per-combination work runs on
executors: the synthetic aggregates ``Y`` are counted with
:func:`ksynth_spark.aggregate.count_combinations_df`, ``S`` and ``Y`` (and ``S`` and ``P``) are
full-outer-joined on the combination, and every metric is a conditional sum over that join,
grouped by ``(length, target count)``. Only that small grouped table (a few rows per length and
distinct synthetic count) is collected to the driver, where §5.1, §5.3, §5.4 and §5.5 are
derived from it with pandas. Two further small results are collected: the single-attribute
counts (one row per attribute) and the packed keys of the rare synthetic combinations, which are
broadcast to find the synthetic records holding them (§5.6).

Names and definitions of the metrics (and where this project departs from the reference, e.g.
the overall mean proportional error and the expansion ratio) are those of
:mod:`ksynth_spark.report.metrics`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.storagelevel import StorageLevel

from ksynth_spark.aggregate import (
    AggregateResult,
    _key_columns,
    count_combinations_df,
    decode_keys,
    with_selections,
)
from ksynth_spark.arrow_jobs import broadcast, csr, map_batches, numbers
from ksynth_spark.combinations import enumerate_combinations, fits_column_sets, sortable, walk_column_sets
from ksynth_spark.config import Config
from ksynth_spark.model import EncodedData
from ksynth_spark.report.metrics import (
    EXPANSION_RATIO,
    LEAKED,
    MEAN_PROPORTIONAL_ERROR,
    NOT_IN_SYNTHETIC,
    WITHHELD_FROM_PUBLISHED,
    EvaluationHeadline,
)

logger = logging.getLogger(__name__)

#: Upper edge of the first count bucket of spec §5.4 (bucket edges are 10, 20, 40, ...).
FIRST_BUCKET_EDGE = 10

#: Sums collected per (length, target count) group; every §5 metric derives from them.
_SUM_COLUMNS = ["n_x", "n_z", "n_suppressed", "n_fabricated", "n_common", "abs_error", "sum_x",
                "n_omega", "sum_pres", "sum_pe", "n_leak", "n_unsupported"]


@dataclass(frozen=True)
class LengthComparison:
    """Spec §5.5 per length: mean source count and mean absolute error over common combinations."""

    mean_count: float
    mean_absolute_error: float


@dataclass(frozen=True)
class ComparisonMetrics:
    """Spec §5.5 for a source X (the sensitive aggregates) and a target Z.

    Attributes:
        missing_pct: ``100·#{c in X : c not in Z} / #X`` (X includes rare combinations).
        fabricated_pct: ``100·#{c in Z : c not in X} / #X``.
        mean_absolute_error: ``Σ|X(c) − Z(c)| / #(X ∩ Z)``.
        mean_count: ``Σ X(c) / #X``.
        by_length: Per length with common combinations.
    """

    missing_pct: float
    fabricated_pct: float
    mean_absolute_error: float
    mean_count: float
    by_length: dict[int, LengthComparison] = field(default_factory=dict)


@dataclass
class EvaluationResult:
    """What the evaluate stage computed (nothing is written).

    Attributes:
        synthetic_aggregates: ``attrs, length, count, selections`` for every synthetic
            combination up to R (persisted; publishable: derived from synthetic data only).
        leakage_by_length: ``syn_combo_length, combo_count, leak_count, leak_proportion`` (§5.1).
        preservation_by_length: ``syn_combo_length, mean_combo_count, count_preservation,
            mean_proportional_error`` (§5.3).
        preservation_by_count: ``syn_count_bucket, mean_combo_count, mean_combo_length,
            count_preservation, mean_proportional_error``, edges descending (§5.4).
        synthetic_vs_sensitive: §5.5 for S vs Y.
        published_vs_sensitive: §5.5 for S vs P.
        synthetic_rare_combos: ``combo_length, combo, record_id, syn_count, sen_count`` (§5.6),
            ordered; persisted. Sensitive (sensitive counts per combination).
        single_attribute_counts: ``column, value, synthetic_count, protected_count`` for every
            attribute present in the synthetic data or in the published aggregates.
        headline: The headline figures.
    """

    synthetic_aggregates: DataFrame
    leakage_by_length: pd.DataFrame
    preservation_by_length: pd.DataFrame
    preservation_by_count: pd.DataFrame
    synthetic_vs_sensitive: ComparisonMetrics
    published_vs_sensitive: ComparisonMetrics
    synthetic_rare_combos: DataFrame
    single_attribute_counts: pd.DataFrame
    headline: EvaluationHeadline


# ---------------------------------------------------------------------------------- comparison sums
def join_counts(x: DataFrame, z: DataFrame) -> DataFrame:
    """Full outer join of source ``x`` and target ``z`` (both ``attrs, length, count``) on the
    combination: ``attrs, length, x, z`` with ``x``/``z`` null where the combination is absent."""
    return x.select("attrs", F.col("length").alias("lx"), F.col("count").alias("x")).join(
        z.select("attrs", F.col("length").alias("lz"), F.col("count").alias("z")), "attrs", "full_outer"
    ).select("attrs", F.coalesce("lx", "lz").alias("length"), "x", "z")


def comparison_sums(joined: DataFrame, k: int) -> pd.DataFrame:
    """Sums over a :func:`join_counts` result (source X = sensitive S, target Z = synthetic Y or
    reportable P), grouped by length and target count.

    Args:
        joined: ``attrs, length, x, z`` from :func:`join_counts`.
        k: The resolution (rare = count < k).

    Returns:
        A small pandas table (collected to the driver), one row per ``(length, z)`` where ``z``
        is the target count (0 if absent), with the sums of :data:`_SUM_COLUMNS`: combinations in
        X / Z / only X / only Z / both, Σ|X−Z| over both, ΣX over X, and over the preservation
        universe Ω = {S ≥ k} ∪ Z (§5.2): its size, Σ pres, Σ pe; leak count (§5.1) and the number
        of Z combinations whose X count is below k.
    """
    in_x, in_z = F.col("x").isNotNull(), F.col("z").isNotNull()
    x0, z0 = F.coalesce("x", F.lit(0)).cast("double"), F.coalesce("z", F.lit(0)).cast("long")
    omega = (x0 >= k) | in_z
    pres = F.when(x0 > 0, F.least(z0 / x0, F.lit(1.0))).otherwise(0.0)
    pe = F.when(x0 > 0, F.abs(z0 - x0) / x0).otherwise(1.0)

    def n(condition):
        return F.sum(condition.cast("long"))

    def _exact_sum(ratio):
        # Ratios summed as fixed-point decimals: the sum is exact, so the same whatever the
        # partitioning (double sums depend on the order of addition in their last digits).
        return F.sum(ratio.cast("decimal(38,18)")).cast("double")

    grouped = joined.groupBy("length", z0.alias("z")).agg(
        n(in_x).alias("n_x"),
        n(in_z).alias("n_z"),
        n(in_x & ~in_z).alias("n_suppressed"),
        n(in_z & ~in_x).alias("n_fabricated"),
        n(in_x & in_z).alias("n_common"),
        F.sum(F.when(in_x & in_z, F.abs(z0 - x0)).otherwise(0.0)).alias("abs_error"),
        F.sum(x0).alias("sum_x"),
        n(omega).alias("n_omega"),
        _exact_sum(F.when(omega, pres).otherwise(0.0)).alias("sum_pres"),
        _exact_sum(F.when(omega, pe).otherwise(0.0)).alias("sum_pe"),
        n(in_x & (x0 < k) & in_z & (z0 < k)).alias("n_leak"),
        n(in_z & (x0 < k)).alias("n_unsupported"),
    )
    # Sorted, so that the per-length sums below add the rows in one order for any partitioning.
    table: pd.DataFrame = grouped.toPandas()
    table = table.sort_values(["length", "z"]).reset_index(drop=True)
    if table.empty:
        table = pd.DataFrame(columns=["length", "z"] + _SUM_COLUMNS)
    return table.astype({c: float for c in ["abs_error", "sum_x", "sum_pres", "sum_pe"]}).astype(
        {c: np.int64 for c in ["length", "z"] + [c for c in _SUM_COLUMNS if c.startswith("n_")]})


def _per_length(sums: pd.DataFrame, max_length: int) -> pd.DataFrame:
    """Sums per length ``1..max_length`` (missing lengths are zero rows); adds Σ Y over Ω."""
    frame = sums.assign(sum_z_omega=sums["z"] * sums["n_omega"])
    by_length = frame.groupby("length")[_SUM_COLUMNS + ["sum_z_omega"]].sum()
    return by_length.reindex(range(1, max_length + 1), fill_value=0)


def _ratio(numerator, denominator):
    """Element-wise ``numerator / denominator`` with 0 where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=float)
    denominator = np.asarray(denominator, dtype=float)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator != 0)


# ---------------------------------------------------------------------------------- §5.1, §5.3, §5.4
def leakage_by_length(sums: pd.DataFrame, max_length: int) -> pd.DataFrame:
    """Spec §5.1 per length 1..R from S-vs-Y sums."""
    per = _per_length(sums, max_length)
    return pd.DataFrame({
        "syn_combo_length": per.index.astype(int),
        "combo_count": per["n_z"].astype(int).to_numpy(),
        "leak_count": per["n_leak"].astype(int).to_numpy(),
        "leak_proportion": _ratio(per["n_leak"], per["n_z"]),
    })


def preservation_by_length(sums: pd.DataFrame, max_length: int) -> pd.DataFrame:
    """Spec §5.3 per length 1..R (empty lengths are zero rows) from S-vs-Y sums."""
    per = _per_length(sums, max_length)
    return pd.DataFrame({
        "syn_combo_length": per.index.astype(int),
        "mean_combo_count": _ratio(per["sum_z_omega"], per["n_omega"]),
        "count_preservation": _ratio(per["sum_pres"], per["n_omega"]),
        "mean_proportional_error": _ratio(per["sum_pe"], per["n_omega"]),
    })


def bucket_edges(max_count: int) -> list[int]:
    """Spec §5.4 edges: 10, 20, 40, ... until the last edge is ≥ ``max_count``."""
    edges = [FIRST_BUCKET_EDGE]
    while edges[-1] < max_count:
        edges.append(2 * edges[-1])
    return edges


def preservation_by_count(sums: pd.DataFrame) -> pd.DataFrame:
    """Spec §5.4 from S-vs-Y sums: every edge, descending, empty buckets as zero rows."""
    in_y = sums[sums["n_z"] > 0]
    edges = bucket_edges(int(in_y["z"].max()) if len(in_y) else 0)
    frame = sums[sums["n_omega"] > 0].copy()
    frame["bucket"] = np.asarray(edges, dtype=np.int64)[np.searchsorted(edges, frame["z"].to_numpy(), side="left")]
    frame["sum_z"] = frame["z"] * frame["n_omega"]
    frame["sum_length"] = frame["length"] * frame["n_omega"]
    per = frame.groupby("bucket")[["n_omega", "sum_z", "sum_length", "sum_pres", "sum_pe"]].sum()
    per = per.reindex(sorted(edges, reverse=True), fill_value=0)
    return pd.DataFrame({
        "syn_count_bucket": per.index.astype(int),
        "mean_combo_count": _ratio(per["sum_z"], per["n_omega"]),
        "mean_combo_length": _ratio(per["sum_length"], per["n_omega"]),
        "count_preservation": _ratio(per["sum_pres"], per["n_omega"]),
        "mean_proportional_error": _ratio(per["sum_pe"], per["n_omega"]),
    })


class OverallPreservation(NamedTuple):
    """Count preservation and mean proportional error over every evaluated combination."""

    count_preservation: float
    mean_proportional_error: float


def overall_preservation(sums: pd.DataFrame) -> OverallPreservation:
    """Count preservation and mean proportional error over every evaluated combination (all of Ω,
    every length): the count-weighted means of the per-length values (0 when Ω is empty)."""
    n_omega = float(sums["n_omega"].sum())
    return OverallPreservation(float(_ratio(sums["sum_pres"].sum(), n_omega)),
                               float(_ratio(sums["sum_pe"].sum(), n_omega)))


# ---------------------------------------------------------------------------------- §5.5
def comparison_metrics(sums: pd.DataFrame, max_length: int) -> ComparisonMetrics:
    """Spec §5.5 for source X and target Z from their comparison sums."""
    per = _per_length(sums, max_length)
    n_x = float(per["n_x"].sum())
    by_length = {
        int(length): LengthComparison(float(_ratio(row.sum_x, row.n_x)), float(_ratio(row.abs_error, row.n_common)))
        for length, row in per.iterrows() if row.n_common > 0
    }
    return ComparisonMetrics(
        missing_pct=float(100 * _ratio(per["n_suppressed"].sum(), n_x)),
        fabricated_pct=float(100 * _ratio(per["n_fabricated"].sum(), n_x)),
        mean_absolute_error=float(_ratio(per["abs_error"].sum(), per["n_common"].sum())),
        mean_count=float(_ratio(per["sum_x"].sum(), n_x)),
        by_length=by_length,
    )


# ---------------------------------------------------------------------------------- §5.6
def _member_instances(codec, layout, offsets, ids, members, max_length):
    """Yields ``(rows, keys)``: every combination instance (record row, packed key) of length
    1..max_length of the CSR records whose key is in ``members`` (sorted sortable keys).

    Walks column sets (each distinct combination is looked up once) when the code space fits
    int64, else enumerates every instance.
    """
    def hits(packed):
        view = sortable(packed)
        pos = np.minimum(np.searchsorted(members, view), members.size - 1)
        return members[pos] == view

    if fits_column_sets(layout, max_length):
        for group in walk_column_sets(layout, layout.wide_codes(offsets, ids), max_length):
            found = hits(codec.pack(group.distinct_attrs))
            if found.any():
                instance = found[group.inverse]
                yield group.rows[instance], codec.pack(group.distinct_attrs[group.inverse[instance]])
        return
    for rows, packed, _ in enumerate_combinations(codec, offsets, ids, range(1, max_length + 1)):
        found = hits(packed)
        if found.any():
            yield rows[found], packed[found]


def rare_combination_records(synthetic_records: DataFrame, counts, shared, max_length: int) -> DataFrame:
    """Synthetic records holding each synthetic combination with count < k (lazy: run it while
    ``shared`` — the broadcast sorted keys of the rare synthetic combinations — is live).

    Each executor walks the combinations of its distinct synthetic records and keeps the
    members; a distinct record's copies are its rows ``syn_start .. syn_start + count - 1``
    (fewer than k, since each of them holds a combination seen fewer than k times).

    Returns:
        ``record_id, attrs, length``: one row per synthetic row and rare combination it holds.
    """
    codec, layout = counts.codec, counts.layout
    keys = _key_columns(codec)
    schema = "syn_start long, count long, " + ", ".join(f"{c} long" for c in keys)

    def kernel(batch: pa.RecordBatch, members: np.ndarray):
        if not members.size or not batch.num_rows:
            return None
        offsets, ids = csr(batch)
        starts, copies = numbers(batch, "syn_start"), numbers(batch, "count")
        return [pa.RecordBatch.from_arrays([pa.array(starts[rows]), pa.array(copies[rows])]
                                           + [pa.array(packed[:, i]) for i in range(codec.n_words)],
                                           names=["syn_start", "count"] + keys)
                for rows, packed in _member_instances(codec, layout, offsets, ids, members, max_length)]

    hits = map_batches(synthetic_records.select("syn_start", "count", "attrs"), schema, kernel,
                       setup=lambda: shared.value)
    rows = F.sequence("syn_start", F.col("syn_start") + F.col("count") - 1)
    expanded = hits.select(F.explode(rows).alias("record_id"), *keys)
    return decode_keys(expanded, codec)


def rare_combinations_report(spark, data: EncodedData, sensitive_vs_synthetic: DataFrame, synthetic_records: DataFrame,
                             counts, k: int, max_length: int) -> DataFrame:
    """Spec §5.6: ``combo_length, combo, record_id, syn_count, sen_count``, ordered by length,
    combo string, record id (persisted and materialised). ``sen_count = floor_k(S(c))``.

    Args:
        sensitive_vs_synthetic: The S-vs-Y :func:`join_counts` result (gives S(c) and Y(c)).
    """
    rare = with_selections(
        sensitive_vs_synthetic.filter(F.col("z") < k).select(
            "attrs", F.col("z").alias("syn_count"),
            (F.floor(F.coalesce("x", F.lit(0)) / k) * k).cast("long").alias("sen_count")),
        data, "ordinal")
    with broadcast(spark, counts.rare_keys(k)[0]) as shared:
        hits = rare_combination_records(synthetic_records, counts, shared, max_length)
        report = (
            hits.join(rare, "attrs")
            .select(
                F.col("length").alias("combo_length"),
                F.regexp_replace("selections", ";", " AND ").alias("combo"),
                "record_id",
                F.col("syn_count").cast("long"),
                "sen_count",
            )
            .orderBy("combo_length", "combo", "record_id")
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        report.count()
    return report


# ---------------------------------------------------------------------------------- single attributes
def single_attribute_counts(data: EncodedData, synthetic: DataFrame, reportable: DataFrame) -> pd.DataFrame:
    """Synthetic vs protected count of every attribute present in Y or in P (length 1).

    Collected to the driver: at most one row per attribute from each side. Attributes absent
    from both (e.g. rare values) are left out, so no unpublished value is named.
    """
    def singles(df: DataFrame, column: str) -> pd.DataFrame:
        rows = df.filter(F.col("length") == 1).select(F.col("attrs")[0].alias("attr_id"), F.col(column)).collect()
        return pd.DataFrame([(int(r[0]), int(r[1])) for r in rows], columns=["attr_id", column])

    merged = singles(synthetic, "count").merge(singles(reportable, "protected_count"), on="attr_id", how="outer")
    merged = merged.fillna(0).astype(np.int64).merge(data.attributes[["attr_id", "column", "value"]], on="attr_id")
    merged = merged.sort_values("attr_id", kind="stable")
    return pd.DataFrame({
        "column": merged["column"].to_numpy(),
        "value": merged["value"].to_numpy(),
        "synthetic_count": merged["count"].to_numpy(dtype=np.int64),
        "protected_count": merged["protected_count"].to_numpy(dtype=np.int64),
    })


# ---------------------------------------------------------------------------------- stage
def synthetic_aggregates(data: EncodedData, synthetic: DataFrame, max_length: int, selection_order: str):
    """Counts the synthetic combinations up to ``max_length`` (Y) on executors, from the
    distinct synthetic records with their counts (``attrs, weight``).

    Y is counted straight from the synthetic records, which are encoded in the sensitive
    attribute-id space. That is equivalent to re-reading the written synthetic TSV with the same
    parsing rules (spec §5: all columns, multi-value expansion, sensitive zeros, empty cells
    absent, no record limit, no subject id): every synthetic value is a sensitive attribute
    that already went through that normalisation, so re-parsing maps it to the same id.

    Returns:
        ``(counts, aggregates)``: the :class:`~ksynth_spark.aggregate.CombinationCounts` and the
        persisted ``attrs, length, count, selections`` DataFrame.
    """
    counts = count_combinations_df(synthetic.select(F.array_sort("attrs").alias("attrs"), "weight"), data, max_length)
    aggregates = with_selections(counts.decoded, data, selection_order).persist(StorageLevel.MEMORY_AND_DISK)
    return counts, aggregates


def evaluate(spark, data: EncodedData, aggregates: AggregateResult, synthetic_records: DataFrame,
             config: Config, reportable: DataFrame | None = None,
             reportable_record_count: int | None = None) -> EvaluationResult:
    """Runs spec §5 for ``synthetic_records`` (``syn_start long, count long, attrs array<int>``:
    the distinct synthetic records, whose copies are the 0-based synthetic rows
    ``syn_start .. syn_start + count - 1``).

    ``reportable`` (``attrs, length, protected_count``) and its published record count default
    to the k-anonymous ``aggregates.reportable`` and ``floor_k(N)``; pass the DP table and its
    record count with ``dp_aggregates``.

    Collected to the driver: the per-(length, count) comparison sums of S vs Y and S vs P, one
    row per attribute for the single-attribute counts, the synthetic record count, and the
    packed keys of the rare synthetic combinations (broadcast for §5.6). Never a record.

    Returns:
        The :class:`EvaluationResult`. Released figures use the published record count, never
        the exact N (which a 2-decimal expansion ratio would reveal to within a few records).
    """
    k, length = config.k, aggregates.reporting_length
    reportable = aggregates.reportable if reportable is None else reportable
    published = aggregates.protected_record_count if reportable_record_count is None else reportable_record_count
    started = time.monotonic()
    synthetic_records = synthetic_records.select("syn_start", "count", F.array_sort("attrs").alias("attrs"))
    totals = synthetic_records.agg(F.sum("count")).first()
    assert totals is not None  # a global aggregate has one row
    n_synthetic = int(totals[0] or 0)
    counts, y = synthetic_aggregates(data, synthetic_records.select("attrs", F.col("count").alias("weight")), length,
                                     config.selection_order)
    logger.info("evaluate: %d synthetic records, combinations counted up to length %d", n_synthetic, length)

    sy_joined = join_counts(aggregates.sensitive, y).persist(StorageLevel.MEMORY_AND_DISK)
    sy = comparison_sums(sy_joined, k)
    sp = comparison_sums(join_counts(aggregates.sensitive, reportable.withColumnRenamed("protected_count", "count")), k)
    leakage = leakage_by_length(sy, length)
    by_length = preservation_by_length(sy, length)
    by_count = preservation_by_count(sy)
    overall = overall_preservation(sy)
    versus_y = comparison_metrics(sy, length)
    versus_p = comparison_metrics(sp, length)
    rare_report = rare_combinations_report(spark, data, sy_joined, synthetic_records, counts, k, length)
    singles = single_attribute_counts(data, y, reportable)
    sy_joined.unpersist()
    counts.release()  # y itself stays cached

    headline = EvaluationHeadline(
        k=k, reporting_length=length, synthesis_mode=config.synthesis_mode,
        published_records=int(published), synthetic_records=n_synthetic,
        expansion_ratio=n_synthetic / published if published else 0.0,
        leaked_rare_combinations=int(leakage["leak_count"].sum()),
        unsupported_combinations=int(sy["n_unsupported"].sum()),
        synthetic_combinations=int(sy["n_z"].sum()),
        synthetic_rare_combinations=int(sy.loc[sy["z"] < k, "n_z"].sum()),
        count_preservation=overall.count_preservation, mean_proportional_error=overall.mean_proportional_error,
        not_in_synthetic_pct=versus_y.missing_pct, fabricated_synthetic_pct=versus_y.fabricated_pct,
        withheld_from_published_pct=versus_p.missing_pct, fabricated_published_pct=versus_p.fabricated_pct,
        leaked_by_length={int(r.syn_combo_length): int(r.leak_count) for r in leakage.itertuples()},
        count_preservation_by_length={int(r.syn_combo_length): float(r.count_preservation)
                                      for r in by_length.itertuples()},
        mean_proportional_error_by_length={int(r.syn_combo_length): float(r.mean_proportional_error)
                                           for r in by_length.itertuples()},
    )
    logger.info("evaluate: %s %s, %s %s, %s %s, %s %s, %s %s (%.1f s)",
                LEAKED.name.lower(), LEAKED.format(headline.leaked_rare_combinations),
                MEAN_PROPORTIONAL_ERROR.name.lower(), MEAN_PROPORTIONAL_ERROR.format(overall.mean_proportional_error),
                EXPANSION_RATIO.name.lower(), EXPANSION_RATIO.format(headline.expansion_ratio),
                NOT_IN_SYNTHETIC.name.lower(), NOT_IN_SYNTHETIC.format(versus_y.missing_pct),
                WITHHELD_FROM_PUBLISHED.name.lower(), WITHHELD_FROM_PUBLISHED.format(versus_p.missing_pct),
                time.monotonic() - started)
    return EvaluationResult(
        synthetic_aggregates=y,
        leakage_by_length=leakage,
        preservation_by_length=by_length,
        preservation_by_count=by_count,
        synthetic_vs_sensitive=versus_y,
        published_vs_sensitive=versus_p,
        synthetic_rare_combos=rare_report,
        single_attribute_counts=singles,
        headline=headline,
    )
