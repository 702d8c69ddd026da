"""aggregate_seeded consolidation kernel (spec §4.4) alone, one core: seconds and µs per quota unit.

Reads the N-row resampled Adult table (``benchmarks/phase1_scaling.py`` makes and reads it) and
builds its reportable aggregate table as the pipeline does, without Spark: the weighted counts of
every combination of up to ``--length`` attributes of the distinct rows
(``ksynth_spark.combinations.count_combinations``), combinations with count ``>= k`` kept and
their counts rounded down to multiples of ``k`` (spec §2.4, ``aggregate.protect``),
and the table is loaded as the generate stage's ``_table`` does. The single counts are the
quotas, split into the generate stage's logical tasks (``split_quota(quota,
task_count(total))``); Consolidate with the aggregate sampler then runs for the first
``--tasks`` tasks with their own streams ``(seed, PHASE_AGGREGATE_SEEDED, task)``. It prints
seconds, µs per quota unit and a hash of the records built (equal hashes = identical output).

Usage::

    .venv/bin/python benchmarks/aggregate_consolidation.py [--rows 1e6] [--k 10] [--length 3] [--tasks 1]
        [--percentile 95] [--synthetic-counts] [--repeat 1]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.phase1_scaling import distinct_rows, scaled_table  # noqa: E402
from ksynth_spark.combinations import ComboCodec, count_combinations, reduce_counts  # noqa: E402
from ksynth_spark.numerics import floor_k  # noqa: E402
from ksynth_spark.randomness import PHASE_AGGREGATE_SEEDED, RandomStream  # noqa: E402
from ksynth_spark.synthesis.aggregate_table import AggregateTable  # noqa: E402
from ksynth_spark.synthesis.consolidation import (  # noqa: E402
    AggregateSampler,
    consolidate,
    split_quota,
    task_count,
)
from ksynth_spark.synthesis.index import AttributeSpace  # noqa: E402


def reportable_table(offsets: np.ndarray, ids: np.ndarray, weights: np.ndarray, space: AttributeSpace, k: int,
                     length: int) -> AggregateTable:
    """The k-anonymous aggregates (``floor_k`` of every count ``>= k``) of the weighted distinct rows,
    counted with the package's combination counter."""
    codec = ComboCodec(space.n_attrs, length)
    parts = list(count_combinations(codec, offsets, ids, weights, length))
    keys, counts = reduce_counts(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    kept = counts >= k
    combos, sizes = codec.unpack(keys[kept])
    table_offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return AggregateTable(table_offsets, combos[combos >= 0], floor_k(counts[kept], k), space.n_attrs, length)


def records_hash(offsets: np.ndarray, ids: np.ndarray) -> str:
    """A short hash of CSR records (creation order)."""
    digest = hashlib.sha256(np.ascontiguousarray(offsets, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(ids, dtype=np.int64).tobytes())
    return digest.hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, default=1e6)
    parser.add_argument("--data-dir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "scaled"))
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--length", type=int, default=3, help="reporting length of the aggregate table")
    parser.add_argument("--tasks", type=int, default=1, help="logical tasks to time (the first ones)")
    parser.add_argument("--percentile", type=float, default=95.0)
    parser.add_argument("--synthetic-counts", action="store_true", help="use_synthetic_counts")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    offsets, ids, weights, space = distinct_rows(scaled_table(int(args.rows), args.data_dir))
    started = time.perf_counter()
    table = reportable_table(offsets, ids, weights, space, args.k, args.length)
    quota = table.singles()
    shares = split_quota(quota, task_count(int(quota.sum())))
    print(f"{int(args.rows):,} records, {len(weights):,} distinct rows, {len(table):,} aggregate rows "
          f"({time.perf_counter() - started:.1f} s); {int(quota.sum()):,} quota units in {len(shares)} tasks")
    sampler = AggregateSampler(table, args.percentile, args.synthetic_counts)
    consolidate(shares[0] // 1000, sampler, space, RandomStream(0, 0, 0))      # compile / load the numba cache
    for _ in range(args.repeat):
        for task in range(args.tasks):
            share = shares[task]
            started = time.perf_counter()
            made = consolidate(share, sampler, space, RandomStream(args.seed, PHASE_AGGREGATE_SEEDED, task))
            seconds = time.perf_counter() - started
            print(f"task {task}: {int(share.sum()):,} units, {seconds:6.2f} s, "
                  f"{seconds / share.sum() * 1e6:6.2f} µs per unit, {made.n_records:,} records, "
                  f"hash {records_hash(made.offsets, made.ids)}", flush=True)


if __name__ == "__main__":
    main()
