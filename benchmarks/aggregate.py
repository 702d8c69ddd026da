"""Benchmark of the aggregate stage: wall time and peak memory, with a single-process yardstick.

Usage: python benchmarks/aggregate.py [--skip-census] [--skip-yardstick]

Prints, for adult (L=3, L=4) and census_kdd (L=3): load time, aggregation job time (counting,
protection, statistics and records analysis; Spark start-up excluded) and the peak RSS of the
whole process tree (driver JVM + Python workers). First, as the session's first job (so
including the JVM's warm-up), the whole ``aggregate`` stage on adult L=4 as ``ksynth aggregate``
runs it: load, counting and every output file and table written. The yardstick is a plain
pandas + itertools.combinations +
Counter count of adult in one process, run here on the same machine.
"""

import argparse
import itertools
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

from benchmarks.memory import PeakMemory  # noqa: E402

CENSUS = REPO.parent / "shared" / "datasets" / "census_kdd.csv.gz"


def yardstick(path: Path, length: int) -> tuple[float, int, int]:
    import pandas as pd

    started = time.monotonic()
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    counts = Counter()
    columns = list(frame.columns)
    for row in frame.itertuples(index=False):
        items = [f"{c}:{v}" for c, v in zip(columns, row, strict=True) if v != ""]
        for size in range(1, length + 1):
            counts.update(itertools.combinations(items, size))
    return time.monotonic() - started, sum(counts.values()), len(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-census", action="store_true")
    parser.add_argument("--skip-yardstick", action="store_true")
    args = parser.parse_args()

    from ksynth_spark.aggregate import aggregate
    from ksynth_spark.config import Config, SparkSettings
    from ksynth_spark.load import load_encoded
    from ksynth_spark.pipeline import run_stages
    from ksynth_spark.session import get_session

    spark = get_session(Config(sensitive_microdata_path="-", table_format="parquet",
                               spark=SparkSettings(master="local[2]", conf={"spark.driver.memory": "2g"})))
    cases = [("adult", REPO / "data" / "adult.csv.gz", 3), ("adult", REPO / "data" / "adult.csv.gz", 4)]
    if not args.skip_census and CENSUS.exists():
        cases.append(("census_kdd", CENSUS, 3))
    with tempfile.TemporaryDirectory(prefix="ksynth-bench-aggregate-") as out:
        config = Config(sensitive_microdata_path=str(REPO / "data" / "adult.csv.gz"), reporting_length=4,
                        reporting_resolution=10, table_format="parquet", output_dir=out, prefix="adult")
        with PeakMemory() as memory:
            started = time.monotonic()
            release = run_stages(spark, config, ("aggregate",))
            seconds = time.monotonic() - started
        release.aggregates.sensitive.unpersist()
        release.data.rows.unpersist()
        print(f"whole aggregate stage, adult L=4, first job of the session (load + counting + every TSV and "
              f"table written): {seconds:.1f} s, peak {memory.peak_gb:.2f} GB", flush=True)
    print(f"{'dataset':<11} {'L':>2} {'load s':>7} {'aggregate s':>12} {'combinations':>13} {'peak GB':>8}")
    for name, path, length in cases:
        config = Config(sensitive_microdata_path=str(path), reporting_length=length, reporting_resolution=10)
        with PeakMemory() as memory:
            started = time.monotonic()
            data = load_encoded(spark, config)
            loaded = time.monotonic()
            result = aggregate(spark, data, config)
            result.reportable.count()
            finished = time.monotonic()
        combos = int(result.rare_by_length["combo_count"].sum())
        print(f"{name:<11} {length:>2} {loaded - started:>7.1f} {finished - loaded:>12.1f} {combos:>13,} "
              f"{memory.peak_gb:>8.2f}", flush=True)
        result.sensitive.unpersist()
        data.rows.unpersist()
    spark.stop()
    if not args.skip_yardstick:
        with PeakMemory() as memory:
            seconds, instances, distinct = yardstick(REPO / "data" / "adult.csv.gz", 4)
        print(f"yardstick (pandas + itertools, 1 process) adult L=4: {seconds:.1f} s, {instances:,} instances, "
              f"{distinct:,} distinct, peak {memory.peak_gb:.2f} GB")


if __name__ == "__main__":
    main()
