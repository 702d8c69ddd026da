# Databricks notebook source
# MAGIC %md
# MAGIC # ksynth-spark stage 3: evaluate
# MAGIC Compares the synthetic data stored by `ksynth_generate` in the same `output_dir` with the sensitive
# MAGIC and protected aggregates: leakage, preservation, suppressed and fabricated combinations, charts and
# MAGIC the plain-words summary. Next: `ksynth_showcase`.
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

from ksynth_spark.cli import configure_logging
from ksynth_spark.notebook import config_from_widgets, define_widgets

configure_logging("INFO")  # stage progress in the cell output (counts and timings, never data values)
define_widgets(dbutils)

# COMMAND ----------

config = config_from_widgets(dbutils)
release_dir = f"{config.output_dir.rstrip('/')}/release"

# COMMAND ----------

# MAGIC %md
# MAGIC ### Run

# COMMAND ----------

import ksynth_spark as ks

release = ks.run(config, ("evaluate",), spark)  # on Databricks: the notebook's own session

# COMMAND ----------

# MAGIC %md
# MAGIC ### Evaluation

# COMMAND ----------

print(spark.read.text(f"{release_dir}/{config.prefix}_summary.md", wholetext=True).first()[0])
display(spark.read.csv(f"{release_dir}/{config.prefix}_preservation_by_length.tsv", sep="\t", header=True))

# COMMAND ----------

# MAGIC %md
# MAGIC ### Evaluation charts

# COMMAND ----------

charts = (spark.read.format("binaryFile").option("pathGlobFilter", f"{config.prefix}_*.png")
          .load(release_dir).select("path", "content").orderBy("path"))
display(charts)  # Databricks renders PNG files read with binaryFile as images
