"""Random streams: the one home of every seeded random draw of a release (no Spark here).

Every random choice of the synthesizer (and the reproducible test noise of the DP path) is drawn
from a SplitMix64 stream keyed by ``(seed, phase, logical id)``: a distinct sensitive row, a
synthetic record number, a consolidation task. A stream depends on nothing else, so a record
comes out the same whichever process, partition or batch builds it, and a retried task
reproduces its rows. The compiled functions (``stream_state``, ``next_u64``, ``below``,
``draw``, ``permutation``) are called from the numba kernels; :class:`RandomStream` and
:func:`uniform_keys` are their Python faces.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ksynth_spark.jit import kernel

# Phase tags of the streams (part of the stream key; never reuse a value).
PHASE_ROW_SEEDED = 1
PHASE_CONSOLIDATE = 2
PHASE_SUPPRESS = 3
PHASE_UNSEEDED = 4
PHASE_VALUE_SEEDED = 5
PHASE_AGGREGATE_SEEDED = 6
PHASE_ZOBRIST = 7
PHASE_ROW_HASH = 8
PHASE_DP_CLIPPING = 9

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
MASK64 = (1 << 64) - 1


@kernel
def finalize(z):
    """SplitMix64 output function (uint64 wrap-around)."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@kernel
def _stream_base(seed64, phase):
    return finalize(finalize(seed64 + GOLDEN) ^ np.uint64(phase))


@kernel
def stream_state(base, logical_id):
    """Initial state of the stream ``logical_id`` of a ``(seed, phase)`` base key."""
    return finalize((base ^ np.uint64(logical_id)) + GOLDEN)


@kernel
def next_u64(state):
    """Next uniform 64-bit integer of the stream whose state is ``state[0]``."""
    state[0] += GOLDEN
    return finalize(state[0])


@kernel
def below(state, n):
    """Uniform integer in ``[0, n)``, exact (rejects the incomplete low block)."""
    n64 = np.uint64(n)
    threshold = (np.uint64(0) - n64) % n64
    while True:
        x = next_u64(state)
        if x >= threshold:
            return np.int64(x % n64)


@kernel
def draw(weights, n, state):
    """Spec WChoice: ``r`` uniform in ``[1, Σw]``; the first candidate whose running sum is
    ``>= r``; -1 (NONE) when every weight is 0."""
    total = 0
    for i in range(n):
        total += weights[i]
    if total <= 0:
        return -1
    r = 1 + below(state, total)
    running = 0
    for i in range(n):
        running += weights[i]
        if running >= r:
            return i
    return -1


@kernel
def split_runs(weights, n, runs, state, out):
    """Splits ``runs`` independent WChoice draws over ``weights[:n]``: ``out[i]`` = how many
    chose candidate ``i`` (a multinomial sample, drawn run by run so that it equals ``runs``
    separate :func:`draw` calls in distribution)."""
    for i in range(n):
        out[i] = 0
    if n == 1:
        out[0] = runs
        return
    for _ in range(runs):
        out[draw(weights, n, state)] += 1


@kernel
def permutation(state, items, n):
    """Writes a uniform random permutation of ``range(n)`` into ``items`` (Fisher–Yates)."""
    for i in range(n):
        items[i] = i
    for i in range(n - 1, 0, -1):
        j = below(state, i + 1)
        items[i], items[j] = items[j], items[i]


@kernel
def _uniform_keys(base, ids, out, state):
    for i in range(ids.size):
        state[0] = stream_state(base, ids[i])
        out[i] = next_u64(state)


@kernel
def _row_hashes(base, offsets, ids, out):
    for r in range(offsets.size - 1):
        h = base
        for j in range(offsets[r], offsets[r + 1]):
            h = finalize(h ^ np.uint64(ids[j] + 1))
        out[r] = finalize(h ^ np.uint64(offsets[r + 1] - offsets[r]))


def stream_base(seed: int, phase: int) -> np.uint64:
    """Base key of the streams of one phase of one seed (any Python int seed, taken mod 2^64)."""
    return np.uint64(_stream_base(np.uint64(int(seed) & MASK64), np.int64(phase)))


class RandomStream:
    """The stream ``(seed, phase, logical_id)`` from Python (driver-side draws and tests)."""

    def __init__(self, seed: int, phase: int, logical_id: int):
        self.state = np.array([np.uint64(stream_state(stream_base(seed, phase), np.int64(logical_id)))],
                              dtype=np.uint64)

    def next_u64(self) -> int:
        """The next uniform 64-bit integer."""
        return int(next_u64(self.state))

    def below(self, n: int) -> int:
        """A uniform integer in ``[0, n)``."""
        return int(below(self.state, np.int64(n)))

    def wchoice(self, weights: Sequence[int]) -> int:
        """Spec WChoice over integer weights in candidate order (index, or -1 for NONE)."""
        w = np.asarray(weights, dtype=np.int64)
        return int(draw(w, w.size, self.state))

    def permutation(self, n: int) -> np.ndarray:
        """A uniform random permutation of ``range(n)``."""
        items = np.zeros(n, dtype=np.int64)
        permutation(self.state, items, n)
        return items


def uniform_keys(seed: int, phase: int, logical_ids: np.ndarray) -> np.ndarray:
    """First output of ``RandomStream(seed, phase, id)`` for every id (uint64 array)."""
    ids = np.asarray(logical_ids, dtype=np.int64)
    out = np.zeros(ids.size, dtype=np.uint64)
    _uniform_keys(stream_base(seed, phase), ids, out, np.zeros(1, dtype=np.uint64))
    return out


def row_hashes(offsets: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """A 64-bit content hash of every CSR attribute set (ids in ascending order): the logical id
    of a distinct sensitive row, identical whichever partition or batch holds the row.

    Returns:
        int64 array (the uint64 hash reinterpreted), one per set.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    out = np.zeros(len(offsets) - 1, dtype=np.uint64)
    _row_hashes(stream_base(0, PHASE_ROW_HASH), offsets, np.asarray(ids, dtype=np.int64), out)
    return out.view(np.int64)


def mix64(x: np.ndarray) -> np.ndarray:
    """The SplitMix64 output function on a uint64 array (vectorised numpy, wrapping)."""
    with np.errstate(over="ignore"):
        x = np.asarray(x, dtype=np.uint64)
        x = (x ^ (x >> np.uint64(30))) * _MIX1
        x = (x ^ (x >> np.uint64(27))) * _MIX2
        return x ^ (x >> np.uint64(31))
