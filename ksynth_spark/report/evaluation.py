"""Rendering of a release's evaluation: every small evaluation output as text or bytes, and the
evaluation view of the showcase page.

This module's one job is to turn an :class:`~ksynth_spark.evaluate.EvaluationResult` (computed
by the evaluate stage) and the release's :class:`~ksynth_spark.report.privacy.ReleaseFacts` into
what is written: the small TSVs and the summary keyed by their :mod:`ksynth_spark.outputs` keys,
the charts keyed by file name, and the JSON record the pipeline stores under
``derived["evaluation"]``; and, from that record, the metrics and charts of the showcase page.
Names and formats of the metrics are those of :mod:`ksynth_spark.report.metrics`. Pure: the
pipeline does the writing and reading (the large Spark tables of the stage, synthetic aggregates
and rare combinations, are written by the pipeline directly).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import pandas as pd

from ksynth_spark.io import tsv_text
from ksynth_spark.outputs import chart_area, output
from ksynth_spark.report.charts import chart_captions, columns_with_equal_counts, render_evaluation_charts
from ksynth_spark.report.metrics import (
    ALL_METRICS,
    COUNT_PRESERVATION,
    EXPANSION_RATIO,
    FABRICATED_PUBLISHED,
    FABRICATED_SYNTHETIC,
    MEAN_PROPORTIONAL_ERROR,
    NOT_IN_SYNTHETIC,
    WITHHELD_FROM_PUBLISHED,
    EvaluationHeadline,
    by_length_name,
)
from ksynth_spark.report.privacy import ReleaseFacts
from ksynth_spark.report.summary import summary_markdown

if TYPE_CHECKING:
    from ksynth_spark.evaluate import ComparisonMetrics, EvaluationResult

logger = logging.getLogger(__name__)

#: The small evaluation tables written as TSV, by output key (columns as computed).
TABLE_OUTPUTS = ("synthetic_leakage_by_length", "preservation_by_length", "preservation_by_count",
                 "single_attribute_counts")


#: Header of the stats TSVs (the reference's layout).
STATS_HEADER = ("Metric", "Value")


class StatsRow(NamedTuple):
    """One ``Metric, Value`` row of a stats TSV."""

    metric: str
    value: str


@dataclass(frozen=True)
class ChartFile:
    """One evaluation chart file.

    Attributes:
        name: ``<prefix>_<stem>.<ext>``.
        area: Where it is written (``release`` or ``sensitive``).
        caption: Its title in plain words (without the privacy resolution).
    """

    name: str
    area: str
    caption: str


@dataclass(frozen=True)
class EvaluationReport:
    """Everything the evaluate stage writes besides its Spark tables.

    Attributes:
        texts: Output key (:mod:`ksynth_spark.outputs`) -> file text: the four small tables,
            the two stats files and the summary.
        charts: Chart file name -> bytes (area: :func:`ksynth_spark.outputs.chart_area`).
        chart_files: Where each chart goes and its caption.
        record: The JSON-ready ``derived["evaluation"]`` record (headline figures and charts).
    """

    texts: dict[str, str]
    charts: dict[str, bytes]
    chart_files: tuple[ChartFile, ...] = ()
    record: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------- stats files
def stats_rows(comparison: ComparisonMetrics, target: Literal["synthetic", "published"],
               headline: EvaluationHeadline | None = None) -> list[StatsRow]:
    """``Metric, Value`` rows of ``P_stats_synthetic_data.tsv`` (``target`` synthetic: sensitive vs
    synthetic, with the expansion ratio and mean proportional error of ``headline``) or
    ``P_stats_aggregate_counts.tsv`` (``published``: sensitive vs published)."""
    missing, fabricated = ((NOT_IN_SYNTHETIC, FABRICATED_SYNTHETIC) if target == "synthetic"
                           else (WITHHELD_FROM_PUBLISHED, FABRICATED_PUBLISHED))
    rows = [StatsRow(missing.name, missing.format(comparison.missing_pct)),
            StatsRow(fabricated.name, fabricated.format(comparison.fabricated_pct))]
    for length, values in sorted(comparison.by_length.items()):
        rows.append(StatsRow(f"{length}-counts mean value +/- mean error",
                             f"{values.mean_count:.2f} +/- {values.mean_absolute_error:.2f}"))
    rows.append(StatsRow("Mean value +/- Mean error",
                         f"{comparison.mean_count:.2f} +/- {comparison.mean_absolute_error:.2f}"))
    if target == "synthetic" and headline is not None:
        rows.append(StatsRow(EXPANSION_RATIO.name, EXPANSION_RATIO.format(headline.expansion_ratio)))
        rows.append(StatsRow(MEAN_PROPORTIONAL_ERROR.name,
                             MEAN_PROPORTIONAL_ERROR.format(headline.mean_proportional_error)))
    return rows


def _table_text(table: pd.DataFrame, spreadsheet_safe: bool = False) -> str:
    return tsv_text(table.columns, table.itertuples(index=False), spreadsheet_safe)


# ---------------------------------------------------------------------------------- the stage's outputs
def render_evaluation(result: EvaluationResult, facts: ReleaseFacts, *, prefix: str,
                      sensitive_rare_by_length: pd.DataFrame | None = None,
                      spreadsheet_safe: bool = False) -> EvaluationReport:
    """Every small output of the evaluate stage, rendered.

    Args:
        result: What the evaluate stage computed.
        facts: The release's facts (:meth:`ReleaseFacts.from_run`); the figures of ``result``
            replace any evaluation they hold.
        prefix: The release's file-name prefix.
        sensitive_rare_by_length: The aggregate stage's rare-by-length table (for its chart,
            which goes to ``sensitive/``), or None.
        spreadsheet_safe: Prefix cells a spreadsheet could read as a formula with ``'``.

    Returns:
        The :class:`EvaluationReport`; its ``texts`` hold the keys of :data:`TABLE_OUTPUTS`,
        ``stats_synthetic_data``, ``stats_aggregate_counts`` and ``summary``.
    """
    headline = result.headline
    facts = facts.with_evaluation(headline)
    texts = {
        "synthetic_leakage_by_length": _table_text(result.leakage_by_length),
        "preservation_by_length": _table_text(result.preservation_by_length),
        "preservation_by_count": _table_text(result.preservation_by_count),
        "single_attribute_counts": _table_text(result.single_attribute_counts, spreadsheet_safe),
        "stats_synthetic_data": tsv_text(STATS_HEADER, stats_rows(result.synthetic_vs_sensitive, "synthetic",
                                                                  headline)),
        "stats_aggregate_counts": tsv_text(STATS_HEADER, stats_rows(result.published_vs_sensitive, "published")),
    }
    singles = result.single_attribute_counts
    charts = render_evaluation_charts(
        prefix, headline.k, sensitive_rare_by_length=sensitive_rare_by_length,
        synthetic_leakage_by_length=result.leakage_by_length, preservation_by_length=result.preservation_by_length,
        preservation_by_count=result.preservation_by_count, single_attribute_counts=singles)
    captions = chart_captions(prefix, singles["column"].astype(str).unique() if len(singles) else ())
    chart_files = tuple(ChartFile(name, chart_area(stem[len(prefix) + 1:], facts.dp), captions[stem])
                        for name in sorted(charts) for stem in [name.rsplit(".", 1)[0]])
    summary_area = output("summary").area_for(facts.dp)
    notes = []
    equal = columns_with_equal_counts(singles) if len(singles) else []
    if equal:
        every = "every column" if len(equal) == singles["column"].nunique() else f"{len(equal)} column(s)"
        notes.append(f"The synthetic and published counts of every single value are equal in {every}, so no "
                     "single-attribute chart is drawn for them (the counts are in the single-attribute counts file).")
    texts["summary"] = summary_markdown(prefix, facts, headline,
                                        {c.name: c.caption for c in chart_files if c.area == summary_area}, notes)
    record = {
        "headline": headline.to_record(),
        "charts": [{"file": c.name, "area": c.area, "caption": c.caption} for c in chart_files],
    }
    return EvaluationReport(texts=texts, charts=charts, chart_files=chart_files, record=record)


# ---------------------------------------------------------------------------------- the showcase page
def page_metrics(headline: EvaluationHeadline) -> dict[str, str]:
    """The evaluation figures of the showcase page: name -> value as shown, every metric in reading
    order, then the count preservation of every length."""
    metrics = {metric.name: metric.format(headline.value(metric)) for metric in ALL_METRICS}
    for length, value in sorted(headline.count_preservation_by_length.items()):
        metrics[by_length_name(COUNT_PRESERVATION, length)] = COUNT_PRESERVATION.format(value)
    return metrics


def showcase_evaluation(record: Mapping[str, Any] | None, *, dp: bool,
                        read: Callable[[str], bytes | None]) -> dict | None:
    """The evaluation view of the showcase page from a stored ``derived["evaluation"]`` record.

    Args:
        record: The record of :func:`render_evaluation` (this run's or a committed one).
        dp: A differentially private release: its evaluation compares with the sensitive data
            and is never shown on the page.
        read: Returns the bytes of a ``release/`` file by name, or None when it is missing.

    Returns:
        ``{"metrics": {name: value}, "charts": {caption: svg text}}`` (public SVG charts only),
        or None without a usable record or with ``dp``.
    """
    if dp or not record:
        return None
    headline = EvaluationHeadline.from_record(record.get("headline"))
    if headline is None:
        logger.info("The stored evaluation record is from an earlier version: run the evaluate stage again to show "
                    "its figures on the page")
        return None
    charts = {}
    for chart in record.get("charts", []):
        if chart["area"] != "release" or not chart["file"].endswith(".svg"):
            continue
        content = read(chart["file"])
        if content is None:
            logger.warning("Evaluation chart %s is missing from the release: left out of the page", chart["file"])
            continue
        charts[chart["caption"]] = content.decode("utf-8")
    return {"metrics": page_metrics(headline), "charts": charts}
