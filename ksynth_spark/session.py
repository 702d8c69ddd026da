"""Spark session handling: reuse an active session, or start a local one with Delta configured.

On Databricks and under spark-submit a session already exists and is reused as it is (its
Delta setup is the platform's). Otherwise a local session is created; with
``table_format: delta`` the Delta Lake jar is fetched from Maven Central through
``spark.jars.packages`` at start-up.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Optional

from ksynth_spark.config import Config, SparkSettings
from ksynth_spark.errors import SparkSetupError

log = logging.getLogger(__name__)

_DELTA_SETTINGS = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

# Settings that keep a small local session quick and its output reproducible.
_LOCAL_DEFAULTS = {
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.memory": "2g",
}


def get_session(config: Optional[Config] = None, *, with_delta: Optional[bool] = None):
    """Returns the active SparkSession, or creates a local one configured from ``config``.

    Args:
        config: Effective configuration (its ``spark`` section and ``table_format`` are used).
        with_delta: Force Delta on/off for a new session; default: ``table_format == 'delta'``.

    Returns:
        A ``pyspark.sql.SparkSession``.

    Raises:
        SparkSetupError: If Java is missing or the Delta jar cannot be resolved.
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    settings = config.spark if config else SparkSettings()
    if active is not None:
        for key, value in settings.conf.items():
            if not key.startswith(("spark.jars", "spark.driver.", "spark.executor.", "spark.master")):
                active.conf.set(key, str(value))
        log.info("Reusing the active Spark session (master %s)", active.sparkContext.master)
        return active

    if with_delta is None:
        with_delta = config is None or config.table_format == "delta"
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.master(settings.master or "local[*]").appName(settings.app_name)
    for key, value in _LOCAL_DEFAULTS.items():
        builder = builder.config(key, value)
    if with_delta:
        builder = builder.config("spark.jars.packages", settings.delta_package)
        for key, value in _DELTA_SETTINGS.items():
            builder = builder.config(key, value)
    for key, value in settings.conf.items():
        builder = builder.config(key, str(value))
    log.info("Starting a Spark session (master %s, Delta %s)", settings.master or "local[*]",
             "on" if with_delta else "off")
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # py4j / gateway errors carry Java output, not user data
        text = str(exc)
        if with_delta and ("unresolved dependency" in text or "JAVA_GATEWAY_EXITED" in text):
            raise SparkSetupError(
                f"Could not start Spark with Delta Lake ({settings.delta_package} could not be resolved from "
                "Maven Central, or Java failed to start). Check network access to Maven Central and that "
                "Java 17 is installed, or set 'table_format: parquet' in the config to run without Delta."
            ) from exc
        raise SparkSetupError(f"Could not start Spark: {text.splitlines()[0] if text else exc!r}. "
                              "Check that Java 17 is installed (java -version) and JAVA_HOME is set.") from exc
    session.sparkContext.setLogLevel("ERROR")
    return session

