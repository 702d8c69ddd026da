"""census_kdd (299,285 records × 41 columns) at the sizes issue 11 names, timed with peak memory.

1. ``ksynth aggregate`` at reporting_length 4 (about 1.4·10^8 distinct combinations of up to 4
   values, every one written to the restricted aggregates TSV and table);
2. ``ksynth run`` (every stage) at reporting_length 3.

Both at k = 10, parquet tables, Spark ``local[2]`` with ``--driver-memory`` (default 8g), into
temporary folders removed afterwards. Prints the wall time of every stage and of the whole
command (Spark start-up excluded), the peak memory of the process tree
(:class:`benchmarks.memory.PeakMemory`), the number of combinations and the size of the outputs.

Usage::

    .venv/bin/python benchmarks/census.py [--skip-aggregate-l4] [--skip-run-l3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO))
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

from benchmarks.memory import PeakMemory  # noqa: E402
from benchmarks.scale import stage_times  # noqa: E402

CENSUS = REPO.parent / "shared" / "datasets" / "census_kdd.csv.gz"


def _size_gb(folder: str) -> float:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-aggregate-l4", action="store_true")
    parser.add_argument("--skip-run-l3", action="store_true")
    parser.add_argument("--driver-memory", default="8g")
    parser.add_argument("--work-dir", default=tempfile.gettempdir())
    args = parser.parse_args()

    from ksynth_spark.config import Config, SparkSettings
    from ksynth_spark.pipeline import STAGES, run_stages
    from ksynth_spark.session import get_session

    times = stage_times("WARNING")
    settings = SparkSettings(master="local[2]", conf={"spark.driver.memory": args.driver_memory,
                                                      "spark.sql.shuffle.partitions": "16"})
    cases = []
    if not args.skip_aggregate_l4:
        cases.append(("ksynth aggregate, L=4", 4, ("aggregate",)))
    if not args.skip_run_l3:
        cases.append(("ksynth run, L=3", 3, STAGES))
    spark = None
    for label, length, stages in cases:
        output = tempfile.mkdtemp(prefix="ksynth_census_", dir=args.work_dir)
        config = Config(sensitive_microdata_path=str(CENSUS), reporting_length=length, reporting_resolution=10,
                        seed=1, table_format="parquet", output_dir=output, prefix="census", spark=settings)
        spark = spark or get_session(config)
        times.seconds.clear()
        try:
            with PeakMemory() as memory:
                started = time.monotonic()
                run = run_stages(spark, config, stages)
                seconds = time.monotonic() - started
            size = _size_gb(output)
        finally:
            shutil.rmtree(output, ignore_errors=True)
        combinations = int(run.aggregates.rare_by_length["combo_count"].sum()) if run.aggregates else 0
        per_stage = ", ".join(f"{stage} {value:.1f} s" for stage, value in times.seconds.items())
        synthetic = f", {run.synthesis.n_records:,} synthetic records" if run.synthesis else ""
        print(f"census_kdd {label}: {seconds:.1f} s, peak {memory.peak_gb:.2f} GB; {combinations:,} distinct "
              f"combinations{synthetic}; outputs {size:.1f} GB; stages: {per_stage}", flush=True)
        spark.catalog.clearCache()
    if spark is not None:
        spark.stop()


if __name__ == "__main__":
    main()
