# Databricks notebook source
# MAGIC %md
# MAGIC # ksynth-spark stage 1: aggregate
# MAGIC Loads and encodes the sensitive table, counts every attribute combination up to `reporting_length`
# MAGIC and writes the protected (k-anonymous, or DP with `dp_aggregates: true`) aggregates, the sensitive
# MAGIC aggregates and the records-at-risk statistics, plus the working tables the later stages read.
# MAGIC Next: `ksynth_generate` with the same `output_dir`.
# MAGIC
# MAGIC `release/` holds the publishable files; `sensitive/` and `tables/` (and the managed tables in
# MAGIC `output_catalog`) describe the sensitive records: keep them restricted.

# COMMAND ----------

# MAGIC %md
# MAGIC ### Setup and parameters
# MAGIC Install the package on the cluster first: attach the wheel built by `make dist`
# MAGIC (`dist/ksynth_spark-0.1.0-py3-none-any.whl`) as a cluster library, or upload it to a volume and run
# MAGIC `%pip install /Volumes/main/ctdc/libs/ksynth_spark-0.1.0-py3-none-any.whl` in a cell of its own.
# MAGIC This notebook holds no algorithm: it turns the widgets into a configuration and calls `ksynth_spark`.
# MAGIC
# MAGIC | widget | config key | |
# MAGIC | --- | --- | --- |
# MAGIC | `config_path` | | a YAML config (e.g. `conf/databricks.yaml` copied to a volume); optional |
# MAGIC | `config_yaml` | any | inline YAML keys, e.g. `prefix: ctdc` or `table_format: parquet`; they override the file |
# MAGIC | `input_table` | `sensitive_microdata_path` | catalog table (`main.ctdc.victims`) or file path |
# MAGIC | `input_format` | `input_format` | applies to `input_table`: `table` for a catalog table |
# MAGIC | `output_dir` | `output_dir` | a Unity Catalog volume path, e.g. `/Volumes/main/ctdc/releases/ctdc_k10` |
# MAGIC | `output_catalog` | `output_catalog` | `catalog.schema` for the managed working tables |
# MAGIC | `k`, `reporting_length`, `synthesis_mode`, `seed` | `reporting_resolution`, `reporting_length`, `synthesis_mode`, `seed` | |
# MAGIC
# MAGIC An empty widget (or `(config)`) keeps the value of the config file / inline keys / defaults; a filled
# MAGIC widget wins over both. Invalid values stop the notebook with one message naming the key.

# COMMAND ----------

dbutils.widgets.text("config_path", "", "01 config YAML path (optional)")
dbutils.widgets.text("config_yaml", "", "02 inline YAML keys (optional)")
dbutils.widgets.text("input_table", "", "03 sensitive input: table or path")
dbutils.widgets.dropdown("input_format", "table", ["table", "csv", "parquet", "delta"], "04 input format")
dbutils.widgets.text("output_dir", "", "05 output directory (UC volume)")
dbutils.widgets.text("output_catalog", "", "06 output catalog.schema")
dbutils.widgets.text("k", "", "07 privacy resolution k")
dbutils.widgets.text("reporting_length", "", "08 reporting length")
dbutils.widgets.dropdown("synthesis_mode", "(config)",
                         ["(config)", "row_seeded", "unseeded", "value_seeded", "aggregate_seeded"], "09 synthesis mode")
dbutils.widgets.text("seed", "", "10 seed (empty: drawn and recorded)")

# COMMAND ----------

import yaml

from ksynth_spark import config_from_dict, load_config
from ksynth_spark.cli import configure_logging

configure_logging("INFO")  # stage progress in the cell output (counts and timings, never data values)


def widget(name):
    """The widget's value, or None when it is empty or '(config)'."""
    value = dbutils.widgets.get(name).strip()
    return None if value in ("", "(config)") else value


keys = yaml.safe_load(widget("config_yaml") or "{}") or {}
if not isinstance(keys, dict):
    raise ValueError("config_yaml must hold YAML keys, e.g. 'prefix: ctdc'")
if widget("input_table"):
    keys.update(sensitive_microdata_path=widget("input_table"), input_format=widget("input_format"))
for key, name in [("output_dir", "output_dir"), ("output_catalog", "output_catalog"), ("reporting_resolution", "k"),
                  ("reporting_length", "reporting_length"), ("synthesis_mode", "synthesis_mode"), ("seed", "seed")]:
    if widget(name) is not None:
        keys[key] = widget(name)  # strings; the config validates and converts them
config = load_config(widget("config_path"), keys) if widget("config_path") else config_from_dict(keys)
release_dir = f"{config.output_dir.rstrip('/')}/release"
print(f"input {config.sensitive_microdata_path} ({config.input_format}), k = {config.k}, "
      f"reporting_length = {config.reporting_length}, {config.synthesis_mode}, output {config.output_dir}")

# COMMAND ----------

# MAGIC %md
# MAGIC ### Run

# COMMAND ----------

from ksynth_spark.pipeline import run_stages
from ksynth_spark.session import get_session

spark = get_session(config)  # on Databricks: the notebook's own session
release = run_stages(spark, config, ("aggregate",))

# COMMAND ----------

# MAGIC %md
# MAGIC ### Protected aggregates

# COMMAND ----------

display(spark.read.csv(f"{release_dir}/{config.prefix}_reportable_summary.tsv", sep="\t", header=True))

# COMMAND ----------

# MAGIC %md
# MAGIC ### Reportable aggregates (first 100 rows)

# COMMAND ----------

reportable = spark.read.csv(f"{release_dir}/{config.prefix}_reportable_aggregates.tsv", sep="\t", header=True)
display(reportable.limit(100))
