"""Command line interface: ``ksynth <command> CONFIG.yaml [options]``.

A thin layer: it parses arguments, loads the config, gets a Spark session and calls the
pipeline, and turns every outcome into an exit status (:func:`main` returns it):

* 0: success;
* 2: a problem the user can fix (config, ``--set``, data, paths, permissions, formats, another
  run holding ``output_dir``, Spark analysis errors on the data): ONE line on stderr naming the
  problem and the fix, never a traceback nor a data value;
* 1: a bug (one line; the traceback only with ``--log-level DEBUG``), or ``ksynth verify``
  finding the guarantee broken;
* 128 + n: stopped by signal n (130 SIGINT, 143 SIGTERM), after the cleanup a failure does.

A CLI run that starts its own local Spark driver gives it a per-run temporary directory
(:func:`ksynth_spark.run_state.run_temp_dir`) and stops it before exiting.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

import yaml

from ksynth_spark.errors import KsynthError, OutputError, RunInterrupted

log = logging.getLogger("ksynth_spark")

STAGE_COMMANDS = {
    "aggregate": ("aggregate",),
    "generate": ("generate",),
    "evaluate": ("evaluate",),
    "showcase": ("showcase",),
    "run": None,  # every stage
}

#: One line per command for the command list of ``ksynth --help``, in pipeline order.
_HELP = {
    "aggregate": "count attribute combinations and write the sensitive and the reportable aggregates",
    "generate": "synthesise microdata, check that it is k-synthetic and write it",
    "evaluate": "compare the synthetic data with the sensitive and the reportable aggregates",
    "showcase": "build the one-file data showcase page (release/<prefix>_showcase.html)",
    "run": "run every stage (or those given with --stage) and commit one release",
}

_DESCRIPTIONS = {
    "aggregate": "Load and encode the sensitive table, count every combination of up to reporting_length "
                 "attributes and write the sensitive aggregates (exact counts; restricted) and the reportable "
                 "aggregates (counts of at least k, rounded down to a multiple of k; or differentially private "
                 "counts with dp_aggregates: true), with rare-combination and records-at-risk statistics.",
    "generate": "Synthesise microdata in the configured synthesis_mode (row_seeded, unseeded, value_seeded or "
                "aggregate_seeded), check independently that every record and combination describes at least k "
                "sensitive records (not in DP mode, which must not read the sensitive records again), and write "
                "it as a wide TSV, a long-form TSV and a table.",
    "evaluate": "Evaluate the synthetic data against the sensitive and the reportable aggregates: synthetic "
                "aggregates, leakage, preservation by length and by count bucket, suppressed and fabricated "
                "combinations, error metrics, charts and a one-page release summary.",
    "showcase": "Build the self-contained data showcase page release/<prefix>_showcase.html from the synthetic "
                "microdata and the reportable aggregates.",
    "run": "Run the stages aggregate, generate, evaluate and showcase (or only those given with --stage, "
           "always in this order) and commit them as one release.",
}

_COMMAND_LIST = """\
The stage commands, in pipeline order: aggregate, generate, evaluate, showcase;
run runs them all and commits one release. Each takes CONFIG.yaml and the
options --set KEY=VALUE, --output-dir DIR and --log-level LEVEL
(ksynth COMMAND --help). verify audits any synthetic dataset and takes its own
options (ksynth verify --help).

Configuration keys: docs/configuration.md. Algorithms, guarantees and metrics:
docs/algorithms.md. Local runs, spark-submit and Databricks: docs/running.md.
"""

_VERIFY_DESCRIPTION = (
    "Audit ANY synthetic dataset against the sensitive table at resolution k: every synthetic record and "
    "every synthetic combination of up to --length attributes must describe at least k sensitive records. "
    "Both files are parsed with the pipeline's rules (--config gives delimiter, use_columns, sensitive_zeros, "
    "multi_value_columns, subject_id). Prints a JSON report with counts and column names only, never a "
    "data value. Exit status: 0 passed, 1 the guarantee fails, 2 unusable input or config."
)


def _parse_override(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--set expects KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        raise argparse.ArgumentTypeError(f"the value of --set {key.strip()} is not valid YAML: quote it, e.g. "
                                         f"--set '{key.strip()}=\"...\"'") from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    from ksynth_spark import __version__

    parser = _Parser(
        prog="ksynth",
        description="ksynth-spark: privacy-preserving release of sensitive categorical microdata\n"
                    "(k-synthetic data, protected aggregates, differentially private marginals)\n"
                    "on Apache Spark.",
        epilog=_COMMAND_LIST,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ksynth-spark {__version__}",
                        help="print the version of ksynth-spark and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, description in _DESCRIPTIONS.items():
        sub = commands.add_parser(name, help=_HELP[name], description=description)
        sub.add_argument("config", help="YAML configuration file (keys: docs/configuration.md; example: "
                                        "conf/example.yaml)")
        sub.add_argument("--set", dest="overrides", action="append", default=[], type=_parse_override,
                         metavar="KEY=VALUE",
                         help="override a config key (YAML value), e.g. --set reporting_resolution=5")
        sub.add_argument("--output-dir", help="override output_dir")
        sub.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                         help="logging level (default INFO); DEBUG also shows Spark's own output (JVM, Ivy, "
                              "log4j), which otherwise goes to a per-run log file")
        if name == "run":
            stages = [stage for stage, runs in STAGE_COMMANDS.items() if runs]
            sub.add_argument("--stage", dest="stages", action="append", choices=stages, metavar="STAGE",
                             help="run only this stage (repeatable; run in pipeline order; default: all of "
                                  + ", ".join(stages) + ")")
    _add_verify_parser(commands)
    return parser


def _add_verify_parser(commands) -> None:
    sub = commands.add_parser("verify", help="audit any synthetic dataset against the sensitive table at "
                                             "resolution k", description=_VERIFY_DESCRIPTION)
    sub.add_argument("--sensitive", metavar="PATH",
                     help="sensitive table (CSV/TSV/Parquet/Delta; format from the extension); overrides "
                          "sensitive_microdata_path of --config")
    sub.add_argument("--synthetic", metavar="PATH", required=True,
                     help="synthetic dataset to audit (.tsv, .csv, .parquet, or any path with --format)")
    sub.add_argument("--k", type=int, metavar="K",
                     help="resolution to check (default: reporting_resolution of --config)")
    sub.add_argument("--length", type=int, metavar="L",
                     help="longest combination checked (default: reporting_length of --config, else 3; "
                          "0 = all columns)")
    sub.add_argument("--config", metavar="CONFIG", help="YAML config giving the sensitive table's parsing rules")
    sub.add_argument("--format", dest="synthetic_format", choices=["tsv", "csv", "parquet", "delta"],
                     help="format of the synthetic dataset (default: from its extension)")
    sub.add_argument("--report", metavar="PATH", help="also write the JSON report to this file")
    sub.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                     help="logging level (default WARNING); DEBUG also shows Spark's own output")


def _verify_config(args):
    """The sensitive-side Config of ``ksynth verify``: --config (if any) with --sensitive and --k applied."""
    import os

    from ksynth_spark.config import config_from_dict, load_config
    from ksynth_spark.errors import ConfigError

    overrides = {}
    if args.sensitive:
        overrides["sensitive_microdata_path"] = args.sensitive
    if args.k is not None:
        overrides["reporting_resolution"] = args.k
    if args.config:
        if args.sensitive:  # a command-line path is taken as given, not relative to the config
            overrides["sensitive_microdata_path"] = os.path.abspath(args.sensitive)
        return load_config(args.config, overrides)
    if not args.sensitive:
        raise ConfigError("ksynth verify needs --sensitive PATH (or --config CONFIG naming the sensitive data).")
    if args.k is None:
        raise ConfigError("ksynth verify needs --k K (or --config CONFIG with reporting_resolution).")
    lower = args.sensitive.lower().rstrip("/")
    if lower.endswith((".parquet", ".pq")):
        overrides["input_format"] = "parquet"
    elif lower.endswith((".tsv", ".tsv.gz", ".tab")):
        overrides["sensitive_microdata_delimiter"] = "\t"
    overrides["table_format"] = "parquet"  # verify writes no table: no Delta jar needed
    return config_from_dict(overrides)


def _run_verify(args) -> int:
    import json

    from ksynth_spark.verify import verify

    config = _verify_config(args)
    uses_delta = config.input_format == "delta" or args.synthetic_format == "delta"
    with _local_spark(config, with_delta=uses_delta) as spark:
        report = verify(spark, config, args.synthetic, args.length, args.synthetic_format)
    text = json.dumps(report, indent=2) + "\n"
    sys.stdout.write(text)
    if args.report:
        try:
            with open(args.report, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            raise OutputError(f"Cannot write the report to {args.report} ({exc.strerror or type(exc).__name__}): "
                              "choose a writable --report path.") from None
    return 0 if report["passed"] else 1


def _run_pipeline(args) -> int:
    from ksynth_spark import run_state
    from ksynth_spark.config import load_config
    from ksynth_spark.pipeline import STAGES, run_stages

    overrides = dict(args.overrides)
    if args.output_dir:
        overrides["output_dir"] = args.output_dir
    config = load_config(args.config, overrides)
    stages = STAGE_COMMANDS[args.command] or tuple(getattr(args, "stages", None) or STAGES)
    if _starts_local_spark(config.spark.master) and "://" not in config.output_dir:
        run_state.precheck_output_dir(config.output_dir.removeprefix("file:"))
    with _local_spark(config) as spark:
        run_stages(spark, config, stages)
    return 0


@contextlib.contextmanager
def _local_spark(config, **options):
    """The Spark session of a command; a local driver started here gets a per-run temporary
    directory and is stopped (before that directory is removed) when the command ends."""
    from ksynth_spark import run_state
    from ksynth_spark.session import get_session

    if not _starts_local_spark(config.spark.master):
        yield get_session(config, **options)
        return
    with run_state.run_temp_dir():
        spark = get_session(config, **options)
        try:
            yield spark
        finally:
            with contextlib.suppress(Exception):
                spark.stop()


def _starts_local_spark(master: str | None) -> bool:
    """Whether this process is about to start its own local Spark driver (no active session,
    not under spark-submit, a local master)."""
    if "PYSPARK_GATEWAY_PORT" in os.environ or not (master is None or master.startswith("local")):
        return False
    session = sys.modules.get("pyspark.sql.session")  # loaded once any session exists
    return session is None or session.SparkSession.getActiveSession() is None


class _OneLineFormatter(logging.Formatter):
    """Timestamped lines without tracebacks (shown only at DEBUG): a traceback can quote data."""

    def __init__(self, tracebacks: bool):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.tracebacks = tracebacks

    def formatException(self, ei) -> str:  # noqa: N802 (logging API)
        return super().formatException(ei) if self.tracebacks else ""

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 (logging API)
        return super().formatStack(stack_info) if self.tracebacks else ""


def configure_logging(level: str = "INFO") -> None:
    """Logs ``ksynth_spark`` messages to stderr with timestamps (tracebacks only at DEBUG)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter(tracebacks=level == "DEBUG"))
    root = logging.getLogger("ksynth_spark")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


@contextlib.contextmanager
def _command_logging(level: str):
    """Logging for one command: ``ksynth_spark`` records on stderr (:func:`configure_logging`);
    other libraries' records (py4j logs tracebacks on the root logger when a call is
    interrupted) only at DEBUG, otherwise dropped instead of printed by Python's last-resort
    handler. Both loggers are restored at exit (``main`` may run in-process, e.g. in tests)."""
    package, root = logging.getLogger("ksynth_spark"), logging.getLogger()
    saved = (package.handlers[:], package.level, package.propagate)
    configure_logging(level)
    if level == "DEBUG":
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_OneLineFormatter(tracebacks=True))
    else:
        handler = logging.NullHandler()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        package.handlers[:], package.level, package.propagate = saved[0], saved[1], saved[2]


class _UsageError(SystemExit):
    """A command-line usage error: reported in one line by :func:`main` (exit status 2); a
    ``SystemExit(2)`` for callers of ``build_parser().parse_args``, as with argparse's own."""

    def __init__(self, message: str):
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are raised, not printed with the usage and exited."""

    def error(self, message: str):  # argparse API: must not return
        raise _UsageError(f"{self.prog}: {message}")


@contextlib.contextmanager
def _signals_stop_the_process():
    """SIGTERM (and SIGINT) outside a pipeline run raise :class:`RunInterrupted` (main thread only)."""
    previous = {}

    def stop(signum, frame):
        raise RunInterrupted(signum)

    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError, OSError):
                previous[signum] = signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(signum, handler)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _user_error(exc: BaseException) -> str | None:
    """The one-line message of a failure the user can fix that is not a KsynthError (file system
    limits, Spark analysis errors on their data), or None for a bug. Never quotes an exception
    message that could hold data."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if isinstance(exc, OSError) and exc.errno in _USER_ERRNOS:
        return (f"Cannot write {exc.filename or 'an output file'} ({exc.strerror}): check the permissions and the "
                "free space of output_dir.")
    if "AnalysisException" in names:
        condition = getattr(exc, "getCondition", None) or getattr(exc, "getErrorClass", None)
        kind = condition() if callable(condition) else None
        return (f"Spark could not analyse a query on the data ({kind or 'AnalysisException'}): check the column names "
                "in the config and the data's header. Rerun with --log-level DEBUG for details.")
    if "Py4JJavaError" in names:
        from ksynth_spark.io import java_error_name

        java = java_error_name(exc)
        text = str(exc)
        for marker, problem in _JAVA_STORAGE_PROBLEMS:
            if marker in java or marker in text:
                return (f"A file could not be written or read ({problem}): check the permissions and the free space "
                        "of output_dir and of Spark's temporary directory.")
    return None


_USER_ERRNOS = {errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.ENOTDIR, errno.EISDIR}
_JAVA_STORAGE_PROBLEMS = (("AccessControlException", "permission denied"),
                          ("AccessDeniedException", "permission denied"),
                          ("No space left on device", "no space left on the device"),
                          ("Disk quota exceeded", "disk quota exceeded"),
                          ("Read-only file system", "read-only file system"))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ksynth`` console script and of the spark-submit jobs.

    Returns:
        The exit status: 0 success; 2 a problem the user can fix (config, data, paths,
        permissions, formats; one line on stderr naming it and the fix); 1 a bug (or, for
        ``ksynth verify``, a dataset that fails the check); 128 + n when stopped by signal n
        (130 SIGINT, 143 SIGTERM). Tracebacks are logged only with ``--log-level DEBUG``.
    """
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as exc:
        sys.stderr.write(f"{_one_line(str(exc))} (see ksynth --help)\n")
        return 2
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else 0
    with _command_logging(args.log_level):
        return _run_command(args)


def _run_command(args) -> int:
    """Runs the parsed command and maps its outcome to the exit status (see :func:`main`)."""
    from ksynth_spark import __version__

    log.info("ksynth-spark %s from %s", __version__, os.path.dirname(os.path.abspath(__file__)))
    try:
        with _signals_stop_the_process():
            return _run_verify(args) if args.command == "verify" else _run_pipeline(args)
    except RunInterrupted as exc:
        log.error("Stopped by %s: nothing was committed by this run (unless the signal arrived during the "
                  "commit, which was completed).", signal.Signals(exc.signum).name)
        return exc.exit_status
    except KeyboardInterrupt:
        log.error("Interrupted: nothing was committed by this run.")
        return 128 + signal.SIGINT
    except KsynthError as exc:
        log.debug("Traceback of the error", exc_info=True)
        log.error("%s", _one_line(str(exc)))
        return 2
    except Exception as exc:
        log.debug("Traceback of the error", exc_info=True)
        message = _user_error(exc)
        if message is not None:
            log.error("%s", message)
            return 2
        log.error("Internal error (%s): this is a bug in ksynth-spark, not a problem of the config or the data; "
                  "nothing was committed. Rerun with --log-level DEBUG to see the traceback (it can quote data: "
                  "review it before sharing).", type(exc).__name__)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
