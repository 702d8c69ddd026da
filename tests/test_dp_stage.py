"""Tests of :mod:`ksynth_spark.dp.stage`: DP releases on Spark over weighted distinct rows."""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from ksynth_spark.arrow_jobs import csr
from ksynth_spark.dp.stage import DpResult, dp_aggregates
from ksynth_spark.model import ROWS_SCHEMA, EncodedData, attribute_table
from tests.conftest import DATA
from tests.test_dp_noise import ZeroNoise
from tests.test_dp_postprocess import assert_d2_d3
from tests.test_dp_settings import dp_config


def encode(spark, headers: list[str], rows: list[list[str]], partitions: int = 2):
    """``(EncodedData, records as id lists)`` of string rows ("" and "0" absent): the records
    are held as distinct attribute sets with their weights."""
    present = [[(h, v) for h, v in zip(headers, row, strict=True) if v not in ("", "0")] for row in rows]
    counts = Counter(a for record in present for a in record)
    attributes = attribute_table([(c, v, n) for (c, v), n in counts.items()], headers)
    labelled = zip(attributes.attr_id, attributes.column, attributes.value, strict=True)
    index = {(c, v): int(i) for i, c, v in labelled}
    records = [sorted(index[a] for a in record) for record in present]
    distinct = Counter(tuple(r) for r in records)
    frame = spark.createDataFrame([(list(r), w) for r, w in distinct.items()], ROWS_SCHEMA).repartition(partitions)
    return EncodedData(rows=frame, attributes=attributes, headers=headers, n_records=len(rows),
                       n_rows=len(distinct)), records


def generated_rows(n: int = 300, seed: int = 3) -> tuple[list[str], list[list[str]]]:
    """Skewed categorical data with missing cells, correlated columns and repeated rows."""
    rng = np.random.default_rng(seed)
    headers = ["A", "B", "C", "D", "E"]
    rows = []
    for _ in range(n):
        a = int(rng.zipf(1.6)) % 6
        b = (a + int(rng.integers(0, 2))) % 4
        c = int(rng.zipf(2.0)) % 5
        d = int(rng.integers(0, 3)) if rng.random() > 0.2 else None
        e = int(rng.integers(0, 2))
        rows.append([f"a{a}", f"b{b}", f"c{c}", "" if d is None else f"d{d}", f"e{e}"])
    return headers, rows


def exact_counts(records: list[list[int]], max_length: int) -> dict[tuple[int, ...], int]:
    """Brute-force support of every combination up to max_length, record by record."""
    counts: Counter = Counter()
    for record in records:
        for length in range(1, max_length + 1):
            counts.update(itertools.combinations(sorted(record), length))
    return dict(counts)


def result_table(result: DpResult) -> dict[tuple[int, ...], int]:
    frame = result.aggregates.toPandas()
    assert (frame["length"] == frame["attrs"].map(len)).all()
    pairs = zip(frame["attrs"], frame["count"], strict=True)
    return {tuple(int(a) for a in attrs): int(count) for attrs, count in pairs}


@pytest.fixture(scope="module")
def generated(spark):
    headers, rows = generated_rows()
    data, records = encode(spark, headers, rows, partitions=3)
    assert data.n_rows < data.n_records  # some rows carry several records
    return data, records


def test_csr_handles_sliced_arrow_batches():
    batch = pa.RecordBatch.from_arrays(
        [pa.array([[1, 2], [], [3], [4, 5, 6]], pa.list_(pa.int32())), pa.array([5, 6, 7, 8], pa.int64())],
        names=["attrs", "weight"]).slice(1, 3)
    offsets, ids = csr(batch)
    assert batch.column("weight").to_numpy().tolist() == [6, 7, 8]
    assert offsets.tolist() == [0, 0, 1, 4] and ids.tolist() == [3, 4, 5, 6]


def test_zero_noise_release_equals_exact_counts(spark, generated):
    """No noise + Q = 100 (Delta = max |W|, no clipping) + fixed thresholds 0: the release is
    exactly every combination of length <= 3 whose attributes all pass the length-1 threshold,
    counted record by record (a distinct row adds its weight)."""
    data, records = generated
    config = dp_config(percentile_percentage=100, noise_threshold_type="fixed")
    result = dp_aggregates(spark, data, config, noise=ZeroNoise())
    rho_1 = result.spent["thresholds"][1]
    exact = exact_counts(records, 3)
    kept = {a for (a, *rest), n in exact.items() if not rest and n > rho_1}
    expected = {c: n for c, n in exact.items() if set(c) <= kept}
    assert result_table(result) == expected
    assert result.protected_record_count == len(records)
    assert result.spent["Delta"][1] == max(len(r) for r in records)


def test_seeded_release_invariants_and_partitioning(spark, generated, caplog):
    data, _ = generated
    config = dp_config(dp_test_seed=11, sigma_proportions=[1.0, 0.5, 1 / 3], noise_threshold_values={2: 0.55},
                       percentile_percentage=30)
    with caplog.at_level(logging.WARNING, logger="ksynth_spark.dp"):
        first = dp_aggregates(spark, data, config)
    assert "NOT differentially private" in caplog.text and "dp_test_seed is set" in caplog.text
    table = result_table(first)
    assert_d2_d3(table, set(data.attributes["attr_id"]), data.attribute_columns)
    assert {len(c) for c in table} == {1, 2, 3}
    spent = first.spent
    assert spent["differentially_private"] is False
    assert set(spent["sigma"]) == {1, 2, 3} and set(spent["Delta"]) == {1, 2, 3}
    assert spent["Delta"][2] < 10 and spent["Delta"][3] < 10  # below C(5, l): records are clipped
    assert spent["sigma"][2] / spent["sigma"][1] == pytest.approx(0.5)
    assert spent["noise_threshold_values"] == {2: 0.55, 3: 1.0}
    assert spent["sigma_proportions"] == [1.0, 0.5, 1 / 3]
    assert spent["eps_N"] == pytest.approx(0.005 * 4.0)
    assert first.protected_record_count is not None and first.protected_record_count > 0
    # same seed, different partitioning and Arrow batch size -> the very same release (A5 for DP)
    moved = dataclasses.replace(data, rows=data.rows.repartition(1))
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "7")
    try:
        assert result_table(dp_aggregates(spark, moved, config)) == table
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")


def test_d5_huge_fixed_threshold_reports_no_longer_combination(spark, generated):
    data, _ = generated
    config = dp_config(dp_test_seed=3, noise_threshold_type="fixed", noise_threshold_values={2: 1e9},
                       number_of_records_epsilon_proportion=None)
    result = dp_aggregates(spark, data, config)
    table = result_table(result)
    assert table and all(len(c) == 1 for c in table)
    assert result.protected_record_count is None
    assert result.spent["selected"][2] == 0 and result.spent["candidates"][3] == 0


def test_german_credit_release(spark):
    from ksynth_spark.load import load_encoded

    config = dp_config(sensitive_microdata_path=str(DATA / "german_credit.csv"), reporting_length=2,
                       dp_test_seed=1, noise_epsilon=1.0)
    data = load_encoded(spark, config)
    try:
        result = dp_aggregates(spark, data, config)
        table = result_table(result)
    finally:
        data.rows.unpersist()
    assert_d2_d3(table, set(data.attributes["attr_id"]), data.attribute_columns)
    singles = [n for c, n in table.items() if len(c) == 1]
    assert len(singles) > 20 and len([c for c in table if len(c) == 2]) > 100
    assert abs(result.protected_record_count - data.n_records) < 2000  # Laplace scale 1/0.005 = 200
