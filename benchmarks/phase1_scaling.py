"""How row_seeded phase 1 (spec §4.1) scales with the number of sensitive records N.

Phase 1 is the per-record work the executors run; its cost per record is what limits synthesis
at 10^7 records and beyond. This benchmark runs the compiled kernel alone (no Spark) on Adult
resampled to N rows, and prints the time per record and what that means for a whole table.

The N-row tables are made in memory: rows of the Adult extract drawn uniformly with replacement,
then each cell replaced with probability 2 % by the same column's cell of another drawn row (so
marginals stay and some new, mostly rare, combinations appear, like
``/work/shared/datasets/make_scaled.py`` does for files). Values are only trimmed, which is all
Adult needs. The support index is built directly from the encoded matrix. The first ``--sample``
records are synthesized with a fresh support cache, timed in two halves (the second half finds a
warmer cache). The whole-table estimate uses the second half; a real task runs N / tasks records
and finds its cache warmer still, so the estimate is an upper bound.

Usage::

    .venv/bin/python benchmarks/phase1_scaling.py [--rows 1e5 1e6 1e7] [--sample 3000] [--k 10]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ksynth_spark import synthesis_kernels as K  # noqa: E402


def encoded_adult() -> tuple[np.ndarray, np.ndarray]:
    """``(matrix, attribute_columns)``: the Adult extract as an (n, C) matrix of attribute ids
    in canonical order (-1 = empty cell) and the column of every id."""
    frame = pd.read_csv(REPO / "data" / "adult.csv.gz", dtype=str, keep_default_na=False)
    frame = frame.apply(lambda column: column.str.strip())
    labels = sorted({f"{c}:{v}" for c in frame.columns for v in frame[c].unique() if v != ""})
    ids = {label: i for i, label in enumerate(labels)}
    columns = list(frame.columns)
    attribute_columns = np.array([columns.index(label.split(":", 1)[0]) for label in labels], dtype=np.int64)
    matrix = np.full(frame.shape, -1, dtype=np.int64)
    for c, name in enumerate(columns):
        values = frame[name].to_numpy()
        present = values != ""
        matrix[present, c] = [ids[f"{name}:{v}"] for v in values[present]]
    return matrix, attribute_columns


def resampled(matrix: np.ndarray, rows: int, seed: int, swap: float = 0.02) -> np.ndarray:
    rng = np.random.default_rng(seed)
    table = matrix[rng.integers(0, len(matrix), rows)]
    swapped = rng.random(table.shape) < swap
    donors = rng.integers(0, len(matrix), int(swapped.sum()))
    table[swapped] = matrix[donors, np.nonzero(swapped)[1]]
    return table


def support_index(table: np.ndarray, space: K.AttributeSpace, k: int) -> K.SupportIndex:
    n = len(table)
    n_words = max(1, (n + 63) // 64)
    bits = np.zeros((space.n_attrs, n_words), dtype=np.uint64)
    for attr in range(space.n_attrs):
        mask = np.zeros(n_words * 64, dtype=bool)
        mask[:n] = table[:, space.columns[attr]] == attr
        bits[attr] = np.packbits(mask, bitorder="little").view(np.uint64)
    return K.SupportIndex(bits, space, n, k)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", type=float, default=[1e5, 1e6, 1e7])
    parser.add_argument("--sample", type=int, default=3000, help="records synthesized per N (timed)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--cache-size", type=int, default=100000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    matrix, attribute_columns = encoded_adult()
    space = K.AttributeSpace(attribute_columns, matrix.shape[1])
    warm = support_index(matrix, space, args.k)  # compiles the kernels outside the timings
    K.row_seeded_phase1(K.SupportOracle(warm, 16), args.seed, np.arange(2), np.array([0, 1, 2]), np.array([0, 1]))
    print(f"{'N':>12} {'index s':>8} {'ms/rec 1st':>10} {'ms/rec 2nd':>10} {'all N, 1 core':>16} {'cache hits':>11}")
    for rows in (int(r) for r in args.rows):
        table = resampled(matrix, rows, args.seed)
        started = time.perf_counter()
        index = support_index(table, space, args.k)
        built = time.perf_counter() - started
        sample = table[: args.sample]
        present = sample >= 0
        ids = np.sort(sample, axis=1)
        ids = ids[ids >= 0]
        offsets = np.concatenate(([0], np.cumsum(present.sum(axis=1))))
        oracle = K.SupportOracle(index, args.cache_size)
        half = len(sample) // 2
        seconds = []
        for part in (slice(0, half), slice(half, len(sample))):  # cold cache, then warmer
            record_ids = np.arange(len(sample))[part]
            started = time.perf_counter()
            K.row_seeded_phase1(oracle, args.seed, record_ids, offsets[part.start:part.stop + 1], ids)
            seconds.append((time.perf_counter() - started) / len(record_ids))
        hours = seconds[1] * rows / 3600
        total = oracle.cache.hits + oracle.cache.misses
        print(f"{rows:>12,} {built:>8.1f} {seconds[0] * 1e3:>10.3f} {seconds[1] * 1e3:>10.3f} {hours:>14.2f} h "
              f"{oracle.cache.hits / max(1, total):>10.0%}", flush=True)


if __name__ == "__main__":
    main()
