"""Stage orchestration: runs the requested stages, writes their outputs and commits one release.

Stages compute (the load/aggregate/dp/synthesis/verify/evaluate modules return results); this
module decides what is written where (through :mod:`ksynth_spark.outputs`) and commits. Every
output is written into a staging directory first; only when all requested stages have
succeeded (and the privacy check has passed) are the staged files moved into ``output_dir``.
A stage run alone builds on what earlier runs committed (:mod:`ksynth_spark.committed`): it
reads their tables and updates the effective configuration instead of replacing it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.storagelevel import StorageLevel

from ksynth_spark import io, release_checks
from ksynth_spark.aggregate import AggregateResult, aggregate, ordered_for_file, with_selections
from ksynth_spark.committed import Committed, catalog_table_name
from ksynth_spark.config import Config
from ksynth_spark.dp.stage import DpResult, dp_aggregates
from ksynth_spark.errors import ConfigError, OutputError
from ksynth_spark.evaluate import EvaluationResult, evaluate
from ksynth_spark.inputs import check_output_overlap
from ksynth_spark.load import load_encoded
from ksynth_spark.model import EncodedData
from ksynth_spark.outputs import OUTPUTS, chart_area, output
from ksynth_spark.report.evaluation import render_evaluation, showcase_evaluation
from ksynth_spark.report.privacy import ReleaseFacts
from ksynth_spark.report.stage import ShowcaseInputs, committed_synthetic_aggregates, showcase_html
from ksynth_spark.run_state import RunTransaction
from ksynth_spark.synthesis.stage import SynthesisResult, long_form_rows, microdata_rows, synthesize
from ksynth_spark.verify import require_k_synthetic

logger = logging.getLogger(__name__)

STAGES = ("aggregate", "generate", "evaluate", "showcase")


@dataclass(frozen=True)
class Reportable:
    """The publishable aggregates of a run.

    Attributes:
        table: ``attrs, length, protected_count, selections``.
        record_count: The published record count (``floor_k(N)``, the DP count, or N when the DP
            record count is not protected).
        count_column: Header of the count column of the TSV (``protected_count``, or ``count``
            when the exact N is published).
    """

    table: DataFrame
    record_count: int
    count_column: str


@dataclass
class Run:
    """State shared by the stages of one run (what each stage produced so far)."""

    spark: Any
    config: Config
    staging: io.Staging
    stages: tuple[str, ...] = STAGES
    committed: Committed | None = None
    data: EncodedData | None = None
    aggregates: AggregateResult | None = None
    dp: DpResult | None = None
    reportable: Reportable | None = None
    synthesis: SynthesisResult | None = None
    verification: dict | None = None
    evaluation: EvaluationResult | None = None
    derived: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ writing
    def out(self, key: str) -> str:
        """Staged path of the file output ``key`` (its area from the outputs table)."""
        entry = output(key)
        return self.staging.path(entry.area_for(self.config.dp_aggregates), f"{self.config.prefix}_{entry.suffix}")

    def table_path(self, key: str) -> str:
        """Staged path of working table ``key`` under ``tables/``."""
        return self.staging.path("tables", output(key, table=True).key)

    def write_text(self, key: str, text: str) -> None:
        io.write_text(self.spark, self.out(key), text)

    def write_tsv(self, key: str, df: DataFrame) -> None:
        io.write_tsv(self.spark, df, self.out(key), spreadsheet_safe=self.config.spreadsheet_safe)

    def write_table(self, key: str, df: DataFrame) -> None:
        io.write_table(df, self.table_path(key), self.config.table_format)

    def write_chart(self, name: str, content: bytes) -> None:
        """An evaluation chart ``<prefix>_<stem>.<ext>`` (its area from :func:`chart_area`)."""
        stem = name[len(self.config.prefix) + 1:].rsplit(".", 1)[0]
        io.write_bytes(self.spark, self.staging.path(chart_area(stem, self.config.dp_aggregates), name), content)


class StageTimer:
    """Logs the start, end and duration of a stage, and a progress line at least every 10 s while
    it runs (:func:`ksynth_spark.progress.progress`: Spark tasks done/total, rate, ETA).

    Args:
        name: Stage name shown in the log lines.
        spark: The session whose jobs the stage runs; default: the running SparkContext, if any.
    """

    def __init__(self, name: str, spark: Any = None):
        self.name = name
        self.spark = spark

    def __enter__(self):
        from pyspark import SparkContext

        from ksynth_spark.progress import progress

        self.started = time.monotonic()
        logger.info("[%s] started", self.name)
        # The running context (never starts one); the progress thread only reads its status tracker.
        context = self.spark if self.spark is not None else SparkContext._active_spark_context
        self._progress = progress(context, self.name)
        self._progress.__enter__()
        return self

    def __exit__(self, exc_type, exc, traceback):
        self._progress.__exit__(exc_type, exc, traceback)
        logger.info("[%s] %s in %.1f s", self.name, "failed" if exc_type else "finished",
                    time.monotonic() - self.started)


# ---------------------------------------------------------------------------------- inputs of the stages
def ensure_data(run: Run) -> EncodedData:
    """Loads and encodes the sensitive table once per run."""
    if run.data is None or run.data.rows is None:
        with StageTimer("load"):
            run.data = load_encoded(run.spark, run.config)
        run.derived.update(n_records=run.data.n_records, n_rows=run.data.n_rows, headers=run.data.headers,
                           n_attributes=run.data.n_attributes)
    return run.data


def dictionary(run: Run) -> EncodedData:
    """The attribute dictionary and headers: from this run, or committed by an earlier one (the
    sensitive table is then not read)."""
    if run.data is None and "aggregate" not in run.stages and run.committed is not None:
        run.data = run.committed.data()
    return run.data if run.data is not None else ensure_data(run)


def ensure_aggregates(run: Run) -> AggregateResult:
    """The aggregates of this run (computed once, without writing them)."""
    if run.aggregates is None:
        committed = run.committed
        if "aggregate" not in run.stages and committed is not None and committed.has_table("sensitive_aggregates"):
            run.aggregates = _committed_aggregates(run)
        else:
            data = ensure_data(run)
            run.aggregates = aggregate(run.spark, data, run.config)
            run.derived.update(effective_reporting_length=run.aggregates.reporting_length,
                               protected_record_count=run.aggregates.protected_record_count)
    return run.aggregates


def _committed_aggregates(run: Run) -> AggregateResult:
    """The aggregates an earlier run committed (sensitive and reportable tables, statistics)."""
    committed, _config = run.committed, run.config
    assert committed is not None  # the caller checked that the table was committed
    derived = committed.derived
    sensitive = committed.table("sensitive_aggregates").persist(StorageLevel.MEMORY_AND_DISK)
    reportable = committed.table("reportable_aggregates")
    rare_by_length = pd.DataFrame(derived["rare_by_length"]) if derived.get("rare_by_length") else None
    return AggregateResult(sensitive=sensitive, reportable=reportable,
                           reporting_length=int(derived["effective_reporting_length"]),
                           n_records=int(derived["n_records"]),
                           protected_record_count=int(derived.get("protected_record_count", 0)),
                           rare_by_length=rare_by_length, records_analysis=None, risk_totals={})


def ensure_reportable(run: Run) -> Reportable:
    """The publishable aggregates: k-anonymous or, with ``dp_aggregates``, DP."""
    if run.reportable is not None:
        return run.reportable
    config = run.config
    if "aggregate" not in run.stages and run.committed is not None and run.committed.has_table("reportable_aggregates"):
        derived = run.committed.derived
        run.reportable = Reportable(run.committed.table("reportable_aggregates"),
                                    int(derived["published_record_count"]),
                                    derived.get("count_column", "protected_count"))
        return run.reportable
    aggregates = ensure_aggregates(run)
    if not config.dp_aggregates:
        run.reportable = Reportable(aggregates.reportable, aggregates.protected_record_count, "protected_count")
    else:
        data = ensure_data(run)
        with StageTimer("dp aggregates"):
            run.dp = dp_aggregates(run.spark, data, config)
        run.derived["dp"] = run.dp.spent
        table = with_selections(run.dp.aggregates.withColumnRenamed("count", "protected_count"), data,
                                config.selection_order).persist(StorageLevel.MEMORY_AND_DISK)
        if run.dp.protected_record_count is None:
            logger.warning("number_of_records_epsilon_proportion is null: the exact record count is published in the "
                           "DP aggregates; set it (default 0.005) to protect it too")
            run.reportable = Reportable(table, data.n_records, "count")
        else:
            run.reportable = Reportable(table, run.dp.protected_record_count, "protected_count")
    run.derived.update(published_record_count=run.reportable.record_count, count_column=run.reportable.count_column)
    return run.reportable


def ensure_synthesis(run: Run) -> SynthesisResult:
    """The synthetic records: synthesised in this run, or those an earlier ``generate`` committed
    (so that ``evaluate`` and ``showcase`` describe the published data)."""
    if run.synthesis is None and "generate" not in run.stages and run.committed is not None \
            and run.committed.has_table("synthetic_records"):
        records = run.committed.table("synthetic_records").persist(StorageLevel.MEMORY_AND_DISK)
        totals = records.agg(F.sum("count").alias("n"), F.count(F.lit(1)).alias("d")).first()
        n, n_records = int(totals["n"] or 0), int(run.committed.derived.get("n_records", 0))
        run.synthesis = SynthesisResult(records, n, int(totals["d"]), n / n_records if n_records else 0.0, {})
        logger.info("Using the %d synthetic records committed by an earlier run", n)
    if run.synthesis is None:
        config = run.config
        data = dictionary(run) if config.synthesis_mode == "aggregate_seeded" else ensure_data(run)
        reportable, length = None, None
        if config.synthesis_mode == "aggregate_seeded" or config.oversampling_ratio is not None:
            reportable = ensure_reportable(run).table
            length = _reporting_length(run)
        run.synthesis = synthesize(run.spark, data, config, reportable, length)
        run.derived.update(synthesis=run.synthesis.stats)
    return run.synthesis


def _reporting_length(run: Run) -> int:
    if run.aggregates is not None:
        return run.aggregates.reporting_length
    if run.committed is not None and "effective_reporting_length" in run.committed.derived:
        return int(run.committed.derived["effective_reporting_length"])
    return ensure_aggregates(run).reporting_length


# ---------------------------------------------------------------------------------- stages
def stage_aggregate(run: Run) -> None:
    """Reportable aggregates (release), sensitive aggregates and statistics (sensitive), and the
    working tables. With ``dp_aggregates`` the reportable aggregates are the DP marginals."""
    config = run.config
    with StageTimer("aggregate"):
        result = ensure_aggregates(run)
        data = run.data
        assert data is not None  # the aggregate stage reads the sensitive table (ensure_aggregates loaded it)
        reportable = ensure_reportable(run)
        if config.dp_aggregates:
            lengths = [(r["length"], r["count"]) for r in
                       reportable.table.groupBy("length").count().orderBy("length").collect()]
        else:  # combinations with count >= k, from the statistics already computed
            by_length = result.rare_by_length
            lengths = list(zip(by_length["sen_combo_length"], by_length["combo_count"] - by_length["rare_count"],
                               strict=True))
        summary = [("privacy", "differential privacy" if config.dp_aggregates else f"k-anonymity, k = {config.k}"),
                   ("reporting_length", result.reporting_length), ("record_count", reportable.record_count)]
        summary += [(f"reportable_combinations_length_{length}", int(n)) for length, n in lengths]
        run.write_text("reportable_summary", io.tsv_text(["parameter", "value"], summary))
        run.write_text("sensitive_rare_by_length",
                       io.tsv_text(result.rare_by_length.columns, result.rare_by_length.itertuples(index=False)))
        run.write_text("sensitive_analysis_by_length",
                       io.tsv_text(result.records_analysis.columns, result.records_analysis.itertuples(index=False)))
        parameters = [("resolution", config.k), ("limit", result.reporting_length),
                      ("total_sensitive_records", result.protected_record_count)]
        parameters += list(result.risk_totals.items())
        run.write_text("parameters", io.tsv_text(["parameter", "value"], parameters))
        run.derived["rare_by_length"] = result.rare_by_length.to_dict("list")
        count_column = reportable.count_column
        io.run_concurrently([
            lambda: run.write_tsv("reportable_aggregates",
                                  ordered_for_file(reportable.table, count_column, reportable.record_count)),
            lambda: run.write_tsv("sensitive_aggregates",
                                  ordered_for_file(result.sensitive, "count", result.n_records)),
            lambda: run.write_table("sensitive_aggregates", result.sensitive.select("selections", "length", "count",
                                                                                    "attrs")),
            lambda: run.write_table("reportable_aggregates", reportable.table.select(
                "selections", "length", F.col("protected_count"), "attrs")),
            lambda: run.write_table("attribute_dictionary", run.spark.createDataFrame(data.attributes)),
            lambda: run.write_table("encoded_rows", data.rows),
        ])


def released_headers(run: Run) -> list[str]:
    """Headers of the published microdata: every column, except expanded multi-value columns
    that no synthetic record uses — their name ``<column>_<value>`` alone could reveal a rare
    value. (A small aggregate of used attribute ids is collected.)"""
    data = dictionary(run)
    if not data.multi_value:
        return list(data.headers)
    assert run.synthesis is not None  # the callers ran ensure_synthesis
    used_ids = run.synthesis.records.select(F.explode("attrs").alias("a")).distinct().collect()
    used_columns = {int(data.attribute_columns[r["a"]]) for r in used_ids}
    return [h for i, h in enumerate(data.headers) if h not in data.multi_value or i in used_columns]


#: ``synthetic_long_form: auto`` writes the long-form TSV up to this many synthetic records
#: (about 10^7 lines); beyond, a TSV of that size serves no BI tool and costs more than the rest.
LONG_FORM_AUTO_MAX_RECORDS = 2_000_000


def writes_long_form(config: Config, n_records: int) -> bool:
    """Whether the generate stage writes ``P_synthetic_microdata_long.tsv`` for this release."""
    if config.synthetic_long_form == "auto":
        return n_records <= LONG_FORM_AUTO_MAX_RECORDS
    return config.synthetic_long_form == "always"


def stage_generate(run: Run) -> None:
    """Synthetic microdata (wide TSV, long form, tables) in ``release/``, after the independent
    k-synthetic check of :mod:`ksynth_spark.verify` (k-anonymous modes)."""
    config = run.config
    with StageTimer("generate"):
        result = ensure_synthesis(run)
        if not config.dp_aggregates:
            data = ensure_data(run)
            run.verification = require_k_synthetic(run.spark, data, result.weighted(), config,
                                                   config.effective_reporting_length(len(data.headers)))
        else:
            run.verification = {}
            logger.info("DP mode: the synthetic data is DP by post-processing of the DP aggregates; the k-synthetic "
                        "check is skipped because it would read the sensitive records again")
        run.derived["verification"] = run.verification
        data = dictionary(run)
        headers = released_headers(run)
        wide = microdata_rows(data, result.records, headers).persist(StorageLevel.MEMORY_AND_DISK)
        columns = [F.col(f"`{h}`") for h in headers]
        writes = [
            lambda: run.write_tsv("synthetic_microdata", wide.select(*columns)),
            lambda: run.write_table("synthetic_microdata", wide),
            lambda: run.write_table("synthetic_records", result.records),
        ]
        if writes_long_form(config, result.n_records):
            writes.append(lambda: run.write_tsv("synthetic_microdata_long", long_form_rows(data, result.records)))
        else:
            logger.info("generate: the long-form TSV is not written for %d synthetic records (more than %d, "
                        "synthetic_long_form: auto); the synthetic_microdata table holds the same data. Set "
                        "synthetic_long_form: always to write it.", result.n_records, LONG_FORM_AUTO_MAX_RECORDS)
        io.run_concurrently(writes)
        wide.unpersist()


def stage_evaluate(run: Run) -> None:
    """Utility and privacy metrics, charts and the plain-words summary (public in k-anonymous
    releases; in DP releases everything compared with the sensitive data stays restricted).
    :func:`ksynth_spark.evaluate.evaluate` computes, :func:`ksynth_spark.report.evaluation.render_evaluation`
    renders; this stage writes."""
    config = run.config
    with StageTimer("evaluate"):
        reportable = ensure_reportable(run)
        synthesis = ensure_synthesis(run)
        data = dictionary(run)
        aggregates = ensure_aggregates(run)
        result = evaluate(run.spark, data, aggregates, synthesis.records, config, reportable.table,
                          reportable.record_count)
        run.evaluation = result
        previous = run.committed.derived if run.committed is not None else {}
        facts = ReleaseFacts.from_run(config, {**previous, **run.derived})
        report = render_evaluation(result, facts, prefix=config.prefix,
                                   sensitive_rare_by_length=aggregates.rare_by_length,
                                   spreadsheet_safe=config.spreadsheet_safe)
        for key, text in report.texts.items():
            run.write_text(key, text)
        for name, content in sorted(report.charts.items()):
            run.write_chart(name, content)
        io.run_concurrently([
            lambda: run.write_tsv("synthetic_aggregates", ordered_for_file(result.synthetic_aggregates, "count",
                                                                           result.headline.synthetic_records)),
            lambda: run.write_tsv("synthetic_rare_combos_by_length", result.synthetic_rare_combos),
            lambda: run.write_table("synthetic_aggregates",
                                    result.synthetic_aggregates.select("selections", "length", "count", "attrs")),
        ])
        run.derived.update(expansion_ratio=result.headline.expansion_ratio,
                           mean_proportional_error=result.headline.mean_proportional_error,
                           evaluation=report.record)


def _showcase_evaluation(run: Run) -> dict | None:
    """The evaluation view of the page (:func:`ksynth_spark.report.evaluation.showcase_evaluation`)
    from this run's evaluation record or the committed one; None when there is none (or it is
    restricted)."""
    record = run.derived.get("evaluation") or (run.committed.derived.get("evaluation") if run.committed else None)

    def read(name: str) -> bytes | None:
        staged = run.staging.path("release", name)
        if io.exists(run.spark, staged):
            return io.read_bytes(run.spark, staged)
        return run.committed.read_file("release", name) if run.committed else None

    return showcase_evaluation(record, dp=run.config.dp_aggregates, read=read)


def stage_showcase(run: Run) -> None:
    """The self-contained page ``release/<prefix>_showcase.html``, built only from releasable
    outputs; run alone, it reads them from the committed release (the sensitive table is not read).
    The synthetic combination counts come from this run's evaluation, else from the committed
    table when it still describes the committed records, else they are counted by the page stage."""
    with StageTimer("showcase"):
        synthesis = ensure_synthesis(run)
        reportable = ensure_reportable(run)
        data = dictionary(run)
        length = _reporting_length(run)
        derived = {**(run.committed.derived if run.committed is not None else {}), **run.derived}
        synthetic: DataFrame | None
        if run.evaluation is not None:
            synthetic = run.evaluation.synthetic_aggregates
        elif not {"aggregate", "generate"} & set(run.stages):
            synthetic = committed_synthetic_aggregates(run.committed, length)
        else:
            synthetic = None
        inputs = ShowcaseInputs(synthesis.records, reportable.table, reportable.record_count, reportable.count_column,
                                length, released_headers(run), _showcase_evaluation(run), derived, synthetic)
        run.write_text("showcase", showcase_html(run.config, data, inputs))


STAGE_FUNCTIONS = {"aggregate": stage_aggregate, "generate": stage_generate, "evaluate": stage_evaluate,
                   "showcase": stage_showcase}


def publish_catalog_tables(run: Run) -> None:
    """With ``output_catalog``, writes the staged working tables as managed catalog tables
    (instead of directories under ``tables/``), once every stage has succeeded."""
    spark, config = run.spark, run.config
    if not config.output_catalog:
        return
    if not spark.catalog.databaseExists(config.output_catalog):
        raise OutputError(f"output_catalog '{config.output_catalog}' does not exist: create the schema first "
                          f"(CREATE SCHEMA {config.output_catalog}) or fix the name.")
    staged = run.staging.path("tables")
    for name in io.list_names(spark, staged):
        table = catalog_table_name(config, name)
        frame = io.read_table(spark, f"{staged}/{name}", config.table_format)
        io.save_as_table(frame, table, config.table_format)
        logger.info("Wrote catalog table %s", table)
    io.delete(spark, staged)


def effective_config(run: Run) -> str:
    """The effective configuration of the release after this run: every key with its default,
    the seed, and what the stages recorded; a stage run alone updates what earlier runs
    recorded instead of replacing it."""
    previous = run.committed.derived if run.committed is not None else {}
    derived = {**previous, **run.derived}
    stages_run = dict((run.committed.effective.get("stage_runs") or {}) if run.committed is not None else {})
    finished = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    stages_run.update({stage: finished for stage in run.stages})
    return run.config.to_json(derived=derived, stages=list(run.stages), stage_runs=stages_run)


def owned_outputs(run: Run) -> list[str]:
    """Paths (relative to ``output_dir``) of every output the run's stages write in some
    configuration (both areas of an evaluation file, the working tables, and the charts the
    committed release lists): the commit removes those it did not produce this time."""
    config, owned = run.config, []
    for entry in OUTPUTS:
        if entry.stage not in run.stages:
            continue
        if entry.area == "tables":
            if not config.output_catalog:
                owned.append(f"tables/{entry.key}")
        else:
            for area in {entry.area, entry.area_for(True)}:
                owned.append("/".join(p for p in (area, f"{config.prefix}_{entry.suffix}") if p))
    if "evaluate" in run.stages and run.committed is not None:
        for chart in (run.committed.derived.get("evaluation") or {}).get("charts") or []:
            owned.append(f"{chart['area']}/{chart['file']}")
    return owned


def run_stages(spark, config: Config, stages: tuple[str, ...] = STAGES) -> Run:
    """Runs ``stages`` in pipeline order and commits the release (one run per ``output_dir``).

    The run holds the lock of ``output_dir``, completes or removes what interrupted runs left,
    writes into a staging directory and commits through a journal; SIGTERM/SIGINT stop it like
    a failure (:mod:`ksynth_spark.run_state`). It refuses an output that overlaps the input,
    ``k`` above the number of records, a release with nothing reportable and showcase columns
    that do not exist (:mod:`ksynth_spark.release_checks`).

    Args:
        spark: The SparkSession.
        config: Validated configuration.
        stages: Subset of :data:`STAGES`.

    Returns:
        The Run with everything the stages computed (for the Python API, notebooks and tests).

    Raises:
        KsynthError: For invalid input, config or output; nothing is committed in that case.
        RunInterrupted: The run was stopped by SIGTERM/SIGINT; nothing is committed (unless
            the signal arrived during the commit, which is then completed first).
    """
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ConfigError(f"unknown stage(s) {unknown}; use some of: {', '.join(STAGES)}.")
    reads_input = "aggregate" in stages or ("generate" in stages and config.synthesis_mode != "aggregate_seeded")
    if "aggregate" in stages or "generate" in stages:
        check_output_overlap(spark, config)
    started = time.monotonic()
    with RunTransaction(spark, config.output_dir) as transaction:
        run = Run(spark=spark, config=config, staging=transaction.staging, stages=tuple(stages),
                  committed=Committed(spark, config))
        if reads_input:
            release_checks.require_enough_records(config, ensure_data(run).n_records)
        if "showcase" in stages and (config.report_pages or config.report_visuals):
            data = dictionary(run)
            if data is not None:
                release_checks.check_report_columns(config, data.headers)
        for stage in STAGES:
            if stage in stages:
                transaction.checkpoint()
                STAGE_FUNCTIONS[stage](run)
                if stage == "aggregate":
                    assert run.reportable is not None  # set by stage_aggregate
                    release_checks.require_reportable(config, run.reportable.table.limit(1).count())
                elif stage == "generate":
                    assert run.synthesis is not None  # set by stage_generate
                    release_checks.require_synthetic_records(config, run.synthesis.n_records)
        transaction.checkpoint()
        io.write_text(spark, run.out("config"), effective_config(run))
        publish_catalog_tables(run)
        transaction.commit(owned_outputs(run))
    logger.info("Release written to %s in %.1f s", config.output_dir, time.monotonic() - started)
    return run
