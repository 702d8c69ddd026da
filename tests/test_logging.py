"""Quiet logs: Spark's, Ivy's and the JVM's own output stays off the console of a local run
(it goes to a per-run log file) unless ksynth logs at DEBUG; the driver's JVM flags are merged."""

import logging
import os
import re
import stat
import subprocess
import sys

from ksynth_spark.config import SparkSettings
from ksynth_spark.session import _local_conf, _prune_jvm_logs, log4j_config_path
from tests.conftest import REPO

G1_FLAGS = "-XX:G1PeriodicGCInterval=1000 -XX:MinHeapFreeRatio=10 -XX:MaxHeapFreeRatio=30 -XX:GCTimeRatio=4"
KSYNTH_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) ksynth_spark[.\w]*: ")


def test_local_session_flags_merge_the_g1_flags_the_quiet_log4j_config_and_the_configs_own_flags():
    own = SparkSettings(conf={"spark.driver.extraJavaOptions": "-XX:GCTimeRatio=9 -Dmine=1",
                              "spark.sql.shuffle.partitions": "3"})
    quiet = _local_conf(own, with_delta=True, quiet=True)
    options = quiet["spark.driver.extraJavaOptions"]
    assert options.startswith(G1_FLAGS) and options.endswith("-XX:GCTimeRatio=9 -Dmine=1")  # the config's win
    assert f"-Dlog4j.configurationFile={log4j_config_path()}" in options and "-Dksynth.spark.log.level=warn" in options
    assert quiet["spark.sql.shuffle.partitions"] == "3" and quiet["spark.master"] == "local[*]"
    assert quiet["spark.jars.packages"].startswith("io.delta:") and quiet["spark.ui.showConsoleProgress"] == "false"
    shown = _local_conf(SparkSettings(master="local[2]"), with_delta=False, quiet=False)
    assert shown["spark.driver.extraJavaOptions"] == G1_FLAGS and "spark.jars.packages" not in shown
    assert shown["spark.master"] == "local[2]"


def test_the_log4j_config_ships_with_the_package_and_is_quiet_by_default():
    path = log4j_config_path()
    assert path is not None and os.path.dirname(path) == os.path.join(str(REPO), "ksynth_spark")
    text = open(path, encoding="utf-8").read()
    assert "rootLogger.level = ${sys:ksynth.spark.log.level:-error}" in text
    assert "logger.repl.level = ${sys:ksynth.spark.log.level:-error}" in text  # no "Setting default log level"
    package_data = (REPO / "pyproject.toml").read_text().split("[tool.setuptools.package-data]", 1)[1]
    assert "log4j2.properties" in package_data.split("\n[", 1)[0], \
        "add log4j2.properties to [tool.setuptools.package-data] so that wheels ship it"


def test_old_jvm_logs_are_pruned_to_the_newest(tmp_path):
    for i in range(5):
        path = tmp_path / f"ksynth-spark-2026010{i}-000000-1.log"
        path.write_text("x")
        os.utime(path, (1_000_000 + i, 1_000_000 + i))
    (tmp_path / "other.log").write_text("kept")
    _prune_jvm_logs(str(tmp_path), 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ksynth-spark-20260103-000000-1.log", "ksynth-spark-20260104-000000-1.log", "other.log"]


def test_debug_is_what_shows_sparks_output():
    from ksynth_spark.session import spark_output_shown

    package = logging.getLogger("ksynth_spark")
    old = package.level
    try:
        package.setLevel(logging.INFO)
        assert not spark_output_shown()
        package.setLevel(logging.DEBUG)
        assert spark_output_shown()
    finally:
        package.setLevel(old)


def test_the_demo_prints_only_ksynth_lines_at_the_default_log_level(tmp_path):
    """A fresh JVM with Delta (so Ivy resolves the Delta jar): stderr holds ksynth's own lines
    only; the Ivy report and Spark's warnings are in the per-run log file it names."""
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
           "PYTHONPATH": str(REPO), "TMPDIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "ksynth_spark.cli", "aggregate", str(REPO / "conf" / "german_credit.yaml"),
         "--output-dir", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "[aggregate] finished" in result.stderr
    foreign = [line for line in lines if not KSYNTH_LINE.match(line)]
    assert not foreign, "\n".join(foreign[:20])
    assert ":: resolution report ::" not in result.stderr and "found io.delta" not in result.stderr
    assert not re.search(r"\bWARN\b", result.stderr) and "log4j" not in result.stderr.replace("JVM, Ivy, log4j", "")
    named = re.search(r"Spark's own output \(JVM, Ivy, log4j\) goes to (\S+\.log);", result.stderr)
    assert named, result.stderr[-2000:]
    jvm_log = named.group(1)
    assert os.path.dirname(jvm_log) == str(tmp_path) and stat.S_IMODE(os.stat(jvm_log).st_mode) == 0o600
    captured = open(jvm_log, encoding="utf-8", errors="replace").read()
    assert ":: resolution report ::" in captured and "io.delta#delta-spark" in captured
    assert "Using Spark's default log4j profile" not in captured  # the package's log4j config was used
    assert (tmp_path / "out" / "release" / "german_credit_reportable_aggregates.tsv").exists()
