"""The words of the showcase page, derived only from what the release did.

The privacy statement and the "How to read this" answers come from :mod:`.privacy` and
:mod:`.explain`; this module adds the page's own labels (what the two numbers of a bar are,
what each header figure counts, why a count is missing, whether an evaluation exists), all
from :class:`~ksynth_spark.report.privacy.ReleaseFacts`. The page's script only displays them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ksynth_spark.report.explain import how_to_read
from ksynth_spark.report.privacy import ReleaseFacts, privacy_statement


@dataclass(frozen=True)
class Fact:
    """One header figure: its name, value and what it counts."""

    name: str
    value: int | str | None
    note: str


@dataclass(frozen=True)
class PageTexts:
    """Every sentence and label of a page.

    Attributes:
        headline, details, warning: The privacy statement (warning: no guarantee may be claimed).
        how_to_read: ``(question, answer)`` pairs.
        estimate_label: Legend of the synthetic estimate.
        actual_label: Legend of the published count (what it is: protected or noisy).
        actual_short: Column heading of the published count.
        count_name: The published count in a sentence ("protected count").
        missing_note: What a dash (no published count) means.
        facts: The header figures.
        evaluation_note: Why there is no evaluation view (None: there is one).
    """

    headline: str
    details: tuple[str, ...]
    warning: bool
    how_to_read: tuple[tuple[str, str], ...]
    estimate_label: str
    actual_label: str
    actual_short: str
    count_name: str
    missing_note: str
    facts: tuple[Fact, ...]
    evaluation_note: str | None

    def as_data(self) -> dict:
        """The texts as the page data's ``text`` object."""
        return {
            "headline": self.headline, "details": list(self.details), "warning": self.warning,
            "how_to_read": [list(pair) for pair in self.how_to_read],
            "estimate_label": self.estimate_label, "actual_label": self.actual_label,
            "actual_short": self.actual_short, "count_name": self.count_name, "missing_note": self.missing_note,
            "evaluation_note": self.evaluation_note,
        }


def page_texts(facts: ReleaseFacts, *, published_record_count: int | None, synthetic_record_count: int,
               exact_record_count: bool = False, evaluation_shown: bool = False,
               evaluation_ran: bool = False) -> PageTexts:
    """The texts of a page for a release with these facts.

    Args:
        facts: What the release did.
        published_record_count: The published number of records (None: not published).
        synthetic_record_count: Number of synthetic records.
        exact_record_count: The record count is published exactly (DP without a noisy count).
        evaluation_shown: The page carries the evaluation's metrics and charts.
        evaluation_ran: An evaluation of this release exists (possibly restricted).
    """
    statement = privacy_statement(facts)
    k, length = facts.k, facts.reporting_length
    values = f"value{'s' if length != 1 else ''}"
    people = "people" if getattr(facts, "subject_id", False) else "records"
    exact = exact_record_count or bool(getattr(facts, "exact_record_count", False))
    if facts.dp:
        kind = "test noise, NOT private" if facts.test_noise else "differentially private, noisy"
        actual_label, actual_short, count_name = f"Published count ({kind})", "Published", "published count"
        missing = f"\u2013 = no published count (removed by the noise threshold, or more than {length} {values})"
        privacy = "differential privacy" + (f" (epsilon = {facts.epsilon:g})" if facts.epsilon is not None else "")
        if facts.test_noise:
            privacy = "none (test noise)"
    else:
        kind = f"rounded down to a multiple of {k}"
        actual_label = f"Protected count ({kind})"
        actual_short, count_name = "Protected", "protected count"
        missing = f"\u2013 = no published count (fewer than {k} {people}, or more than {length} {values})"
        privacy = f"k-anonymity (k = {k})"
    if exact:
        people_note = "the exact number, published without noise"
    elif facts.dp:
        people_note = f"the published number ({kind})"
    else:
        people_note = (f"the published number: the true one {kind}; each value's count is rounded down too, so a "
                       "chart's protected counts add up to a little less")
    if facts.mode in ("row_seeded", "value_seeded"):
        synthetic_note = ("rows of the synthetic data; many are partial, so a chart's estimates add up to the rows "
                          "that have a value in that column")
    elif facts.mode == "unseeded":
        synthetic_note = ("one row per sensitive record; some cells were left empty, so a chart's estimates add up "
                          "to the rows that have a value in that column")
    else:
        synthetic_note = ("rows assembled from the published counts; a chart's estimates add up to the rows that "
                          "have a value in that column")
    figures = (
        Fact("People in the sensitive data" if people == "people" else "Sensitive records", published_record_count,
             people_note),
        Fact("Synthetic records", synthetic_record_count, synthetic_note),
        Fact("Privacy", privacy, ""),
        Fact("Reporting length", length, f"{count_name}s exist for combinations of up to {length} {values}"),
        Fact("Synthesis mode", facts.mode, ""),
    )
    if evaluation_shown:
        evaluation_note = None
    elif evaluation_ran and facts.dp:
        evaluation_note = ("An evaluation of this release was run, but it compares the synthetic data with the "
                           "sensitive data, so in a differentially private release it is kept restricted and is "
                           "not shown on this page.")
    elif evaluation_ran:
        evaluation_note = "An evaluation of this release was run, but it is not part of this page."
    else:
        evaluation_note = "No evaluation was run for this release."
    return PageTexts(
        headline=statement.headline, details=statement.details,
        warning=bool(getattr(statement, "warning", statement.headline.startswith("WARNING"))),
        how_to_read=tuple((str(q), str(a)) for q, a in how_to_read(facts)),
        estimate_label="Synthetic estimate (synthetic records with these values)", actual_label=actual_label,
        actual_short=actual_short, count_name=count_name, missing_note=missing, facts=figures,
        evaluation_note=evaluation_note)
