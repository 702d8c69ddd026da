"""Two shapes of input that once looked pathological (issue 14), timed end to end.

* ``unique_column``: 100,000 records whose first column has 100,000 distinct values (an id-like
  column nobody removed) next to three ordinary columns;
* ``identical_rows``: 100,000 copies of one record.

Each runs ``ksynth run`` (every stage, k = 10, reporting_length = 3, parquet tables) in one
local Spark session and prints the wall time of every stage and of the whole run, the distinct
rows and the synthetic records. Neither may take longer than an ordinary table of that size:
the unique column's values are all rare (support 1 < k), so they are never released and never
enter synthesis; identical rows are one distinct row.

Usage::

    .venv/bin/python benchmarks/pathological.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO))
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

from benchmarks.scale import stage_times  # noqa: E402


def write_tables(directory: str, rows: int) -> dict[str, str]:
    rng = random.Random(14)
    unique = os.path.join(directory, "unique_column.csv")
    with open(unique, "w") as handle:
        handle.write("case_id,a,b,c\n")
        for i in range(rows):
            handle.write(f"id{i:07d},{rng.choice('xyz')},{rng.choice('uvw')},{rng.choice('mn')}\n")
    identical = os.path.join(directory, "identical_rows.csv")
    with open(identical, "w") as handle:
        handle.write("a,b,c,d\n" + "x,u,m,p\n" * rows)
    return {"unique_column": unique, "identical_rows": identical}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()

    from ksynth_spark.config import Config, SparkSettings
    from ksynth_spark.pipeline import run_stages
    from ksynth_spark.session import get_session

    times = stage_times("WARNING")
    work = tempfile.mkdtemp(prefix="ksynth_pathological_")
    tables = write_tables(work, args.rows)
    settings = SparkSettings(master="local[2]", conf={"spark.sql.shuffle.partitions": "16"})
    spark = None
    for name, path in tables.items():
        config = Config(sensitive_microdata_path=path, output_dir=os.path.join(work, f"out_{name}"),
                        reporting_length=3, reporting_resolution=10, seed=1, table_format="parquet",
                        spark=settings)
        spark = spark or get_session(config)
        times.seconds.clear()
        started = time.monotonic()
        run = run_stages(spark, config)
        seconds = time.monotonic() - started
        stages = ", ".join(f"{stage} {value:.1f} s" for stage, value in times.seconds.items())
        assert run.data is not None and run.synthesis is not None
        print(f"{name:<15} {args.rows:,} records, {run.data.n_rows:,} distinct rows, "
              f"{run.synthesis.n_records:,} synthetic records: whole run {seconds:.1f} s ({stages})", flush=True)
    if spark is not None:
        spark.stop()


if __name__ == "__main__":
    main()
