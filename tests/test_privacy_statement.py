"""The privacy statement and the "How to read this release" texts, per mode, checked against the
config they are built from (pure: ReleaseFacts from a config and a ``derived`` record, no Spark)."""

from __future__ import annotations

import re

import pytest

from ksynth_spark.config import config_from_dict
from ksynth_spark.report.explain import METRICS, Answer, how_to_read
from ksynth_spark.report.metrics import ALL_METRICS, EvaluationHeadline
from ksynth_spark.report.privacy import ReleaseFacts, privacy_statement

PASSED = {"passed": True, "records_below_k": 0, "combinations_below_k": 0}
SPEC_REFERENCE = re.compile(r"§|\bspec\b|ALGORITHM", re.IGNORECASE)


def _config(**keys):
    return config_from_dict({"sensitive_microdata_path": "in.csv", "seed": 1, **keys})


def _derived(**extra):
    return {"effective_reporting_length": 3, "published_record_count": 480, **extra}


def _headline(k=10, length=3, mode="row_seeded", leaked=0, unsupported=0, published=480, synthetic=700):
    return EvaluationHeadline(
        k=k, reporting_length=length, synthesis_mode=mode, published_records=published, synthetic_records=synthetic,
        expansion_ratio=synthetic / published, leaked_rare_combinations=leaked, unsupported_combinations=unsupported,
        synthetic_combinations=100, synthetic_rare_combinations=30, count_preservation=0.5,
        mean_proportional_error=0.6, not_in_synthetic_pct=70.0, fabricated_synthetic_pct=0.0,
        withheld_from_published_pct=60.0, fabricated_published_pct=0.0,
        leaked_by_length={n: 0 for n in range(1, length + 1)},
        count_preservation_by_length={n: 1.0 / n for n in range(1, length + 1)},
        mean_proportional_error_by_length={n: 1 - 1.0 / n for n in range(1, length + 1)})


def _dp_derived(evaluation=None, **spent):
    extra = {"evaluation": evaluation} if evaluation else {}
    return _derived(count_column="protected_count", dp={"epsilon": 4.0, "delta": 1.8944e-06,
                                                       "differentially_private": True, **spent}, **extra)


def _all_text(facts: ReleaseFacts) -> str:
    statement = privacy_statement(facts)
    return " ".join([statement.text()] + [f"{a.question} {a.answer}" for a in how_to_read(facts)])


# ---------------------------------------------------------------------------------- k-synthetic, record level
@pytest.mark.parametrize("mode", ["row_seeded", "value_seeded", "unseeded"])
@pytest.mark.parametrize("k", [5, 10])
def test_record_level_modes_claim_every_record_and_combination(mode, k):
    config = _config(synthesis_mode=mode, reporting_resolution=k, reporting_length=3)
    facts = ReleaseFacts.from_run(config, _derived(verification=PASSED, evaluation={"headline": _headline(
        k=k, mode=mode).to_record()}))
    statement = privacy_statement(facts)
    assert not statement.warning
    assert statement.headline == (f"Every synthetic record, and every combination of values in it, matches at least "
                                  f"{k} records in the sensitive data.")
    text = statement.text()
    assert f"rounded down to a multiple of {k}" in text and "up to 3 values" in text
    assert "confirmed this for every synthetic record" in text
    assert "no subject id was configured" in text  # records, not people
    assert "differential" in text.lower() and "epsilon" not in text  # only as advice for repeated releases
    assert not SPEC_REFERENCE.search(_all_text(facts))


def test_subject_id_makes_the_unit_people():
    config = _config(synthesis_mode="row_seeded", reporting_resolution=10, subject_id="case_id")
    statement = privacy_statement(ReleaseFacts.from_run(config, _derived(verification=PASSED)))
    assert "matches at least 10 people in the sensitive data" in statement.headline
    assert "subject id" not in statement.text()


def test_unchecked_release_says_so_instead_of_confirming():
    facts = ReleaseFacts.from_run(_config(synthesis_mode="row_seeded"), _derived())
    statement = privacy_statement(facts)
    assert statement.headline.startswith("By construction of this synthesis mode: every synthetic record")
    assert "No independent check" in statement.text() and "confirmed" not in statement.text()


# ---------------------------------------------------------------------------------- k-synthetic, aggregate_seeded
def test_aggregate_seeded_claims_only_combinations_up_to_the_reporting_length():
    config = _config(synthesis_mode="aggregate_seeded", reporting_resolution=10, reporting_length=4)
    facts = ReleaseFacts.from_run(config, _derived(
        effective_reporting_length=4,
        verification={"passed": False, "records_below_k": 120, "combinations_below_k": 0}))
    assert facts.checked is True  # records below k are expected in this mode; combinations are checked
    statement = privacy_statement(facts)
    assert not statement.warning
    assert statement.headline == ("Every combination of up to 4 values in the synthetic data matches at least 10 "
                                  "records in the sensitive data.")
    text = statement.text()
    assert "Every synthetic record" not in text and "every synthetic record" not in text.replace(
        "not a guarantee about whole synthetic records", "")
    assert "not a guarantee about whole synthetic records or about combinations of more than 4 values" in text
    assert "confirmed this for every combination of up to 4 values" in text
    answers = {a.question: a.answer for a in how_to_read(facts)}
    assert "carry no guarantee" in answers["What about combinations of more than 4 values?"]


# ---------------------------------------------------------------------------------- warnings
@pytest.mark.parametrize("mode", ["row_seeded", "value_seeded", "unseeded", "aggregate_seeded"])
def test_leakage_is_a_warning_never_a_guarantee(mode):
    config = _config(synthesis_mode=mode, reporting_resolution=10)
    headline = _headline(mode=mode, leaked=3, unsupported=5)
    facts = ReleaseFacts.from_run(config, _derived(verification=PASSED, evaluation={"headline": headline.to_record()}))
    statement = privacy_statement(facts)
    assert statement.warning and statement.details == ()
    assert statement.headline.startswith("WARNING: 5 combination(s) of up to 3 values in the synthetic data match "
                                         "fewer than 10 records")
    assert "3 of them also rare" in statement.headline and "Do not publish it." in statement.headline
    assert "matches at least" not in statement.text()


def test_failed_check_is_a_warning():
    facts = ReleaseFacts.from_run(_config(synthesis_mode="value_seeded", reporting_resolution=7), _derived(
        verification={"passed": False, "records_below_k": 2, "combinations_below_k": 4}))
    statement = privacy_statement(facts)
    assert statement.warning and statement.headline == (
        "WARNING: the independent check found 2 synthetic record(s) and 4 combination(s) of up to 3 values matching "
        "fewer than 7 records in the sensitive data. This release has no k guarantee. Do not publish it.")


# ---------------------------------------------------------------------------------- differential privacy
def _dp_config(**keys):
    return _config(dp_aggregates=True, synthesis_mode="aggregate_seeded", reporting_length=3, **keys)


def test_dp_statement_states_the_budget_and_what_dp_promises():
    facts = ReleaseFacts.from_run(_dp_config(noise_epsilon=2.5), _dp_derived(epsilon=2.5, delta=1.8944e-06))
    statement = privacy_statement(facts)
    assert not statement.warning
    assert statement.headline == "This release is differentially private with epsilon = 2.5 and delta = 1.9e-06."
    text = statement.text()
    assert "noisy" in text and "What it promises" in text and "What it does not promise" in text
    assert "epsilons add up" in text and "The published record count is noisy too." in text
    assert "not checked against the sensitive data" in text


def test_dp_texts_never_speak_of_k_or_multiples():
    headline = _headline(mode="aggregate_seeded", leaked=40, unsupported=400)  # rare combinations exist under DP
    facts = ReleaseFacts.from_run(_dp_config(reporting_resolution=10),
                                  _dp_derived(evaluation={"headline": headline.to_record()}))
    assert facts.leakage == 40 and facts.records_out == 700
    text = _all_text(facts)
    assert "Why are there more synthetic records than sensitive records?" in text
    assert "multiple" not in text and not re.search(r"\bk\b", text) and "10" not in text
    assert not privacy_statement(facts).warning  # leakage is no DP warning: DP makes no k claim
    assert "%" not in text  # no restricted evaluation figure (count preservation) in DP texts
    assert not SPEC_REFERENCE.search(text)


def test_dp_exact_record_count_is_stated():
    facts = ReleaseFacts.from_run(_dp_config(number_of_records_epsilon_proportion=None),
                                  _dp_derived() | {"count_column": "count"})
    assert facts.exact_record_count
    assert "The published record count is exact: no noise was added to it" in privacy_statement(facts).text()


def test_dp_test_noise_is_not_private():
    facts = ReleaseFacts.from_run(_dp_config(dp_test_seed=1), _dp_derived(differentially_private=False))
    statement = privacy_statement(facts)
    assert statement.warning and statement.headline.startswith("WARNING: this release used reproducible test noise")
    assert "NOT differentially private" in statement.headline and "is differentially private" not in statement.text()


def test_dp_without_a_recorded_budget_claims_nothing():
    statement = privacy_statement(ReleaseFacts.from_run(_dp_config(), _derived()))
    assert statement.warning and "was not recorded" in statement.headline


# ---------------------------------------------------------------------------------- how to read
def test_how_to_read_row_seeded_explains_partial_records_expansion_and_what_to_quote():
    facts = ReleaseFacts.from_run(_config(synthesis_mode="row_seeded", reporting_resolution=10), _derived(
        verification=PASSED, evaluation={"headline": _headline(published=480, synthetic=700).to_record()}))
    answers = how_to_read(facts)
    assert all(isinstance(a, Answer) for a in answers)
    by_question = {a.question: a.answer for a in answers}
    quote = by_question["Which number should I quote?"]
    assert "Quote the published count" in quote and "rounded down to a multiple of 10" in quote
    assert "lower figure for most combinations" in quote
    assert "count preservation by number of values is: 1 value 100.00 %, 2 values 50.00 %, 3 values 33.33 %" in quote
    assert "left out" in by_question["Why are many synthetic records incomplete?"]
    more = by_question["Why are there more synthetic records than sensitive records?"]
    assert "700 synthetic records for a published record count of 480 (expansion ratio 1.46)" in more
    assert "fewer than 10" in by_question["Why does a combination have no published count?"]


def test_how_to_read_has_no_record_count_answer_without_figures():
    facts = ReleaseFacts.from_run(_config(synthesis_mode="unseeded"), {})
    assert not [a for a in how_to_read(facts) if "synthetic records than" in a.question]


def test_metric_meanings_are_the_metric_definitions():
    assert [m.name for m in METRICS] == [m.name for m in ALL_METRICS]
    assert len({m.name for m in METRICS}) == len(METRICS)
    for name, meaning in METRICS:
        assert meaning.endswith(".") and not SPEC_REFERENCE.search(meaning), name


def test_headline_record_round_trips_and_rejects_other_versions():
    headline = _headline()
    record = headline.to_record()
    assert EvaluationHeadline.from_record(record) == headline
    assert EvaluationHeadline.from_record({**record, "version": 1}) is None
    assert EvaluationHeadline.from_record({"leakage_total": 0}) is None
