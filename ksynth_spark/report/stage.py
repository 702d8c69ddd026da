"""Showcase stage: gathers, with Spark, the releasable inputs the data showcase page embeds.

Only releasable outputs reach the page: the synthetic records (as distinct records with their
counts) and the reportable aggregates, both collected to the driver as pandas (they are the
published tables), plus the run's published facts and public evaluation figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame

from ksynth_spark.aggregate import ordered_for_file
from ksynth_spark.arrow_jobs import csr
from ksynth_spark.config import Config
from ksynth_spark.model import EncodedData
from ksynth_spark.report.showcase import render_showcase_html


@dataclass(frozen=True)
class ShowcaseInputs:
    """What the page is built from (all releasable).

    Attributes:
        records: ``syn_start, count, attrs`` distinct synthetic records.
        reportable: ``attrs, length, protected_count, selections`` publishable aggregates.
        record_count: The published record count; count_column: its TSV header.
        reporting_length: The effective reporting length.
        headers: Released microdata headers.
        evaluation: ``{"metrics": {name: value}, "charts": {caption: svg}}`` or None.
    """

    records: DataFrame
    reportable: DataFrame
    record_count: int
    count_column: str
    reporting_length: int
    headers: list[str]
    evaluation: dict | None


def synthetic_frame(data: EncodedData, records: DataFrame, headers: list[str]) -> pd.DataFrame:
    """The synthetic microdata as a pandas frame of strings (collected: releasable records)."""
    table = records.select("count", "attrs").toArrow()
    offsets, ids = csr(table)
    counts = table.column("count").to_numpy()
    position = {h: i for i, h in enumerate(headers)}
    columns = np.array([position.get(h, -1) for h in data.headers])[data.attribute_columns.astype(np.int64)]
    values = np.array(list(data.attributes["value"]), dtype=object)
    cells = np.full((len(counts), len(headers)), "", dtype=object)
    owner = np.repeat(np.arange(len(counts)), np.diff(offsets))
    shown = columns[ids] >= 0
    cells[owner[shown], columns[ids[shown]]] = values[ids[shown]]
    return pd.DataFrame(np.repeat(cells, counts, axis=0), columns=headers)


def showcase_html(config: Config, data: EncodedData, inputs: ShowcaseInputs) -> str:
    """The self-contained showcase page for a run."""
    synthetic = synthetic_frame(data, inputs.records, inputs.headers)
    aggregates = ordered_for_file(inputs.reportable, "protected_count", inputs.record_count).toPandas()
    aggregates.columns = ["selections", "protected_count"]
    facts = {"Synthetic records": int(len(synthetic)), "Synthesis mode": config.synthesis_mode,
             "Protected record count" if not config.dp_aggregates else "Record count (DP)": inputs.record_count,
             "Privacy": "differential privacy" if config.dp_aggregates else f"k-anonymity (k = {config.k})"}
    return render_showcase_html(
        synthetic, aggregates, title=config.report_title, k=config.k, reporting_length=inputs.reporting_length,
        dataset_facts=facts, evaluation=inputs.evaluation, report_pages=config.report_pages or None,
        report_visuals=config.report_visuals or None)
