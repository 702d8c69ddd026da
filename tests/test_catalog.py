"""Catalog tables in and out (local catalog): input_format: table and output_catalog."""

import os

import pytest

from ksynth_spark.config import config_from_dict
from ksynth_spark.errors import OutputError
from ksynth_spark.pipeline import run_stages
from tests.conftest import DATA


def test_table_in_and_managed_tables_out(spark, tmp_path):
    spark.sql("CREATE DATABASE IF NOT EXISTS ksynth_in")
    spark.sql("CREATE DATABASE IF NOT EXISTS ksynth_out")
    (spark.read.option("header", "true").csv(str(DATA / "german_credit.csv"))
     .write.mode("overwrite").format("parquet").saveAsTable("ksynth_in.german"))
    config = config_from_dict({
        "sensitive_microdata_path": "ksynth_in.german", "input_format": "table", "reporting_length": 2,
        "output_dir": str(tmp_path / "out"), "prefix": "gc", "table_format": "parquet",
        "output_catalog": "ksynth_out", "output_table_names": {"reportable_aggregates": "gc_public_counts"},
    })
    release = run_stages(spark, config, ("aggregate",))
    assert release.data.n_records == 1000
    names = {t.name for t in spark.catalog.listTables("ksynth_out")}
    assert {"gc_public_counts", "gc_sensitive_aggregates", "gc_attribute_dictionary", "gc_encoded_rows"} <= names
    released = spark.table("ksynth_out.gc_public_counts")
    lines = (tmp_path / "out" / "release" / "gc_reportable_aggregates.tsv").read_text().splitlines()
    assert released.count() == len(lines) - 2  # header and record_count rows
    assert not os.path.exists(tmp_path / "out" / "tables")


def test_missing_output_schema_is_a_clear_error(spark, tmp_path):
    config = config_from_dict({"sensitive_microdata_path": str(DATA / "german_credit.csv"), "reporting_length": 1,
                               "output_dir": str(tmp_path / "out"), "table_format": "parquet",
                               "output_catalog": "no_such_schema"})
    with pytest.raises(OutputError, match="CREATE SCHEMA no_such_schema"):
        run_stages(spark, config, ("aggregate",))
    assert not (tmp_path / "out" / "release").exists()
