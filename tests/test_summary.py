"""Rendering of the evaluation (pure, no Spark): the small outputs keyed by output key, one name per
metric across stats TSVs, summary, page metrics and chart captions, the summary's sections, and
the page's evaluation view from a stored record."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from ksynth_spark.config import config_from_dict
from ksynth_spark.evaluate import ComparisonMetrics, EvaluationResult, LengthComparison
from ksynth_spark.outputs import output
from ksynth_spark.report.evaluation import TABLE_OUTPUTS, page_metrics, render_evaluation, showcase_evaluation
from ksynth_spark.report.metrics import ALL_METRICS, EXPANSION_RATIO, MEAN_PROPORTIONAL_ERROR, EvaluationHeadline
from ksynth_spark.report.privacy import ReleaseFacts, privacy_statement

K = 10


def _result(mode="row_seeded", singles_equal=True) -> EvaluationResult:
    lengths = [1, 2]
    leakage = pd.DataFrame({"syn_combo_length": lengths, "combo_count": [8, 20], "leak_count": [0, 0],
                            "leak_proportion": [0.0, 0.0]})
    by_length = pd.DataFrame({"syn_combo_length": lengths, "mean_combo_count": [120.0, 30.0],
                              "count_preservation": [0.95, 0.4], "mean_proportional_error": [0.05, 0.7]})
    by_count = pd.DataFrame({"syn_count_bucket": [160, 80, 40, 20, 10], "mean_combo_count": [150.0, 60, 30, 15, 3],
                             "mean_combo_length": [1.0, 1.2, 1.6, 2.0, 2.0],
                             "count_preservation": [0.99, 0.9, 0.7, 0.5, 0.1],
                             "mean_proportional_error": [0.01, 0.1, 0.3, 0.5, 0.9]})
    singles = pd.DataFrame({"column": ["a", "a", "b", "b"], "value": ["x", "y", "u", "v"],
                            "synthetic_count": [150, 40, 100, 90 if singles_equal else 95],
                            "protected_count": [150, 40, 100, 90]})
    headline = EvaluationHeadline(
        k=K, reporting_length=2, synthesis_mode=mode, published_records=190, synthetic_records=260,
        expansion_ratio=260 / 190, leaked_rare_combinations=0, unsupported_combinations=0, synthetic_combinations=28,
        synthetic_rare_combinations=6, count_preservation=(8 * 0.95 + 20 * 0.4) / 28,
        mean_proportional_error=(8 * 0.05 + 20 * 0.7) / 28, not_in_synthetic_pct=62.5, fabricated_synthetic_pct=0.0,
        withheld_from_published_pct=55.0, fabricated_published_pct=0.0, leaked_by_length={1: 0, 2: 0},
        count_preservation_by_length={1: 0.95, 2: 0.4}, mean_proportional_error_by_length={1: 0.05, 2: 0.7})
    versus_y = ComparisonMetrics(62.5, 0.0, 12.0, 40.0,
                                 {1: LengthComparison(100.0, 2.0), 2: LengthComparison(25.0, 14.0)})
    versus_p = ComparisonMetrics(55.0, 0.0, 4.5, 40.0,
                                 {1: LengthComparison(100.0, 4.0), 2: LengthComparison(25.0, 4.6)})
    return EvaluationResult(synthetic_aggregates=None, leakage_by_length=leakage, preservation_by_length=by_length,
                            preservation_by_count=by_count, synthetic_vs_sensitive=versus_y,
                            published_vs_sensitive=versus_p, synthetic_rare_combos=None,
                            single_attribute_counts=singles, headline=headline)


def _facts(dp=False, **keys):
    config = config_from_dict({"sensitive_microdata_path": "in.csv", "seed": 1, "reporting_resolution": K,
                               "reporting_length": 2, **({"dp_aggregates": True, "synthesis_mode": "aggregate_seeded"}
                                                         if dp else {}), **keys})
    derived = {"effective_reporting_length": 2, "published_record_count": 190,
               "verification": {"passed": True, "records_below_k": 0, "combinations_below_k": 0}}
    if dp:
        derived["dp"] = {"epsilon": 4.0, "delta": 2e-6, "differentially_private": True}
    return ReleaseFacts.from_run(config, derived)


@pytest.fixture(scope="module")
def report():
    return render_evaluation(_result(), _facts(), prefix="P", sensitive_rare_by_length=None)


def test_every_small_output_is_keyed_by_its_output_key(report):
    assert set(report.texts) == set(TABLE_OUTPUTS) | {"stats_synthetic_data", "stats_aggregate_counts", "summary"}
    for key in report.texts:
        output(key)  # every key is in the outputs table
    assert report.texts["synthetic_leakage_by_length"].splitlines()[0] == \
        "syn_combo_length\tcombo_count\tleak_count\tleak_proportion"
    assert report.texts["stats_synthetic_data"] == (
        "Metric\tValue\n"
        "Combinations not in the synthetic data\t62.50 %\n"
        "Synthetic combinations not in the sensitive data\t0.00 %\n"
        "1-counts mean value +/- mean error\t100.00 +/- 2.00\n"
        "2-counts mean value +/- mean error\t25.00 +/- 14.00\n"
        "Mean value +/- Mean error\t40.00 +/- 12.00\n"
        "Expansion ratio\t1.37\n"
        "Mean proportional error\t51.43 %\n")
    assert report.texts["stats_aggregate_counts"].splitlines()[1:3] == [
        "Combinations withheld from the published aggregates\t55.00 %",
        "Published combinations not in the sensitive data\t0.00 %"]


def test_one_name_per_metric_across_summary_stats_page_and_charts(report):
    summary = report.texts["summary"]
    stats = report.texts["stats_synthetic_data"] + report.texts["stats_aggregate_counts"]
    metrics = page_metrics(_result().headline)
    for metric in ALL_METRICS:
        assert f"| {metric.name} | " in summary, metric.name
        assert metric.name in metrics
    for name in [line.split("\t")[0] for line in stats.splitlines()]:
        if "mean value" not in name.lower() and name != "Metric":
            assert name in metrics, name
    assert metrics[EXPANSION_RATIO.name] == "1.37" and metrics[MEAN_PROPORTIONAL_ERROR.name] == "51.43 %"
    assert metrics["Count preservation, length 2"] == "40.00 %"
    # the overall mean proportional error is the count-weighted mean of the per-length rows, as the summary says
    assert "| all lengths | 0 | 55.71 % | 51.43 % |" in summary and "| 2 | 0 | 40.00 % | 70.00 % |" in summary
    captions = {c.caption for c in report.chart_files}
    assert {"Leaked rare combinations by length", "Count preservation by length",
            "Count preservation by synthetic count", "Mean proportional error by synthetic count"} <= captions
    assert not re.search(r"expansion ratio [0-9.]+ %|Suppressed|Fabricated combinations %", summary + stats)


def test_summary_sections_and_plain_words(report):
    summary = report.texts["summary"]
    for heading in ("## Privacy", "## How to read this release", "### What do the metrics mean?", "## Evaluation",
                    "## Charts"):
        assert heading in summary
    assert f"**{privacy_statement(_facts().with_evaluation(_result().headline)).headline}**" in summary
    assert "- Published record count (the number of sensitive records rounded down to a multiple of 10): 190" in summary
    assert "- Synthetic records: 260" in summary and "- Expansion ratio: 1.37" in summary
    assert "§" not in summary and "spec" not in summary.lower()
    # equal single-attribute counts: no chart, and the summary says why
    assert "no single-attribute chart is drawn" in summary and "single_attribute_counts_" not in summary
    assert not [name for name in report.charts if "single_attribute_counts_" in name]


def test_single_attribute_chart_where_the_counts_differ():
    report = render_evaluation(_result(singles_equal=False), _facts(), prefix="P")
    assert {c.name for c in report.chart_files if "single_attribute" in c.name} == {
        "P_single_attribute_counts_b.png", "P_single_attribute_counts_b.svg"}
    assert "1 column(s)" in report.texts["summary"]
    assert "Synthetic and published counts: b: P_single_attribute_counts_b.svg" in report.texts["summary"]


def test_dp_summary_lists_the_restricted_charts_and_no_k_guarantee():
    report = render_evaluation(_result(mode="aggregate_seeded"), _facts(dp=True), prefix="P")
    assert {c.area for c in report.chart_files} == {"sensitive"}
    summary = report.texts["summary"]
    assert "This release is differentially private with epsilon = 4 and delta = 2e-06." in summary
    assert "keep them restricted" in summary and "## Charts" in summary
    assert "multiple" not in summary
    assert showcase_evaluation(report.record, dp=True, read=lambda name: b"<svg/>") is None


def test_showcase_evaluation_from_the_stored_record(report):
    files = {c.name: f"<svg>{c.caption}</svg>".encode() for c in report.chart_files}
    read_names = []

    def read(name):
        read_names.append(name)
        return files.get(name)

    view = showcase_evaluation(report.record, dp=False, read=read)
    assert view["metrics"] == page_metrics(_result().headline)
    assert set(view["charts"]) == {c.caption for c in report.chart_files if c.name.endswith(".svg")}
    assert view["charts"]["Count preservation by length"] == "<svg>Count preservation by length</svg>"
    assert all(name.endswith(".svg") for name in read_names)
    assert showcase_evaluation(None, dp=False, read=read) is None
    old = {"headline": {"leakage_total": 0}, "public_charts": ["P_x.svg"]}  # an earlier version's record
    assert showcase_evaluation(old, dp=False, read=read) is None
