"""unseeded synthesis: records drawn column by column from the sensitive joint distribution (numba).

Spec: for each of the N records, visit the columns in a random order; in each column draw a
value with weight ``support(P ∪ {value})``, where values of support ``< k`` are folded into
"empty" (whose weight is the support of the rows with no value in the column plus the folded
ones), and choosing "empty" keeps only the rows truly empty in that column. Record ``t`` uses
the stream ``(seed, PHASE_UNSEEDED, t)``, so it is the same whichever task builds it; the
"empty in column c" condition is the pseudo id ``A + c`` of the support index.
"""

from __future__ import annotations

import numpy as np

from ksynth_spark.jit import kernel
from ksynth_spark.randomness import PHASE_UNSEEDED, draw, permutation, stream_base, stream_state
from ksynth_spark.synthesis.paths import SupportOracle, emit_path, path_push, path_reset, supports


@kernel
def _one_record(index, cache, path, member_offsets, member_ids, n_attrs, state, order, candidates, weights):
    k = index.k
    n_columns = member_offsets.size - 1
    path_reset(path, index)
    permutation(state, order, n_columns)
    for position in range(n_columns):
        column = order[position]
        n_values = member_offsets[column + 1] - member_offsets[column]
        for i in range(n_values):
            candidates[i] = member_ids[member_offsets[column] + i]
        candidates[n_values] = n_attrs + column
        supports(index, cache, path, candidates, n_values + 1, weights)
        for i in range(n_values):
            if weights[i] < k:
                weights[n_values] += weights[i]
                weights[i] = 0
        chosen = draw(weights, n_values + 1, state)
        if chosen >= 0:                     # (EMPTY's weight includes the folded values: an upper bound)
            path_push(path, index.zobrist, candidates[chosen], weights[chosen])


@kernel
def _batch(index, cache, path, base, member_offsets, member_ids, n_attrs, numbers, out_offsets, out_ids, state,
           order, candidates, weights):
    out_offsets[0] = 0
    for j in range(numbers.size):
        state[0] = stream_state(base, numbers[j])
        _one_record(index, cache, path, member_offsets, member_ids, n_attrs, state, order, candidates, weights)
        emit_path(path, n_attrs, out_offsets, out_ids, j)


def unseeded_records(oracle: SupportOracle, seed: int, numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Records ``t`` for every ``t`` in ``numbers`` (stream ``(seed, PHASE_UNSEEDED, t)``).

    Returns:
        CSR ``(offsets, ids)`` in the order of ``numbers`` (records may be empty).
    """
    numbers = np.asarray(numbers, dtype=np.int64)
    space = oracle.index.space
    member_offsets, member_ids = space.members()
    out_offsets = np.zeros(numbers.size + 1, dtype=np.int64)
    out_ids = np.zeros(max(1, numbers.size * space.n_columns), dtype=np.int64)
    width = 1 + int(np.diff(member_offsets).max(initial=0))
    _batch(oracle.index.parts(), oracle.cache.parts(), oracle.path, stream_base(seed, PHASE_UNSEEDED), member_offsets,
           member_ids, space.n_attrs, numbers, out_offsets, out_ids, np.zeros(1, dtype=np.uint64),
           np.zeros(max(1, space.n_columns), dtype=np.int64), np.zeros(width, dtype=np.int64),
           np.zeros(width, dtype=np.int64))
    return out_offsets, out_ids[:out_offsets[-1]]
