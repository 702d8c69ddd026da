"""Tests for ksynth_spark.report.charts: file names, valid PNG/SVG bytes, bar counts, titles, log
scale on wide count axes, no single-attribute chart whose two series are equal."""

from __future__ import annotations

import io
import logging
import re
import xml.etree.ElementTree as ET

import pandas as pd
import pytest
from PIL import Image

from ksynth_spark.report.charts import columns_with_equal_counts, render_evaluation_charts

PREFIX = "adult_k10"
K = 10
SVG_NS = "{http://www.w3.org/2000/svg}"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    lengths = [1, 2, 3, 4]
    rare = pd.DataFrame(
        {
            "sen_combo_length": lengths,
            "combo_count": [112, 4_093, 51_877, 309_512],
            "rare_count": [9, 1_204, 30_998, 281_004],
        }
    )
    rare["rare_proportion"] = rare["rare_count"] / rare["combo_count"]
    leakage = pd.DataFrame(
        {
            "syn_combo_length": lengths,
            "combo_count": [101, 3_200, 20_500, 80_100],
            "leak_count": [0, 0, 0, 0],
            "leak_proportion": [0.0] * 4,
        }
    )
    by_length = pd.DataFrame(
        {
            "syn_combo_length": [4, 2, 3, 1],  # unsorted on purpose
            "mean_combo_count": [12.5, 410.0, 61.2, 3_012.0],
            "count_preservation": [0.71, 0.95, 0.87, 0.99],
            "mean_proportional_error": [0.30, 0.04, 0.12, 0.01],
        }
    )
    edges = [320, 160, 80, 40, 20, 10]  # descending, as written by the evaluator
    by_count = pd.DataFrame(
        {
            "syn_count_bucket": edges,
            "mean_combo_count": [250.0, 120.0, 60.0, 30.0, 15.0, 5.0],
            "mean_combo_length": [1.2, 1.8, 2.3, 2.9, 3.3, 3.8],
            "count_preservation": [0.99, 0.97, 0.93, 0.88, 0.80, 0.60],
            "mean_proportional_error": [0.01, 0.03, 0.07, 0.12, 0.20, 0.45],
        }
    )
    rows = [
        ("sex", "Male", 21_000, 21_790),
        ("sex", "Female", 10_500, 10_771),
        ("workclass", "Private", 22_100, 22_696),
        ("workclass", "Self-emp-not-inc", 2_500, 2_541),
        ("workclass", "Local-gov", 2_050, 2_093),
        ("workclass", "Without-pay", 0, 10),
        ("marital status", "Married", 15_000, 14_976),
        ("marital status", "Never-married", 10_700, 10_683),
        ("marital status", "Divorced", 4_400, 4_443),
    ]
    rows += [("native-country", f"Country {i:02d}", 1_000 + i, 10 * i) for i in range(60)]
    singles = pd.DataFrame(rows, columns=["column", "value", "synthetic_count", "protected_count"])
    return {
        "sensitive_rare_by_length": rare,
        "synthetic_leakage_by_length": leakage,
        "preservation_by_length": by_length,
        "preservation_by_count": by_count,
        "single_attribute_counts": singles,
    }


@pytest.fixture(scope="module")
def files(tables) -> dict[str, bytes]:
    return render_evaluation_charts(PREFIX, K, **tables)


# Stem -> number of bars, derived from the fixture tables by hand.
EXPECTED_BARS = {
    f"{PREFIX}_sensitive_rare_by_length": 2 * 4,
    f"{PREFIX}_synthetic_leakage_by_length": 4,
    f"{PREFIX}_preservation_by_length": 4,
    f"{PREFIX}_preservation_by_count": 6,
    f"{PREFIX}_proportional_error_by_count": 6,
    f"{PREFIX}_single_attribute_counts_sex": 2 * 2,
    f"{PREFIX}_single_attribute_counts_workclass": 2 * 4,
    f"{PREFIX}_single_attribute_counts_marital_status": 2 * 3,
    f"{PREFIX}_single_attribute_counts_native-country": 2 * 40,  # capped
}


def _svg(files: dict[str, bytes], stem: str) -> ET.Element:
    return ET.fromstring(files[f"{stem}.svg"])


def _bar_ids(root: ET.Element) -> list[str]:
    return [el.get("id") for el in root.iter() if (el.get("id") or "").startswith("bar-")]


def _texts(root: ET.Element) -> list[str]:
    return ["".join(el.itertext()) for el in root.iter(f"{SVG_NS}text")]


# --------------------------------------------------------------------------- tests


def test_all_expected_files_and_nothing_else(files):
    expected = {f"{stem}.{ext}" for stem in EXPECTED_BARS for ext in ("png", "svg")}
    assert set(files) == expected


@pytest.mark.parametrize("stem", sorted(EXPECTED_BARS))
def test_png_is_valid_and_sensibly_sized(files, stem):
    with Image.open(io.BytesIO(files[f"{stem}.png"])) as image:
        image.verify()
    with Image.open(io.BytesIO(files[f"{stem}.png"])) as image:
        width, height = image.size
    assert image.format == "PNG"
    assert 400 <= width <= 3000
    assert 250 <= height <= 3000


@pytest.mark.parametrize("stem", sorted(EXPECTED_BARS))
def test_svg_parses_and_has_one_id_per_bar(files, stem):
    ids = _bar_ids(_svg(files, stem))
    assert len(ids) == EXPECTED_BARS[stem]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"bar-[a-z]+-\d+", i) for i in ids)


@pytest.mark.parametrize("stem", sorted(EXPECTED_BARS))
def test_title_states_privacy_resolution_as_real_text(files, stem):
    texts = _texts(_svg(files, stem))
    assert any(f"k = {K}" in t for t in texts)


def test_two_series_charts_use_expected_series_names(files):
    rare = _bar_ids(_svg(files, f"{PREFIX}_sensitive_rare_by_length"))
    assert sorted(rare) == sorted([f"bar-{s}-{i}" for s in ("all", "rare") for i in range(4)])
    sex = _bar_ids(_svg(files, f"{PREFIX}_single_attribute_counts_sex"))
    assert sorted(sex) == sorted([f"bar-{s}-{i}" for s in ("synthetic", "protected") for i in range(2)])
    texts = _texts(_svg(files, f"{PREFIX}_sensitive_rare_by_length"))
    assert "All combinations" in texts and f"Rare combinations (count < {K})" in texts


def test_single_series_names(files):
    assert set(_bar_ids(_svg(files, f"{PREFIX}_synthetic_leakage_by_length"))) == {f"bar-leak-{i}" for i in range(4)}
    assert _bar_ids(_svg(files, f"{PREFIX}_preservation_by_count"))[0] == "bar-preservation-0"
    assert _bar_ids(_svg(files, f"{PREFIX}_proportional_error_by_count"))[0] == "bar-error-0"


def test_zero_leakage_is_labelled(files):
    texts = _texts(_svg(files, f"{PREFIX}_synthetic_leakage_by_length"))
    # four bar labels "0" (plus possibly the "0" tick on the value axis)
    assert texts.count("0") >= 4


def test_count_buckets_are_ascending_with_readable_labels(files):
    texts = _texts(_svg(files, f"{PREFIX}_preservation_by_count"))
    labels = ["[0, 10]", "(10, 20]", "(20, 40]", "(40, 80]", "(80, 160]", "(160, 320]"]
    positions = [texts.index(label) for label in labels]
    assert positions == sorted(positions)


def test_single_attribute_values_sorted_by_protected_count(files):
    texts = _texts(_svg(files, f"{PREFIX}_single_attribute_counts_workclass"))
    order = ["Private", "Self-emp-not-inc", "Local-gov", "Without-pay"]
    assert [texts.index(v) for v in order] == sorted(texts.index(v) for v in order)


def test_capped_chart_says_top_40_and_keeps_largest(files):
    texts = _texts(_svg(files, f"{PREFIX}_single_attribute_counts_native-country"))
    assert any("top 40 of 60 values" in t for t in texts)
    assert "Country 59" in texts  # largest protected count
    assert "Country 19" not in texts  # among the 20 smallest


def test_none_and_empty_tables_are_skipped(tables, caplog):
    empty = tables["preservation_by_length"].iloc[0:0]
    with caplog.at_level(logging.INFO, logger="ksynth_spark.report.charts"):
        files = render_evaluation_charts(
            "p",
            5,
            synthetic_leakage_by_length=tables["synthetic_leakage_by_length"],
            preservation_by_length=empty,
        )
    assert set(files) == {"p_synthetic_leakage_by_length.png", "p_synthetic_leakage_by_length.svg"}
    assert "k = 5" in " ".join(_texts(ET.fromstring(files["p_synthetic_leakage_by_length.svg"])))
    assert "Skipping sensitive_rare_by_length" in caplog.text
    assert "Skipping preservation_by_length" in caplog.text
    assert render_evaluation_charts("p", 5) == {}


def test_colliding_safe_column_names_are_disambiguated():
    singles = pd.DataFrame(
        [
            ("a b", "x", 10, 11),
            ("a/b", "y", 20, 21),
            ("a_b", "z", 30, 31),
        ],
        columns=["column", "value", "synthetic_count", "protected_count"],
    )
    files = render_evaluation_charts("p", 3, single_attribute_counts=singles)
    stems = {name.rsplit(".", 1)[0] for name in files}
    assert len(stems) == 3
    assert all(re.fullmatch(r"p_single_attribute_counts_[A-Za-z0-9_-]+", s) for s in stems)
    assert "p_single_attribute_counts_a_b" in stems


def test_missing_column_is_an_error(tables):
    bad = tables["preservation_by_count"].drop(columns=["count_preservation"])
    with pytest.raises(ValueError, match="count_preservation"):
        render_evaluation_charts("p", 10, preservation_by_count=bad)


def test_output_is_deterministic(tables):
    one = render_evaluation_charts("p", 10, preservation_by_count=tables["preservation_by_count"])
    two = render_evaluation_charts("p", 10, preservation_by_count=tables["preservation_by_count"])
    assert one == two


def test_single_attribute_chart_only_where_the_two_counts_differ():
    singles = pd.DataFrame(
        [
            ("same", "x", 10, 10),
            ("same", "y", 20, 20),
            ("differs", "x", 10, 10),
            ("differs", "y", 25, 20),
        ],
        columns=["column", "value", "synthetic_count", "protected_count"],
    )
    assert columns_with_equal_counts(singles) == ["same"]
    files = render_evaluation_charts("p", 10, single_attribute_counts=singles)
    assert set(files) == {"p_single_attribute_counts_differs.png", "p_single_attribute_counts_differs.svg"}
    equal = singles[singles["column"] == "same"]
    assert render_evaluation_charts("p", 10, single_attribute_counts=equal) == {}


def test_count_axis_uses_log_scale_only_over_two_orders_of_magnitude(files, tables):
    rows = [("country", "United-States", 43_830, 43_830)]
    rows += [("country", f"C{i}", 10 * i, 10 * i + 1) for i in range(1, 40)]
    singles = pd.DataFrame(rows, columns=["column", "value", "synthetic_count", "protected_count"])
    wide = render_evaluation_charts("p", 10, single_attribute_counts=singles)
    root = ET.fromstring(wide["p_single_attribute_counts_country.svg"])
    assert any("(log scale)" in t for t in _texts(root)) and len(_bar_ids(root)) == 80
    # sex: 10,500 .. 21,790: linear
    assert not any("log scale" in t for t in _texts(_svg(files, f"{PREFIX}_single_attribute_counts_sex")))
    assert any("(log scale)" in t for t in _texts(_svg(files, f"{PREFIX}_sensitive_rare_by_length")))
    # all-zero leakage stays linear, with its zero labels
    assert not any("log scale" in t for t in _texts(_svg(files, f"{PREFIX}_synthetic_leakage_by_length")))


def test_titles_use_the_metric_names_and_shares_are_percentages(files):
    from ksynth_spark.report.metrics import COUNT_PRESERVATION, LEAKED, MEAN_PROPORTIONAL_ERROR

    titles = {
        f"{PREFIX}_synthetic_leakage_by_length": LEAKED.name,
        f"{PREFIX}_preservation_by_length": COUNT_PRESERVATION.name,
        f"{PREFIX}_preservation_by_count": COUNT_PRESERVATION.name,
        f"{PREFIX}_proportional_error_by_count": MEAN_PROPORTIONAL_ERROR.name,
    }
    for stem, name in titles.items():
        assert any(t.startswith(f"{name} by ") for t in _texts(_svg(files, stem))), stem
    texts = _texts(_svg(files, f"{PREFIX}_preservation_by_length"))
    assert "99 %" in texts and "71 %" in texts and "100 %" in texts  # bar labels and the axis top
