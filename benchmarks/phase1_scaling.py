"""How row_seeded phase 1 scales with the number of sensitive records N (the kernel alone, one core).

Phase 1 runs over the DISTINCT sensitive rows: the copies of a row grow together and every
support is computed over the distinct-row index (:mod:`ksynth_spark.synthesis`). This benchmark
reads the N-row tables made by ``../shared/datasets/make_scaled.py`` (CSV files written outside
the repository, e.g. ``/tmp/scaled/adult_<N>.csv``; made on demand), counts their distinct rows
with pandas, builds the index and times the whole phase 1 in one process with a warm numba
cache. It prints distinct rows, index size, seconds, time per record and the ratio to the first
size, which is what the generate stage's per-record cost follows.

Usage::

    .venv/bin/python benchmarks/phase1_scaling.py [--rows 1e6 1e7] [--data-dir /tmp/scaled] [--k 10] [--with-rows]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ksynth_spark.combinations import csr_from_lists  # noqa: E402
from ksynth_spark.randomness import row_hashes  # noqa: E402
from ksynth_spark.synthesis.index import AttributeSpace, DistinctIndex  # noqa: E402
from ksynth_spark.synthesis.paths import SupportOracle  # noqa: E402
from ksynth_spark.synthesis.seeded import grow_rows  # noqa: E402

MAKE_SCALED = REPO.parent / "shared" / "datasets" / "make_scaled.py"


def scaled_table(rows: int, directory: str) -> str:
    """Path of the N-row table, generated with make_scaled.py unless it already exists."""
    path = os.path.join(directory, f"adult_{rows}.csv")
    if not os.path.exists(path):
        os.makedirs(directory, exist_ok=True)
        subprocess.run([sys.executable, str(MAKE_SCALED), "--rows", str(rows), "--out", path], check=True,
                       stderr=subprocess.DEVNULL)
    return path


def distinct_rows(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, AttributeSpace]:
    """The table's distinct rows (CSR of canonical attribute ids), their counts, and the columns."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    columns = list(frame.columns)
    grouped = frame.groupby(columns).size().reset_index(name="weight")
    labels = sorted({f"{c}:{v}" for c in columns for v in grouped[c].unique() if v != ""})
    ids = {label: i for i, label in enumerate(labels)}
    records = [[ids[f"{c}:{v}"] for c, v in zip(columns, row, strict=True) if v != ""]
               for row in grouped[columns].itertuples(index=False)]
    offsets, flat = csr_from_lists(records)
    space = AttributeSpace(np.array([columns.index(label.split(":", 1)[0]) for label in labels]), len(columns))
    return offsets, flat, grouped["weight"].to_numpy(np.int64), space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", type=float, default=[1e6, 1e7])
    parser.add_argument("--data-dir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "scaled"))
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--cache", type=int, default=100_000)
    parser.add_argument("--with-rows", action="store_true",
                        help="index with its rows (histogram supports; the generate stage keeps them only for "
                             "value_seeded and unseeded)")
    args = parser.parse_args()
    print(f"{'records':>11} {'distinct':>9} {'index MB':>9} {'phase 1 s':>10} {'µs/record':>10} {'ratio':>6}")
    first = None
    for n in (int(r) for r in args.rows):
        offsets, ids, weights, space = distinct_rows(scaled_table(n, args.data_dir))
        index = DistinctIndex(offsets, ids, weights, space, args.k, keep_rows=args.with_rows)
        oracle = SupportOracle(index, args.cache)
        hashes = row_hashes(offsets, ids)
        grow_rows(oracle, 1, hashes[:5], offsets[:6], ids, weights[:5])       # compile / load the numba cache
        oracle = SupportOracle(index, args.cache)
        started = time.perf_counter()
        grown = grow_rows(oracle, 1, hashes, offsets, ids, weights)
        seconds = time.perf_counter() - started
        assert int(grown.runs.sum()) == n
        per_record = seconds / n * 1e6
        first = first or per_record
        print(f"{n:>11,} {len(weights):>9,} {index.nbytes / 1e6:>9.1f} {seconds:>10.1f} {per_record:>10.2f} "
              f"{per_record / first:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
