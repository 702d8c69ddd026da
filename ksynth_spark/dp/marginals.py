"""The per-length noisy extraction of the DP marginals (spec §3.4), as numpy kernels (no Spark).

For a length ``l``: the candidate universe ``V_l`` (a), every distinct row's valid combinations
``W`` (b), clipping each record's contribution to Δ combinations (d), noise (e) and the
selection threshold (f). Combinations are packed keys of :mod:`ksynth_spark.combinations`.

The sensitive table is held as distinct rows with weights (``m`` records share one attribute
set). A row with ``|W| <= Δ`` adds ``m`` to each of its valid combinations. Otherwise each
copy ``j = 0..m-1`` keeps its own uniform random Δ-subset of ``W``: the Δ combinations of
smallest priority, a hash of (clipping key, length, row content hash, ``j``, packed
combination). So the counts equal in distribution those of ``m`` separate records, are
reproducible from a test seed and do not depend on partitioning, batching or chunk sizes.
The per-row kernels (:func:`valid_sizes`, :func:`clipped_counts`) run in Spark executors.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from ksynth_spark.combinations import ComboCodec, CountAccumulator, enumerate_combinations, sortable
from ksynth_spark.dp.noise import NoiseSource
from ksynth_spark.numerics import member
from ksynth_spark.randomness import GOLDEN, mix64, row_hashes

#: Upper bound of candidate combinations materialised at once during candidate generation.
CANDIDATE_CHUNK = 1 << 22
#: Largest |V_l| counted with a dense per-batch vector (8 bytes per candidate).
DENSE_COUNT_LIMIT = 1 << 22
#: Combination instances enumerated (and clipped copies expanded) at once per task: small chunks
#: stay in cache and keep Python-worker memory flat (measured on adult: 4M instances ~ +300 MB
#: and no faster).
CHUNK_INSTANCES = 1 << 17


# ============================================================================== thresholds (§3.4 f)
def normal_upper_quantile(tail: float) -> float:
    """``Φ⁻¹(1 − tail)`` computed from the tail (accurate when ``tail`` is tiny)."""
    if tail >= 0.5:
        return 0.0 if tail == 0.5 else -NormalDist().inv_cdf(1.0 - tail)
    return -NormalDist().inv_cdf(tail)


def length_threshold(
    length: int,
    sigma_l: float,
    allowed: int,
    delta: float,
    threshold_type: str,
    threshold_values: dict[int, float],
) -> float:
    """Selection threshold ``rho_l`` of length ``l`` with allowed contribution Δ = ``allowed``.

    Length 1 carries the δ part of the guarantee and cannot be configured; lengths ≥ 2 read
    ``threshold_values`` (default 0.0 for ``fixed``, 1.0 for ``adaptive``).
    """
    if length == 1:
        tail = -math.expm1(math.log1p(-delta / 2.0) / allowed)  # 1 − (1 − δ/2)^(1/Δ)
        return 1.0 + sigma_l * math.sqrt(allowed) * normal_upper_quantile(tail)
    if threshold_type == "fixed":
        return float(threshold_values.get(length, 0.0))
    eta = float(threshold_values.get(length, 1.0))
    return sigma_l * math.sqrt(allowed) * normal_upper_quantile(min(eta / 2.0, 0.5))


# ============================================================================== candidates (§3.4 a)
def sort_keys(keys: np.ndarray) -> np.ndarray:
    """Packed keys ``(n, w)`` in ascending sortable order."""
    keys = np.asarray(keys, dtype=np.int64)
    if keys.shape[0] == 0:
        return keys
    return keys[np.argsort(sortable(keys), kind="stable")]


def single_attribute_keys(codec: ComboCodec, attribute_ids: np.ndarray) -> np.ndarray:
    """Sorted packed keys of the length-1 candidates (every attribute present)."""
    ids = np.asarray(attribute_ids, dtype=np.int64).reshape(-1, 1)
    return sort_keys(codec.pack(ids))


def candidate_universe(
    codec: ComboCodec, previous: np.ndarray, length: int, attribute_columns: np.ndarray
) -> np.ndarray:
    """``V_l`` for ``l >= 2`` from the survivors ``S[l-1]`` (spec §3.4 a).

    A candidate ``x_1 < … < x_l`` is generated once, from its prefix ``x_1..x_{l-1}`` (which
    must be in ``S[l-1]``) and ``x_l ∈ A`` with ``x_l > x_{l-1}``; it is kept if its columns are
    distinct and (``l >= 3``) every other ``(l-1)``-subset is in ``S[l-1]``. As every member of
    ``S[l-1]`` already has all its sub-combinations of lengths ``2..l-2`` in ``S``, this is the
    spec's rule.

    Args:
        codec: Codec of the release (``max_length >= length``).
        previous: Sorted packed keys of ``S[l-1]``.
        length: ``l``.
        attribute_columns: Column index of every attribute id.

    Returns:
        Sorted packed keys of ``V_l``.
    """
    previous = np.asarray(previous, dtype=np.int64).reshape(-1, codec.n_words)
    if previous.shape[0] == 0:
        return previous
    prev_ids = codec.unpack(previous)[0][:, : length - 1]
    prev_view = sortable(previous)
    attrs = np.unique(prev_ids)
    starts = np.searchsorted(attrs, prev_ids[:, -1], side="right")
    extra = attrs.size - starts
    columns = np.asarray(attribute_columns, dtype=np.int64)
    found = []
    for rows in row_blocks(extra, CANDIDATE_CHUNK):
        parents = np.repeat(rows, extra[rows])
        if parents.size == 0:
            continue
        added = attrs[starts[parents] + _ranks(extra[rows])]
        ids = np.column_stack([prev_ids[parents], added])
        cols = columns[ids]
        keep = ~(cols[:, :-1] == cols[:, -1:]).any(axis=1)
        for drop in range(length - 1) if length >= 3 else ():  # dropping the last slot gives the parent
            sub = np.delete(ids, drop, axis=1)
            keep &= member(prev_view, sortable(codec.pack(sub)))[0]
        found.append(codec.pack(ids[keep]))
    if not found:
        return np.zeros((0, codec.n_words), dtype=np.int64)
    return sort_keys(np.concatenate(found))


def row_blocks(sizes: np.ndarray, limit: int) -> Iterator[np.ndarray]:
    """Consecutive index blocks whose ``sizes`` sum to about ``limit`` (one entry may exceed it)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    block = (np.cumsum(sizes) - sizes) // max(limit, 1)
    bounds = np.flatnonzero(np.diff(block)) + 1
    yield from (rows for rows in np.split(np.arange(sizes.size), bounds) if rows.size)


def _ranks(counts: np.ndarray) -> np.ndarray:
    """``0..c-1`` for every group size ``c`` of ``counts``, concatenated."""
    counts = np.asarray(counts, dtype=np.int64)
    return np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)


# ============================================================================== valid combinations (§3.4 b)
@dataclass(frozen=True)
class LengthPlan:
    """What the executors need for one length (broadcast to them; about 8 bytes per candidate).

    Attributes:
        codec: Packing of combinations.
        length: ``l``.
        candidates: Sorted 1-D sortable view of ``V_l``'s packed keys.
        attribute_mask: bool per attribute id: does it occur in some candidate.
        allowed: Δ (0 while only the sizes are wanted).
        clip_key: Two uint64 words keying the random Δ-subsets.
        chunk_instances: Enumeration (and clipped-copy expansion) chunk size.
        dense_count_limit: Largest ``|V_l|`` counted in a dense vector (else sort-and-reduce).
    """

    codec: ComboCodec
    length: int
    candidates: np.ndarray
    attribute_mask: np.ndarray
    allowed: int = 0
    clip_key: np.ndarray = field(default_factory=lambda: np.zeros(2, dtype=np.uint64))
    chunk_instances: int = CHUNK_INSTANCES
    dense_count_limit: int = DENSE_COUNT_LIMIT


def make_plan(codec: ComboCodec, length: int, candidate_keys: np.ndarray, n_attributes: int, **options) -> LengthPlan:
    """The :class:`LengthPlan` of a length from ``V_l``'s sorted packed keys; ``options`` set the
    other fields (``allowed``, ``clip_key``, ``chunk_instances``, ``dense_count_limit``)."""
    ids = codec.unpack(candidate_keys)[0][:, :length]
    mask = np.zeros(max(n_attributes, 1), dtype=bool)
    mask[ids.reshape(-1)] = True
    return LengthPlan(codec, length, sortable(candidate_keys).copy(), mask, **options)


def _restrict(offsets: np.ndarray, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drops from every CSR row the attribute ids outside ``mask`` (cuts enumeration work)."""
    keep = mask[ids]
    rows = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    sizes = np.bincount(rows[keep], minlength=len(offsets) - 1)
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64), ids[keep]


def valid_combinations(
    plan: LengthPlan, offsets: np.ndarray, ids: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Every CSR row's valid combinations ``W`` (its ``l``-subsets that are in ``V_l``).

    Each row's combinations come in one chunk (clipping needs them together).

    Yields:
        ``(rows, candidate_index, keys)``: row numbers, positions in ``V_l``, packed keys.
    """
    offsets, ids = _restrict(np.asarray(offsets, np.int64), np.asarray(ids, np.int64), plan.attribute_mask)
    for rows, keys, _ in enumerate_combinations(plan.codec, offsets, ids, [plan.length], plan.chunk_instances):
        hit, pos = member(plan.candidates, sortable(keys))
        yield rows[hit], pos[hit], keys[hit]


def valid_sizes(plan: LengthPlan, offsets: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``|W|`` of every CSR row (zeros included)."""
    sizes = np.zeros(len(offsets) - 1, dtype=np.int64)
    for rows, _, _ in valid_combinations(plan, offsets, ids):
        sizes += np.bincount(rows, minlength=sizes.size)
    return sizes


# ============================================================================== clipping (§3.4 d)
def clipping_priorities(
    clip_key: np.ndarray, length: int, row_hash: np.ndarray, copy: np.ndarray, keys: np.ndarray
) -> np.ndarray:
    """Pseudo-random uint64 priority of each (row copy, combination) pair.

    A function of (clip key, length, row content hash, copy index, packed combination) only,
    so the chosen subsets depend neither on partitioning nor on enumeration order or chunking.
    """
    key = np.asarray(clip_key, dtype=np.uint64)
    with np.errstate(over="ignore"):
        seed = mix64(key[:1] ^ (np.uint64(length) * GOLDEN))
        h = mix64(np.asarray(row_hash, dtype=np.int64).view(np.uint64) ^ seed) + key[1]
        h = mix64(h ^ mix64(np.asarray(copy, dtype=np.int64).view(np.uint64) * GOLDEN + key[0]))
        keys = np.asarray(keys, dtype=np.int64).reshape(len(h), -1)
        for word in range(keys.shape[1]):
            h = mix64(h ^ mix64(keys[:, word].view(np.uint64) + GOLDEN))
    return h


def clip_mask(groups: np.ndarray, priorities: np.ndarray, allowed: int) -> np.ndarray:
    """Keeps, per group, the ``allowed`` entries of smallest priority (all if fewer).

    With i.i.d. uniform priorities this is a uniform random Δ-subset of each group.
    """
    if groups.size == 0:
        return np.zeros(0, dtype=bool)
    order = np.lexsort((priorities, groups))
    sorted_groups = groups[order]
    group_start = np.flatnonzero(np.concatenate(([True], sorted_groups[1:] != sorted_groups[:-1])))
    starts = np.repeat(group_start, np.diff(np.append(group_start, groups.size)))
    keep = np.zeros(groups.size, dtype=bool)
    keep[order] = (np.arange(groups.size) - starts) < allowed
    return keep


def clipped_copies(
    plan: LengthPlan, rows: np.ndarray, positions: np.ndarray, keys: np.ndarray, weights: np.ndarray,
    hashes: np.ndarray,
) -> Iterator[np.ndarray]:
    """The combinations kept by every copy of rows with ``|W| > Δ``.

    Copy ``j`` of a row keeps the Δ members of ``W`` of smallest
    :func:`clipping_priorities`. Rows are expanded to ``weight · |W|`` instances in blocks of
    about ``plan.chunk_instances`` (a heavy row's copies are split over blocks).

    Args:
        plan: The length's plan (``allowed`` = Δ ≥ 1).
        rows: Row number of every valid combination (all of a row's combinations present).
        positions: Their positions in ``V_l``.
        keys: Their packed keys.
        weights: Weight of every row (indexed by row number).
        hashes: Content hash of every row (indexed by row number).

    Yields:
        Positions in ``V_l`` of kept instances (one entry per copy and kept combination).
    """
    order = np.argsort(rows, kind="stable")
    rows, positions, keys = rows[order], positions[order], keys[order]
    owners, first, sizes = np.unique(rows, return_index=True, return_counts=True)
    copies = np.asarray(weights, dtype=np.int64)[owners]
    per_segment = np.maximum(1, plan.chunk_instances // sizes)  # copies expanded at once per row
    n_segments = -(-copies // per_segment)
    segment_row = np.repeat(np.arange(owners.size), n_segments)
    segment_start = _ranks(n_segments) * per_segment[segment_row]
    segment_copies = np.minimum(per_segment[segment_row], copies[segment_row] - segment_start)
    for block in row_blocks(segment_copies * sizes[segment_row], plan.chunk_instances):
        copy_row = np.repeat(segment_row[block], segment_copies[block])
        copy_index = np.repeat(segment_start[block], segment_copies[block]) + _ranks(segment_copies[block])
        instance_copy = np.repeat(np.arange(copy_row.size), sizes[copy_row])
        instance_row = copy_row[instance_copy]
        entry = first[instance_row] + _ranks(sizes[copy_row])
        priorities = clipping_priorities(plan.clip_key, plan.length, hashes[owners[instance_row]],
                                         copy_index[instance_copy], keys[entry])
        yield positions[entry[clip_mask(instance_copy, priorities, plan.allowed)]]


def _contributions(
    plan: LengthPlan, weights: np.ndarray, hashes: np.ndarray, rows: np.ndarray, positions: np.ndarray,
    keys: np.ndarray,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(positions, counts)`` added by one chunk of valid combinations after clipping."""
    over = np.bincount(rows, minlength=weights.size)[rows] > plan.allowed
    yield positions[~over], weights[rows[~over]]
    if over.any():
        for kept in clipped_copies(plan, rows[over], positions[over], keys[over], weights, hashes):
            yield kept, np.ones(kept.size, dtype=np.int64)


def _add_dense(dense: np.ndarray, index: np.ndarray, counts: np.ndarray) -> None:
    """``dense[index] += counts`` (repeated indices summed; float sums are exact below 2^53)."""
    if index.size:
        sums = np.bincount(index, weights=counts)
        dense[: sums.size] += sums.astype(np.int64)


def clipped_counts(
    plan: LengthPlan, offsets: np.ndarray, ids: np.ndarray, weights: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Clipped contributions per candidate of a block of weighted CSR rows (spec §3.4 d).

    Counts go to a dense vector over ``V_l`` when it is small enough
    (``plan.dense_count_limit``), else to a sort-and-reduce accumulator.

    Args:
        plan: The length's plan (``allowed`` = Δ ≥ 1, ``clip_key`` set).
        offsets: CSR offsets of the distinct rows.
        ids: Their sorted attribute ids.
        weights: Number of records of every row.

    Yields:
        ``(candidate_index, count)`` partial sums; an index may repeat across yields.
    """
    n_candidates = plan.candidates.size
    dense = np.zeros(n_candidates, dtype=np.int64) if n_candidates <= plan.dense_count_limit else None
    acc = CountAccumulator(1)
    weights = np.asarray(weights, dtype=np.int64)
    hashes = row_hashes(offsets, ids)  # of the whole row: distinct rows never share one
    for rows, positions, keys in valid_combinations(plan, offsets, ids):
        for index, counts in _contributions(plan, weights, hashes, rows, positions, keys):
            if dense is not None:
                _add_dense(dense, index, counts)
                continue
            for distinct, sums in acc.add(index.reshape(-1, 1), counts):
                yield distinct.reshape(-1), sums
    if dense is not None:
        index = np.flatnonzero(dense)
        yield index, dense[index]
    for distinct, sums in acc.drain():
        yield distinct.reshape(-1), sums


# ============================================================================== noise and selection (§3.4 e, f)
def noisy_counts(counts: np.ndarray, sigma_l: float, allowed: int, noise: NoiseSource) -> np.ndarray:
    """``H[c] + σ_l·√Δ·N(0,1)`` for every candidate (independent draws, candidate order)."""
    counts = np.asarray(counts, dtype=np.float64)
    return counts + sigma_l * math.sqrt(allowed) * noise.standard_normal(counts.size)


def select(noisy: np.ndarray, threshold: float) -> np.ndarray:
    """Mask of the candidates that survive: ``H > rho_l`` and ``H > 0``."""
    return (noisy > threshold) & (noisy > 0)
