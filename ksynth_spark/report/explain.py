"""How to read a release: plain-words explanations shown where the release is read.

The summary (``summary.md``) and the showcase page's "How to read this" panel use the same
texts, derived from the release's facts: which number to quote (and why estimates from the
synthetic records undercount), why synthetic records are partial, why there are more of them
than people, what a missing published count means, and what each metric means in one sentence
(:data:`METRICS`, from :mod:`ksynth_spark.report.metrics`).
"""

from __future__ import annotations

from typing import NamedTuple

from ksynth_spark.report.metrics import ALL_METRICS, COUNT_PRESERVATION, EXPANSION_RATIO
from ksynth_spark.report.privacy import ReleaseFacts


class Answer(NamedTuple):
    """One question a reader asks, and its answer."""

    question: str
    answer: str


class MetricMeaning(NamedTuple):
    """One evaluation metric: its name and what it means, in one sentence."""

    name: str
    meaning: str


#: One sentence per evaluation metric (the same names in every table, chart, log line and page).
METRICS: tuple[MetricMeaning, ...] = tuple(MetricMeaning(m.name, m.definition) for m in ALL_METRICS)


def how_to_read(facts: ReleaseFacts) -> list[Answer]:
    """The questions a reader of this release asks, answered for this release's mode and figures
    (the metric meanings are :data:`METRICS`)."""
    answers = [_which_number(facts), _partial_records(facts)]
    count = _record_count(facts)
    if count is not None:
        answers.append(count)
    answers.append(_missing_counts(facts))
    answers.append(_longer_combinations(facts))
    return answers


def _preservation(facts: ReleaseFacts) -> str:
    """`` In this release, count preservation by number of values is: 1 value 96.34 %, ...`` from the
    evaluation, or ``""`` (always ``""`` with DP, whose evaluation compares with the sensitive data and is
    restricted)."""
    if facts.dp or not facts.count_preservation_by_length:
        return ""
    parts = [f"{length} value{'s' if length > 1 else ''} {COUNT_PRESERVATION.format(value)}"
             for length, value in sorted(facts.count_preservation_by_length.items())]
    return f" In this release, {COUNT_PRESERVATION.name.lower()} by number of values is: " + ", ".join(parts) + "."


def _which_number(facts: ReleaseFacts) -> Answer:
    question = "Which number should I quote?"
    length = facts.reporting_length
    if facts.dp:
        return Answer(question, (
            f"Quote the published count of a combination (up to {length} values), from the published aggregates. "
            "It is noisy, but it is the best figure available: the synthetic records were built from the same noisy "
            "counts, so counting them adds further error and undercounts or overcounts combinations."
            + _preservation(facts)))
    k = facts.k
    published = (f"Quote the published count of a combination of up to {length} values (the protected count of "
                 f"the published aggregates): the true count rounded down to a multiple of {k}, so it is at most "
                 f"{k - 1} below the true count.")
    if facts.mode == "aggregate_seeded":
        estimate = (" Counting synthetic records gives an estimate that can be higher or lower: the records were "
                    "assembled from the published counts and do not reproduce them exactly for combinations of "
                    "several values.")
    else:
        estimate = (" Counting synthetic records gives a lower figure for most combinations of several values, "
                    f"because values were left out of the synthetic records to keep every group at {k} or more.")
    return Answer(question, published + estimate + _preservation(facts))


def _partial_records(facts: ReleaseFacts) -> Answer:
    k, unit = facts.k, facts.unit
    withheld = "An empty cell therefore often means 'left out to protect a small group', not 'unknown'."
    if facts.mode == "row_seeded":
        return Answer("Why are many synthetic records incomplete?", (
            f"Each synthetic record starts from one sensitive record and keeps only values that, together, still "
            f"match at least {k} {unit} in the sensitive data; the record's other values are left out. " + withheld))
    if facts.mode == "value_seeded":
        return Answer("Why are many synthetic records incomplete?", (
            f"Synthetic records are assembled value by value, and a value is added only while the record still "
            f"matches at least {k} {unit} in the sensitive data; a record ends when no further value keeps it that "
            "common. " + withheld))
    if facts.mode == "unseeded":
        return Answer("Why are some synthetic records incomplete?", (
            f"Each synthetic record is drawn column by column, and a value is drawn only if the record still matches "
            f"at least {k} {unit} in the sensitive data; otherwise the cell stays empty. " + withheld))
    source = "noisy published counts" if facts.dp else "published counts"
    return Answer("Why are some synthetic records incomplete?", (
        f"The synthetic records were assembled value by value from the {source} only (no sensitive record was "
        "read); a record ends when no further value fits those counts, so an empty cell does not mean 'unknown'."))


def _record_count(facts: ReleaseFacts) -> Answer | None:
    """Why the number of synthetic records differs from the published record count (None when
    the figures are unknown or equal)."""
    n_in, n_out = facts.records_in, facts.records_out
    if n_in is None or n_out is None or n_in == n_out:
        return None
    noun = "people" if facts.subject_id else "sensitive records"
    figures = (f"This release has {n_out:,} synthetic records for a published record count of {n_in:,} "
               f"({EXPANSION_RATIO.name.lower()} {EXPANSION_RATIO.format(n_out / n_in) if n_in else 'n/a'}).")
    never = f" To count {noun}, quote the published record count, never the number of synthetic records."
    more = n_out > n_in
    question = f"Why are there {'more' if more else 'fewer'} synthetic records than {noun}?"
    if facts.mode == "row_seeded" and more:
        why = ("Values left out of one record are placed in additional, shorter synthetic records, so that every "
               "single value keeps its published count.")
    elif facts.mode == "row_seeded":
        why = "A sensitive record whose values are all too rare to keep yields no synthetic record."
    elif facts.mode == "unseeded":
        why = (f"There is one synthetic record per sensitive record, while the published record count is rounded "
               f"down to a multiple of {facts.k}.")
    elif facts.target_records is not None:
        why = f"The number of synthetic records was set to {facts.target_records:,} when the release was configured."
    else:
        scaled = (f" multiplied by {facts.counts_scale_factor:g}" if facts.counts_scale_factor is not None else "")
        why = (f"The records are assembled until every single value has been used as often as its published "
               f"count{scaled}, so their number follows from those counts, not from the number of {noun}.")
    return Answer(question, f"{why} {figures}{never}")


def _missing_counts(facts: ReleaseFacts) -> Answer:
    question = "Why does a combination have no published count?"
    if facts.dp:
        return Answer(question, (
            "Combinations whose noisy count fell below a threshold were not published, and the noise can also "
            "publish combinations that do not exist in the sensitive data. A missing combination may still exist; "
            "a published one may not."))
    return Answer(question, (
        f"Combinations seen fewer than {facts.k} times are not published, to protect the small groups they "
        "describe. A missing combination may still exist in the sensitive data: read it as 'fewer than "
        f"{facts.k}', not as zero."))


def _longer_combinations(facts: ReleaseFacts) -> Answer:
    length = facts.reporting_length
    question = f"What about combinations of more than {length} values?"
    if facts.dp:
        return Answer(question, (
            f"They have no published count, and the synthetic records were assembled only from counts of up to "
            f"{length} values: their synthetic counts are not reliable. Like everything built from the published "
            "counts, they are still covered by the differential privacy guarantee."))
    if facts.mode == "aggregate_seeded":
        return Answer(question, (
            f"They have no published count, and the synthetic records were assembled only from counts of up to "
            f"{length} values: their synthetic counts are not reliable and carry no guarantee of their own."))
    return Answer(question, (
        f"They have no published count; the synthetic records are the only source for them. Their synthetic "
        f"counts are estimates (usually too low), but every such combination still matches at least {facts.k} "
        f"{facts.unit} in the sensitive data."))
