"""``ksynth verify``: the independent k-anonymity audit of a synthetic file (TSV/CSV/Parquet)
against the sensitive table, through the Python API and the CLI function (exit statuses)."""

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from ksynth_spark.cli import main
from ksynth_spark.config import config_from_dict
from ksynth_spark.errors import InputDataError
from ksynth_spark.load import load_encoded
from ksynth_spark.verify import SensitiveBitsets, _words, detect_format, set_supports, verify, verify_release
from tests.test_aggregate import WORKED_EXAMPLE
from tests.test_evaluate import K_ANONYMOUS

PLANTED = "PLANTEDzq9x"  # a unique sensitive value: it must never appear in a report
SENSITIVE = WORKED_EXAMPLE + f"a2,b1,{PLANTED}\n"
SENSITIVE_VALUES = {"a1", "a2", "b1", "b2", "c1", "c2", "c3", PLANTED}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The sensitive CSV (worked example + a planted unique row) and a k-anonymous synthetic set (k = 3)."""
    root = tmp_path_factory.mktemp("verify")
    (root / "sensitive.csv").write_text(SENSITIVE)
    frame = pd.DataFrame([{a.split(":")[0]: a.split(":")[1] for a in record} for record in K_ANONYMOUS],
                         columns=["A", "B", "C"])
    frame.fillna("").to_csv(root / "synthetic.tsv", sep="\t", index=False)
    frame.to_parquet(root / "synthetic.parquet", index=False)  # empty cells as nulls
    return root


def _config(files, **keys):
    return config_from_dict({"sensitive_microdata_path": str(files / "sensitive.csv"), "reporting_length": 2,
                             "reporting_resolution": 3, "table_format": "parquet", **keys})


def _strings(value):
    """Every key and string leaf of a JSON document."""
    if isinstance(value, dict):
        return set(value) | set().union(*(_strings(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_strings(v) for v in value)) if value else set()
    return {value} if isinstance(value, str) else set()


def _expected_pass(report):
    assert report["passed"] is True
    assert report["synthetic_records"] == 18 and report["distinct_synthetic_records"] == 6
    assert report["min_support"] == 3 and report["records_below_k"] == 0
    assert report["combinations_checked"] == 10 and report["combinations_below_k"] == 0
    # B:b1 has n = 6 with the planted row: floor_3 = 6, synthetic 3; every other attribute matches
    assert report["single_attribute_deviations"] == {"attributes_checked": 8, "attributes_deviating": 1,
                                                     "max_abs_deviation": 3}


def test_a_k_anonymous_tsv_passes_and_an_unknown_column_is_named_and_ignored(spark, files):
    frame = pd.read_csv(files / "synthetic.tsv", sep="\t", dtype=str, keep_default_na=False)
    frame.insert(1, " Notes ", [f"note{i}ZZ" for i in range(len(frame))])
    frame.to_csv(files / "with_notes.tsv", sep="\t", index=False)
    report = verify(spark, _config(files), str(files / "with_notes.tsv"))
    _expected_pass(report)
    assert report["unknown_columns"] == ["Notes"] and report["synthetic_values_unknown_to_sensitive"] == 0
    assert not [s for s in _strings(report) if "ZZ" in s]


def test_parquet_input_and_in_memory_records_give_the_same_report(spark, files):
    report = verify(spark, _config(files), str(files / "synthetic.parquet"), 2)
    _expected_pass(report)
    assert report["unknown_columns"] == []
    data = load_encoded(spark, _config(files))
    ids = {label: i for i, label in enumerate(data.labels())}
    distinct = Counter(tuple(sorted(ids[a] for a in r)) for r in K_ANONYMOUS)
    records = spark.createDataFrame([(list(r), n) for r, n in distinct.items()], "attrs array<int>, weight long")
    assert verify_release(spark, data, records, 3, 2) == report


def test_the_sensitive_table_as_synthetic_fails_without_printing_a_value(spark, files, capsys):
    report_path = files / "report.json"
    status = main(["verify", "--sensitive", str(files / "sensitive.csv"), "--synthetic", str(files / "sensitive.csv"),
                   "--k", "3", "--length", "2", "--report", str(report_path), "--log-level", "INFO"])
    captured = capsys.readouterr()
    assert status == 1
    report = json.loads(captured.out)
    assert json.loads(report_path.read_text()) == report
    assert report["passed"] is False and report["min_support"] == 1
    assert report["records_below_k"] == 13  # every sensitive record is rarer than 3 on all its attributes
    assert report["combinations_below_k_by_length"] == {"1": 2, "2": 10}  # C:c3, C:PLANTED; 9 + 1 new pair
    for text in (captured.out, captured.err, report_path.read_text()):
        assert PLANTED not in text
    assert not _strings(report) & SENSITIVE_VALUES


def test_a_value_unknown_to_the_sensitive_data_has_support_zero(spark, files, capsys):
    (files / "fabricated.csv").write_text("A,B,C\n" + "a1,b1,\n" * 3 + "a1,,c9UNSEEN\n")
    status = main(["verify", "--sensitive", str(files / "sensitive.csv"), "--synthetic", str(files / "fabricated.csv"),
                   "--k", "3"])
    captured = capsys.readouterr()
    assert status == 1 and "UNSEEN" not in captured.out + captured.err
    report = json.loads(captured.out)
    assert report["min_support"] == 0 and report["records_below_k"] == 1
    assert report["synthetic_values_unknown_to_sensitive"] == 1
    assert report["combinations_below_k_by_length"] == {"1": 1, "2": 1, "3": 0}  # default length 3


def test_input_errors_exit_with_status_2(files, capsys):
    assert main(["verify", "--sensitive", str(files / "sensitive.csv"), "--synthetic", str(files / "synthetic.txt"),
                 "--k", "3"]) == 2
    assert "--format" in capsys.readouterr().err
    assert main(["verify", "--synthetic", str(files / "synthetic.tsv"), "--k", "3"]) == 2
    sensitive, synthetic = str(files / "sensitive.csv"), str(files / "synthetic.tsv")
    assert main(["verify", "--sensitive", sensitive, "--synthetic", synthetic]) == 2


def test_format_detection():
    assert detect_format("x/syn.tsv", None) == "tsv" and detect_format("syn.csv.gz", None) == "csv"
    assert detect_format("out/syn.parquet/", None) == "parquet" and detect_format("syn.data", "TSV") == "tsv"
    with pytest.raises(InputDataError):
        detect_format("syn.data", None)
    with pytest.raises(InputDataError):
        detect_format("syn.tsv", "xlsx")


def test_prefix_shared_supports_equal_brute_force_counts():
    """The audit's compiled support loop (sets visited in sorted order, shared prefixes ANDed once)
    gives every set's support as counted with Python sets: sets sharing prefixes, the empty set,
    duplicates and an id no sensitive row holds."""
    rng = np.random.default_rng(4)
    n_rows, n_ids = 700, 30
    rows = [set(rng.choice(n_ids - 1, rng.integers(0, 7), replace=False).tolist()) for _ in range(n_rows)]
    weights = rng.integers(1, 40, n_rows)
    order = np.argsort(-weights, kind="stable")
    rows, weights = [rows[i] for i in order], weights[order]
    n_words = -(-n_rows // 64)
    bits = np.stack([_words(np.array([e for e in range(n_rows) if a in rows[e]], dtype=np.int64), n_words)
                     for a in range(n_ids)])
    planes = np.stack([_words(np.flatnonzero((weights >> b) & 1), n_words)
                       for b in range(int(weights.max()).bit_length())])
    used = planes != 0
    plane_words = np.where(used.any(axis=1), n_words - np.argmax(used[:, ::-1], axis=1), 0).astype(np.int64)
    index = SensitiveBitsets(bits, planes, plane_words, int(weights.sum()))
    sets = [sorted(rng.choice(n_ids, rng.integers(0, 5), replace=False).tolist()) for _ in range(400)]
    sets += [sorted(rows[e])[:j] for e in range(0, n_rows, 7) for j in range(len(rows[e]) + 1)] + [[], [n_ids - 1]]
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sets])]).astype(np.int64)
    ids = np.array([a for s in sets for a in s], dtype=np.int64)
    expected = [sum(int(w) for row, w in zip(rows, weights, strict=True) if set(s) <= row) for s in sets]
    assert set_supports(index, offsets, ids).tolist() == expected
