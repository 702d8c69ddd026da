"""Stage orchestration: runs the requested stages and commits one consistent release.

Every output is written into a staging directory first; only when all requested stages have
succeeded (and the privacy check has passed) are the staged files moved into ``output_dir``.
A failed run removes its staging directory, so no partial ``release/`` is ever left behind.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Optional

from ksynth_spark import io
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.storagelevel import StorageLevel

from ksynth_spark.aggregate import AggregateResult, aggregate, ordered_for_file, with_selections
from ksynth_spark.config import Config
from ksynth_spark.dp import DpResult, dp_aggregates
from ksynth_spark.load import load_encoded
from ksynth_spark.model import EncodedData

log = logging.getLogger(__name__)

STAGES = ("aggregate",)


@dataclass
class Release:
    """State shared by the stages of one run (what each stage produced so far)."""

    spark: object
    config: Config
    staging: io.Staging
    data: Optional[EncodedData] = None
    aggregates: Optional[AggregateResult] = None
    dp: Optional[DpResult] = None
    dp_reportable: Optional[DataFrame] = None
    derived: dict = field(default_factory=dict)

    def out(self, area: str, suffix: str) -> str:
        """Staged path of ``<prefix>_<suffix>`` in ``area``."""
        return self.staging.path(area, f"{self.config.prefix}_{suffix}")

    def table(self, name: str) -> str:
        """Staged path of working table ``name`` under ``tables/``."""
        return self.staging.path("tables", name)


class StageTimer:
    """Logs the start, end and duration of a stage."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.started = time.monotonic()
        log.info("[%s] started", self.name)
        return self

    def __exit__(self, exc_type, *_):
        state = "failed" if exc_type else "finished"
        log.info("[%s] %s in %.1f s", self.name, state, time.monotonic() - self.started)


# ---------------------------------------------------------------------------------- stages
def ensure_data(release: Release) -> EncodedData:
    """Loads and encodes the sensitive table once per run."""
    if release.data is None:
        with StageTimer("load"):
            release.data = load_encoded(release.spark, release.config)
            release.derived.update(
                n_records=release.data.n_records,
                headers=release.data.headers,
                n_attributes=release.data.n_attributes,
            )
    return release.data


def ensure_aggregates(release: Release) -> AggregateResult:
    """Computes the aggregates once per run (without writing them)."""
    if release.aggregates is None:
        data = ensure_data(release)
        release.aggregates = aggregate(release.spark, data, release.config)
        release.derived.update(
            effective_reporting_length=release.aggregates.reporting_length,
            protected_record_count=release.aggregates.protected_record_count,
        )
    return release.aggregates


def ensure_reportable(release: Release) -> tuple[DataFrame, Optional[int], str]:
    """The publishable aggregates: k-anonymous (spec §2.4) or, with ``dp_aggregates``, DP (§3).

    Returns:
        ``(table, record_count, count_column)``: table has ``attrs, length, protected_count,
        selections``; ``record_count`` is the published record count row.
    """
    aggregates = ensure_aggregates(release)
    config = release.config
    if not config.dp_aggregates:
        return aggregates.reportable, aggregates.protected_record_count, "protected_count"
    if release.dp is None:
        with StageTimer("dp aggregates"):
            release.dp = dp_aggregates(release.spark, release.data, config)
        release.derived["dp"] = release.dp.spent
        table = with_selections(release.dp.aggregates.withColumnRenamed("count", "protected_count"),
                                release.data, config.selection_order)
        release.dp_reportable = table.persist(StorageLevel.MEMORY_AND_DISK)
    if release.dp.protected_record_count is None:
        log.warning("number_of_records_epsilon_proportion is null: the exact record count is published "
                    "in the DP aggregates (spec §3.1); set it (default 0.005) to protect it too")
        return release.dp_reportable, release.data.n_records, "count"
    return release.dp_reportable, release.dp.protected_record_count, "protected_count"


def stage_aggregate(release: Release) -> None:
    """Spec §2 outputs: reportable aggregates (release), sensitive aggregates and statistics
    (sensitive), and the working tables (tables). With ``dp_aggregates`` the reportable
    aggregates are the DP marginals of spec §3."""
    spark, config = release.spark, release.config
    with StageTimer("aggregate"):
        result = ensure_aggregates(release)
        data = release.data
        reportable, record_count, count_column = ensure_reportable(release)
        io.write_tsv(spark, ordered_for_file(reportable, count_column, record_count),
                     release.out("release", "reportable_aggregates.tsv"))
        lengths = reportable.groupBy("length").count().orderBy("length").collect()
        summary = [("privacy", "differential privacy" if config.dp_aggregates else f"k-anonymity, k = {config.k}"),
                   ("reporting_length", result.reporting_length), ("record_count", record_count)]
        summary += [(f"reportable_combinations_length_{r['length']}", r["count"]) for r in lengths]
        io.write_text(spark, release.out("release", "reportable_summary.tsv"), io.tsv_text(["parameter", "value"], summary))

        io.write_tsv(spark, ordered_for_file(result.sensitive, "count", result.n_records),
                     release.out("sensitive", "sensitive_aggregates.tsv"))
        io.write_text(spark, release.out("sensitive", "sensitive_rare_by_length.tsv"),
                      io.tsv_text(result.rare_by_length.columns, result.rare_by_length.itertuples(index=False)))
        io.write_text(spark, release.out("sensitive", "sensitive_analysis_by_length.tsv"),
                      io.tsv_text(result.records_analysis.columns, result.records_analysis.itertuples(index=False)))
        parameters = [("resolution", config.k), ("limit", result.reporting_length),
                      ("total_sensitive_records", result.protected_record_count)]
        parameters += list(result.risk_totals.items())
        io.write_text(spark, release.out("sensitive", "parameters.tsv"), io.tsv_text(["parameter", "value"], parameters))

        fmt = config.table_format
        io.write_table(result.sensitive.select("selections", "length", "count", "attrs"), release.table("sensitive_aggregates"), fmt)
        io.write_table(reportable.select("selections", "length", F.col(count_column).alias("protected_count"), "attrs"),
                       release.table("reportable_aggregates"), fmt)
        io.write_table(spark.createDataFrame(data.attributes), release.table("attribute_dictionary"), fmt)
        io.write_table(data.records, release.table("encoded_records"), fmt)


STAGE_FUNCTIONS = {"aggregate": stage_aggregate}


def run_stages(spark, config: Config, stages: tuple[str, ...] = STAGES) -> Release:
    """Runs ``stages`` in pipeline order and commits the release.

    Args:
        spark: The SparkSession.
        config: Validated configuration.
        stages: Subset of :data:`STAGES`.

    Returns:
        The Release with everything the stages computed (for notebooks and tests).

    Raises:
        KsynthError: For invalid input; nothing is committed in that case.
    """
    unknown = [s for s in stages if s not in STAGE_FUNCTIONS]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; known: {list(STAGE_FUNCTIONS)}")
    if config.seed is None:
        config.seed = secrets.randbits(63)
        log.info("No seed configured: drew seed %d (recorded in the effective config)", config.seed)
    release = Release(spark=spark, config=config, staging=io.Staging(spark, config.output_dir))
    started = time.monotonic()
    try:
        for stage in STAGES:
            if stage in stages:
                STAGE_FUNCTIONS[stage](release)
        io.write_text(spark, release.staging.path("", f"{config.prefix}_config.json"),
                      config.to_json(derived=release.derived, stages=list(stages)))
        release.staging.commit()
    except BaseException:
        log.error("Run failed: removing staged outputs; nothing was committed to %s", config.output_dir)
        release.staging.abort()
        raise
    log.info("Release written to %s in %.1f s", config.output_dir, time.monotonic() - started)
    return release
