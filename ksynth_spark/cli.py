"""Command line interface: ``ksynth <command> CONFIG.yaml [options]``.

A thin layer: it parses arguments, loads the config, gets a Spark session and calls the
pipeline. Errors a user can fix are printed as one clear line (exit status 2), never as a
traceback that could quote data.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Optional, Sequence

import yaml

from ksynth_spark.errors import KsynthError

log = logging.getLogger("ksynth_spark")

STAGE_COMMANDS = {
    "aggregate": ("aggregate",),
    "generate": ("generate",),
    "evaluate": ("evaluate",),
    "showcase": ("showcase",),
    "run": None,  # every stage
}

_DESCRIPTIONS = {
    "aggregate": "Count attribute combinations up to reporting_length and write sensitive and protected "
                 "(k-anonymous) aggregates, rare-combination and records-at-risk statistics.",
    "generate": "Generate k-synthetic microdata in the configured synthesis_mode (row_seeded, unseeded, "
                "value_seeded, aggregate_seeded), check it independently and write it as TSV, long form and table.",
    "showcase": "Build the self-contained data showcase page (release/<prefix>_showcase.html) from the synthetic "
                "microdata and the reportable aggregates.",
    "evaluate": "Evaluate the synthetic data against the sensitive and reportable aggregates (spec §5): "
                "synthetic aggregates, leakage, preservation by length and by count bucket, suppressed and "
                "fabricated combinations, charts and a one-page release summary.",
    "run": "Run every stage of the pipeline and commit one release.",
}

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
    return key.strip(), yaml.safe_load(value) if value.strip() else ""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="ksynth",
        description="ksynth-spark: privacy-preserving release of sensitive categorical microdata "
                    "(k-synthetic data, protected aggregates) on Apache Spark.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, description in _DESCRIPTIONS.items():
        sub = commands.add_parser(name, help=description.split(".")[0], description=description)
        sub.add_argument("config", help="YAML configuration file (see conf/example.yaml)")
        sub.add_argument("--set", dest="overrides", action="append", default=[], type=_parse_override,
                         metavar="KEY=VALUE", help="override a config key (YAML value), e.g. --set reporting_resolution=5")
        sub.add_argument("--output-dir", help="override output_dir")
        sub.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                         help="logging level (default INFO)")
        if name == "run":
            stages = [stage for stage, runs in STAGE_COMMANDS.items() if runs]
            sub.add_argument("--stage", dest="stages", action="append", choices=stages, metavar="STAGE",
                             help="run only this stage (repeatable; run in pipeline order; default: all of "
                                  + ", ".join(stages) + ")")
    _add_verify_parser(commands)
    return parser


def _add_verify_parser(commands) -> None:
    sub = commands.add_parser("verify", help=_VERIFY_DESCRIPTION.split(":")[0], description=_VERIFY_DESCRIPTION)
    sub.add_argument("--sensitive", metavar="PATH",
                     help="sensitive table (CSV/TSV/Parquet/Delta; format from the extension); overrides "
                          "sensitive_microdata_path of --config")
    sub.add_argument("--synthetic", metavar="PATH", required=True,
                     help="synthetic dataset to audit (.tsv, .csv, .parquet, or any path with --format)")
    sub.add_argument("--k", type=int, metavar="K", help="resolution to check (default: reporting_resolution of --config)")
    sub.add_argument("--length", type=int, metavar="L",
                     help="longest combination checked (default: reporting_length of --config, else 3; 0 = all columns)")
    sub.add_argument("--config", metavar="CONFIG", help="YAML config giving the sensitive table's parsing rules")
    sub.add_argument("--format", dest="synthetic_format", choices=["tsv", "csv", "parquet", "delta"],
                     help="format of the synthetic dataset (default: from its extension)")
    sub.add_argument("--report", metavar="PATH", help="also write the JSON report to this file")
    sub.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                     help="logging level (default WARNING)")


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

    from ksynth_spark.session import get_session
    from ksynth_spark.verify import verify

    config = _verify_config(args)
    uses_delta = config.input_format == "delta" or args.synthetic_format == "delta"
    spark = get_session(config, with_delta=uses_delta)
    report = verify(spark, config, args.synthetic, args.length, args.synthetic_format)
    text = json.dumps(report, indent=2) + "\n"
    sys.stdout.write(text)
    if args.report:
        with open(args.report, "w", encoding="utf-8") as handle:
            handle.write(text)
    return 0 if report["passed"] else 1


def configure_logging(level: str = "INFO") -> None:
    """Logs ``ksynth_spark`` messages to stderr with timestamps."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("ksynth_spark")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``ksynth`` console script and of the spark-submit jobs."""
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    from ksynth_spark import __version__

    log.info("ksynth-spark %s from %s", __version__, os.path.dirname(os.path.abspath(__file__)))
    try:
        from ksynth_spark.config import load_config
        from ksynth_spark.pipeline import STAGES, run_stages
        from ksynth_spark.session import get_session

        if args.command == "verify":
            return _run_verify(args)
        overrides = dict(args.overrides)
        if args.output_dir:
            overrides["output_dir"] = args.output_dir
        config = load_config(args.config, overrides)
        spark = get_session(config)
        stages = STAGE_COMMANDS[args.command] or tuple(getattr(args, "stages", None) or STAGES)
        run_stages(spark, config, stages)
        return 0
    except KsynthError as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
