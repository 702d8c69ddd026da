"""Command line interface: ``ksynth <command> CONFIG.yaml [options]``.

A thin layer: it parses arguments, loads the config, gets a Spark session and calls the
pipeline. Errors a user can fix are printed as one clear line (exit status 2), never as a
traceback that could quote data.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

import yaml

from ksynth_spark.errors import KsynthError

log = logging.getLogger("ksynth_spark")

STAGE_COMMANDS = {
    "aggregate": ("aggregate",),
    "run": None,  # every stage
}

_DESCRIPTIONS = {
    "aggregate": "Count attribute combinations up to reporting_length and write sensitive and protected "
                 "(k-anonymous) aggregates, rare-combination and records-at-risk statistics.",
    "run": "Run every stage of the pipeline and commit one release.",
}


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
    return parser


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
    try:
        from ksynth_spark.config import load_config
        from ksynth_spark.pipeline import STAGES, run_stages
        from ksynth_spark.session import get_session

        overrides = dict(args.overrides)
        if args.output_dir:
            overrides["output_dir"] = args.output_dir
        config = load_config(args.config, overrides)
        spark = get_session(config)
        stages = STAGE_COMMANDS[args.command] or STAGES
        run_stages(spark, config, stages)
        return 0
    except KsynthError as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
