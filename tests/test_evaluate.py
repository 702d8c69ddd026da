"""Evaluate stage on Spark (spec §5): the §8.3/§8.4 worked-example values, invariants E1–E3,
self-evaluation identities, a pure-Python oracle on a generated table, and the written outputs
(placement, charts, summary)."""

import re
import xml.etree.ElementTree as ET
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from ksynth_spark import io
from ksynth_spark.aggregate import aggregate
from ksynth_spark.config import config_from_dict
from ksynth_spark.evaluate import bucket_edges, evaluate
from ksynth_spark.load import load_encoded
from ksynth_spark.pipeline import Reportable, Run, stage_evaluate
from ksynth_spark.report.evaluation import render_evaluation, stats_rows
from ksynth_spark.report.privacy import ReleaseFacts, privacy_statement
from ksynth_spark.synthesis.stage import SynthesisResult
from tests import reference
from tests.test_aggregate import WORKED_EXAMPLE

# A row_seeded-like synthetic set for the worked example (k = 3): every record is a protected
# pair or a single, and the single counts are A:a1 6, A:a2 6, B:b1 3, B:b2 6, C:c1 6, C:c2 3 (§8.4).
K_ANONYMOUS = ([["A:a1", "B:b1"]] * 3 + [["A:a1", "C:c1"]] * 3 + [["A:a2", "B:b2"]] * 3
               + [["B:b2", "C:c1"]] * 3 + [["A:a2"]] * 3 + [["C:c2"]] * 3)


def _setup(spark, path, text, **keys):
    path.mkdir(parents=True, exist_ok=True)
    (path / "in.csv").write_text(text)
    config = config_from_dict({"sensitive_microdata_path": str(path / "in.csv"), "output_dir": str(path / "out"),
                               "prefix": "P", "table_format": "parquet", **keys})
    data = load_encoded(spark, config)
    return config, data, aggregate(spark, data, config)


@pytest.fixture(scope="module")
def worked(spark, tmp_path_factory):
    """(config, data, aggregates) of the §8 worked example, k = 3, R = 2."""
    return _setup(spark, tmp_path_factory.mktemp("worked"), WORKED_EXAMPLE, reporting_resolution=3, reporting_length=2)


def _grouped(spark, groups):
    """Synthetic records DataFrame ``syn_start, count, attrs`` from ``(attribute ids, copies)`` in
    output order (copies of a record are consecutive rows)."""
    rows, start = [], 0
    for attrs, copies in groups:
        rows.append((start, copies, sorted(int(a) for a in attrs)))
        start += copies
    return spark.createDataFrame(rows, "syn_start long, count long, attrs array<int>")


def _synthetic(spark, data, records):
    """Synthetic records (grouped) from lists of ``column:value`` labels in output order: equal
    consecutive records become one distinct record with its number of copies."""
    ids = {label: i for i, label in enumerate(data.labels())}
    groups: list[list] = []
    for record in records:
        attrs = sorted(ids[a] for a in record)
        if groups and groups[-1][0] == attrs:
            groups[-1][1] += 1
        else:
            groups.append([attrs, 1])
    return _grouped(spark, groups)


def _check_e1(result):
    by_count = result.preservation_by_count
    edges = by_count["syn_count_bucket"].tolist()
    assert edges == sorted(edges, reverse=True)
    assert sorted(edges) == [10 * 2 ** j for j in range(len(edges))]
    max_y = result.synthetic_aggregates.agg({"count": "max"}).first()[0] or 0
    assert edges[0] >= max_y and (len(edges) == 1 or edges[1] < max_y)
    for table in (result.preservation_by_length, by_count):
        assert table["count_preservation"].between(0, 1).all()
        assert (table["mean_proportional_error"] >= 0).all()


# ---------------------------------------------------------------------------------- worked example
def _run(spark, config, data, aggregates, records, out):
    """A pipeline Run holding this test's data, aggregates and synthetic records (so that
    ``stage_evaluate`` writes the outputs exactly as a release does)."""
    n = int(records.agg({"count": "sum"}).first()[0])
    run = Run(spark=spark, config=config, staging=io.Staging(spark, str(out)), stages=("evaluate",), data=data,
              aggregates=aggregates, synthesis=SynthesisResult(records, n, records.count(), n / data.n_records, {}),
              reportable=Reportable(aggregates.reportable, aggregates.protected_record_count, "protected_count"))
    run.derived["verification"] = {"passed": True, "records_below_k": 0, "combinations_below_k": 0}
    return run


def test_row_seeded_like_values_and_written_outputs(spark, worked, tmp_path):
    config, data, aggregates = worked
    out = tmp_path / "out"
    run = _run(spark, config, data, aggregates, _synthetic(spark, data, K_ANONYMOUS), out)
    stage_evaluate(run)
    run.staging.commit()
    result = run.evaluation
    # E3 and §8.4: no leakage, combo_count(1) = 6; l = 1 preservation 5.6/6, error 0.4/6
    assert result.leakage_by_length.values.tolist() == [[1, 6, 0, 0.0], [2, 4, 0, 0.0]]
    by_length = result.preservation_by_length.set_index("syn_combo_length")
    assert by_length.loc[1].tolist() == pytest.approx([5.0, 5.6 / 6, 0.4 / 6])
    assert by_length.loc[2].tolist() == pytest.approx([2.0, 3.75 / 6, 2.25 / 6])
    assert result.preservation_by_count.values.tolist() == [pytest.approx([10, 3.5, 1.5, 9.35 / 12, 2.65 / 12])]
    # overall = over all 12 evaluated combinations = the count-weighted mean of the two lengths
    headline = result.headline
    assert headline.mean_proportional_error == pytest.approx(2.65 / 12)
    assert headline.count_preservation == pytest.approx(9.35 / 12)
    _check_e1(result)
    # §8.3: sensitive vs published
    assert stats_rows(result.published_vs_sensitive, "published") == [
        ("Combinations withheld from the published aggregates", "45.45 %"),
        ("Published combinations not in the sensitive data", "0.00 %"),
        ("1-counts mean value +/- mean error", "4.86 +/- 0.33"),
        ("2-counts mean value +/- mean error", "2.13 +/- 0.17"),
        ("Mean value +/- Mean error", "3.00 +/- 0.25"),
    ]
    # sensitive vs synthetic: 12 of 22 sensitive combinations missing, |5-3| at l=1, |4-3| at l=2, N_Y = 18
    assert stats_rows(result.synthetic_vs_sensitive, "synthetic", headline) == [
        ("Combinations not in the synthetic data", "54.55 %"),
        ("Synthetic combinations not in the sensitive data", "0.00 %"),
        ("1-counts mean value +/- mean error", "4.86 +/- 0.33"),
        ("2-counts mean value +/- mean error", "2.13 +/- 0.25"),
        ("Mean value +/- Mean error", "3.00 +/- 0.30"), ("Expansion ratio", "1.50"),
        ("Mean proportional error", "22.08 %"),
    ]
    singles = result.single_attribute_counts
    assert singles.values.tolist() == [["A", "a1", 6, 6], ["A", "a2", 6, 6], ["B", "b1", 3, 3], ["B", "b2", 6, 6],
                                       ["C", "c1", 6, 6], ["C", "c2", 3, 3]]  # rare C:c3 is never named
    assert result.synthetic_rare_combos.count() == 0
    assert headline.published_records == 12 and headline.synthetic_records == 18
    assert headline.expansion_ratio == 1.5 and headline.unsupported_combinations == 0

    released = {p.name for p in (out / "release").iterdir()}
    restricted = {p.name for p in (out / "sensitive").iterdir()}
    assert {"P_synthetic_aggregates.tsv", "P_synthetic_leakage_by_length.tsv", "P_preservation_by_length.tsv",
            "P_preservation_by_count.tsv", "P_stats_synthetic_data.tsv", "P_stats_aggregate_counts.tsv",
            "P_single_attribute_counts.tsv", "P_summary.md"} <= released
    assert "P_synthetic_rare_combos_by_length.tsv" in restricted and "P_sensitive_rare_by_length.svg" in restricted
    assert not [name for name in released if "sensitive" in name or "rare_combos" in name]
    assert (out / "release" / "P_synthetic_aggregates.tsv").read_text() == (
        "selections\tcount\nrecord_count\t18\nA:a1\t6\nA:a2\t6\nB:b2\t6\nC:c1\t6\nB:b1\t3\nC:c2\t3\n"
        "A:a1;B:b1\t3\nA:a1;C:c1\t3\nA:a2;B:b2\t3\nB:b2;C:c1\t3\n"
    )
    stats = pd.read_csv(out / "release" / "P_stats_aggregate_counts.tsv", sep="\t", dtype=str)
    assert list(stats.columns) == ["Metric", "Value"]
    assert stats.iloc[0].tolist() == ["Combinations withheld from the published aggregates", "45.45 %"]
    stats = pd.read_csv(out / "release" / "P_stats_synthetic_data.tsv", sep="\t", dtype=str)
    assert dict(stats.values.tolist())["Expansion ratio"] == "1.50"
    leakage = pd.read_csv(out / "release" / "P_synthetic_leakage_by_length.tsv", sep="\t")
    assert list(leakage.columns) == ["syn_combo_length", "combo_count", "leak_count", "leak_proportion"]
    assert spark.read.parquet(str(out / "tables" / "synthetic_aggregates")).count() == 10

    bars = {  # chart -> expected bar ids; no single-attribute chart: its two series are equal by construction
        "release/P_synthetic_leakage_by_length": {"bar-leak-0", "bar-leak-1"},
        "release/P_preservation_by_length": {"bar-preservation-0", "bar-preservation-1"},
        "release/P_preservation_by_count": {"bar-preservation-0"},
        "release/P_proportional_error_by_count": {"bar-error-0"},
        "sensitive/P_sensitive_rare_by_length": {"bar-all-0", "bar-all-1", "bar-rare-0", "bar-rare-1"},
    }
    for stem, expected in bars.items():
        svg = (out / f"{stem}.svg").read_text()
        ET.fromstring(svg)  # well-formed
        assert set(re.findall(r'id="(bar-[a-z]+-\d+)"', svg)) == expected, stem
        assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [name for name in released if "single_attribute_counts_" in name]
    summary = (out / "release" / "P_summary.md").read_text()
    assert ("Every synthetic record, and every combination of values in it, matches at least 3 records in the "
            "sensitive data.") in summary
    assert "| all lengths | 0 | 77.92 % | 22.08 % |" in summary and "| Expansion ratio | 1.50 |" in summary
    assert "## How to read this release" in summary and "Why are there more synthetic records than" in summary
    assert "Leaked rare combinations by length: P_synthetic_leakage_by_length.svg, P_synthetic_leakage_by_length.png" \
        in summary
    assert "no single-attribute chart is drawn" in summary
    assert "P_sensitive_rare_by_length" not in summary and "c3" not in summary and "§" not in summary
    assert run.derived["mean_proportional_error"] == pytest.approx(2.65 / 12)
    assert run.derived["expansion_ratio"] == 1.5
    record = run.derived["evaluation"]
    assert record["headline"]["leaked_rare_combinations"] == 0
    assert {c["file"] for c in record["charts"] if c["area"] == "release"} == {
        f"{stem.split('/')[1]}.{ext}" for stem in bars if stem.startswith("release/") for ext in ("png", "svg")}


def test_leaky_and_fabricated_record_is_reported(spark, worked):
    config, data, aggregates = worked
    records = K_ANONYMOUS + [["A:a1", "C:c3"]]  # C:c3 is rare (2 < 3); A:a1;C:c3 is not in the sensitive data
    result = evaluate(spark, data, aggregates, _synthetic(spark, data, records), config)
    assert result.leakage_by_length["leak_count"].tolist() == [1, 0]
    assert result.synthetic_vs_sensitive.fabricated_pct == pytest.approx(100 / 22)
    assert stats_rows(result.synthetic_vs_sensitive, "synthetic")[1] == (
        "Synthetic combinations not in the sensitive data", "4.55 %")
    assert result.headline.unsupported_combinations == 2 and result.headline.leaked_rare_combinations == 1
    rows = [tuple(r) for r in result.synthetic_rare_combos.collect()]
    assert rows == [(1, "C:c3", 18, 1, 0), (2, "A:a1 AND C:c3", 18, 1, 0)]
    # the statement of any page built from this evaluation is a warning, never a guarantee
    facts = ReleaseFacts.from_run(config, {"verification": {"passed": True}}).with_evaluation(result.headline)
    statement = privacy_statement(facts)
    assert statement.warning and statement.headline.startswith("WARNING: 2 combination(s) of up to 2 values")
    assert "matches at least" not in statement.text()
    report = render_evaluation(result, facts, prefix="P")
    assert "WARNING: 2 combination(s)" in report.texts["summary"]


def test_sensitive_table_against_itself_gives_the_e2_identities(spark, worked):
    config, data, aggregates = worked
    rows = [(list(r["attrs"]), int(r["weight"])) for r in data.rows.orderBy("attrs").collect()]
    result = evaluate(spark, data, aggregates, _grouped(spark, rows), config)
    stats = dict(stats_rows(result.synthetic_vs_sensitive, "synthetic", result.headline))
    assert stats["Combinations not in the synthetic data"] == "0.00 %"
    assert stats["Synthetic combinations not in the sensitive data"] == "0.00 %"
    assert stats["Mean value +/- Mean error"].endswith("+/- 0.00") and stats["Expansion ratio"] == "1.00"
    assert stats["Mean proportional error"] == "0.00 %"
    assert result.leakage_by_length["leak_count"].tolist() == aggregates.rare_by_length["rare_count"].tolist() == [1, 9]
    assert result.preservation_by_length["count_preservation"].tolist() == [1.0, 1.0]
    assert result.preservation_by_length["mean_proportional_error"].tolist() == [0.0, 0.0]
    assert result.synthetic_rare_combos.count() == 2 + 4 * 2 + 5 * 1  # C:c3 (2 records), 4 pairs of 2, 5 of 1
    _check_e1(result)


# ---------------------------------------------------------------------------------- oracle
def _oracle(sensitive, synthetic, k, length):
    """Spec §5 straight from the definitions, on frozensets of (column, value)."""
    s, y = reference.count(sensitive, length), reference.count(synthetic, length)
    omega = {c for c, n in s.items() if n >= k} | set(y)
    pres = {c: min(y[c] / s[c], 1) if s[c] else 0 for c in omega}
    pe = {c: abs(y[c] - s[c]) / s[c] if s[c] else 1 for c in omega}
    lengths = range(1, length + 1)
    out = {"omega": omega,
           "leak": [sum(1 for c in s if len(c) == n and s[c] < k and 0 < y[c] < k) for n in lengths],
           "combo_count": [sum(1 for c in y if len(c) == n) for n in lengths]}

    def means(group):
        return [np.mean([y[c] for c in group]), np.mean([pres[c] for c in group]), np.mean([pe[c] for c in group])] \
            if group else [0, 0, 0]
    out["by_length"] = [means([c for c in omega if len(c) == n]) for n in lengths]
    edges = bucket_edges(max(y.values(), default=0))
    buckets = {e: [c for c in omega if y[c] <= e and (e == 10 or y[c] > e // 2)] for e in edges}
    out["by_count"] = [[e] + ([np.mean([y[c] for c in g]), np.mean([len(c) for c in g]), np.mean([pres[c] for c in g]),
                                np.mean([pe[c] for c in g])] if g else [0, 0, 0, 0])
                       for e, g in sorted(buckets.items(), reverse=True)]
    out["mpe"] = np.mean([pe[c] for c in omega])  # over every evaluated combination, not per bucket
    out["preservation"] = np.mean([pres[c] for c in omega])
    common = [c for c in s if c in y]
    out["suppressed"] = 100 * sum(1 for c in s if c not in y) / len(s)
    out["fabricated"] = 100 * sum(1 for c in y if c not in s) / len(s)
    out["mae"] = sum(abs(s[c] - y[c]) for c in common) / len(common)
    out["mean_count"] = sum(s.values()) / len(s)

    def fmt(c):
        return " AND ".join(sorted(f"{a}:{v}" for a, v in c))
    out["rare_rows"] = sorted((len(c), fmt(c), j, y[c], k * (s[c] // k))
                              for c in y if y[c] < k for j, r in enumerate(synthetic) if c <= r)
    return out


def test_metrics_equal_a_pure_python_oracle(spark, tmp_path):
    rng = np.random.default_rng(11)
    n = 301
    frame = pd.DataFrame({
        "colour": rng.choice(["red", "green", "blue", "grey"], n, p=[0.4, 0.3, 0.2, 0.1]),
        "size": rng.choice(["S", "M", "L", ""], n, p=[0.3, 0.4, 0.2, 0.1]),
        "shape": rng.choice(["round", "square", "star"], n, p=[0.6, 0.3, 0.1]),
        "grade": rng.choice([f"g{i}" for i in range(6)], n),
    })
    text = frame.to_csv(index=False)
    k, length = 4, 3
    config, data, aggregates = _setup(spark, tmp_path, text, reporting_resolution=k, reporting_length=length)
    sensitive = reference.parse(text)
    synthetic = []
    for i in rng.choice(n, 260, replace=True):  # thinned copies of sensitive records: some leak, some do not
        synthetic.append(frozenset(a for a in sensitive[i] if rng.random() < 0.7))
    for _ in range(15):  # recombined records: fabricate combinations
        synthetic.append(frozenset({("colour", str(rng.choice(["red", "grey"]))), ("shape", "star"),
                                    ("grade", f"g{rng.integers(6)}")}))
    synthetic.sort(key=sorted)  # output order: equal records are consecutive copies of one distinct record
    labels = [[f"{c}:{v}" for c, v in record] for record in synthetic]
    result = evaluate(spark, data, aggregates, _synthetic(spark, data, labels), config)
    expected = _oracle(sensitive, synthetic, k, length)

    assert result.leakage_by_length["leak_count"].tolist() == expected["leak"]
    assert result.leakage_by_length["combo_count"].tolist() == expected["combo_count"]
    assert sum(expected["leak"]) > 0
    by_length_values = result.preservation_by_length.iloc[:, 1:].values.tolist()
    assert by_length_values == [pytest.approx(r) for r in expected["by_length"]]
    assert result.preservation_by_count.values.tolist() == [pytest.approx(r) for r in expected["by_count"]]
    headline = result.headline
    assert headline.mean_proportional_error == pytest.approx(expected["mpe"])
    assert headline.count_preservation == pytest.approx(expected["preservation"])
    assert headline.not_in_synthetic_pct == pytest.approx(expected["suppressed"])
    assert headline.fabricated_synthetic_pct == pytest.approx(expected["fabricated"]) and expected["fabricated"] > 0
    # the overall mean proportional error is the count-weighted mean of the per-length rows
    by_length = result.preservation_by_length
    sizes = [sum(1 for c in expected["omega"] if len(c) == length) for length in by_length["syn_combo_length"]]
    assert headline.mean_proportional_error == pytest.approx(np.average(by_length["mean_proportional_error"],
                                                                        weights=sizes))
    stats = dict(stats_rows(result.synthetic_vs_sensitive, "synthetic", headline))
    assert stats["Mean value +/- Mean error"] == f"{expected['mean_count']:.2f} +/- {expected['mae']:.2f}"
    assert [tuple(r) for r in result.synthetic_rare_combos.collect()] == expected["rare_rows"]
    single = Counter(a for record in synthetic for a in record)
    assert {(r.column, r.value): r.synthetic_count for r in result.single_attribute_counts.itertuples()
            if r.synthetic_count} == dict(single)
    assert headline.published_records == 300 and headline.synthetic_records == 275  # floor_4(301)
    assert headline.expansion_ratio == pytest.approx(275 / 300)
    _check_e1(result)
