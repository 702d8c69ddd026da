"""Notebook parameters: the Databricks widgets every ksynth notebook shows, turned into a Config.

Shared by the notebooks in ``notebooks/`` so each one only declares the widgets and runs stages.
An empty widget (or ``(config)``) keeps the value of the config file / inline keys / defaults; a
filled widget wins over both.
"""

from __future__ import annotations

import logging

import yaml

from ksynth_spark.config import Config, config_from_dict, load_config
from ksynth_spark.errors import ConfigError

logger = logging.getLogger(__name__)

# widget name -> config key (values are strings; the config validates and converts them)
_WIDGET_KEYS = [("output_dir", "output_dir"), ("output_catalog", "output_catalog"), ("k", "reporting_resolution"),
                ("reporting_length", "reporting_length"), ("synthesis_mode", "synthesis_mode"), ("seed", "seed")]


def define_widgets(dbutils) -> None:
    """Declares the ksynth widgets (config path, inline YAML, input, output, k, length, mode, seed)."""
    widgets = dbutils.widgets
    widgets.text("config_path", "", "01 config YAML path (optional)")
    widgets.text("config_yaml", "", "02 inline YAML keys (optional)")
    widgets.text("input_table", "", "03 sensitive input: table or path")
    widgets.dropdown("input_format", "table", ["table", "csv", "parquet", "delta"], "04 input format")
    widgets.text("output_dir", "", "05 output directory (UC volume)")
    widgets.text("output_catalog", "", "06 output catalog.schema")
    widgets.text("k", "", "07 privacy resolution k")
    widgets.text("reporting_length", "", "08 reporting length")
    widgets.dropdown("synthesis_mode", "(config)",
                     ["(config)", "row_seeded", "unseeded", "value_seeded", "aggregate_seeded"], "09 synthesis mode")
    widgets.text("seed", "", "10 seed (empty: drawn and recorded)")


def _widget(dbutils, name: str) -> str | None:
    value = dbutils.widgets.get(name).strip()
    return None if value in ("", "(config)") else value


def config_from_widgets(dbutils) -> Config:
    """Builds the validated Config from the widgets.

    Raises:
        ConfigError: For invalid keys or values, or a ``config_yaml`` that is not a YAML mapping
            (one message naming the key).
    """
    try:
        keys = yaml.safe_load(_widget(dbutils, "config_yaml") or "{}") or {}
    except yaml.YAMLError:
        raise ConfigError("The config_yaml widget is not valid YAML: write keys as 'key: value' lines, "
                          "e.g. 'prefix: ctdc'.") from None
    if not isinstance(keys, dict):
        raise ConfigError("The config_yaml widget must hold YAML keys, e.g. 'prefix: ctdc'.")
    if _widget(dbutils, "input_table"):
        keys.update(sensitive_microdata_path=_widget(dbutils, "input_table"),
                    input_format=_widget(dbutils, "input_format"))
    for name, key in _WIDGET_KEYS:
        if _widget(dbutils, name) is not None:
            keys[key] = _widget(dbutils, name)
    path = _widget(dbutils, "config_path")
    config = load_config(path, keys) if path else config_from_dict(keys)
    logger.info("input %s (%s), k = %d, reporting_length = %d, %s, output %s", config.sensitive_microdata_path,
             config.input_format, config.k, config.reporting_length, config.synthesis_mode, config.output_dir)
    return config
