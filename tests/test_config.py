"""Configuration: defaults of spec §6.3, validation messages naming the key and the fix."""

import json

import pytest

from ksynth_spark.config import Config, config_from_dict, load_config
from ksynth_spark.errors import ConfigError


def test_defaults_follow_the_spec():
    config = config_from_dict({"sensitive_microdata_path": "x.csv"})
    assert (config.reporting_length, config.reporting_resolution, config.synthesis_mode) == (3, 10, "row_seeded")
    assert config.record_limit == -1 and config.output_dir and config.prefix == "my"
    assert config.table_format == "delta" and config.input_format == "csv"
    assert config.number_of_records_epsilon_proportion == 0.005 and config.noise_epsilon == 4.0


@pytest.mark.parametrize(
    "data, words",
    [
        ({"reporting_resolution": 0}, ["reporting_resolution", ">= 1"]),
        ({"reporting_resolution": "ten"}, ["reporting_resolution", "integer"]),
        ({"synthesis_mode": "magic"}, ["synthesis_mode", "row_seeded"]),
        ({"reporting_lenght": 3}, ["reporting_lenght", "Did you mean 'reporting_length'"]),
        ({"table_format": "orc"}, ["table_format", "parquet"]),
        ({"spark": {"conf": {"executor.memory": "2g"}}}, ["executor.memory", "spark."]),
        ({"spark": {"mastre": "local"}}, ["mastre", "spark"]),
        ({"use_columns": "age"}, ["use_columns", "list"]),
        ({"percentile_epsilon_proportion": 1.5}, ["percentile_epsilon_proportion", "between 0 and 1"]),
        ({"dp_aggregates": True, "sigma_proportions": [1.0]}, ["sigma_proportions", "3 values"]),
    ],
)
def test_bad_values_name_the_key_and_the_fix(data, words):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"sensitive_microdata_path": "x.csv", **data})
    for word in words:
        assert word in str(info.value)


def test_missing_path_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="sensitive_microdata_path is required"):
        config_from_dict({})
    with pytest.raises(ConfigError, match="Config file not found"):
        load_config(str(tmp_path / "nope.yaml"))


def test_yaml_relative_paths_overrides_and_legacy_keys(tmp_path):
    (tmp_path / "c.yaml").write_text("sensitive_microdata_path: data/x.csv\nseeded: false\nmemory_limit_pct: 80\n"
                                     "synthesis_mode: Value_Seeded\nnoise_threshold_values: {'2': 0.5}\n")
    config = load_config(str(tmp_path / "c.yaml"), {"reporting_length": 4})
    assert config.sensitive_microdata_path == str(tmp_path / "data" / "x.csv")
    assert config.synthesis_mode == "value_seeded"  # lower-cased; explicit mode wins over 'seeded'
    assert config.noise_threshold_values == {2: 0.5} and config.reporting_length == 4
    assert config.effective_reporting_length(3) == 3
    assert Config(sensitive_microdata_path="x", reporting_length=-1).effective_reporting_length(7) == 7
    assert json.loads(config.to_json(derived={"n": 1}))["derived"] == {"n": 1}
