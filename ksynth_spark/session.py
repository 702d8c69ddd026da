"""Spark session handling: reuse an active session, or start a quiet local one with Delta configured.

On Databricks a session already exists and is reused as it is (its Delta setup and logging are
the platform's). Under spark-submit the session is created on spark-submit's JVM: its command
line (``--master``, ``--conf``, ``--packages``, ``--driver-java-options``) wins, the config's
``spark.conf`` only fills in keys the command line did not set, and ``spark.master`` of the
config is ignored, so a config written for local runs never pins a cluster job to one machine.
Otherwise a local session is created; with ``table_format: delta`` the Delta Lake jar is fetched
from Maven Central through ``spark.jars.packages`` at start-up.

Spark's own output stays off the console unless ksynth logs at DEBUG: a local session's JVM is
started with the package's ``log4j2.properties`` and its stdout/stderr (Ivy's resolution report,
log4j warnings, JVM notices) go to a per-run log file in the temporary directory, whose path is
logged; under spark-submit ``spark.log.level`` is set to ERROR for the context's start-up unless
the command line set it or passed its own log4j configuration (what spark-submit prints before
Python starts, such as the Ivy report of ``--packages``, is up to its command line).
"""

from __future__ import annotations

import glob
import logging
import os
import shlex
import sys
import tempfile
import time

from ksynth_spark.config import Config, SparkSettings
from ksynth_spark.errors import SparkSetupError

logger = logging.getLogger(__name__)

_DELTA_SETTINGS = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

_JAVA_OPTIONS = "spark.driver.extraJavaOptions"

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
    # The quiet-logging flags and the config's own spark.driver.extraJavaOptions are appended
    # (:func:`_local_conf`), so a flag given in the config wins over the same flag here.
    _JAVA_OPTIONS: "-XX:G1PeriodicGCInterval=1000 -XX:MinHeapFreeRatio=10 -XX:MaxHeapFreeRatio=30 -XX:GCTimeRatio=4",
}

# The local defaults that also suit a cluster (no partition count, no memory size).
_SUBMIT_DEFAULTS = {key: _LOCAL_DEFAULTS[key] for key in (
    "spark.ui.showConsoleProgress", "spark.sql.execution.arrow.pyspark.enabled", "spark.sql.session.timeZone")}

# Keys that cannot change once spark-submit has launched the driver JVM.
_LAUNCH_ONLY = ("spark.master", "spark.submit.", "spark.jars", "spark.driver.memory", _JAVA_OPTIONS,
                "spark.driver.extraClassPath", "spark.driver.cores")

#: The log4j 2 configuration shipped with the package (quiet: errors only, or the level of the
#: JVM system property ``ksynth.spark.log.level``).
LOG4J_CONFIG = "log4j2.properties"
#: Level of Spark's own log messages in the per-run log file of a local session.
_JVM_LOG_LEVEL = "warn"
#: Per-run JVM log files kept in the temporary directory (older ones are removed).
_KEPT_JVM_LOGS = 10
_JVM_LOG_PREFIX = "ksynth-spark-"

_jvm_log: str | None = None


def jvm_log_path() -> str | None:
    """The per-run file that holds the output of the Spark JVM this process started (Ivy's
    resolution report, Spark's warnings and errors), or None when Spark's output goes to the
    console (``--log-level DEBUG``, spark-submit, a reused session). It may quote data values
    in Spark's error messages: it is readable by its owner only."""
    return _jvm_log


def spark_output_shown() -> bool:
    """Whether Spark's own output goes to the console: only when ksynth logs at DEBUG."""
    return logging.getLogger("ksynth_spark").isEnabledFor(logging.DEBUG)


def get_session(config: Config | None = None, *, with_delta: bool | None = None):
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
        logger.info("Reusing the active Spark session (master %s)", active.sparkContext.master)
        return active

    if with_delta is None:
        with_delta = config is None or config.table_format == "delta"
    submitted = _submitted_conf()
    if submitted is not None:
        return _session_under_spark_submit(settings, submitted, with_delta)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    quiet = not spark_output_shown()
    conf = _local_conf(settings, with_delta, quiet)
    logger.info("Starting a Spark session (master %s, Delta %s)", conf["spark.master"], "on" if with_delta else "off")
    from ksynth_spark.progress import progress

    try:
        with progress(None, "spark", idle="starting the Spark session (Java, and the Delta jar when configured)"):
            session = _start_local(conf, quiet)
    except Exception as exc:  # py4j / gateway errors carry Java output, not user data
        text = str(exc)
        where = f" Spark's own output is in {_jvm_log}." if _jvm_log else ""
        if with_delta and ("unresolved dependency" in text or "JAVA_GATEWAY_EXITED" in text):
            raise SparkSetupError(
                f"Could not start Spark with Delta Lake ({settings.delta_package} could not be resolved from "
                "Maven Central, or Java failed to start). Check network access to Maven Central and that "
                "Java 17 is installed, or set 'table_format: parquet' in the config to run without Delta." + where
            ) from exc
        raise SparkSetupError(f"Could not start Spark: {text.splitlines()[0] if text else exc!r}. "
                              "Check that Java 17 is installed (java -version) and JAVA_HOME is set." + where) from exc
    if not quiet:
        logger.debug("Spark's own output is shown on the console (log level DEBUG)")
    elif _jvm_log is None:  # the JVM's output could not be redirected: keep the console quiet
        session.sparkContext.setLogLevel("ERROR")
    return session


def _local_conf(settings: SparkSettings, with_delta: bool, quiet: bool) -> dict[str, str]:
    """Every setting of a new local session, in the order they apply.

    The defaults come first, then Delta, then the config's ``spark.conf``; the driver's Java
    options are merged instead of replaced: the G1 flags, the quiet-logging flags (when
    ``quiet``), then the config's own ``spark.driver.extraJavaOptions`` (last, so they win).
    """
    conf = {"spark.master": settings.master or "local[*]", "spark.app.name": settings.app_name}
    conf.update(_LOCAL_DEFAULTS)
    if with_delta:
        conf["spark.jars.packages"] = settings.delta_package
        conf.update(_DELTA_SETTINGS)
    own = {key: str(value) for key, value in settings.conf.items()}
    java_options = [_LOCAL_DEFAULTS[_JAVA_OPTIONS]]
    if quiet:
        java_options += _quiet_java_options()
    if own.get(_JAVA_OPTIONS, "").strip():
        java_options.append(own[_JAVA_OPTIONS].strip())
    own.pop(_JAVA_OPTIONS, None)
    conf.update(own)
    conf[_JAVA_OPTIONS] = " ".join(java_options)
    return conf


def log4j_config_path() -> str | None:
    """Path of the package's ``log4j2.properties``, or None when the package is not on a file
    system (imported from a ``--py-files`` zip)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), LOG4J_CONFIG)
    return path if os.path.isfile(path) else None


def _quiet_java_options() -> list[str]:
    """Driver JVM flags that load the package's log4j configuration at warn level."""
    path = log4j_config_path()
    if path is None:
        return []
    return [shlex.quote(f"-Dlog4j.configurationFile={path}"), f"-Dksynth.spark.log.level={_JVM_LOG_LEVEL}"]


def _start_local(conf: dict[str, str], quiet: bool):
    """Creates the local session; when ``quiet``, first launches the JVM with its stdout and
    stderr in a new per-run log file (``jvm_log_path()``)."""
    from pyspark import SparkConf, SparkContext
    from pyspark.sql import SparkSession

    global _jvm_log
    if quiet and SparkContext._gateway is None:  # no JVM yet: launch it with its output in a file
        opened = _open_jvm_log()
        if opened is not None:
            from pyspark.java_gateway import launch_gateway

            path, descriptor = opened
            _jvm_log = path
            logger.info("Spark's own output (JVM, Ivy, log4j) goes to %s; --log-level DEBUG shows it here", path)
            launch_conf = SparkConf(loadDefaults=False)
            launch_conf.setAll(list(conf.items()))
            try:
                gateway = launch_gateway(launch_conf, popen_kwargs={"stdout": descriptor, "stderr": descriptor})
            finally:
                os.close(descriptor)  # the JVM holds its own copy
            SparkContext._ensure_initialized(gateway=gateway)
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _open_jvm_log() -> tuple[str, int] | None:
    """Creates the per-run JVM log file (owner-only) in the temporary directory and removes all
    but the newest earlier ones of this user; None when it cannot be created."""
    directory = tempfile.gettempdir()
    _prune_jvm_logs(directory, _KEPT_JVM_LOGS - 1)
    path = os.path.join(directory, f"{_JVM_LOG_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log")
    try:
        return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
    except OSError as exc:
        logger.warning("Could not create a log file for Spark's own output in %s (%s); Spark's errors are shown "
                       "on the console", directory, exc.strerror)
        return None


def _prune_jvm_logs(directory: str, keep: int) -> None:
    """Removes this user's per-run JVM log files in ``directory`` except the ``keep`` newest."""
    mine = []
    for path in glob.glob(os.path.join(directory, f"{_JVM_LOG_PREFIX}*.log")):
        try:
            status = os.stat(path)
        except OSError:
            continue
        if not hasattr(os, "getuid") or status.st_uid == os.getuid():
            mine.append((status.st_mtime, path))
    for _, path in sorted(mine, reverse=True)[max(keep, 0):]:
        try:
            os.remove(path)
        except OSError:
            pass


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
        assert jvm is not None  # set by _ensure_initialized (an AssertionError is caught like a py4j one)
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
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    quiet = not spark_output_shown() and not _own_log4j_config(SparkContext._jvm)
    builder = SparkSession.builder
    if settings.master and settings.master != submitted.get("spark.master", None):
        logger.info("Ignoring spark.master %s of the config: spark-submit's --master %s decides", settings.master,
                 submitted.get("spark.master", "(default)"))
    wanted = dict(_SUBMIT_DEFAULTS)
    if quiet:  # applied early in the context's start-up, which logs 300+ lines at INFO otherwise
        wanted["spark.log.level"] = "ERROR"
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
            logger.warning("spark.conf key %s of the config has no effect under spark-submit: pass it as "
                           "--conf %s=%s on the command line", key, key, value)
            continue
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    logger.info("Started the spark-submit session (master %s, Delta %s)", session.sparkContext.master,
                "on" if with_delta else "off")
    return session


def _own_log4j_config(jvm) -> bool:
    """Whether the spark-submit command line named a log4j configuration (it then decides)."""
    try:
        return any(jvm.java.lang.System.getProperty(name) for name in
                   ("log4j.configurationFile", "log4j2.configurationFile", "log4j.configuration"))
    except Exception:  # py4j errors: assume none was given
        return False
