"""Consolidation kernel (value_seeded's engine) alone, one core: row proposals vs exact weights.

Builds the distinct-row index of an N-row resampled Adult table (``benchmarks/phase1_scaling.py``
makes and reads it), takes ``floor_k(n(a))`` quotas split into the same logical tasks as the
generate stage, and times Consolidate of one task twice per repetition: with an index that
keeps its rows and posting lists (steps drawn by row proposals, falling back to every
candidate's support, as the generate stage does for ``value_seeded``) and without (every step
computes every candidate's support, one query per value). Both draw from the same law, not the
same records; both must use every unit of quota. It prints seconds and µs per quota unit.

Usage::

    .venv/bin/python benchmarks/consolidation.py [--rows 1e6] [--k 10] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.phase1_scaling import distinct_rows, scaled_table  # noqa: E402
from ksynth_spark.randomness import PHASE_VALUE_SEEDED, RandomStream  # noqa: E402
from ksynth_spark.synthesis.consolidation import (  # noqa: E402
    SeedSampler,
    consolidate,
    seeded_quotas,
    split_quota,
    task_count,
)
from ksynth_spark.synthesis.index import DistinctIndex  # noqa: E402
from ksynth_spark.synthesis.paths import SupportOracle  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, default=1e6)
    parser.add_argument("--data-dir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "scaled"))
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--cache", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    offsets, ids, weights, space = distinct_rows(scaled_table(int(args.rows), args.data_dir))
    counts = np.bincount(np.repeat(ids, np.repeat(weights, np.diff(offsets))), minlength=space.n_attrs)
    quota = seeded_quotas(counts, args.k)
    share = split_quota(quota, task_count(int(quota.sum())))[0]
    indexes = {"row proposals": DistinctIndex(offsets, ids, weights, space, args.k, keep_rows=True),
               "exact weights": DistinctIndex(offsets, ids, weights, space, args.k)}
    print(f"{int(args.rows):,} records, {len(weights):,} distinct rows; one task of {int(share.sum()):,} quota units")
    for index in indexes.values():           # compile / load the numba cache
        consolidate(share // 100, SeedSampler(SupportOracle(index, 100)), space, RandomStream(0, 0, 0))
    for _ in range(args.repeat):
        for name, index in indexes.items():
            started = time.perf_counter()
            made = consolidate(share, SeedSampler(SupportOracle(index, args.cache)), space,
                               RandomStream(1, PHASE_VALUE_SEEDED, 0))
            seconds = time.perf_counter() - started
            used = np.bincount(made.ids, minlength=space.n_attrs)
            assert made.quota_left == 0 and (used == share).all()
            print(f"{name:>15}: {seconds:6.1f} s, {seconds / share.sum() * 1e6:6.1f} µs per unit, "
                  f"{made.n_records:,} records", flush=True)


if __name__ == "__main__":
    main()
