"""Scaling benchmark: the whole ``ksynth run`` (or some stages) on 10^5–10^7 records, local mode.

For each size N it makes (once; reused when present) an N-row table by resampling the Adult
extract with ``../shared/datasets/make_scaled.py --rows N`` into ``--data-dir`` (outside the
repository), then runs the pipeline — by default every stage: aggregate, generate with the k
check, evaluate, showcase — with ``table_format: parquet`` into a temporary output directory
(deleted afterwards), in one Spark session per size. It prints, per size and mode, the wall time
of every stage (from the pipeline's stage log lines; Spark start-up excluded), the whole run's
wall time, the generate time per input record, the size of the showcase page, and the peak
memory of the whole process tree (Python driver + JVM + Python workers;
:class:`benchmarks.memory.PeakMemory`).

Usage::

    .venv/bin/python benchmarks/scale.py                                  # N = 1e5 1e6, row_seeded
    .venv/bin/python benchmarks/scale.py --rows 1e6 1e7 --modes row_seeded unseeded
    .venv/bin/python benchmarks/scale.py --rows 1e7 --stages aggregate generate --reporting-length 3

Spark runs in local mode on ``--cores`` cores with ``--driver-memory`` (default 6g); in local
mode the driver JVM also hosts the executors, so its heap is the executors' memory.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO))
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

from benchmarks.memory import PeakMemory  # noqa: E402

MAKE_SCALED = REPO.parent / "shared" / "datasets" / "make_scaled.py"
_FINISHED = re.compile(r"\[(\w+(?: \w+)?)\] finished in ([0-9.]+) s")


def scaled_table(rows: int, directory: str) -> str:
    """Path of the N-row table, generated with make_scaled.py unless it already exists."""
    path = os.path.join(directory, f"adult_{rows}.csv")
    if not os.path.exists(path):
        os.makedirs(directory, exist_ok=True)
        started = time.monotonic()
        subprocess.run([sys.executable, str(MAKE_SCALED), "--rows", str(rows), "--out", path], check=True,
                       stderr=subprocess.DEVNULL)
        print(f"generated {path} ({os.path.getsize(path) / 1e6:.0f} MB) in {time.monotonic() - started:.0f} s",
              flush=True)
    return path


class StageTimes(logging.Handler):
    """Collects the ``[stage] finished in X s`` lines of the pipeline."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.seconds: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        match = _FINISHED.search(record.getMessage())
        if match:
            self.seconds[match.group(1)] = self.seconds.get(match.group(1), 0.0) + float(match.group(2))


def stage_times(log_level: str) -> StageTimes:
    """Configures ksynth's console logging at ``log_level`` and returns the collector of the
    pipeline's ``[stage] finished in X s`` lines (the benchmarks' stage timings)."""
    from ksynth_spark.cli import configure_logging

    configure_logging(log_level)
    times = StageTimes()
    pipeline_logger = logging.getLogger("ksynth_spark.pipeline")
    pipeline_logger.addHandler(times)
    pipeline_logger.setLevel(logging.INFO)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", type=float, default=[1e5, 1e6], help="table sizes, e.g. 1e6 1e7")
    parser.add_argument("--modes", nargs="+", default=["row_seeded"])
    parser.add_argument("--stages", nargs="+", default=None, help="default: every stage")
    parser.add_argument("--reporting-length", type=int, default=3)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--shuffle-partitions", type=int, default=16)
    parser.add_argument("--log-level", default="WARNING", help="ksynth_spark log level printed to stderr")
    parser.add_argument("--data-dir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "scaled"),
                        help="where the scaled tables are made (outside the repository)")
    args = parser.parse_args()

    from ksynth_spark.config import Config, SparkSettings
    from ksynth_spark.pipeline import STAGES, run_stages
    from ksynth_spark.session import get_session

    times = stage_times(args.log_level)
    settings = SparkSettings(master=f"local[{args.cores}]", conf={
        "spark.driver.memory": args.driver_memory, "spark.sql.shuffle.partitions": str(args.shuffle_partitions)})
    stages = tuple(args.stages or STAGES)
    print(f"{'records':>11} {'mode':<17} {'stage':<10} {'wall s':>8} {'peak GB':>8}  details", flush=True)
    for rows in (int(r) for r in args.rows):
        path = scaled_table(rows, args.data_dir)
        started = time.monotonic()
        base = Config(sensitive_microdata_path=path, reporting_length=args.reporting_length,
                      reporting_resolution=args.k, seed=1, table_format="parquet", prefix="scale", spark=settings)
        spark = get_session(base)
        print(f"{rows:>11,} Spark local[{args.cores}] started in {time.monotonic() - started:.1f} s", flush=True)
        for mode in args.modes:
            output = tempfile.mkdtemp(prefix=f"ksynth_scale_{rows}_", dir=args.data_dir)
            config = dataclasses.replace(base, synthesis_mode=mode, output_dir=output)
            times.seconds.clear()
            try:
                with PeakMemory() as memory:
                    started = time.monotonic()
                    run = run_stages(spark, config, stages)
                    seconds = time.monotonic() - started
                page = os.path.join(output, "release", "scale_showcase.html")
                page_mb = os.path.getsize(page) / 1e6 if os.path.exists(page) else None
            finally:
                shutil.rmtree(output, ignore_errors=True)
            for stage, value in times.seconds.items():
                print(f"{rows:>11,} {mode:<17} {stage:<10} {value:>8.1f}", flush=True)
            details = ""
            if run.synthesis is not None:
                generate = times.seconds.get("generate", 0.0)
                details = (f"{run.synthesis.n_records:,} synthetic records ({run.synthesis.n_distinct:,} distinct); "
                           f"generate {generate / rows * 1e6:.2f} µs per input record")
            if page_mb is not None:
                details += f"; showcase page {page_mb:.2f} MB"
            data = run.data
            if data is not None:
                details = f"{data.n_rows:,} distinct rows; " + details
            print(f"{rows:>11,} {mode:<17} {'whole run':<10} {seconds:>8.1f} {memory.peak_gb:>8.2f}  {details}",
                  flush=True)
            spark.catalog.clearCache()
        spark.stop()


if __name__ == "__main__":
    main()
