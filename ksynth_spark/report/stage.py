"""Showcase stage: gathers, with Spark, the releasable numbers the data showcase page embeds.

Nothing is expanded to one row per synthetic record. The page's numbers come from three
releasable tables collected to the driver: the synthetic combination counts up to the
reporting length (from this run's evaluation, the committed table or counted here), the
published aggregates, and, only when the page embeds them (see
:mod:`ksynth_spark.report.showcase_data`), the distinct synthetic records with their copies.
Its words come from what the release's stages recorded (``derived``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ksynth_spark.aggregate import count_combinations_df
from ksynth_spark.arrow_jobs import csr
from ksynth_spark.config import Config
from ksynth_spark.model import EncodedData
from ksynth_spark.report.privacy import ReleaseFacts
from ksynth_spark.report.showcase import render_showcase
from ksynth_spark.report.showcase_data import (
    Combinations,
    DistinctRecords,
    ShowcaseRelease,
    Vocabulary,
    choose_embedding,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShowcaseInputs:
    """What the page is built from (all releasable).

    Attributes:
        records: ``syn_start, count, attrs`` distinct synthetic records.
        reportable: ``attrs, length, protected_count, selections`` publishable aggregates.
        record_count: The published record count; count_column: its TSV header (``count``:
            the exact number of records is published).
        reporting_length: The effective reporting length R.
        headers: Released microdata headers (the page's columns).
        evaluation: ``{"metrics": {name: value}, "charts": {caption: svg}}`` or None.
        derived: What the release's stages recorded (committed and this run's), for the
            privacy statement and the page's texts.
        synthetic_aggregates: ``attrs, count`` (``length`` and ``selections`` ignored) of every
            synthetic combination up to R, when already counted for these records; None:
            counted here.
        embedding: ``auto`` (the smaller page), ``records`` or ``combinations``.
    """

    records: DataFrame
    reportable: DataFrame
    record_count: int
    count_column: str
    reporting_length: int
    headers: list[str]
    evaluation: dict | None
    derived: dict = field(default_factory=dict)
    synthetic_aggregates: DataFrame | None = None
    embedding: str = "auto"


def committed_synthetic_aggregates(committed, reporting_length: int) -> DataFrame | None:
    """The ``synthetic_aggregates`` table an earlier ``evaluate`` committed, when it still
    describes the committed synthetic records at this reporting length (no ``aggregate`` or
    ``generate`` ran after it); None otherwise.

    Args:
        committed: The :class:`~ksynth_spark.committed.Committed` release, or None.
        reporting_length: The page's reporting length.
    """
    if committed is None or not committed.has_table("synthetic_aggregates"):
        return None
    runs = committed.effective.get("stage_runs") or {}
    evaluated = runs.get("evaluate")
    headline = (committed.derived.get("evaluation") or {}).get("headline") or {}
    if not evaluated or any(runs.get(stage, "") > evaluated for stage in ("aggregate", "generate")) \
            or int(headline.get("reporting_length", -1)) != reporting_length:
        logger.info("Showcase: the committed synthetic aggregates are out of date; counting them again")
        return None
    return committed.table("synthetic_aggregates")


def showcase_html(config: Config, data: EncodedData, inputs: ShowcaseInputs) -> str:
    """The self-contained showcase page for a run.

    Args:
        config: The effective configuration.
        data: The attribute dictionary and headers (only the values of synthetic attributes
            reach the page).
        inputs: The releasable inputs.

    Returns:
        The HTML page.
    """
    length = inputs.reporting_length
    counted = None
    synthetic_df = inputs.synthetic_aggregates
    if synthetic_df is None:
        counted = count_combinations_df(inputs.records.select(F.array_sort("attrs").alias("attrs"),
                                                              F.col("count").alias("weight")), data, length)
        synthetic_df = counted.decoded
    syn_offsets, syn_ids, syn_counts = _collect_csr(synthetic_df, "count")
    if counted is not None:
        counted.release()
    vocabulary, page_of = _vocabulary(data, inputs.headers, syn_offsets, syn_ids)
    synthetic = Combinations.from_csr(syn_offsets, syn_ids, syn_counts, page_of, length)
    reportable = Combinations.from_csr(*_collect_csr(inputs.reportable, "protected_count"), page_of, length)
    stats = inputs.records.agg(F.count(F.lit(1)).alias("d"), F.max("count").alias("m"),
                               F.sum("count").alias("n")).first()
    assert stats is not None  # a global aggregate has one row
    n_distinct, max_copies, n_synthetic = int(stats["d"]), int(stats["m"] or 0), int(stats["n"] or 0)
    choice = choose_embedding(vocabulary, reportable, synthetic, n_distinct, max_copies, inputs.embedding)
    records = _distinct_records(inputs.records, page_of, vocabulary) if choice.name == "records" else None
    release = ShowcaseRelease(vocabulary, reportable, inputs.record_count, n_synthetic, synthetic, records)
    facts = replace(ReleaseFacts.from_run(config, inputs.derived), reporting_length=length,
                    records_in=inputs.record_count, records_out=n_synthetic)
    pages, visuals = _released_only(config.report_pages, data, inputs.headers), \
        _released_only(config.report_visuals, data, inputs.headers)
    return render_showcase(
        release, title=config.report_title, facts=facts, embedding=choice, evaluation=inputs.evaluation,
        evaluation_ran=bool(inputs.derived.get("evaluation")), exact_record_count=inputs.count_column == "count",
        report_pages=pages, report_visuals=visuals)


def _collect_csr(df: DataFrame, count_column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(offsets, ids, counts)`` of an ``attrs`` table (collected: a releasable aggregate)."""
    table = df.select("attrs", F.col(count_column).cast("long").alias("count")).toArrow()
    offsets, ids = csr(table)
    return offsets, ids, np.asarray(table.column("count").to_numpy(), dtype=np.int64)


def _vocabulary(data: EncodedData, headers: list[str], offsets: np.ndarray,
                ids: np.ndarray) -> tuple[Vocabulary, np.ndarray]:
    """The page vocabulary (the values of the released columns that occur in the synthetic
    data, i.e. its combinations of length 1) and the page id of every attribute id (-1: absent)."""
    singles = ids[offsets[:-1][np.diff(offsets) == 1]]
    column_of = np.asarray(data.attribute_columns, dtype=np.int64)
    values = np.asarray(data.attributes["value"].astype(str), dtype=object)
    position = {h: i for i, h in enumerate(data.headers)}
    page_of = np.full(data.n_attributes, -1, dtype=np.int64)
    per_column = []
    offset = 0
    for header in headers:
        members = singles[column_of[singles] == position[header]]
        members = members[np.argsort(values[members].astype(str), kind="stable")]
        page_of[members] = offset + np.arange(len(members))
        per_column.append(tuple(str(v) for v in values[members]))
        offset += len(members)
    return Vocabulary(tuple(headers), tuple(per_column)), page_of


def _distinct_records(records: DataFrame, page_of: np.ndarray, vocabulary: Vocabulary) -> DistinctRecords:
    """The distinct synthetic records as page codes (collected: releasable records, one row each)."""
    table = records.orderBy("syn_start").select("count", "attrs").toArrow()
    offsets, ids = csr(table)
    weights = np.asarray(table.column("count").to_numpy(), dtype=np.int64)
    page_offsets = vocabulary.offsets
    page = page_of[ids]
    column = np.searchsorted(page_offsets, page, side="right") - 1
    owner = np.repeat(np.arange(len(weights)), np.diff(offsets))
    shown = page >= 0
    codes = np.zeros((len(weights), len(vocabulary.columns)), dtype=np.int64)
    codes[owner[shown], column[shown]] = page[shown] - page_offsets[column[shown]] + 1
    return DistinctRecords(codes, weights)


def _released_only(groups: dict[str, list[str]] | None, data: EncodedData,
                   headers: list[str]) -> dict[str, list[str]] | None:
    """``report_pages`` / ``report_visuals`` without the columns that are not released (unused
    multi-value columns); unknown names stay, so the renderer reports them."""
    if not groups:
        return None
    released, known = set(headers), set(data.headers)
    out = {}
    for name, columns in groups.items():
        kept = [c for c in columns if c in released or c not in known] if isinstance(columns, list) else columns
        if kept or not columns:
            out[name] = kept
    return out or None
