"""Benchmark of the generate stage (spec §4) on adult: wall time and peak memory per mode.

Usage::

    .venv/bin/python benchmarks/generate.py [--modes row_seeded unseeded ...] [--k 10] [--length 4]

Spark start-up, loading and the aggregate stage (which aggregate_seeded needs) are done first
and not timed. For every mode the script times :func:`ksynth_spark.synthesis.stage.synthesize`
(which materialises the numbered distinct records) and samples, every 50 ms, the resident memory of
the whole process tree read from ``/proc``: this Python driver, the Spark JVM and the Python
workers. Reported peaks are per mode; "python" is driver + workers, "total" adds the JVM.

Reference point: the 2021 pure-Python pipeline needed about 230 s and 14 GB for row_seeded on
adult on the same 2 cores; the target is at most 23 s and under 2 GB.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.memory import PeakMemory  # noqa: E402
from ksynth_spark.aggregate import aggregate  # noqa: E402
from ksynth_spark.config import SYNTHESIS_MODES, Config, SparkSettings  # noqa: E402
from ksynth_spark.load import load_encoded  # noqa: E402
from ksynth_spark.session import get_session  # noqa: E402
from ksynth_spark.synthesis.stage import synthesize  # noqa: E402

BASELINE_SECONDS = 230.0
BASELINE_BYTES = 14e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(REPO / "data" / "adult.csv.gz"))
    parser.add_argument("--modes", nargs="+", default=list(SYNTHESIS_MODES), choices=SYNTHESIS_MODES)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--length", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")

    config = Config(sensitive_microdata_path=args.data, reporting_resolution=args.k, reporting_length=args.length,
                    seed=args.seed, table_format="parquet",
                    spark=SparkSettings(master="local[2]", app_name="ksynth-benchmark-generate"))
    spark = get_session(config, with_delta=False)
    started = time.perf_counter()
    data = load_encoded(spark, config)
    aggregates = aggregate(spark, data, config)
    reportable = aggregates.reportable.persist()
    reportable.count()
    print(f"set-up (load + aggregate, not timed): {time.perf_counter() - started:.1f} s; "
          f"{data.n_records} records, {len(data.headers)} columns, {data.n_attributes} attributes, "
          f"k = {args.k}, reporting length = {aggregates.reporting_length}")
    print(f"{'mode':<17}{'wall s':>8}{'x faster':>10}{'python GB':>11}{'jvm GB':>8}{'total GB':>10}"
          f"{'records':>9}{'ratio':>8}{'suppressed':>11}")
    for mode in args.modes:
        mode_config = dataclasses.replace(config, synthesis_mode=mode)
        with PeakMemory() as memory:
            begin = time.perf_counter()
            result = synthesize(spark, data, mode_config, reportable, aggregates.reporting_length)
            wall = time.perf_counter() - begin
        gb = {key: value / 1e9 for key, value in memory.peak_by_kind.items()}
        print(f"{mode:<17}{wall:>8.1f}{BASELINE_SECONDS / wall:>10.1f}{gb['python']:>11.2f}{gb['jvm']:>8.2f}"
              f"{gb['total']:>10.2f}{result.n_records:>9}{result.records_per_sensitive_record:>8.3f}"
              f"{result.stats.get('occurrences_suppressed', 0):>11}", flush=True)
        result.records.unpersist()
    print(f"baseline (2021 pipeline, row_seeded): {BASELINE_SECONDS:.0f} s, {BASELINE_BYTES / 1e9:.0f} GB")
    spark.stop()


if __name__ == "__main__":
    main()
