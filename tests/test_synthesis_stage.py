"""Spark generate stage (ksynth_spark.synthesis.stage) on the bundled data: invariants
S1/S2/S3/S5/S6/S7 and determinism across partitionings.

Supports and counts are recomputed independently from the CSV files with pandas (group sizes
of the sensitive rows on each synthetic record's columns), never with the code under test.
Only synthetic outputs are collected.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from ksynth_spark.config import Config
from ksynth_spark.load import load_encoded
from ksynth_spark.numerics import floor_k
from ksynth_spark.synthesis import stage as S
from tests.conftest import DATA

GERMAN = str(DATA / "german_credit.csv")
ADULT = str(DATA / "adult.csv.gz")


# ------------------------------------------------------------------------------------ independent helpers
def sensitive_frame(path: str) -> pd.DataFrame:
    """The sensitive table read with pandas: trimmed strings, "" for absent cells (spec §1.4)."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.columns = [c.strip() for c in frame.columns]
    frame = frame.apply(lambda col: col.str.strip())
    return frame.mask(frame == "0", "")


def supports(sensitive: pd.DataFrame, synthetic: pd.DataFrame) -> np.ndarray:
    """Sensitive support of every synthetic row's non-empty cells.

    Each sensitive ``(column, value)`` becomes a packed boolean row mask (an empty synthetic
    cell uses an all-true mask); a synthetic row's support is the popcount of the AND of its
    cells' masks.
    """
    headers = list(sensitive.columns)
    n = len(sensitive)
    masks = [np.packbits(np.ones(n, dtype=bool))]
    cell_mask = np.zeros((len(synthetic), len(headers)), dtype=np.int64)
    for c, h in enumerate(headers):
        column = sensitive[h].to_numpy()
        for value in pd.unique(synthetic[h]):
            if value != "":
                cell_mask[(synthetic[h] == value).to_numpy(), c] = len(masks)
                masks.append(np.packbits(column == value))
    masks = np.stack(masks)
    result = np.zeros(len(synthetic), dtype=np.int64)
    for start in range(0, len(synthetic), 4096):
        chosen = cell_mask[start:start + 4096]
        rows = masks[chosen[:, 0]]
        for c in range(1, len(headers)):
            rows &= masks[chosen[:, c]]
        result[start:start + 4096] = np.bitwise_count(rows).sum(axis=1)
    return result


def cell_counts(frame: pd.DataFrame, headers: list[str]) -> Counter:
    counts: Counter = Counter()
    for h in headers:
        counts.update((h, v) for v in frame[h] if v != "")
    return counts


def reportable_frame(spark, data, sensitive: pd.DataFrame, k: int, length: int):
    """k-anonymous aggregates counted with pandas group sizes, with the data's attribute ids."""
    table = data.attributes
    ids = {(c, v): int(i) for i, c, v in zip(table.attr_id, table.column, table.value, strict=True)}
    rows = []
    for size in range(1, length + 1):
        for columns in itertools.combinations(sensitive.columns, size):
            present = sensitive[(sensitive[list(columns)] != "").all(axis=1)]
            for values, count in present.groupby(list(columns)).size().items():
                values = values if isinstance(values, tuple) else (values,)
                if count >= k:
                    attrs = sorted(ids[(c, v)] for c, v in zip(columns, values, strict=True))
                    rows.append((attrs, size, int(floor_k(count, k)), ""))
    return spark.createDataFrame(rows, "attrs array<int>, length int, protected_count long, selections string")


def synthesize(spark, data, reportable=None, length=None, **settings):
    result = S.synthesize(spark, data, Config(sensitive_microdata_path="unused", **settings), reportable, length)
    return result, S.microdata_rows(data, result.records, list(data.headers)).toPandas()


def record_list(result) -> list[tuple]:
    """The synthetic records (sorted id tuples) in output order, copies expanded."""
    frame = result.records.orderBy("syn_start").toPandas()
    return [tuple(a) for a, n in zip(frame["attrs"], frame["count"], strict=True) for _ in range(int(n))]


def assert_sorted_rows(frame: pd.DataFrame, headers: list[str]) -> None:
    """S7: non-empty cells non-increasing, then rows in ordinal lexicographic order."""
    rows = frame[headers].values.tolist()
    keys = [(-sum(1 for c in row if c), [c.encode("utf-8") for c in row]) for row in rows]
    assert keys == sorted(keys)
    assert frame["syn_id"].tolist() == list(range(len(frame)))


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def german(spark):
    return load_encoded(spark, Config(sensitive_microdata_path=GERMAN)), sensitive_frame(GERMAN)


@pytest.fixture(scope="module")
def adult(spark):
    return load_encoded(spark, Config(sensitive_microdata_path=ADULT)), sensitive_frame(ADULT)


def dataset(request, name):
    return request.getfixturevalue(name)


# ------------------------------------------------------------------------------------ seeded modes
@pytest.mark.parametrize("name, mode, k, seed", [
    ("german", "row_seeded", 10, 1),
    ("adult", "row_seeded", 5, 2),
    ("german", "value_seeded", 5, 3),
    ("adult", "value_seeded", 10, 4),
])
def test_seeded_modes_protect_and_calibrate(spark, request, name, mode, k, seed):
    """S1: support >= k; S2: every attribute count = floor_k(n(a)); no empty record; S7."""
    data, sensitive = dataset(request, name)
    result, frame = synthesize(spark, data, synthesis_mode=mode, reporting_resolution=k, seed=seed)
    headers = list(data.headers)
    assert result.n_records == len(frame) > 0 and result.stats["seed"] == seed
    assert (frame[headers] != "").any(axis=1).all(), "empty synthetic record"
    assert supports(sensitive, frame).min() >= k
    expected = Counter({key: floor_k(n, k) for key, n in cell_counts(sensitive, headers).items() if n >= k})
    assert cell_counts(frame, headers) == expected
    assert result.stats["records_out"] == result.n_records
    assert result.records_per_sensitive_record == pytest.approx(result.n_records / len(sensitive))
    assert_sorted_rows(frame, headers)


def test_row_seeded_long_form_matches_microdata(spark, german):
    data, _ = german
    result, frame = synthesize(spark, data, synthesis_mode="row_seeded", reporting_resolution=10, seed=1)
    long = S.long_form_rows(data, result.records).toPandas()
    headers = list(data.headers)
    expected = [(i, h, v, f"{h}:{v}") for i, row in zip(frame["syn_id"], frame[headers].values.tolist(), strict=True)
                for h, v in zip(headers, row, strict=True) if v != ""]
    assert list(long.itertuples(index=False, name=None)) == expected


@pytest.mark.parametrize("name, k", [("german", 10), ("adult", 5)])
def test_unseeded_protects_and_keeps_n(spark, request, name, k):
    """S1 for the non-empty cells of every record and S3: exactly N records."""
    data, sensitive = dataset(request, name)
    result, frame = synthesize(spark, data, synthesis_mode="unseeded", reporting_resolution=k, seed=5)
    assert result.n_records == len(frame) == len(sensitive) == data.n_records
    assert supports(sensitive, frame).min() >= k
    assert_sorted_rows(frame, list(data.headers))


# ------------------------------------------------------------------------------------ aggregate_seeded
@pytest.mark.parametrize("name, k, length", [("german", 5, 3), ("adult", 10, 2)])
def test_aggregate_seeded_stays_inside_the_reportable_table(spark, request, name, k, length):
    """S5: every combination of length <= R is a reportable key; single counts = reportable."""
    data, sensitive = dataset(request, name)
    reportable = reportable_frame(spark, data, sensitive, k, length)
    table = reportable.toPandas()
    keys = {tuple(a) for a in table["attrs"]}
    result = S.synthesize(spark, data, Config(sensitive_microdata_path="unused", synthesis_mode="aggregate_seeded",
                                              reporting_resolution=k, seed=6), reportable, length)
    records = record_list(result)
    assert records and all(records)
    for record in records:
        for size in range(1, min(length, len(record)) + 1):
            assert all(c in keys for c in itertools.combinations(record, size))
    singles = {a[0]: n for a, n in zip(table["attrs"], table["protected_count"], strict=True) if len(a) == 1}
    got = Counter(a for r in records for a in r)
    assert dict(got) == singles
    assert result.records_per_sensitive_record == pytest.approx(len(records) / data.n_records)


def test_aggregate_seeded_target(spark, german):
    """S6: exactly T records."""
    data, sensitive = german
    reportable = reportable_frame(spark, data, sensitive, 10, 2)
    for target in (37, 2500):
        config = Config(sensitive_microdata_path="unused", synthesis_mode="aggregate_seeded",
                        reporting_resolution=10, seed=2, aggregate_seeded_target_number_of_records=target)
        assert S.synthesize(spark, data, config, reportable, 2).n_records == target


# ------------------------------------------------------------------------------------ suppression
def test_row_seeded_suppresses_phase1_overshoot(spark):
    """Phase 1 keeps every a1 of 23 identical records while floor_5(23) = 20: SuppressToTargets
    removes exactly e(a) occurrences, in the copies' random order, across partitions, and drops
    the copies it empties (Q10)."""
    from ksynth_spark.model import EncodedData, attribute_table
    from ksynth_spark.randomness import PHASE_SUPPRESS, row_hashes, stream_base
    from ksynth_spark.synthesis.suppression import copy_key

    attributes = attribute_table([("A", "a1", 23), ("A", "a2", 4), ("B", "b1", 27)], ["A", "B"])
    rows = spark.createDataFrame([([0, 2], 23), ([1, 2], 4)], "attrs array<int>, weight long").repartition(2)
    data = EncodedData(rows=rows, attributes=attributes, headers=["A", "B"], n_records=27, n_rows=2)
    result, frame = synthesize(spark, data, synthesis_mode="row_seeded", reporting_resolution=5, seed=11)
    # phase 1 is forced here: {a1, b1} for the 23 a1 copies, {b1} for the 4 a2 copies (n(a2) < k).
    # Their groups are (row hash, 0); copies walk in ascending (key, group, copy) order.
    base = stream_base(11, PHASE_SUPPRESS)
    hashes = row_hashes(np.array([0, 2, 4]), np.array([0, 2, 1, 2]))
    group_ids = S._group_ids(1, hashes, np.zeros(2, np.int64))
    copies = sorted((int(copy_key(base, g, j)), int(g), j, record)
                    for g, record, count in zip(group_ids, ({0, 2}, {2}), (23, 4), strict=True) for j in range(count))
    excess = {0: 3, 2: 2}
    expected = []
    for *_, record in copies:
        kept = set(record)
        for a in sorted(record):
            if excess.get(a, 0) > 0:
                kept.discard(a)
                excess[a] -= 1
        expected.append(kept)
    labels = {0: ("A", "a1"), 2: ("B", "b1")}
    want = sorted(tuple(dict(labels[a] for a in r).get(h, "") for h in ("A", "B")) for r in expected if r)
    assert sorted(map(tuple, frame[["A", "B"]].values.tolist())) == want
    assert result.stats["occurrences_suppressed"] == 5
    assert cell_counts(frame, ["A", "B"]) == Counter({("A", "a1"): 20, ("B", "b1"): 25})


# ------------------------------------------------------------------------------------ determinism
@pytest.mark.parametrize("mode", ["row_seeded", "unseeded"])
def test_same_seed_same_output_across_partitionings(spark, german, mode):
    """Byte-identical output for a seed, whatever the input partitions and shuffle partitions."""
    data, _ = german
    first = synthesize(spark, data, synthesis_mode=mode, reporting_resolution=10, seed=7)[1]
    again = synthesize(spark, data, synthesis_mode=mode, reporting_resolution=10, seed=7)[1]
    previous = spark.conf.get("spark.sql.shuffle.partitions")
    try:
        spark.conf.set("spark.sql.shuffle.partitions", "3")
        reshaped = dataclasses.replace(data, rows=data.rows.repartition(5))
        moved = synthesize(spark, reshaped, synthesis_mode=mode, reporting_resolution=10, seed=7)[1]
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", previous)
    other = synthesize(spark, data, synthesis_mode=mode, reporting_resolution=10, seed=8)[1]
    assert first.equals(again) and first.equals(moved)
    assert not first.equals(other)
