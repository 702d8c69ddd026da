"""The CLI run as a real process (the spark-submit job is run in tests/test_deploy.py)."""

import os
import subprocess
import sys

from tests.conftest import REPO


def _env():
    return {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
            "PYTHONPATH": str(REPO)}


def test_help_for_every_command():
    from ksynth_spark.cli import STAGE_COMMANDS

    top = subprocess.run([sys.executable, "-m", "ksynth_spark.cli", "--help"], capture_output=True, text=True, env=_env())
    assert top.returncode == 0 and "COMMAND" in top.stdout
    for command in STAGE_COMMANDS:
        result = subprocess.run([sys.executable, "-m", "ksynth_spark.cli", command, "--help"],
                                capture_output=True, text=True, env=_env())
        assert result.returncode == 0 and "CONFIG" in result.stdout.upper() and "--set" in result.stdout


def test_cli_reports_a_bad_config_in_one_line(tmp_path):
    (tmp_path / "bad.yaml").write_text("sensitive_microdata_path: x.csv\nreporting_resolution: 0\n")
    result = subprocess.run([sys.executable, "-m", "ksynth_spark.cli", "aggregate", str(tmp_path / "bad.yaml")],
                            capture_output=True, text=True, env=_env())
    assert result.returncode == 2
    assert "reporting_resolution" in result.stderr and "Traceback" not in result.stderr


def test_unresolvable_delta_jar_fails_fast_with_a_fix(tmp_path):
    code = (
        "from ksynth_spark.config import Config, SparkSettings\n"
        "from ksynth_spark.session import get_session\n"
        "from ksynth_spark.errors import SparkSetupError\n"
        "try:\n"
        "    get_session(Config(sensitive_microdata_path='x', spark=SparkSettings(master='local[1]',"
        " delta_package='io.delta:no-such-artifact_2.13:0.0.1')))\n"
        "except SparkSetupError as exc:\n"
        "    print('ERROR:', exc)\n"
    )
    env = {**_env(), "SPARK_SUBMIT_OPTS": f"-Divy.home={tmp_path}/ivy"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert "ERROR:" in result.stdout and "table_format: parquet" in result.stdout
