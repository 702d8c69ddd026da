"""Benchmark: the evaluate stage (spec §5) on the Adult extract, k = 10.

For each reporting length (default 3 and 4) it loads and aggregates adult (not timed), builds a
k-anonymous synthetic set, then times the evaluate stage of the pipeline
(:func:`ksynth_spark.pipeline.stage_evaluate`: :func:`ksynth_spark.evaluate.evaluate`, then
rendering by :func:`ksynth_spark.report.evaluation.render_evaluation` and writing), sampling the
peak resident memory of the whole process tree (Python driver + JVM + Python workers) from /proc
every 50 ms.

The synthetic set does not need the synthesizer: every distinct sensitive row is shrunk greedily
(its attributes in random order, rare attributes skipped) to a subset whose sensitive support
stays ≥ k, and all its records get that subset, i.e. row_seeded phase 1 without the quota
consolidation. It is k-anonymous, so the expected leakage is 0 at every length (invariant E3),
which the printout shows.

The printout compares with the original 2021 pure-Python pipeline, whose evaluate stage took over
2 minutes on the same 2 cores at reporting length 3.

Usage::

    .venv/bin/python benchmarks/evaluate.py [--lengths 3 4] [--data data/adult.csv.gz] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.memory import PeakMemory  # noqa: E402

K = 10
BASELINE_2021 = "2021 pure-Python pipeline, evaluate stage at L=3 on these 2 cores: > 120 s"


# ------------------------------------------------------------------------------ synthetic set
def k_anonymous_records(spark, data, k: int, seed: int):
    """A k-anonymous synthetic records DataFrame (``syn_start, count, attrs``: distinct records in
    output order with their copies) built from the distinct sensitive rows (benchmark only: the
    rows are collected to this driver)."""
    from ksynth_spark.verify import sensitive_bitsets

    index = sensitive_bitsets(data)
    counts = data.attribute_counts
    rng = np.random.default_rng(seed)

    def support(acc) -> int:
        return sum(int(np.bitwise_count(acc & index.planes[b]).sum()) << b for b in range(index.planes.shape[0]))

    copies: dict[tuple, int] = {}
    for row in data.rows.collect():
        acc, kept = None, []
        for a in rng.permutation(np.asarray(row["attrs"], dtype=np.int64)):
            if counts[a] < k:
                continue
            candidate = index.bits[a] if acc is None else acc & index.bits[a]
            if support(candidate) >= k:
                acc, kept = candidate, kept + [int(a)]
        if kept:
            key = tuple(sorted(kept))
            copies[key] = copies.get(key, 0) + int(row["weight"])
    rows, start = [], 0
    for attrs in sorted(copies, key=lambda t: (-len(t), t)):
        rows.append((start, copies[attrs], list(attrs)))
        start += copies[attrs]
    return spark.createDataFrame(rows, "syn_start long, count long, attrs array<int>")


# ------------------------------------------------------------------------------ one length
def run_length(spark, data_path: str, length: int, seed: int) -> dict:
    from ksynth_spark import io, pipeline
    from ksynth_spark.aggregate import aggregate
    from ksynth_spark.config import Config
    from ksynth_spark.evaluate import evaluate
    from ksynth_spark.load import load_encoded
    from ksynth_spark.synthesis.stage import SynthesisResult

    out = tempfile.mkdtemp(prefix="ksynth-bench-evaluate-")
    config = Config(sensitive_microdata_path=data_path, reporting_length=length, reporting_resolution=K,
                    table_format="parquet", output_dir=out, prefix="adult")
    data = load_encoded(spark, config)
    aggregates = aggregate(spark, data, config)
    n_sensitive = aggregates.sensitive.count()
    synthetic = k_anonymous_records(spark, data, K, seed).cache()
    n_synthetic = int(synthetic.agg({"count": "sum"}).first()[0])
    run = pipeline.Run(spark=spark, config=config, staging=io.Staging(spark, out), stages=("evaluate",), data=data,
                       aggregates=aggregates,
                       synthesis=SynthesisResult(synthetic, n_synthetic, synthetic.count(),
                                                 n_synthetic / data.n_records, {}),
                       reportable=pipeline.Reportable(aggregates.reportable, aggregates.protected_record_count,
                                                      "protected_count"))
    timings = {}

    def timed_evaluate(*args, **kwargs):
        started = time.perf_counter()
        result = evaluate(*args, **kwargs)
        timings["evaluate"] = time.perf_counter() - started
        return result

    pipeline.evaluate = timed_evaluate  # the stage's computation, timed apart from rendering and writing
    try:
        with PeakMemory() as memory:
            started = time.perf_counter()
            pipeline.stage_evaluate(run)
            run.staging.commit()
            finished = time.perf_counter()
    finally:
        pipeline.evaluate = evaluate
    headline = run.evaluation.headline
    return {
        "length": length, "sensitive_combinations": n_sensitive, "synthetic_records": n_synthetic,
        "synthetic_combinations": headline.synthetic_combinations,
        "evaluate_s": timings["evaluate"], "write_s": finished - started - timings["evaluate"],
        "peak_mb": memory.peak / 2 ** 20,
        "leakage": headline.leaked_by_length, "mpe": headline.mean_proportional_error,
        "preservation": headline.count_preservation_by_length, "output": out,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[3, 4])
    parser.add_argument("--data", default=str(REPO / "data" / "adult.csv.gz"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    from ksynth_spark.config import Config, SparkSettings
    from ksynth_spark.report.metrics import COUNT_PRESERVATION, MEAN_PROPORTIONAL_ERROR
    from ksynth_spark.session import get_session

    spark = get_session(Config(sensitive_microdata_path=args.data, table_format="parquet",
                               spark=SparkSettings(master="local[2]")), with_delta=False)
    rows = [run_length(spark, args.data, length, args.seed) for length in args.lengths]
    print(f"\nEvaluate stage on {Path(args.data).name}, k = {K}, local[2] "
          f"(cores: {os.cpu_count()}, load average at end: {os.getloadavg()[0]:.1f})")
    print(f"{'L':>2} {'|S|':>9} {'N_Y':>7} {'|Y|':>9} {'evaluate s':>11} {'write s':>8} {'peak MB':>8}  "
          f"{'MPE':>8}  leaked rare combinations by length / count preservation by length")
    for r in rows:
        preservation = ", ".join(COUNT_PRESERVATION.format(v) for v in r["preservation"].values())
        print(f"{r['length']:>2} {r['sensitive_combinations']:>9,} {r['synthetic_records']:>7,} "
              f"{r['synthetic_combinations']:>9,} {r['evaluate_s']:>11.1f} {r['write_s']:>8.1f} {r['peak_mb']:>8.0f}  "
              f"{MEAN_PROPORTIONAL_ERROR.format(r['mpe']):>8}  {list(r['leakage'].values())} / [{preservation}]")
    print(f"Baseline: {BASELINE_2021}.")
    for r in rows:
        print(f"  ksynth-spark L={r['length']}: evaluate {r['evaluate_s']:.1f} s (+ {r['write_s']:.1f} s rendering "
              f"and writing TSVs, tables, charts and the summary); outputs in {r['output']}")
    spark.stop()


if __name__ == "__main__":
    main()
