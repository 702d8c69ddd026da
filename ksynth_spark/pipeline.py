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
from ksynth_spark.errors import InputDataError
from ksynth_spark.dp import DpResult, dp_aggregates
from ksynth_spark.load import load_encoded
from ksynth_spark.evaluate import EvaluationResult, evaluate_release
from ksynth_spark.model import EncodedData
from ksynth_spark.showcase import render_showcase_html
from ksynth_spark.synthesize import SynthesisResult, long_form_rows, microdata_rows, synthesize
from ksynth_spark.verify import require_k_synthetic

log = logging.getLogger(__name__)

STAGES = ("aggregate", "generate", "evaluate", "showcase")


@dataclass
class Release:
    """State shared by the stages of one run (what each stage produced so far)."""

    spark: object
    config: Config
    staging: io.Staging
    stages: tuple = STAGES
    data: Optional[EncodedData] = None
    aggregates: Optional[AggregateResult] = None
    dp: Optional[DpResult] = None
    dp_reportable: Optional[DataFrame] = None
    synthesis: Optional[SynthesisResult] = None
    evaluation: Optional[EvaluationResult] = None
    evaluation_charts: dict = field(default_factory=dict)
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
        if config.dp_aggregates:
            lengths = [(r["length"], r["count"]) for r in reportable.groupBy("length").count().orderBy("length").collect()]
        else:  # combinations with count >= k, from the statistics already computed
            by_length = result.rare_by_length
            lengths = list(zip(by_length["sen_combo_length"], by_length["combo_count"] - by_length["rare_count"]))
        summary = [("privacy", "differential privacy" if config.dp_aggregates else f"k-anonymity, k = {config.k}"),
                   ("reporting_length", result.reporting_length), ("record_count", record_count)]
        summary += [(f"reportable_combinations_length_{length}", int(n)) for length, n in lengths]
        io.write_text(spark, release.out("release", "reportable_summary.tsv"), io.tsv_text(["parameter", "value"], summary))
        io.write_text(spark, release.out("sensitive", "sensitive_rare_by_length.tsv"),
                      io.tsv_text(result.rare_by_length.columns, result.rare_by_length.itertuples(index=False)))
        io.write_text(spark, release.out("sensitive", "sensitive_analysis_by_length.tsv"),
                      io.tsv_text(result.records_analysis.columns, result.records_analysis.itertuples(index=False)))
        parameters = [("resolution", config.k), ("limit", result.reporting_length),
                      ("total_sensitive_records", result.protected_record_count)]
        parameters += list(result.risk_totals.items())
        io.write_text(spark, release.out("sensitive", "parameters.tsv"), io.tsv_text(["parameter", "value"], parameters))

        fmt = config.table_format
        io.run_concurrently([
            lambda: io.write_tsv(spark, ordered_for_file(reportable, count_column, record_count),
                                 release.out("release", "reportable_aggregates.tsv")),
            lambda: io.write_tsv(spark, ordered_for_file(result.sensitive, "count", result.n_records),
                                 release.out("sensitive", "sensitive_aggregates.tsv")),
            lambda: io.write_table(result.sensitive.select("selections", "length", "count", "attrs"),
                                   release.table("sensitive_aggregates"), fmt),
            lambda: io.write_table(reportable.select("selections", "length", F.col(count_column).alias("protected_count"),
                                                     "attrs"), release.table("reportable_aggregates"), fmt),
            lambda: io.write_table(spark.createDataFrame(data.attributes), release.table("attribute_dictionary"), fmt),
            lambda: io.write_table(data.records, release.table("encoded_records"), fmt),
        ])


def ensure_synthesis(release: Release) -> SynthesisResult:
    """Synthesises once per run (spec §4); aggregate_seeded reads only the reportable table.

    When this run does not include ``generate`` and a previous run stored its synthetic records
    under ``tables/``, those are used, so ``evaluate``/``showcase`` describe the published data.
    """
    if release.synthesis is None and "generate" not in release.stages:
        stored = release.staging.final_path("tables", "synthetic_records")
        if io.exists(release.spark, stored):
            records = io.read_table(release.spark, stored, release.config.table_format).persist(StorageLevel.MEMORY_AND_DISK)
            n_records = records.count()
            n = ensure_data(release).n_records
            release.synthesis = SynthesisResult(records, n_records, n_records / n if n else 0.0, release.config.seed, {})
            log.info("Using the %d synthetic records stored in %s", n_records, stored)
    if release.synthesis is None:
        data, config = ensure_data(release), release.config
        reportable, length = None, None
        if config.synthesis_mode in ("aggregate_seeded", "value_seeded"):
            reportable, _, _ = ensure_reportable(release)
            length = ensure_aggregates(release).reporting_length
        release.synthesis = synthesize(release.spark, data, config, reportable, length)
        release.derived.update(expansion_ratio=release.synthesis.expansion_ratio, synthesis=release.synthesis.stats)
    return release.synthesis


def released_headers(release: Release) -> list[str]:
    """Headers of the published microdata: every column, except expanded multi-value columns
    that no synthetic record uses — their name ``<column>_<value>`` alone could reveal a rare
    value. (A small aggregate of used column indices is collected.)"""
    data = release.data
    if not data.multi_value:
        return list(data.headers)
    used_ids = release.synthesis.records.select(F.explode("attrs").alias("a")).distinct().collect()
    used_columns = {int(data.attribute_columns[r["a"]]) for r in used_ids}
    return [h for i, h in enumerate(data.headers) if h not in data.multi_value or i in used_columns]


def stage_generate(release: Release) -> None:
    """Spec §4 outputs: synthetic microdata (wide TSV, long form, table) in ``release/``, after
    the independent k-synthetic check of :mod:`verify` (k-anonymous modes)."""
    spark, config = release.spark, release.config
    with StageTimer("generate"):
        result = ensure_synthesis(release)
        data = release.data
        if not config.dp_aggregates:
            audit = require_k_synthetic(spark, data, result.records, config, config.effective_reporting_length(len(data.headers)))
            release.derived["verification"] = audit
        else:
            log.info("DP mode: the synthetic data is DP by post-processing of the DP aggregates; the k-synthetic "
                     "check is skipped because it would read the sensitive records again")
        columns = [F.col(f"`{h}`") for h in released_headers(release)]
        wide = microdata_rows(spark, data, result).persist(StorageLevel.MEMORY_AND_DISK)  # rendered once, written twice
        io.run_concurrently([
            lambda: io.write_tsv(spark, wide.select(*columns), release.out("release", "synthetic_microdata.tsv")),
            lambda: io.write_tsv(spark, long_form_rows(spark, data, result),
                                 release.out("release", "synthetic_microdata_long.tsv")),
            lambda: io.write_table(wide.select("syn_id", *columns), release.table("synthetic_microdata"),
                                   config.table_format),
            lambda: io.write_table(result.records, release.table("synthetic_records"), config.table_format),
        ])
        wide.unpersist()


def stage_evaluate(release: Release) -> None:
    """Spec §5 outputs: utility and privacy metrics, charts and the plain-words summary."""
    with StageTimer("evaluate"):
        reportable, record_count, _ = ensure_reportable(release)
        release.evaluation = evaluate_release(release, ensure_synthesis(release).records, reportable, record_count)


def _showcase_evaluation(release: Release) -> Optional[dict]:
    """The evaluation view of the showcase: headline figures and released charts (SVG)."""
    if release.evaluation is None or not release.evaluation_charts:
        return None
    headline = release.evaluation.headline
    metrics = {
        "Leakage (combinations under k)": str(headline["leakage_total"]),
        "Suppressed combinations": f"{headline['suppressed_pct']:.2f} %",
        "Fabricated combinations": f"{headline['fabricated_pct']:.2f} %",
        "Mean proportional error": f"{100 * headline['mean_proportional_error']:.2f} %",
    }
    for length, value in headline["preservation_by_length"].items():
        metrics[f"Preservation, length {length}"] = f"{value:.3f}"
    charts = {name.rsplit(".", 1)[0].replace(f"{release.config.prefix}_", "").replace("_", " "): content.decode("utf-8")
              for name, content in release.evaluation_charts.items() if name.endswith(".svg")}
    return {"metrics": metrics, "charts": charts}


def stage_showcase(release: Release) -> None:
    """Spec §5.7 page ``release/<prefix>_showcase.html``, built only from releasable outputs:
    the synthetic microdata and the reportable aggregates (both collected to the driver as
    pandas: they are the published tables)."""
    spark, config = release.spark, release.config
    with StageTimer("showcase"):
        result = ensure_synthesis(release)
        reportable, record_count, count_column = ensure_reportable(release)
        headers = released_headers(release)
        synthetic = microdata_rows(spark, release.data, result).select(*[F.col(f"`{h}`") for h in headers]).toPandas()
        aggregates = ordered_for_file(reportable, count_column, record_count).toPandas()
        aggregates.columns = ["selections", "protected_count"]
        facts = {"Synthetic records": result.n_records, "Synthesis mode": config.synthesis_mode,
                 "Protected record count" if not config.dp_aggregates else "Record count (DP)": record_count,
                 "Privacy": "differential privacy" if config.dp_aggregates else f"k-anonymity (k = {config.k})"}
        html = render_showcase_html(
            synthetic, aggregates, title=config.report_title, k=config.k,
            reporting_length=ensure_aggregates(release).reporting_length, dataset_facts=facts,
            evaluation=_showcase_evaluation(release), report_pages=config.report_pages or None,
            report_visuals=config.report_visuals or None,
        )
        io.write_text(spark, release.out("release", "showcase.html"), html)


STAGE_FUNCTIONS = {"aggregate": stage_aggregate, "generate": stage_generate, "evaluate": stage_evaluate,
                   "showcase": stage_showcase}


def catalog_table_name(config: Config, name: str) -> str:
    """Managed table name of working table ``name``: ``<output_catalog>.<prefix>_<name>`` unless
    ``output_table_names`` maps ``name`` to another table name."""
    return f"{config.output_catalog}.{config.output_table_names.get(name, f'{config.prefix}_{name}')}"


def publish_catalog_tables(release: Release) -> None:
    """With ``output_catalog``, writes the staged working tables as managed catalog tables
    (instead of directories under ``tables/``), once every stage has succeeded."""
    spark, config = release.spark, release.config
    if not config.output_catalog:
        return
    if not spark.catalog.databaseExists(config.output_catalog):
        raise InputDataError(f"output_catalog '{config.output_catalog}' does not exist: create the schema first "
                             f"(CREATE SCHEMA {config.output_catalog}) or fix the name.")
    staged = release.staging.path("tables")
    for name in io.list_names(spark, staged):
        table = catalog_table_name(config, name)
        frame = io.read_table(spark, f"{staged}/{name}", config.table_format)
        frame.write.mode("overwrite").format(config.table_format).option("overwriteSchema", "true").saveAsTable(table)
        log.info("Wrote catalog table %s", table)
    io.delete(spark, staged)


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
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; known: {list(STAGE_FUNCTIONS)}")
    if config.seed is None:
        config.seed = secrets.randbits(63)
        log.info("No seed configured: drew seed %d (recorded in the effective config)", config.seed)
    release = Release(spark=spark, config=config, staging=io.Staging(spark, config.output_dir), stages=tuple(stages))
    started = time.monotonic()
    try:
        for stage in STAGES:
            if stage in stages:
                STAGE_FUNCTIONS[stage](release)
        io.write_text(spark, release.staging.path("", f"{config.prefix}_config.json"),
                      config.to_json(derived=release.derived, stages=list(stages)))
        publish_catalog_tables(release)
        release.staging.commit()
    except BaseException:
        log.error("Run failed: removing staged outputs; nothing was committed to %s", config.output_dir)
        release.staging.abort()
        raise
    log.info("Release written to %s in %.1f s", config.output_dir, time.monotonic() - started)
    return release
