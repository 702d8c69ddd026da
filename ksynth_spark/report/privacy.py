"""What a release guarantees, in plain words, derived only from what the run actually did.

:class:`ReleaseFacts` is built from the effective configuration and what the stages recorded
(mode, k, reporting length, DP budget and noise source, the independent check's result, the
measured leakage); every privacy statement a reader sees (the summary, the showcase page) comes
from :func:`privacy_statement` over those facts, so no page can claim a guarantee the run did
not give:

* row_seeded, value_seeded, unseeded: a record-level claim (every record, hence every
  combination of any length, matches at least k), stated as confirmed only when the
  independent check ran and passed;
* aggregate_seeded on k-anonymous aggregates: only combinations up to the reporting length;
  explicitly no claim about whole records or longer combinations;
* a failed check or measured leakage (or any synthetic combination under k): a warning, never
  a guarantee;
* differential privacy: epsilon and delta as spent, what DP does and does not promise, never a
  group size k; test noise: a NOT-private warning.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ksynth_spark.config import Config
from ksynth_spark.report.metrics import EvaluationHeadline

#: Modes whose every synthetic record matches at least k sensitive records.
RECORD_LEVEL_MODES = ("row_seeded", "value_seeded", "unseeded")


@dataclass(frozen=True)
class ReleaseFacts:
    """What one release did, as recorded by its stages.

    Attributes:
        mode: The synthesis mode.
        k: The privacy resolution.
        reporting_length: The effective reporting length.
        dp: Whether the published aggregates are differentially private.
        epsilon, delta: The DP budget actually spent (None without DP or when not recorded).
        test_noise: DP noise was seeded for a test: the release is NOT private.
        exact_record_count: DP release that publishes the exact record count (no noise on it).
        subject_id: Records were joined per subject, so one sensitive record is one person.
        checked: The independent k check ran and passed (True), ran and failed (False), or was
            not run or not recorded (None, e.g. DP).
        records_below_k, combinations_below_k: What a failed check found.
        leakage: Leaked rare combinations (None: no evaluation).
        unsupported: Synthetic combinations up to the reporting length whose sensitive count is
            below k, fabricated ones included (None: no evaluation).
        records_in: The published record count; records_out: synthetic records.
        count_preservation_by_length: Count preservation per length (empty: no evaluation).
        target_records: aggregate_seeded with a configured number of synthetic records.
        counts_scale_factor: aggregate_seeded with a configured scale factor of the counts.
    """

    mode: str
    k: int
    reporting_length: int
    dp: bool
    epsilon: float | None = None
    delta: float | None = None
    test_noise: bool = False
    exact_record_count: bool = False
    subject_id: bool = False
    checked: bool | None = None
    records_below_k: int | None = None
    combinations_below_k: int | None = None
    leakage: int | None = None
    unsupported: int | None = None
    records_in: int | None = None
    records_out: int | None = None
    count_preservation_by_length: dict[int, float] = field(default_factory=dict)
    target_records: int | None = None
    counts_scale_factor: float | None = None

    @property
    def unit(self) -> str:
        """What a sensitive record is, in the reader's words: people only when joined per subject."""
        return "people" if self.subject_id else "records"

    @classmethod
    def from_run(cls, config: Config, derived: dict) -> ReleaseFacts:
        """The facts of a release from its config and the ``derived`` record of its stages."""
        spent = (derived.get("dp") or {}) if config.dp_aggregates else {}
        seeded = config.synthesis_mode == "aggregate_seeded"
        verification = derived.get("verification") or {}
        checked, records_below, combinations_below = None, None, None
        if verification and not config.dp_aggregates:
            records_below = verification.get("records_below_k")
            combinations_below = verification.get("combinations_below_k")
            if config.synthesis_mode == "aggregate_seeded":
                checked = combinations_below == 0
            else:
                checked = bool(verification.get("passed"))
        facts = cls(
            mode=config.synthesis_mode, k=config.k,
            reporting_length=int(derived.get("effective_reporting_length") or config.reporting_length),
            dp=config.dp_aggregates, epsilon=spent.get("epsilon"), delta=spent.get("delta"),
            test_noise=config.dp_aggregates and (config.dp_test_seed is not None
                                                 or spent.get("differentially_private") is False),
            exact_record_count=config.dp_aggregates and derived.get("count_column") == "count",
            subject_id=bool(config.subject_id), checked=checked, records_below_k=records_below,
            combinations_below_k=combinations_below, records_in=derived.get("published_record_count"),
            target_records=config.aggregate_seeded_target_number_of_records if seeded else None,
            counts_scale_factor=config.aggregate_seeded_counts_scale_factor if seeded else None)
        headline = EvaluationHeadline.from_record((derived.get("evaluation") or {}).get("headline"))
        return facts.with_evaluation(headline) if headline is not None else facts

    def with_evaluation(self, headline: EvaluationHeadline) -> ReleaseFacts:
        """These facts with the figures of an evaluation of this release."""
        return dataclasses.replace(
            self, leakage=headline.leaked_rare_combinations, unsupported=headline.unsupported_combinations,
            records_in=headline.published_records, records_out=headline.synthetic_records,
            count_preservation_by_length=dict(headline.count_preservation_by_length))


@dataclass(frozen=True)
class PrivacyStatement:
    """A release's privacy statement.

    Attributes:
        headline: One sentence: the guarantee, or a warning starting with ``WARNING:``.
        details: The sentences that qualify it.
        warning: Whether the headline is a warning (no guarantee may be claimed).
    """

    headline: str
    details: tuple[str, ...]
    warning: bool = False

    def text(self) -> str:
        """The statement as one paragraph."""
        return " ".join((self.headline,) + self.details)


def privacy_statement(facts: ReleaseFacts) -> PrivacyStatement:
    """The statement that is true of a release with these facts."""
    return _dp_statement(facts) if facts.dp else _k_statement(facts)


# ---------------------------------------------------------------------------------- differential privacy
def _dp_statement(facts: ReleaseFacts) -> PrivacyStatement:
    if facts.test_noise:
        return PrivacyStatement(
            "WARNING: this release used reproducible test noise and is NOT differentially private. Do not publish it.",
            ("Its counts were perturbed with noise that anyone who knows the test seed can reproduce and remove; "
             "use it only for tests.",), warning=True)
    if facts.epsilon is None:
        return PrivacyStatement(
            "WARNING: this release was configured for differential privacy, but the privacy budget it spent was not "
            "recorded, so no guarantee can be stated. Run the aggregate stage again before publishing it.", (),
            warning=True)
    budget = f"epsilon = {facts.epsilon:g}"
    if facts.delta is not None:
        budget += f" and delta = {facts.delta:.2g}"
    details = [
        "What it promises: whatever else someone already knows, this release changes what they can learn about any "
        "one person only by a limited amount. Epsilon sets that limit (smaller is stronger); delta is the small "
        "chance that the limit does not hold.",
        "The published counts are noisy: random noise was added to every count, so a count can be higher or lower "
        "than the true one, some combinations that exist have no published count and some published combinations "
        "do not exist in the sensitive data.",
        "The published record count is exact: no noise was added to it, so it is not covered by this guarantee."
        if facts.exact_record_count else "The published record count is noisy too.",
        "The synthetic records were built only from the noisy published counts, so they carry the same guarantee; "
        "they were not checked against the sensitive data.",
        "What it does not promise: accurate counts (small counts can be mostly noise), or protection across "
        "releases: every further release about the same people spends more budget, and the epsilons add up.",
        "The evaluation figures compare the synthetic data with the sensitive data; they are not covered by this "
        "guarantee and stay with the restricted outputs.",
    ]
    return PrivacyStatement(f"This release is differentially private with {budget}.", tuple(details))


# ---------------------------------------------------------------------------------- k-synthetic data
def _k_statement(facts: ReleaseFacts) -> PrivacyStatement:
    k, length, unit = facts.k, facts.reporting_length, facts.unit
    if facts.checked is False:
        found = []
        if facts.records_below_k and facts.mode in RECORD_LEVEL_MODES:
            found.append(f"{facts.records_below_k:,} synthetic record(s)")
        if facts.combinations_below_k:
            found.append(f"{facts.combinations_below_k:,} combination(s) of up to {length} values")
        what = " and ".join(found) or "synthetic data"
        return PrivacyStatement(
            f"WARNING: the independent check found {what} matching fewer than {k} {unit} in the sensitive data. "
            "This release has no k guarantee. Do not publish it.", (), warning=True)
    unsupported = max(facts.unsupported or 0, facts.leakage or 0)
    if unsupported:
        rare = f" ({facts.leakage:,} of them also rare in the synthetic data)" if facts.leakage else ""
        return PrivacyStatement(
            f"WARNING: {unsupported:,} combination(s) of up to {length} values in the synthetic data match fewer than "
            f"{k} {unit} in the sensitive data{rare}. This release has no k guarantee. Do not publish it.", (),
            warning=True)
    counts = (f"Every published count is the true count rounded down to a multiple of {k}, and combinations of up to "
              f"{length} values seen fewer than {k} times have no published count; the published record count is "
              f"also rounded down to a multiple of {k}.")
    if facts.mode == "aggregate_seeded":
        headline = (f"Every combination of up to {length} values in the synthetic data matches at least {k} {unit} "
                    "in the sensitive data.")
        details = [f"This is not a guarantee about whole synthetic records or about combinations of more than "
                   f"{length} values: the records were assembled from the published counts, and such a record or "
                   f"combination may match fewer than {k} {unit}, or none.", counts]
        confirmed = f"every combination of up to {length} values"
    else:
        headline = (f"Every synthetic record, and every combination of values in it, matches at least {k} {unit} in "
                    "the sensitive data.")
        details = [counts]
        confirmed = "every synthetic record"
    if facts.checked:
        details.append(f"An independent check of the synthetic data against the sensitive data confirmed this for "
                       f"{confirmed} before the release was written.")
    else:
        headline = "By construction of this synthesis mode: " + headline[0].lower() + headline[1:]
        details.append("No independent check of the synthetic data against the sensitive data was recorded for this "
                       "release.")
    if not facts.subject_id:
        details.append(f"This counts sensitive records, not people: no subject id was configured, so if one person "
                       f"can have several records, {k} records may describe fewer than {k} people.")
    details.append("This protects a single release: comparing two releases of overlapping data can reveal small "
                   "groups; use differential privacy for data released repeatedly.")
    return PrivacyStatement(headline, tuple(details))
