"""Unit tests of the showcase page renderer (no browser)."""

from __future__ import annotations

import io
import itertools
import re

import numpy as np
import pandas as pd
import pytest

from ksynth_spark.showcase import (
    ALL_ATTRIBUTES_PAGE_NAME,
    DEFAULT_PAGE_NAME,
    extract_showcase_data,
    parse_selections,
    render_showcase_html,
)

# --------------------------------------------------------------------------- #
# Test data
# --------------------------------------------------------------------------- #

#: Column cardinalities shaped like the Adult census table (48,842 x 13).
ADULT_LIKE_CARDINALITIES = {
    "age": 8, "workclass": 9, "education": 16, "marital_status": 7, "occupation": 15,
    "relationship": 6, "race": 5, "sex": 2, "hours_per_week": 10, "native_country": 42,
    "income": 2, "capital_gain": 10, "capital_loss": 10,
}


def generate_adult_sized_release(
    n_records: int = 48_842, k: int = 10, reporting_length: int = 3, seed: int = 7
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generate an Adult-sized synthetic table and matching reportable aggregates.

    Values follow skewed (Zipf-like) distributions with some correlated
    columns; about 2% of the cells are empty. The reportable table holds every
    combination of up to ``reporting_length`` attributes with count >= k
    (about 138,000 rows), counts rounded down to multiples of k.

    Returns:
        ``(synthetic, reportable)`` DataFrames in the release-file formats.
    """
    rng = np.random.default_rng(seed)
    names = list(ADULT_LIKE_CARDINALITIES)
    codes = {}
    for name, card in ADULT_LIKE_CARDINALITIES.items():
        weights = 1.0 / np.arange(1, card + 1) ** 1.1
        codes[name] = rng.choice(card, size=n_records, p=weights / weights.sum())
    codes["relationship"] = np.where(
        rng.random(n_records) < 0.6, codes["marital_status"] % 6, codes["relationship"]
    )
    codes["income"] = np.where(
        rng.random(n_records) < 0.5, (codes["education"] < 4).astype(int), codes["income"]
    )
    synthetic = pd.DataFrame({c: np.char.add(f"{c}_", codes[c].astype(str)) for c in names})
    synthetic = synthetic.mask(rng.random(synthetic.shape) < 0.02, "")

    rows = [("record_count", k * (n_records // k))]
    for size in range(1, reporting_length + 1):
        for combo in itertools.combinations(names, size):
            key = np.zeros(n_records, dtype=np.int64)
            for col in combo:
                key = key * ADULT_LIKE_CARDINALITIES[col] + codes[col]
            uniques, counts = np.unique(key, return_counts=True)
            keep = counts >= k
            for unique, count in zip(uniques[keep].tolist(), counts[keep].tolist()):
                parts = []
                for col in reversed(combo):
                    parts.append(f"{col}:{col}_{unique % ADULT_LIKE_CARDINALITIES[col]}")
                    unique //= ADULT_LIKE_CARDINALITIES[col]
                rows.append((";".join(reversed(parts)), k * (count // k)))
    return synthetic, pd.DataFrame(rows, columns=["selections", "protected_count"])


def small_release() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A tiny synthetic table with empty cells and its reportable aggregates."""
    synthetic = pd.DataFrame(
        {
            "age": ["30-39", "30-39", "40-49", "", "40-49", "30-39"],
            "sex": ["Male", "Female", "Male", "Male", "", "Male"],
            "lang_en": ["1", "1", "", "1", "", "1"],
            "lang_fr": ["", "1", "1", "", "", ""],
        }
    )
    reportable = pd.DataFrame(
        {
            "selections": [
                "record_count", "age:30-39", "sex:Male", "age:40-49", "lang_en:1",
                "sex:Male;age:30-39",          # order inside the string is irrelevant
                "age:30-39;lang_en:1",
                "age:30-39;sex:Male;lang_en:1",
                "age:50-59",                   # value absent from the synthetic data
            ],
            "protected_count": [10, 30, 30, 10, 20, 20, 30, 20, 10],
        }
    )
    return synthetic, reportable


def render_small(**kwargs) -> str:
    synthetic, reportable = small_release()
    options = {"title": "Small", "k": 10, "reporting_length": 3}
    options.update(kwargs)
    return render_showcase_html(synthetic, reportable, **options)


def decode_synthetic(data: dict) -> pd.DataFrame:
    """Rebuild the synthetic table from the embedded column-major codes."""
    return pd.DataFrame(
        {
            col["name"]: [col["values"][c - 1] if c else "" for c in col["codes"]]
            for col in data["columns"]
        }
    )


def decode_reportable(data: dict) -> dict[frozenset, int]:
    """Rebuild ``{attribute set: count}`` from the embedded code tuples."""
    attributes = [(col["name"], value) for col in data["columns"] for value in col["values"]]
    combos = {}
    for block in data["reportable"]:
        size, flat = block["size"], block["data"]
        assert len(flat) % (size + 1) == 0
        for i in range(0, len(flat), size + 1):
            ids = flat[i : i + size]
            assert ids == sorted(ids)
            combo = frozenset(attributes[a] for a in ids)
            assert len(combo) == size and combo not in combos
            combos[combo] = flat[i + size]
    return combos


def reportable_as_sets(reportable: pd.DataFrame) -> dict[frozenset, int]:
    """Parse a reportable table independently of the module under test."""
    out = {}
    for selections, count in zip(reportable["selections"], reportable["protected_count"]):
        if selections != "record_count":
            out[frozenset(tuple(a.split(":")) for a in selections.split(";"))] = int(count)
    return out


# --------------------------------------------------------------------------- #
# Round trip and content
# --------------------------------------------------------------------------- #

def test_embedded_data_round_trips():
    synthetic, reportable = small_release()
    html = render_small(dataset_facts={"Synthetic records": 6, "Synthesis mode": "row_seeded"})
    data = extract_showcase_data(html)

    pd.testing.assert_frame_equal(decode_synthetic(data), synthetic)
    assert data["record_count"] == 6
    assert data["protected_record_count"] == 10
    assert data["k"] == 10 and data["reporting_length"] == 3
    assert data["facts"] == [["Synthetic records", 6], ["Synthesis mode", "row_seeded"]]
    expected = {c: n for c, n in reportable_as_sets(reportable).items() if ("age", "50-59") not in c}
    assert decode_reportable(data) == expected


def test_only_reportable_combinations_are_embedded():
    synthetic, reportable = generate_adult_sized_release(n_records=3_000, seed=3)
    html = render_showcase_html(synthetic, reportable, title="t", k=10, reporting_length=3)
    embedded = decode_reportable(extract_showcase_data(html))
    source = reportable_as_sets(reportable)
    assert embedded, "expected some combinations"
    for combo, count in embedded.items():
        assert source.get(combo) == count


def test_selections_are_parsed_as_sets():
    assert parse_selections("b:2;a:1") == parse_selections("a:1;b:2") == {("a", "1"), ("b", "2")}
    for bad in ["", "a", "a:1;b", "a:1:2", ":1", "a:", "a:1;a:1"]:
        with pytest.raises(ValueError):
            parse_selections(bad)


def test_conflicting_duplicate_combinations_are_rejected():
    synthetic, _ = small_release()
    reportable = pd.DataFrame(
        {"selections": ["age:30-39;sex:Male", "sex:Male;age:30-39"], "protected_count": [20, 30]}
    )
    with pytest.raises(ValueError, match="reported twice"):
        render_showcase_html(synthetic, reportable, title="t", k=10, reporting_length=3)


def test_string_counts_and_missing_cells_are_accepted():
    synthetic, reportable = small_release()
    synthetic = synthetic.replace("", np.nan)
    reportable = reportable.astype(str)
    data = extract_showcase_data(
        render_showcase_html(synthetic, reportable, title="t", k=10, reporting_length=3)
    )
    pd.testing.assert_frame_equal(decode_synthetic(data), small_release()[0])
    assert data["protected_record_count"] == 10
    # Default facts when none are given.
    assert data["facts"] == [["Synthetic records", 6], ["Protected record count", 10]]


def test_invalid_parameters_are_rejected():
    with pytest.raises(ValueError, match="k must"):
        render_small(k=0)
    with pytest.raises(ValueError, match="reporting_length must"):
        render_small(reporting_length=0)
    synthetic, _ = small_release()
    with pytest.raises(ValueError, match="protected_count"):
        render_showcase_html(
            synthetic, pd.DataFrame({"selections": ["record_count"]}),
            title="t", k=10, reporting_length=3,
        )
    with pytest.raises(ValueError, match="invalid protected_count"):
        render_showcase_html(
            synthetic, pd.DataFrame({"selections": ["age:30-39"], "protected_count": ["x"]}),
            title="t", k=10, reporting_length=3,
        )


# --------------------------------------------------------------------------- #
# Pages and visuals
# --------------------------------------------------------------------------- #

def test_default_single_page_lists_all_columns():
    data = extract_showcase_data(render_small())
    assert data["pages"] == [
        {"name": ALL_ATTRIBUTES_PAGE_NAME,
         "items": [{"type": "column", "column": i} for i in range(4)]}
    ]


def test_report_pages_and_visuals_are_honoured():
    data = extract_showcase_data(
        render_small(
            report_pages={"People": ["sex", "age"]},
            report_visuals={"Languages": ["lang_en", "lang_fr"]},
        )
    )
    assert data["pages"] == [
        {"name": "People", "items": [{"type": "column", "column": 1},
                                     {"type": "column", "column": 0}]},
        {"name": DEFAULT_PAGE_NAME, "items": [
            {"type": "visual", "name": "Languages", "columns": [2, 3], "labels": ["en", "fr"]}
        ]},
    ]


@pytest.mark.parametrize(
    "option",
    [
        {"report_pages": {"People": ["age", "gender"]}},
        {"report_visuals": {"Languages": ["lang_en", "gender"]}},
    ],
)
def test_unknown_columns_in_pages_or_visuals_raise(option):
    with pytest.raises(ValueError) as info:
        render_small(**option)
    message = str(info.value)
    assert "'gender'" in message
    for known in ["age", "sex", "lang_en", "lang_fr"]:
        assert known in message


def test_columns_in_two_pages_or_visuals_raise():
    with pytest.raises(ValueError, match="more than one page"):
        render_small(report_pages={"A": ["age"], "B": ["age"]})
    with pytest.raises(ValueError, match="more than one visual"):
        render_small(report_visuals={"A": ["lang_en"], "B": ["lang_en", "lang_fr"]})
    with pytest.raises(ValueError, match="must be a list"):
        render_small(report_pages={"A": "age"})


# --------------------------------------------------------------------------- #
# Size, escaping, offline safety
# --------------------------------------------------------------------------- #

def test_adult_sized_page_is_under_5_mb():
    synthetic, reportable = generate_adult_sized_release()
    assert synthetic.shape == (48_842, 13)
    assert len(reportable) > 110_000
    html = render_showcase_html(synthetic, reportable, title="Adult", k=10, reporting_length=3)
    size = len(html.encode("utf-8"))
    assert size < 5 * 1024 * 1024, f"page is {size / 1e6:.2f} MB"
    data = extract_showcase_data(html)
    assert len(decode_reportable(data)) == len(reportable) - 1


def test_script_closing_tags_in_values_are_escaped():
    nasty = "</script><script>alert(1)</script><!--"
    synthetic = pd.DataFrame({"col": [nasty, nasty, "ok"], "b": ["&amp;", "\u2028", "x"]})
    reportable = pd.DataFrame({"selections": [f"col:{nasty}"], "protected_count": [10]})
    title = "Title </title><script>alert(2)</script> /*__DATA__*/ __TITLE__"
    html = render_showcase_html(synthetic, reportable, title=title, k=1, reporting_length=2)

    # Only the page's own two script elements are closed.
    assert len(re.findall(r"</script", html, re.IGNORECASE)) == 2
    assert "<script>alert" not in html
    assert "<!--" not in html
    assert "<title>Title &lt;/title&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in html
    data = extract_showcase_data(html)
    assert data["title"] == title
    assert data["columns"][0]["values"] == [nasty, "ok"]
    assert data["columns"][1]["values"] == sorted(["&amp;", "\u2028", "x"])
    assert decode_reportable(data) == {frozenset({("col", nasty)}): 10}


def test_all_placeholders_are_filled():
    html = render_small()
    for placeholder in ["/*__DATA__*/", "/*__SCRIPT__*/", "/*__STYLE__*/", "__TITLE__"]:
        assert placeholder not in html


def _matplotlib_svg() -> str:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [1, 3, 2])
    ax.set_title("Error")
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    return buffer.getvalue()


# An attribute or CSS reference to a network (or protocol-relative) URL; quotes
# may be backslash-escaped because SVG texts are embedded in the JSON data.
NETWORK_REFERENCE = re.compile(
    r"""(?:\b(?:src|href|xlink:href|action|poster|data|srcset)\s*=\s*\\?["']?\s*(?:https?:)?//)"""
    r"""|(?:url\(\s*\\?["']?\s*(?:https?:)?//)|(?:@import)""",
    re.IGNORECASE,
)


def test_network_reference_pattern():
    for bad in ['<img src="https://x/y.png">', '<script src=//cdn/x.js>', '<a href=\\"http://x\\">',
                "background: url('http://x/y')", "@import 'x.css';"]:
        assert NETWORK_REFERENCE.search(bad), bad
    assert not NETWORK_REFERENCE.search('<use xlink:href="#m1"/> <a href="#top">')


def test_page_has_no_network_references():
    svg = _matplotlib_svg()
    html = render_small(evaluation={"metrics": {"MAE": "1.5"}, "charts": {"Error": svg, "Again": svg}})
    assert not NETWORK_REFERENCE.search(html)
    # The only http(s) strings left are XML namespace names (never fetched).
    without_namespaces = re.sub(r'xmlns(?::\w+)?=\\?"https?://[^"\\]*\\?"', "", html)
    assert "http://" not in without_namespaces
    assert "https://" not in without_namespaces


def test_evaluation_svgs_are_cleaned_and_ids_made_unique():
    svg = _matplotlib_svg()
    assert svg.startswith("<?xml")
    data = extract_showcase_data(
        render_small(evaluation={"metrics": {"MAE": 1.5}, "charts": {"A": svg, "B": svg}})
    )
    evaluation = data["evaluation"]
    assert evaluation["metrics"] == [["MAE", "1.5"]]
    (caption_a, svg_a), (caption_b, svg_b) = evaluation["charts"]
    assert (caption_a, caption_b) == ("A", "B")
    for text in (svg_a, svg_b):
        assert text.startswith("<svg")
        assert "<?xml" not in text and "<!DOCTYPE" not in text and "<metadata" not in text
    ids_a = set(re.findall(r'\bid="([^"]+)"', svg_a))
    ids_b = set(re.findall(r'\bid="([^"]+)"', svg_b))
    assert ids_a and not ids_a & ids_b
    # Internal references point at the renamed ids.
    for ref in re.findall(r'(?:href="#|url\(#)([^")]+)', svg_a):
        assert ref in ids_a


def test_no_evaluation_is_null():
    assert extract_showcase_data(render_small())["evaluation"] is None
    with pytest.raises(ValueError, match="not an SVG"):
        render_small(evaluation={"charts": {"x": "<html></html>"}})
