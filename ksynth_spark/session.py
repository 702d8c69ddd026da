"""Spark session handling: reuse an active session, or start a local one with Delta configured.

On Databricks a session already exists and is reused as it is (its Delta setup is the
platform's). Under spark-submit the session is created on spark-submit's JVM: its command line
(``--master``, ``--conf``, ``--packages``) wins, the config's ``spark.conf`` only fills in keys
the command line did not set, and ``spark.master`` of the config is ignored, so a config written
for local runs never pins a cluster job to one machine. Otherwise a local session is created;
with ``table_format: delta`` the Delta Lake jar is fetched from Maven Central through
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
    # Keep the driver JVM's footprint close to what it uses: G1 returns unused heap to the OS
    # (a periodic collection every second when none ran; at most 30 % of the heap left free)
    # and grows the heap only when collections take over 20 % of the time (GCTimeRatio=4).
    # Measured on adult, k=10, L=4 (benchmarks/generate.py): the JVM peaked at 1.4-1.6 GB
    # during generate without these flags and at 0.75-0.8 GB with them, at the same speed.
    "spark.driver.extraJavaOptions": "-XX:G1PeriodicGCInterval=1000 -XX:MinHeapFreeRatio=10 -XX:MaxHeapFreeRatio=30 -XX:GCTimeRatio=4",
}

# The local defaults that also suit a cluster (no partition count, no memory size).
_SUBMIT_DEFAULTS = {key: _LOCAL_DEFAULTS[key] for key in (
    "spark.ui.showConsoleProgress", "spark.sql.execution.arrow.pyspark.enabled", "spark.sql.session.timeZone")}

# Keys that cannot change once spark-submit has launched the driver JVM.
_LAUNCH_ONLY = ("spark.master", "spark.submit.", "spark.jars", "spark.driver.memory", "spark.driver.extraJavaOptions",
                "spark.driver.extraClassPath", "spark.driver.cores")


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
    submitted = _submitted_conf()
    if submitted is not None:
        return _session_under_spark_submit(settings, submitted, with_delta)
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


def _submitted_conf():
    """The settings spark-submit launched this driver with, or None outside spark-submit.

    spark-submit starts the JVM first and hands its gateway to Python through
    ``PYSPARK_GATEWAY_PORT``; the ``spark.*`` settings of its command line are then system
    properties of that JVM, which a fresh ``SparkConf()`` loads.
    """
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        return None
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # connects to spark-submit's JVM; starts nothing
    return SparkConf()


def _class_loadable(name: str) -> bool:
    from pyspark import SparkContext

    jvm = SparkContext._jvm
    try:
        jvm.java.lang.Class.forName(name, False, jvm.java.lang.Thread.currentThread().getContextClassLoader())
        return True
    except Exception:  # py4j wraps ClassNotFoundException
        return False


def _session_under_spark_submit(settings: SparkSettings, submitted, with_delta: bool):
    """Creates the session of a spark-submit job: the command line decides, the config fills in.

    Args:
        settings: The config's ``spark`` section.
        submitted: The SparkConf spark-submit launched the driver with.
        with_delta: Whether Delta tables are read or written.

    Returns:
        The SparkSession.

    Raises:
        SparkSetupError: If Delta is needed but its jar is not on the driver's classpath.
    """
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    if settings.master and settings.master != submitted.get("spark.master", None):
        log.info("Ignoring spark.master %s of the config: spark-submit's --master %s decides", settings.master,
                 submitted.get("spark.master", "(default)"))
    wanted = dict(_SUBMIT_DEFAULTS)
    if with_delta and not submitted.contains("spark.sql.extensions"):
        if not _class_loadable(_DELTA_SETTINGS["spark.sql.extensions"]):
            raise SparkSetupError(
                "table_format is delta but the Delta Lake jar is not on the classpath of this spark-submit job. "
                f"Add --packages {settings.delta_package} (or the platform's Delta library), or set "
                "'table_format: parquet' in the config.")
        wanted.update(_DELTA_SETTINGS)
    wanted.update({key: str(value) for key, value in settings.conf.items()})
    for key, value in wanted.items():
        if submitted.contains(key):
            continue  # the command line wins
        if key.startswith(_LAUNCH_ONLY):
            log.warning("spark.conf key %s of the config has no effect under spark-submit: pass it as "
                        "--conf %s=%s on the command line", key, key, value)
            continue
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    log.info("Started the spark-submit session (master %s, Delta %s)", session.sparkContext.master,
             "on" if with_delta else "off")
    session.sparkContext.setLogLevel("ERROR")
    return session
