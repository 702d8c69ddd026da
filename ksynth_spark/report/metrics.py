"""The evaluation metrics of a release: one name and one definition per metric, and the headline record.

This module's one job is to be the single source of every evaluation metric's name, definition
and display format, and of the JSON record of a release's headline figures (stored under
``derived["evaluation"]`` in the effective configuration). The evaluate stage computes the
figures, the renderers (TSVs, summary, page, chart titles, log lines) take the names and
formats from here, so one metric never has two names and one name never two definitions.

Decisions (issue 12):

* **Expansion ratio** = ``N_Y / N_P``: synthetic records per published record (``N_P`` = the
  published record count, ``floor_k(N)`` or the DP count; never the exact ``N``, which a
  2-decimal figure would reveal). Shown as a ratio (``1.46``) everywhere, including the
  ``P_stats_synthetic_data.tsv`` row, which the reference wrote as the percentage
  ``100·(N_Y/N − 1)`` under the same label. The synthesis stage's "synthetic records per
  sensitive record" (``N_Y / N``, in restricted logs and the config) is a different figure
  with a different name.
* The reference's two "Suppressed combinations %" (same label, two definitions) are
  **Combinations not in the synthetic data** = ``100·#{c ∈ S : c ∉ Y} / #S`` (sensitive vs
  synthetic) and **Combinations withheld from the published aggregates** =
  ``100·#{c ∈ S : c ∉ P} / #S`` (sensitive vs published); ``S`` holds every sensitive
  combination up to the reporting length, rare ones included.
* Likewise the two "Fabricated combinations %" are **Synthetic combinations not in the
  sensitive data** = ``100·#{c ∈ Y : c ∉ S} / #S`` and **Published combinations not in the
  sensitive data** = ``100·#{c ∈ P : c ∉ S} / #S`` (denominator ``#S`` as in the reference).
* **Mean proportional error** = the mean of ``pe(c) = |Y(c) − S(c)| / S(c)`` (1 when
  ``S(c) = 0``) over every evaluated combination ``c ∈ Ω = {S ≥ k} ∪ Y`` up to the reporting
  length; so the overall figure is the count-weighted mean of the per-length figures, and the
  per-length and per-bucket rows are the same definition restricted to a length or a count
  bucket. (The reference's overall figure was the unweighted mean of the count-bucket means,
  empty buckets counted as 0, which mixed buckets of 3 and 30,000 combinations and disagreed
  with every per-length row.) Shown as a percentage in text (summary, page, stats TSV row) and
  as a fraction in the table columns ``mean_proportional_error``.
* **Count preservation** = the mean of ``min(Y(c) / S(c), 1)`` (0 when ``S(c) = 0``) over the
  same combinations; overall = count-weighted mean of the per-length values. Percentage in
  text, fraction in table columns.
* **Leaked rare combinations** = combinations up to the reporting length seen fewer than ``k``
  times in the sensitive data and present, fewer than ``k`` times, in the synthetic data.
* The per-length "mean value +/- mean error" rows of the two stats TSVs keep the reference
  labels: each lives only in its file, whose name says what is compared (mean sensitive count
  and mean absolute error against the synthetic or the published counts).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Unit = Literal["count", "ratio", "percent", "share"]


@dataclass(frozen=True)
class Metric:
    """One evaluation metric.

    Attributes:
        key: Field of :class:`EvaluationHeadline` holding the release-wide value.
        name: The one name used in TSVs, log lines, the summary, the page and chart titles.
        definition: One plain sentence for readers (no formulas).
        unit: ``count`` (integer), ``ratio`` (2 decimals), ``percent`` (a value already in
            percent) or ``share`` (a fraction shown as a percentage).
    """

    key: str
    name: str
    definition: str
    unit: Unit

    def format(self, value: float | int | None) -> str:
        """The value as shown to readers (``"n/a"`` for None)."""
        return format_value(self.unit, value)


def format_value(unit: Unit, value: float | int | None) -> str:
    """Formats ``value`` in ``unit`` (see :class:`Metric`)."""
    if value is None:
        return "n/a"
    if unit == "count":
        return f"{int(value):,}"
    if unit == "ratio":
        return f"{value:.2f}"
    if unit == "percent":
        return f"{value:.2f} %"
    return f"{100 * value:.2f} %"


LEAKED = Metric(
    "leaked_rare_combinations", "Leaked rare combinations",
    "Combinations seen fewer than k times in the sensitive data that also appear, fewer than k times, in the "
    "synthetic data; 0 means no rare combination was reproduced.", "count")
COUNT_PRESERVATION = Metric(
    "count_preservation", "Count preservation",
    "How much of a combination's true count its synthetic count keeps (capped at 100 %), averaged over the "
    "combinations seen at least k times in the sensitive data or present in the synthetic data; 100 % means every "
    "count is kept in full.", "share")
MEAN_PROPORTIONAL_ERROR = Metric(
    "mean_proportional_error", "Mean proportional error",
    "How far a combination's synthetic count is from its true count, as a share of the true count (100 % for a "
    "combination that does not exist in the sensitive data), averaged over the same combinations; 0 % means exact "
    "counts.", "share")
EXPANSION_RATIO = Metric(
    "expansion_ratio", "Expansion ratio",
    "Synthetic records per published record: the number of synthetic records divided by the published record "
    "count.", "ratio")
NOT_IN_SYNTHETIC = Metric(
    "not_in_synthetic_pct", "Combinations not in the synthetic data",
    "Combinations of the sensitive data, rare ones included, that no synthetic record contains, as a share of all "
    "combinations of the sensitive data.", "percent")
FABRICATED_SYNTHETIC = Metric(
    "fabricated_synthetic_pct", "Synthetic combinations not in the sensitive data",
    "Combinations in the synthetic data that no sensitive record contains, as a share of all combinations of the "
    "sensitive data.", "percent")
WITHHELD_FROM_PUBLISHED = Metric(
    "withheld_from_published_pct", "Combinations withheld from the published aggregates",
    "Combinations of the sensitive data that have no published count, as a share of all combinations of the "
    "sensitive data.", "percent")
FABRICATED_PUBLISHED = Metric(
    "fabricated_published_pct", "Published combinations not in the sensitive data",
    "Combinations with a published count that no sensitive record contains, as a share of all combinations of "
    "the sensitive data.", "percent")

#: Every metric, in reading order.
ALL_METRICS: tuple[Metric, ...] = (LEAKED, COUNT_PRESERVATION, MEAN_PROPORTIONAL_ERROR, EXPANSION_RATIO,
                                   NOT_IN_SYNTHETIC, FABRICATED_SYNTHETIC, WITHHELD_FROM_PUBLISHED,
                                   FABRICATED_PUBLISHED)


def by_length_name(metric: Metric, length: int) -> str:
    """The name of ``metric`` restricted to combinations of ``length`` attributes."""
    return f"{metric.name}, length {length}"


#: Version of the headline record; a committed record of another version is not read.
RECORD_VERSION = 2


@dataclass(frozen=True)
class EvaluationHeadline:
    """The headline figures of a release's evaluation (see the module docstring for definitions).

    Attributes:
        k: The privacy resolution.
        reporting_length: Longest combination evaluated.
        synthesis_mode: The synthesis mode.
        published_records: The published record count ``N_P``.
        synthetic_records: The number of synthetic records ``N_Y``.
        expansion_ratio: ``N_Y / N_P`` (0 when ``N_P`` is 0).
        leaked_rare_combinations: Total over lengths; leaked_by_length per length.
        unsupported_combinations: Synthetic combinations whose sensitive count is below k
            (fabricated ones included).
        synthetic_combinations: Distinct synthetic combinations up to the reporting length;
            synthetic_rare_combinations: those with synthetic count below k.
        count_preservation, mean_proportional_error: Over every evaluated combination;
            ``*_by_length``: per length.
        not_in_synthetic_pct, fabricated_synthetic_pct: Sensitive vs synthetic.
        withheld_from_published_pct, fabricated_published_pct: Sensitive vs published.
    """

    k: int
    reporting_length: int
    synthesis_mode: str
    published_records: int
    synthetic_records: int
    expansion_ratio: float
    leaked_rare_combinations: int
    unsupported_combinations: int
    synthetic_combinations: int
    synthetic_rare_combinations: int
    count_preservation: float
    mean_proportional_error: float
    not_in_synthetic_pct: float
    fabricated_synthetic_pct: float
    withheld_from_published_pct: float
    fabricated_published_pct: float
    leaked_by_length: dict[int, int] = field(default_factory=dict)
    count_preservation_by_length: dict[int, float] = field(default_factory=dict)
    mean_proportional_error_by_length: dict[int, float] = field(default_factory=dict)

    def value(self, metric: Metric) -> Any:
        """The release-wide value of ``metric``."""
        return getattr(self, metric.key)

    def to_record(self) -> dict[str, Any]:
        """JSON-ready record (per-length keys as strings), with :data:`RECORD_VERSION`."""
        record: dict[str, Any] = {"version": RECORD_VERSION}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            record[item.name] = {str(k): v for k, v in value.items()} if isinstance(value, dict) else value
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any] | None) -> EvaluationHeadline | None:
        """The headline of a stored record; None for a missing record or one of another version."""
        if not record or record.get("version") != RECORD_VERSION:
            return None
        values: dict[str, Any] = {}
        for item in dataclasses.fields(cls):
            value = record[item.name]
            values[item.name] = {int(k): v for k, v in value.items()} if isinstance(value, Mapping) else value
        return cls(**values)
