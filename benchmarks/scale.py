"""Scaling benchmark: the aggregate and generate stages on 10^6 (and 10^7) records, local[2].

For each N it makes (once; reused when present) an N-row table by resampling the Adult extract
with ``/work/shared/datasets/make_scaled.py --rows N`` into /tmp (never into the repository),
then runs the pipeline stages ``aggregate`` (load + encode + count every combination up to
``reporting_length``, protect, write every output and table) and ``generate`` (row_seeded
synthesis, the independent k check, write the microdata) with ``table_format: parquet`` into a
temporary output directory (deleted afterwards). It prints, per stage, the wall time (Spark
start-up excluded) and the peak resident memory of the whole process tree (Python driver + JVM
+ Python workers), sampled from /proc by :class:`benchmarks.memory.PeakMemory`.

Usage::

    .venv/bin/python benchmarks/scale.py                      # N = 1e6
    .venv/bin/python benchmarks/scale.py --rows 1e6 1e7 --generate-max-rows 1e6

To measure one consistent version while the package is being edited, run it from a copy:
``cp -r ksynth_spark /tmp/snap/ && cd /tmp && PYTHONPATH=/tmp/snap /work/main/.venv/bin/python /work/main/benchmarks/scale.py``
(run outside the repository: the Python workers put their working directory first on their path).

Spark runs in local mode on ``--cores`` cores (default 2) with ``--driver-memory`` (default 6g);
in local mode the driver JVM also hosts the executors, so its heap is the executors' memory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO))  # appended: a snapshot of the package on PYTHONPATH (see below) wins
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

from benchmarks.memory import PeakMemory  # noqa: E402

MAKE_SCALED = REPO.parent / "shared" / "datasets" / "make_scaled.py"


def scaled_table(rows: int, directory: str) -> str:
    """Path of the N-row table, generated with make_scaled.py unless it already exists."""
    path = os.path.join(directory, f"adult_{rows}.csv")
    if not os.path.exists(path):
        started = time.monotonic()
        subprocess.run([sys.executable, str(MAKE_SCALED), "--rows", str(rows), "--out", path], check=True,
                       stderr=subprocess.DEVNULL)
        print(f"generated {path} ({os.path.getsize(path) / 1e6:.0f} MB) in {time.monotonic() - started:.0f} s",
              flush=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", type=float, default=[1e6], help="table sizes, e.g. 1e6 1e7")
    parser.add_argument("--reporting-length", type=int, default=3)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--shuffle-partitions", type=int, default=16)
    parser.add_argument("--generate-max-rows", type=float, default=1e7,
                        help="run generate only for tables up to this size (aggregate runs for every size)")
    parser.add_argument("--log-level", default="INFO", help="ksynth_spark log level (stage and phase timings)")
    parser.add_argument("--data-dir", default=os.environ.get("TMPDIR", "/tmp"),
                        help="where the scaled tables are made (outside the repository)")
    args = parser.parse_args()

    from ksynth_spark import io
    from ksynth_spark.cli import configure_logging
    from ksynth_spark.config import Config, SparkSettings
    from ksynth_spark.pipeline import Release, stage_aggregate, stage_generate
    from ksynth_spark.session import get_session

    configure_logging(args.log_level)
    settings = SparkSettings(master=f"local[{args.cores}]", conf={
        "spark.driver.memory": args.driver_memory,
        "spark.sql.shuffle.partitions": str(args.shuffle_partitions)})
    started = time.monotonic()
    spark = get_session(Config(sensitive_microdata_path="-", table_format="parquet", spark=settings))
    print(f"Spark local[{args.cores}], driver memory {args.driver_memory}, shuffle partitions "
          f"{args.shuffle_partitions}: started in {time.monotonic() - started:.1f} s", flush=True)
    print(f"{'records':>10} {'stage':<10} {'wall s':>7} {'peak GB':>8}  details", flush=True)
    for rows in (int(r) for r in args.rows):
        path = scaled_table(rows, args.data_dir)
        output = tempfile.mkdtemp(prefix=f"ksynth_scale_{rows}_", dir=args.data_dir)
        config = Config(sensitive_microdata_path=path, reporting_length=args.reporting_length,
                        reporting_resolution=args.k, synthesis_mode="row_seeded", seed=1, table_format="parquet",
                        output_dir=output, prefix="scale", spark=settings).validate()
        release = Release(spark=spark, config=config, staging=io.Staging(spark, output),
                          stages=("aggregate", "generate"))
        try:
            with PeakMemory() as memory:
                started = time.monotonic()
                stage_aggregate(release)
                seconds = time.monotonic() - started
            result = release.aggregates
            combos = int(result.rare_by_length["combo_count"].sum())
            print(f"{rows:>10,} {'aggregate':<10} {seconds:>7.1f} {memory.peak_gb:>8.2f}  L = "
                  f"{result.reporting_length}, {release.data.n_attributes} attributes, {combos:,} distinct "
                  f"combinations (load, count, protect, write)", flush=True)
            if rows > args.generate_max_rows:
                continue
            with PeakMemory() as memory:
                started = time.monotonic()
                stage_generate(release)
                seconds = time.monotonic() - started
            synthesis = release.synthesis
            print(f"{rows:>10,} {'generate':<10} {seconds:>7.1f} {memory.peak_gb:>8.2f}  {synthesis.n_records:,} "
                  f"synthetic records (row_seeded, k check, write)", flush=True)
        finally:
            release.staging.abort()
            shutil.rmtree(output, ignore_errors=True)
            spark.catalog.clearCache()
    spark.stop()


if __name__ == "__main__":
    main()
