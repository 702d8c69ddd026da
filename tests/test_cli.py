"""The CLI: as a real process (help, config errors, a signal) and in-process through ``main``
(exit statuses, one-line errors, bugs); the spark-submit job is run in tests/test_deploy.py."""

import os
import subprocess
import sys

from tests.conftest import REPO


def _env():
    return {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
            "PYTHONPATH": str(REPO)}


def test_help_for_every_command():
    from ksynth_spark.cli import STAGE_COMMANDS

    top = subprocess.run([sys.executable, "-m", "ksynth_spark.cli", "--help"], capture_output=True, text=True,
                         env=_env())
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


def test_main_returns_exit_statuses_and_one_line_errors(capsys):
    from ksynth_spark.cli import main

    assert main(["--help"]) == 0
    capsys.readouterr()
    assert main(["aggregate"]) == 2  # missing CONFIG
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "the following arguments are required: config" in err
    assert main(["aggregate", "x.yaml", "--set", "use_columns=[a,"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not valid YAML" in err and "Traceback" not in err


def test_a_bug_exits_1_in_one_line_without_the_exception_text(tmp_path, monkeypatch, capsys):
    """An unexpected exception is a bug (exit 1): one line naming its type; its message, which
    could quote data, and the traceback only with --log-level DEBUG."""
    import ksynth_spark.cli as cli
    import ksynth_spark.pipeline as pipeline
    import ksynth_spark.session as session

    def broken(*args, **kwargs):
        raise ValueError("Zebra-Secret-Value")

    monkeypatch.setattr(session, "get_session", lambda config: object())
    monkeypatch.setattr(pipeline, "run_stages", broken)
    monkeypatch.setattr(cli, "_starts_local_spark", lambda master: False)
    (tmp_path / "c.yaml").write_text(f"sensitive_microdata_path: x.csv\noutput_dir: {tmp_path}/out\n")
    assert cli.main(["aggregate", str(tmp_path / "c.yaml")]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "Internal error (ValueError)" in errors[0] and "--log-level DEBUG" in errors[0]
    assert "Zebra-Secret-Value" not in err and "Traceback" not in err
    assert cli.main(["aggregate", str(tmp_path / "c.yaml"), "--log-level", "DEBUG"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_sigterm_before_the_run_exits_143(tmp_path):
    """A SIGTERM while the config is read or Spark starts stops the process with status 143 and
    one line (the cleanup of a run is tested in tests/test_kill_run.py)."""
    (tmp_path / "c.yaml").write_text(f"sensitive_microdata_path: x.csv\noutput_dir: {tmp_path}/out\n")
    code = ("import os, signal, sys\n"
            "import ksynth_spark.config as config\n"
            "load = config.load_config\n"
            "def slow(*a, **k):\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "    return load(*a, **k)\n"
            "config.load_config = slow\n"
            "from ksynth_spark.cli import main\n"
            f"sys.exit(main(['aggregate', {str(tmp_path / 'c.yaml')!r}]))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=120)
    assert result.returncode == 143
    assert "Stopped by SIGTERM" in result.stderr and "Traceback" not in result.stderr
