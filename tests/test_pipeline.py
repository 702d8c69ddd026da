"""The pipeline: a release committed by ``run``, then stages run alone on the same output_dir —
they build on what was committed (no reload of the sensitive table for evaluate/showcase) and
never degrade the release; the Python API on a pandas DataFrame."""

from __future__ import annotations

import json

import pytest

import ksynth_spark.load
import ksynth_spark.pipeline
from ksynth_spark.config import config_from_dict
from ksynth_spark.pipeline import run_stages
from ksynth_spark.report.showcase import extract_showcase_data
from tests.conftest import DATA


@pytest.fixture(scope="module")
def committed(spark, tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline") / "out"
    config = config_from_dict({"sensitive_microdata_path": str(DATA / "german_credit.csv"), "output_dir": str(out),
                               "reporting_length": 2, "reporting_resolution": 10, "seed": 3, "prefix": "gc",
                               "table_format": "parquet"})
    run_stages(spark, config, ("aggregate", "generate", "evaluate", "showcase"))
    return config, out


def _effective(out) -> dict:
    return json.loads((out / "gc_config.json").read_text())


def test_stages_run_alone_keep_the_release_and_do_not_reload_the_sensitive_table(spark, committed, monkeypatch):
    config, out = committed
    before = _effective(out)
    assert before["derived"]["verification"]["passed"] is True
    page_before = extract_showcase_data((out / "release" / "gc_showcase.html").read_text())
    microdata = (out / "release" / "gc_synthetic_microdata.tsv").read_bytes()

    def no_reload(*args, **kwargs):
        raise AssertionError("the sensitive table was read again")

    monkeypatch.setattr(ksynth_spark.load, "load_encoded", no_reload)
    monkeypatch.setattr(ksynth_spark.pipeline, "load_encoded", no_reload)
    run_stages(spark, config, ("showcase",))
    run_stages(spark, config, ("evaluate", "showcase"))
    after = _effective(out)
    assert after["derived"]["verification"] == before["derived"]["verification"]
    assert set(after["stage_runs"]) == {"aggregate", "generate", "evaluate", "showcase"}
    page_after = extract_showcase_data((out / "release" / "gc_showcase.html").read_text())
    assert page_after["evaluation"] is not None and page_before["evaluation"] is not None
    assert (out / "release" / "gc_synthetic_microdata.tsv").read_bytes() == microdata
    assert not [p.name for p in out.iterdir() if p.name.startswith(".staging")]


def test_the_long_form_tsv_is_written_by_the_configured_policy():
    from dataclasses import replace

    from ksynth_spark.config import Config
    from ksynth_spark.pipeline import LONG_FORM_AUTO_MAX_RECORDS, writes_long_form

    auto = Config(sensitive_microdata_path="x.csv", seed=1)
    assert writes_long_form(auto, LONG_FORM_AUTO_MAX_RECORDS)
    assert not writes_long_form(auto, LONG_FORM_AUTO_MAX_RECORDS + 1)
    assert writes_long_form(replace(auto, synthetic_long_form="always"), 10**9)
    assert not writes_long_form(replace(auto, synthetic_long_form="never"), 10)
