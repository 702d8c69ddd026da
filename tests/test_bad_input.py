"""Bad inputs get one clear error naming the problem and the fix, never a sensitive value,
and leave no half-written release behind."""

import os

import pytest

from ksynth_spark.config import config_from_dict
from ksynth_spark.errors import ConfigError, InputDataError
from ksynth_spark.pipeline import run_stages

SECRET = "Zebra-Secret-Value"


def _run(spark, tmp_path, text, **keys):
    path = tmp_path / "in.csv"
    if text is not None:
        path.write_text(text)
    config = config_from_dict({"sensitive_microdata_path": str(path), "output_dir": str(tmp_path / "out"),
                               "table_format": "parquet", "reporting_resolution": 2, **keys})
    return run_stages(spark, config, ("aggregate",))


@pytest.mark.parametrize(
    "text, keys, words",
    [
        (None, {}, ["not found", "sensitive_microdata_path"]),
        ("", {}, ["empty", "header row"]),
        ("a,b\n", {}, ["no data rows"]),
        ("a,b\nx,y\n", {"use_columns": ["a", "nope"]}, ["'nope'", "use_columns", "Known columns"]),
        ("a, a ,b\nx,y,z\n", {}, ["same name 'a'", "use_columns"]),
        ("a,b\nx,y\nx,y,z\n", {}, ["number of fields", "header"]),
        (f"id,a,b\n1,{SECRET},y\n1,other,y\n", {"subject_id": "ID"}, ["column(s): a", "multi_value_columns"]),
        ("id,a\n1,x\n ,y\n", {"subject_id": "id"}, ["empty Subject ID", "'id'"]),
        ("a,b\nx,y\n", {"subject_id": "person"}, ["subject_id column 'person'"]),
        ("a,b\nx,y\n", {"input_format": "parquet"}, ["as parquet", "input_format"]),
    ],
)
def test_bad_input_messages(spark, tmp_path, text, keys, words):
    with pytest.raises(InputDataError) as info:
        _run(spark, tmp_path, text, **keys)
    message = str(info.value)
    for word in words:
        assert word in message
    assert SECRET not in message
    out = tmp_path / "out"
    assert not (out / "release").exists() and not any(p.startswith(".staging") for p in os.listdir(out)) if out.exists() else True


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
    assert not [p for p in os.listdir(tmp_path / "out") if p.startswith(".staging")]
