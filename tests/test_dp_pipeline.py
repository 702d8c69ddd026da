"""The DP release path end to end: DP aggregates → aggregate_seeded synthesis → evaluation kept
restricted → showcase, with the budget actually spent recorded in the effective config."""

import json
import logging

import pandas as pd
import pytest

from ksynth_spark.config import config_from_dict
from ksynth_spark.errors import ConfigError
from ksynth_spark.pipeline import run_stages
from tests.conftest import DATA


def test_dp_release_uses_only_dp_aggregates(spark, tmp_path, caplog):
    config = config_from_dict({
        "sensitive_microdata_path": str(DATA / "german_credit.csv"), "reporting_length": 2,
        "dp_aggregates": True, "synthesis_mode": "aggregate_seeded", "noise_epsilon": 4.0, "dp_test_seed": 5,
        "seed": 3, "output_dir": str(tmp_path / "out"), "prefix": "dp", "table_format": "parquet",
    })
    with caplog.at_level(logging.WARNING):
        release = run_stages(spark, config)
    assert "NOT differentially private" in caplog.text
    out = tmp_path / "out"
    reportable = pd.read_csv(out / "release" / "dp_reportable_aggregates.tsv", sep="\t", dtype=str,
                             keep_default_na=False)
    dp_table = release.dp.aggregates.toPandas()
    assert reportable.iloc[0].tolist() == ["record_count", str(release.dp.protected_record_count)]
    assert len(reportable) - 1 == len(dp_table)
    assert sorted(reportable["protected_count"].iloc[1:].astype(int)) == sorted(dp_table["count"].astype(int))
    # the synthetic data is built from the DP table: its single-attribute counts equal the DP singles
    synthetic = pd.read_csv(out / "release" / "dp_synthetic_microdata.tsv", sep="\t", dtype=str, keep_default_na=False)
    pairs = zip(reportable["selections"], reportable["protected_count"], strict=True)
    singles = {s: int(c) for s, c in pairs if ";" not in s
               and s != "record_count"}
    for label, count in singles.items():
        column, value = label.split(":")
        assert int((synthetic[column] == value).sum()) == count
    # evaluation against the sensitive data stays restricted; the release holds DP-derived files only
    released = {p.name for p in (out / "release").iterdir()}
    assert released == {"dp_reportable_aggregates.tsv", "dp_reportable_summary.tsv", "dp_synthetic_microdata.tsv",
                        "dp_synthetic_microdata_long.tsv", "dp_synthetic_aggregates.tsv", "dp_showcase.html"}
    assert (out / "sensitive" / "dp_preservation_by_length.tsv").exists()
    spent = json.loads((out / "dp_config.json").read_text())["derived"]["dp"]
    assert spent["epsilon"] == 4.0 and len(spent["sigma"]) == 2 and spent["differentially_private"] is False


def test_dp_requires_aggregate_seeded():
    with pytest.raises(ConfigError, match="aggregate_seeded"):
        config_from_dict({"sensitive_microdata_path": "x.csv", "dp_aggregates": True, "reporting_length": 2})
