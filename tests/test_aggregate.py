"""Aggregate stage end to end on Spark: spec §8 worked example, invariants A1–A6 on generated
tables against the pure-Python oracle, the adult acceptance check, and the release layout."""

import itertools
import os

import numpy as np
import pandas as pd
import pytest

from ksynth_spark.config import config_from_dict
from ksynth_spark.pipeline import run_stages
from tests import reference
from tests.conftest import DATA

WORKED_EXAMPLE = """A,B,C
a1,b1,c1
a1,b1,c1
a1,b1,c2
a1,b2,c1
a1,b2,0
a1,,c2
a2,b1,c1
a2,b1,c3
a2,b2,c1
a2,b2,c1
a2,b2,c2
a2, b2 ,c3
"""


def _run(spark, tmp_path, text=None, stages=("aggregate",), **keys):
    if text is not None:
        (tmp_path / "in.csv").write_text(text)
        keys.setdefault("sensitive_microdata_path", str(tmp_path / "in.csv"))
    keys.setdefault("output_dir", str(tmp_path / "out"))
    keys.setdefault("prefix", "P")
    keys.setdefault("table_format", "parquet")
    config = config_from_dict(keys)
    return run_stages(spark, config, stages), tmp_path / "out"


def _read_tsv(path):
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def _as_counts(path):
    table = _read_tsv(path)
    return {frozenset(s.split(";")): int(c) for s, c in zip(table.iloc[:, 0], table.iloc[:, 1], strict=True)}


def test_worked_example_exact_outputs(spark, tmp_path):
    _, out = _run(spark, tmp_path, WORKED_EXAMPLE, reporting_resolution=3, reporting_length=2, table_format="delta")
    assert (out / "release" / "P_reportable_aggregates.tsv").read_text() == (
        "selections\tprotected_count\nrecord_count\t12\nA:a1\t6\nA:a2\t6\nB:b2\t6\nC:c1\t6\nB:b1\t3\nC:c2\t3\n"
        "A:a1;B:b1\t3\nA:a1;C:c1\t3\nA:a2;B:b2\t3\nA:a2;C:c1\t3\nB:b1;C:c1\t3\nB:b2;C:c1\t3\n"
    )
    sensitive = _read_tsv(out / "sensitive" / "P_sensitive_aggregates.tsv")
    assert list(sensitive.columns) == ["selections", "count"] and len(sensitive) == 23
    assert sensitive.iloc[0].tolist() == ["record_count", "12"]
    assert sensitive.iloc[7].tolist() == ["C:c3", "2"] and sensitive.iloc[-1].tolist() == ["B:b2;C:c3", "1"]
    rare = _read_tsv(out / "sensitive" / "P_sensitive_rare_by_length.tsv").astype(float)
    assert rare.values.ravel().tolist() == pytest.approx([1, 7, 1, 1 / 7, 2, 15, 9, 0.6])
    analysis = _read_tsv(out / "sensitive" / "P_sensitive_analysis_by_length.tsv").astype(float)
    assert analysis.values.tolist() == [[1, 0, 0, 0, 0, 0, 0], [2, 3, 25, 3, 25, 6, 50]]
    parameters = dict(_read_tsv(out / "sensitive" / "P_parameters.tsv").values.tolist())
    assert parameters == {"resolution": "3", "limit": "2", "total_sensitive_records": "12", "unique_identifiable": "3",
                          "rare_identifiable": "3", "risky_identifiable": "6", "risky_identifiable_pct": "50.0"}
    # Delta tables round-trip
    table = spark.read.format("delta").load(str(out / "tables" / "reportable_aggregates"))
    assert table.count() == 12 and set(table.columns) >= {"selections", "length", "protected_count", "attrs"}
    encoded = spark.read.format("delta").load(str(out / "tables" / "encoded_rows")).toPandas()
    assert len(encoded) == 10 and encoded["weight"].sum() == 12    # r0 = r1 and r8 = r9
    assert os.path.exists(out / "P_config.json")
    assert not [p for p in os.listdir(out) if p.startswith(".staging")]


def _generated_table(seed, n_rows, multi=False, subjects=False, zeros=False):
    rng = np.random.default_rng(seed)
    columns = {
        "Age ": rng.choice(["young", "mid", "old", ""], n_rows, p=[0.4, 0.3, 0.25, 0.05]),
        "sex": rng.choice(["F", "M", " F "], n_rows, p=[0.45, 0.45, 0.1]),
        "code": rng.choice(["0", "1", "2", "x:y", "a;b"], n_rows),
        "region": rng.choice([f"r{i}" for i in range(8)], n_rows),
    }
    if multi:
        columns["tags"] = ["|".join(rng.choice(["t1", "t2", "t3", "0", ""], rng.integers(0, 4))) for _ in range(n_rows)]
    if subjects:
        ids = rng.integers(0, n_rows // 2, n_rows)
        columns = {"ID": [f" S{i} " if i % 3 else f"s{i}" for i in ids], **columns}
        # one value per subject for single-value columns (no conflicts)
        for name in ("Age ", "sex", "code", "region"):
            per_subject = {i: columns[name][j] for j, i in enumerate(ids)}
            columns[name] = [per_subject[i] if rng.random() < 0.8 else "" for i in ids]
    frame = pd.DataFrame(columns)
    return frame.to_csv(index=False)


@pytest.mark.parametrize(
    "seed, shape, keys",
    [
        (1, {}, {"reporting_length": 3, "reporting_resolution": 4}),
        (2, {"multi": True, "zeros": True}, {"reporting_length": -1, "reporting_resolution": 3,
                                              "multi_value_columns": {"TAGS": "|"}, "sensitive_zeros": ["Code"],
                                              "record_limit": 150}),
        (3, {"subjects": True, "multi": True}, {"reporting_length": 2, "reporting_resolution": 5, "subject_id": "id",
                                                "multi_value_columns": {"tags": "|"},
                                                "use_columns": ["age", "tags", "code"]}),
    ],
)
def test_invariants_on_generated_tables(spark, tmp_path, seed, shape, keys):
    text = _generated_table(seed, 200, **shape)
    release, out = _run(spark, tmp_path, text, **keys)
    records = reference.parse(
        text, use_columns=keys.get("use_columns", ()), sensitive_zeros=keys.get("sensitive_zeros", ()),
        multi_value=keys.get("multi_value_columns"), subject_id=keys.get("subject_id"),
        record_limit=keys.get("record_limit", -1),
    )
    k = keys["reporting_resolution"]
    n_headers = len(release.data.headers)
    length = n_headers if keys["reporting_length"] <= 0 else min(keys["reporting_length"], n_headers)
    expected = reference.count(records, length)
    # I3 / I4: number of records after limit and joining
    assert release.data.n_records == len(records)
    # A1: every counted combination and its support, nothing else
    sensitive = _as_counts(out / "sensitive" / "P_sensitive_aggregates.tsv")
    assert sensitive.pop(frozenset(["record_count"])) == len(records)
    assert sensitive == {frozenset(reference.selections(c).split(";")): n for c, n in expected.items()}
    # I1: no raw ';' or ':' inside names/values, no empty values
    for combo in sensitive:
        for attribute in combo:
            column, value = attribute.split(":")
            assert value and column
    # A2: monotonicity
    for combo, n in sensitive.items():
        for sub in itertools.combinations(combo, len(combo) - 1):
            if sub:
                assert sensitive[frozenset(sub)] >= n
    # A4: the reportable table is exactly the floored frequent combinations
    reportable = _as_counts(out / "release" / "P_reportable_aggregates.tsv")
    assert reportable.pop(frozenset(["record_count"])) == k * (len(records) // k)
    assert reportable == {c: k * (n // k) for c, n in sensitive.items() if n >= k}
    assert all(v % k == 0 and v >= k for v in reportable.values())
    # A6: records analysis equals the oracle, protected
    unique, rare = reference.records_analysis(records, expected, k, length)
    analysis = _read_tsv(out / "sensitive" / "P_sensitive_analysis_by_length.tsv").astype(float)
    for row in analysis.itertuples(index=False):
        assert row.sen_unique == k * (unique[int(row.combo_length)] // k)
        assert row.sen_rare == k * (rare[int(row.combo_length)] // k)
    # I2: expanded multi-value columns are sorted within their source and only hold "1"
    tags = [h for h in release.data.headers if h.startswith("tags_")]
    assert tags == sorted(tags)
    assert set(release.data.attributes.loc[release.data.attributes["column"].isin(tags), "value"]) <= {"1"}


def test_results_do_not_depend_on_partitioning(spark, tmp_path):
    text = _generated_table(7, 400, multi=True)
    part_dir = tmp_path / "parts"
    part_dir.mkdir()
    lines = text.splitlines(keepends=True)
    for i in range(3):  # the same rows split over three files
        chunk = lines[1 + i * 134: 1 + (i + 1) * 134]
        (part_dir / f"part{i}.csv").write_text(lines[0] + "".join(chunk))
    keys = dict(reporting_length=3, reporting_resolution=3, multi_value_columns={"tags": "|"})
    _, out_one = _run(spark, tmp_path / "one", None, sensitive_microdata_path=str(part_dir / "part*.csv"), **keys)
    spark.conf.set("spark.sql.shuffle.partitions", "7")
    try:
        _, out_many = _run(spark, tmp_path / "many", None, sensitive_microdata_path=str(part_dir), **keys)
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", "4")
    for name in ("release/P_reportable_aggregates.tsv", "sensitive/P_sensitive_aggregates.tsv",
                 "sensitive/P_sensitive_analysis_by_length.tsv"):
        assert (out_one / name).read_bytes() == (out_many / name).read_bytes()


def test_adult_reportable_aggregates_equal_an_independent_count(spark, tmp_path):
    release, out = _run(spark, tmp_path, None, sensitive_microdata_path=str(DATA / "adult.csv.gz"),
                        reporting_length=4, reporting_resolution=10, prefix="adult")
    frame = pd.read_csv(DATA / "adult.csv.gz", dtype=str, keep_default_na=False).replace("", np.nan)
    expected = {}
    for length in range(1, 5):
        for columns in itertools.combinations(frame.columns, length):
            for values, n in frame.groupby(list(columns), dropna=True).size().items():
                values = values if isinstance(values, tuple) else (values,)
                if n >= 10:
                    expected[frozenset(f"{c}:{v}" for c, v in zip(columns, values, strict=True))] = 10 * (n // 10)
    reportable = _as_counts(out / "release" / "adult_reportable_aggregates.tsv")
    assert reportable.pop(frozenset(["record_count"])) == 48840
    assert reportable == expected
    assert release.aggregates.rare_by_length["combo_count"].tolist() == [125, 5513, 86016, 612926]


def test_counting_uses_one_task_per_core_until_tables_are_large(spark):
    from ksynth_spark.aggregate import ROWS_PER_COUNTING_TASK, counting_partitions

    cores = spark.sparkContext.defaultParallelism
    assert counting_partitions(spark, 48_842) == cores
    assert counting_partitions(spark, 0) == cores
    large = (cores + 3) * ROWS_PER_COUNTING_TASK
    assert counting_partitions(spark, large) == cores + 3
    assert counting_partitions(spark, large + 1) == cores + 4


def test_a_column_with_many_values_is_encoded_by_a_join_like_the_others(spark, tmp_path):
    """Over 1,000 distinct values (an id-like column) switch the encoding from a literal map to a
    broadcast join; every record still decodes to its own cells."""
    from ksynth_spark.config import Config
    from ksynth_spark.load import _LITERAL_MAP_MAX, load_encoded

    n = _LITERAL_MAP_MAX + 500
    rows = [(f"id{i:05d}", "xy"[i % 2], "" if i % 3 == 0 else "uvw"[i % 3]) for i in range(n)]
    path = tmp_path / "ids.csv"
    path.write_text("case,a,b\n" + "".join(",".join(r) + "\n" for r in rows))
    data = load_encoded(spark, Config(sensitive_microdata_path=str(path), seed=1))
    assert (data.n_records, data.n_rows) == (n, n)
    label = {int(i): (c, v) for i, c, v in zip(data.attributes["attr_id"], data.attributes["column"],
                                                data.attributes["value"], strict=True)}
    decoded = sorted(tuple(sorted(label[a] for a in row["attrs"])) for row in data.rows.collect())
    expected = sorted(tuple(sorted([("case", c), ("a", a)] + ([("b", b)] if b else []))) for c, a, b in rows)
    assert decoded == expected
