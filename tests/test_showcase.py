"""Unit tests of the showcase page renderer (no browser)."""

from __future__ import annotations

import io
import itertools
import re

import numpy as np
import pandas as pd
import pytest

from ksynth_spark.report.privacy import ReleaseFacts, privacy_statement
from ksynth_spark.report.showcase import (
    ALL_ATTRIBUTES_PAGE_NAME,
    DEFAULT_PAGE_NAME,
    extract_showcase_data,
    parse_selections,
    render_showcase_html,
)
from ksynth_spark.report.showcase_data import (
    DistinctRecords,
    ShowcaseRelease,
    choose_embedding,
    combination_blocks,
    combinations_from_selections,
    count_combinations,
    records_from_frame,
    records_payload_bytes,
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
            for unique, count in zip(uniques[keep].tolist(), counts[keep].tolist(), strict=True):
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


#: The facts of a k-anonymous row_seeded release with k = 10 and R = 3.
K_FACTS = ReleaseFacts(mode="row_seeded", k=10, reporting_length=3, dp=False)


def render_small(**kwargs) -> str:
    synthetic, reportable = small_release()
    options = {"title": "Small", "facts": K_FACTS}
    options.update(kwargs)
    return render_showcase_html(synthetic, reportable, **options)


def attribute_labels(data: dict) -> list[tuple[str, str]]:
    """``(column, value)`` of every page attribute id."""
    return [(col["name"], value) for col in data["columns"] for value in col["values"]]


def decode_synthetic(data: dict) -> pd.DataFrame:
    """Rebuild the synthetic table (one row per record, in code order) from the embedded
    distinct records and their copies."""
    records = data["records"]
    rows = []
    for r, copies in enumerate(records["weights"]):
        row = {col["name"]: (col["values"][codes[r] - 1] if codes[r] else "")
               for col, codes in zip(data["columns"], records["codes"], strict=True)}
        rows.extend([row] * copies)
    return pd.DataFrame(rows, columns=[col["name"] for col in data["columns"]])


def decode_reportable(data: dict) -> dict[frozenset, int]:
    """``{attribute set: published count}`` of the embedded combinations that have one."""
    labels = attribute_labels(data)
    combos = {}
    for block in data["combinations"]:
        assert len(block["combos"]) == block["count"] == len(block["actual"])
        for ids, actual in zip(block["combos"], block["actual"], strict=True):
            assert list(ids) == sorted(ids) and len(set(ids)) == block["size"]
            combo = frozenset(labels[a] for a in ids)
            assert combo not in combos
            if actual is not None:
                combos[combo] = actual
    return combos


def decode_estimates(data: dict) -> dict[frozenset, int]:
    """``{attribute set: synthetic count}`` of the combinations embedding."""
    labels = attribute_labels(data)
    return {frozenset(labels[a] for a in ids): est for block in data["combinations"]
            for ids, est in zip(block["combos"], block["estimate"], strict=True)}


def reportable_as_sets(reportable: pd.DataFrame) -> dict[frozenset, int]:
    """Parse a reportable table independently of the module under test."""
    out = {}
    for selections, count in zip(reportable["selections"], reportable["protected_count"], strict=True):
        if selections != "record_count":
            out[frozenset(tuple(a.split(":")) for a in selections.split(";"))] = int(count)
    return out


def brute_force_counts(synthetic: pd.DataFrame, max_length: int) -> dict[frozenset, int]:
    """Synthetic count of every combination of up to ``max_length`` attributes, record by record."""
    counts: dict[frozenset, int] = {}
    for row in synthetic.itertuples(index=False):
        attributes = [(c, v) for c, v in zip(synthetic.columns, row, strict=True) if v != ""]
        for length in range(1, max_length + 1):
            for combo in itertools.combinations(attributes, length):
                counts[frozenset(combo)] = counts.get(frozenset(combo), 0) + 1
    return counts


# --------------------------------------------------------------------------- #
# Round trip and content
# --------------------------------------------------------------------------- #

def test_embedded_records_round_trip():
    synthetic, reportable = small_release()
    data = extract_showcase_data(render_small(embedding="records"))

    assert data["format"] == 2 and data["embedding"] == "records"
    decoded = decode_synthetic(data)
    order = list(synthetic.columns)
    pd.testing.assert_frame_equal(decoded.sort_values(order).reset_index(drop=True),
                                  synthetic.sort_values(order).reset_index(drop=True))
    assert data["records"]["count"] == 5  # six records, five distinct
    assert data["synthetic_record_count"] == 6
    assert data["published_record_count"] == 10
    assert data["k"] == 10 and data["reporting_length"] == 3 and data["dp"] is False
    # Only published combinations that also occur in the synthetic data (the only ones the
    # page can show); none naming a value absent from it.
    source = reportable_as_sets(reportable)
    expected = {c: n for c, n in source.items() if brute_force_counts(synthetic, 3).get(c)}
    assert decode_reportable(data) == expected


def test_embedded_combinations_round_trip():
    synthetic, reportable = small_release()
    data = extract_showcase_data(render_small(embedding="combinations"))

    assert data["embedding"] == "combinations" and data["records"] is None
    assert decode_estimates(data) == brute_force_counts(synthetic, 3)
    source = reportable_as_sets(reportable)
    assert decode_reportable(data) == {c: n for c, n in source.items() if c in decode_estimates(data)}


def test_combination_counting_matches_brute_force():
    synthetic, _ = generate_adult_sized_release(n_records=400, seed=5)
    vocabulary, records = records_from_frame(synthetic)
    assert int(records.weights.sum()) == 400
    counted = count_combinations(vocabulary, records, 3)
    labels = [(c, v) for c, values in zip(vocabulary.columns, vocabulary.values, strict=True) for v in values]
    as_labels = {frozenset(labels[i] for i in ids): n for ids, n in counted.as_dict().items()}
    assert as_labels == brute_force_counts(synthetic, 3)


def test_embedding_is_the_smaller_one_and_sizes_are_exact():
    synthetic, reportable = generate_adult_sized_release(n_records=3_000, seed=3)
    vocabulary, records = records_from_frame(synthetic)
    _, published = combinations_from_selections(reportable, vocabulary)
    synthetic_counts = count_combinations(vocabulary, records, 3)
    choice = choose_embedding(vocabulary, published, synthetic_counts, len(records.weights),
                              int(records.weights.max()))
    for name in ("records", "combinations"):
        data = extract_showcase_data(render_showcase_html(synthetic, reportable, title="t", facts=K_FACTS,
                                                          embedding=name))
        assert data["embedding_sizes"] == {"records": choice.records_bytes,
                                           "combinations": choice.combinations_bytes}
    sizes = {"records": records_payload_bytes(vocabulary, len(records.weights), int(records.weights.max())),
             "combinations": 0}
    for block in combination_blocks(vocabulary, published, synthetic_counts, with_estimates=False):
        sizes["records"] += sum(len(v["data"]) for v in block.values() if isinstance(v, dict))
    assert sizes["records"] == choice.records_bytes
    auto = extract_showcase_data(render_showcase_html(synthetic, reportable, title="t", facts=K_FACTS))
    smaller = min(("records", "combinations"), key=lambda n: auto["embedding_sizes"][n])
    assert auto["embedding"] == smaller

    # Few distinct records with many copies and many columns: the records are smaller.
    wide = pd.DataFrame({f"c{i}": [f"v{j % 3}" for j in range(60)] for i in range(8)})
    wide_rep = pd.DataFrame({"selections": ["record_count"], "protected_count": [60]})
    data = extract_showcase_data(render_showcase_html(wide, wide_rep, title="t", facts=K_FACTS))
    assert data["embedding"] == "records"
    # Every record distinct, few combinations of up to R = 2 values: the combinations are smaller.
    grid = pd.DataFrame(list(itertools.product(*[[f"{c}{v}" for v in range(3)] for c in "abcdef"])),
                        columns=list("abcdef"))
    facts = ReleaseFacts(mode="row_seeded", k=10, reporting_length=2, dp=False)
    data = extract_showcase_data(render_showcase_html(grid, wide_rep, title="t", facts=facts))
    assert data["embedding"] == "combinations"
    assert data["embedding_sizes"]["combinations"] < data["embedding_sizes"]["records"] / 4


def test_release_without_records_embeds_combinations():
    synthetic, reportable = small_release()
    vocabulary, records = records_from_frame(synthetic)
    record_count, published = combinations_from_selections(reportable, vocabulary)
    counts = count_combinations(vocabulary, records, 3)
    release = ShowcaseRelease(vocabulary, published, record_count, 6, synthetic=counts)
    from ksynth_spark.report.showcase import render_showcase

    data = extract_showcase_data(render_showcase(release, title="t", facts=K_FACTS))
    assert data["embedding"] == "combinations"
    assert decode_estimates(data) == brute_force_counts(synthetic, 3)
    with pytest.raises(ValueError, match="needs the distinct synthetic records"):
        render_showcase(release, title="t", facts=K_FACTS, embedding="records")
    with pytest.raises(ValueError, match="embedding must be"):
        render_showcase(release, title="t", facts=K_FACTS, embedding="rows")
    empty = ShowcaseRelease(vocabulary, published, record_count, 0,
                            records=DistinctRecords(np.zeros((0, 4), dtype=np.int64), np.zeros(0, dtype=np.int64)))
    assert extract_showcase_data(render_showcase(empty, title="t", facts=K_FACTS))["combinations"] == []


def test_only_reportable_combinations_are_embedded():
    synthetic, reportable = generate_adult_sized_release(n_records=3_000, seed=3)
    html = render_showcase_html(synthetic, reportable, title="t", facts=K_FACTS)
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
        render_showcase_html(synthetic, reportable, title="t", facts=K_FACTS)


def test_string_counts_and_missing_cells_are_accepted():
    synthetic, reportable = small_release()
    synthetic = synthetic.replace("", np.nan)
    reportable = reportable.astype(str)
    data = extract_showcase_data(render_showcase_html(synthetic, reportable, title="t", facts=K_FACTS,
                                                      embedding="records"))
    order = list(synthetic.columns)
    pd.testing.assert_frame_equal(decode_synthetic(data).sort_values(order).reset_index(drop=True),
                                  small_release()[0].sort_values(order).reset_index(drop=True))
    assert data["published_record_count"] == 10
    facts = {name: value for name, value, _ in data["facts"]}
    assert facts["Synthetic records"] == 6 and facts["Sensitive records"] == 10


def test_invalid_parameters_are_rejected():
    with pytest.raises(ValueError, match="k must"):
        render_small(facts=ReleaseFacts(mode="row_seeded", k=0, reporting_length=3, dp=False))
    with pytest.raises(ValueError, match="reporting_length must"):
        render_small(facts=ReleaseFacts(mode="row_seeded", k=10, reporting_length=0, dp=False))
    synthetic, _ = small_release()
    with pytest.raises(ValueError, match="protected_count"):
        render_showcase_html(synthetic, pd.DataFrame({"selections": ["record_count"]}), title="t", facts=K_FACTS)
    with pytest.raises(ValueError, match="invalid count"):
        render_showcase_html(synthetic, pd.DataFrame({"selections": ["age:30-39"], "protected_count": ["x"]}),
                             title="t", facts=K_FACTS)


# --------------------------------------------------------------------------- #
# Words: derived from the release's facts
# --------------------------------------------------------------------------- #

def page_words(data: dict) -> str:
    """Every sentence and label the page shows (besides data values)."""
    text = data["text"]
    parts = [text["headline"], *text["details"], *(q + " " + a for q, a in text["how_to_read"]),
             text["estimate_label"], text["actual_label"], text["actual_short"], text["missing_note"],
             text["evaluation_note"] or ""]
    parts += [f"{name} {value} {note}" for name, value, note in data["facts"]]
    return "\n".join(parts)


@pytest.mark.parametrize("facts", [
    K_FACTS,
    ReleaseFacts(mode="aggregate_seeded", k=5, reporting_length=2, dp=False, checked=True),
    ReleaseFacts(mode="aggregate_seeded", k=10, reporting_length=3, dp=True, epsilon=4.0, delta=1e-6),
    ReleaseFacts(mode="aggregate_seeded", k=10, reporting_length=3, dp=True, test_noise=True),
    ReleaseFacts(mode="row_seeded", k=10, reporting_length=3, dp=False, checked=False, records_below_k=2),
])
def test_statement_and_labels_come_from_the_facts(facts):
    data = extract_showcase_data(render_small(facts=facts, evaluation_ran=True))
    statement = privacy_statement(facts)
    assert data["text"]["headline"] == statement.headline
    assert data["text"]["details"] == list(statement.details)
    assert data["text"]["warning"] == statement.headline.startswith("WARNING")
    assert data["text"]["how_to_read"], "the How to read panel needs answers"
    words = page_words(data)
    if facts.dp:
        assert "multiple of" not in words and "rounded down" not in words and "k =" not in words
        assert data["text"]["actual_label"].startswith("Published count (")
        assert "restricted" in data["text"]["evaluation_note"]
    else:
        assert data["text"]["actual_label"] == f"Protected count (rounded down to a multiple of {facts.k})"
        assert f"k = {facts.k}" in words
        assert data["text"]["evaluation_note"] == "An evaluation of this release was run, but it is not part of " \
                                                  "this page."
    if facts.mode == "aggregate_seeded" and not facts.dp:
        assert "Every synthetic record" not in words
    if facts.test_noise:
        assert data["text"]["warning"] and "NOT" in data["text"]["actual_label"]


def test_no_evaluation_note_and_exact_record_count():
    data = extract_showcase_data(render_small())
    assert data["evaluation"] is None
    assert data["text"]["evaluation_note"] == "No evaluation was run for this release."
    synthetic, reportable = small_release()
    exact = reportable.rename(columns={"protected_count": "count"})
    dp = ReleaseFacts(mode="aggregate_seeded", k=10, reporting_length=3, dp=True, epsilon=4.0, delta=1e-6)
    data = extract_showcase_data(render_showcase_html(synthetic, exact, title="t", facts=dp, count_column="count"))
    notes = {name: note for name, _, note in data["facts"]}
    assert "exact" in notes["Sensitive records"]


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
    with pytest.raises(ValueError, match="report_pages lists column 'age' in both"):
        render_small(report_pages={"A": ["age"], "B": ["age"]})
    with pytest.raises(ValueError, match="report_visuals lists column 'lang_en' in both"):
        render_small(report_visuals={"A": ["lang_en"], "B": ["lang_en", "lang_fr"]})
    with pytest.raises(ValueError, match="must be a list"):
        render_small(report_pages={"A": "age"})


# --------------------------------------------------------------------------- #
# Size, escaping, offline safety
# --------------------------------------------------------------------------- #

def test_adult_sized_page_is_small_in_both_embeddings():
    synthetic, reportable = generate_adult_sized_release()
    assert synthetic.shape == (48_842, 13)
    assert len(reportable) > 110_000
    vocabulary, records = records_from_frame(synthetic)
    counts = count_combinations(vocabulary, records, 3)
    record_count, published = combinations_from_selections(reportable, vocabulary)
    release = ShowcaseRelease(vocabulary, published, record_count, len(synthetic), counts, records)
    labels = [(c, v) for c, values in zip(vocabulary.columns, vocabulary.values, strict=True) for v in values]
    shown = {frozenset(labels[i] for i in ids) for ids in counts.as_dict()}
    from ksynth_spark.report.showcase import render_showcase

    for embedding in ("records", "combinations"):
        html = render_showcase(release, title="Adult", facts=K_FACTS, embedding=embedding)
        size = len(html.encode("utf-8"))
        assert size < 4 * 1024 * 1024, f"{embedding}: page is {size / 1e6:.2f} MB"
        data = extract_showcase_data(html)
        assert data["embedding"] == embedding
        assert decode_reportable(data) == {c: n for c, n in reportable_as_sets(reportable).items() if c in shown}


def test_script_closing_tags_in_values_are_escaped():
    nasty = "</script><script>alert(1)</script><!--"
    synthetic = pd.DataFrame({"col": [nasty, nasty, "ok"], "b": ["&amp;", "\u2028", "x"]})
    reportable = pd.DataFrame({"selections": [f"col:{nasty}"], "protected_count": [10]})
    title = "Title </title><script>alert(2)</script> /*__DATA__*/ __TITLE__"
    facts = ReleaseFacts(mode="row_seeded", k=1, reporting_length=2, dp=False)
    for embedding in ("records", "combinations"):
        html = render_showcase_html(synthetic, reportable, title=title, facts=facts, embedding=embedding)

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


def test_script_makes_no_claim_of_its_own():
    """Every sentence about the release comes from the data (derived from the facts)."""
    from importlib import resources

    script = resources.files("ksynth_spark.report").joinpath("showcase_assets/showcase.js").read_text("utf-8")
    for claim in [r"\bk = ", "rounded down", "multiple of", "individuals", "at least", "No evaluation",
                  "differentially", "Protected", r"DATA\.k\b"]:
        assert not re.search(claim, script), claim


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
