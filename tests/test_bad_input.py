"""Bad inputs through the Python API (``run_stages``, as notebooks call it): one typed error naming
the problem and the fix, never a sensitive value, and no half-written release. The command
line's exit statuses and messages for ~60 bad inputs are in tests/test_robustness_matrix.py."""

import os

import pytest

from ksynth_spark.config import config_from_dict
from ksynth_spark.errors import ConfigError, InputDataError, OutputError
from ksynth_spark.pipeline import run_stages
from ksynth_spark.run_state import LOCK_NAME

SECRET = "Zebra-Secret-Value"


def _run(spark, tmp_path, text, **keys):
    path = tmp_path / "in.csv"
    if text is not None:
        path.write_text(text)
    config = config_from_dict({"sensitive_microdata_path": str(path), "output_dir": str(tmp_path / "out"),
                               "table_format": "parquet", "reporting_resolution": 2, **keys})
    return run_stages(spark, config, ("aggregate",))


@pytest.mark.parametrize(
    "text, keys, error, words",
    [
        (None, {}, InputDataError, ["not found", "sensitive_microdata_path"]),
        ("a,b\n", {}, InputDataError, ["no data rows"]),
        ("a,b\nx,y\n", {"use_columns": ["a", "nope"]}, InputDataError, ["'nope'", "use_columns", "not shown"]),
        (f"a,b\nx,y\nx,{SECRET},z\n", {}, InputDataError, ["fields", "header"]),
        (f"id,a,b\n1,{SECRET},y\n1,other,y\n2,x,y\n2,x,y\n", {"subject_id": "ID"}, InputDataError,
         ["column(s): a", "multi_value_columns"]),
        ("a,b\nx,y\nx,y\n", {"reporting_resolution": 5}, ConfigError, ["larger than the number of records"]),
        ("a,b\nx,y\n", {"output_dir": "/sys/ksynth-bad-input"}, OutputError, ["cannot be created"]),
    ],
)
def test_bad_input_raises_one_typed_error(spark, tmp_path, text, keys, error, words):
    with pytest.raises(error) as info:
        _run(spark, tmp_path, text, **keys)
    message = str(info.value)
    for word in words:
        assert word in message
    assert SECRET not in message and "\n" not in message
    out = tmp_path / "out"
    if out.exists():
        assert not {"release", "sensitive", "tables", LOCK_NAME} & set(os.listdir(out))
        assert not [p for p in os.listdir(out) if p.startswith(".staging")]


@pytest.mark.parametrize("keys, key", [({"reporting_resolution": 0}, "reporting_resolution"),
                                       ({"synthesis_mode": "bogus"}, "synthesis_mode")])
def test_bad_config_values(tmp_path, keys, key):
    with pytest.raises(ConfigError, match=key):
        config_from_dict({"sensitive_microdata_path": "x.csv", **keys})


def test_failed_run_keeps_the_previous_release(spark, tmp_path, monkeypatch):
    _run(spark, tmp_path, "a,b\nx,y\nx,y\n")
    before = (tmp_path / "out" / "release" / "my_reportable_aggregates.tsv").read_text()
    import ksynth_spark.pipeline as pipeline

    def explode(release):
        raise InputDataError("boom")

    monkeypatch.setitem(pipeline.STAGE_FUNCTIONS, "aggregate", explode)
    with pytest.raises(InputDataError):
        _run(spark, tmp_path, "a,b\nx,z\nx,z\n")
    assert (tmp_path / "out" / "release" / "my_reportable_aggregates.tsv").read_text() == before
    assert not [p for p in os.listdir(tmp_path / "out") if p.startswith(".staging") or p == LOCK_NAME]
