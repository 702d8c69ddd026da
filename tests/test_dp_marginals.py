"""Tests of :mod:`ksynth_spark.dp.marginals` (spec §3.4): thresholds, noise, candidates, valid
combinations and the clipping of weighted distinct rows."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest

from ksynth_spark.combinations import ComboCodec, csr_from_lists
from ksynth_spark.dp.marginals import (
    LengthPlan,
    candidate_universe,
    clip_mask,
    clipped_counts,
    clipping_priorities,
    length_threshold,
    make_plan,
    noisy_counts,
    select,
    sort_keys,
    valid_sizes,
)
from ksynth_spark.dp.noise import SeededNoise
from ksynth_spark.randomness import row_hashes


# --------------------------------------------------------------------------- thresholds, noise (§3.4 e, f)
def test_thresholds_fixed_and_length_one_not_configurable():
    assert length_threshold(2, 2.0, 4, 1e-6, "fixed", {2: 30.0}) == 30.0
    assert length_threshold(3, 2.0, 4, 1e-6, "fixed", {2: 30.0}) == 0.0
    one = length_threshold(1, 2.0, 4, 1e-6, "fixed", {1: 0.0})
    assert one == length_threshold(1, 2.0, 4, 1e-6, "adaptive", {}) and one > 1
    assert length_threshold(3, 2.0, 4, 1e-6, "adaptive", {}) == 0.0


def test_select_needs_above_threshold_and_positive():
    noisy = np.array([-1.0, 0.0, 0.5, 3.0, 2.0])
    assert select(noisy, 2.0).tolist() == [False, False, False, True, False]
    assert select(noisy, -5.0).tolist() == [False, False, True, True, True]


def test_noise_on_a_fixed_combination_has_the_right_moments():
    """Noise added to one fixed candidate over many seeded releases: mean 0, sd = sigma_l*sqrt(Delta).

    Tolerance: with n i.i.d. N(0, s^2) draws the sample mean has standard error s/sqrt(n) and
    the sample standard deviation has standard error ~ s/sqrt(2(n-1)). Allowing 4.5 standard
    errors gives a false-failure probability below 1e-5 per check for a fresh seed (the seeds
    here are fixed, so the test is deterministic; the bound is what justifies the margin).
    """
    sigma_l, allowed, n = 1.9331229474, 3, 10_000
    counts = np.array([0.0, 17.0, 4.0])
    noise = np.array([noisy_counts(counts, sigma_l, allowed, SeededNoise(seed))[1] - 17.0 for seed in range(n)])
    scale = sigma_l * math.sqrt(allowed)
    assert abs(noise.mean()) <= 4.5 * scale / math.sqrt(n)
    assert abs(noise.std(ddof=1) - scale) <= 4.5 * scale / math.sqrt(2 * (n - 1))


# --------------------------------------------------------------------------- candidates (§3.4 a)
def brute_candidates(previous: set, all_survivors: dict, length: int, columns) -> set:
    """Spec §3.4 (a) literally."""
    attrs = {a for c in previous for a in c}
    found = set()
    for c in previous:
        for a in attrs:
            if columns[a] in {columns[x] for x in c}:
                continue
            cand = tuple(sorted(set(c) | {a}))
            if len(cand) != length:
                continue
            if all(sub in all_survivors[len(sub)] for size in range(2, length)
                   for sub in itertools.combinations(cand, size)):
                found.add(cand)
    return found


def test_candidate_universe_matches_definition():
    rng = np.random.default_rng(4)
    columns = np.repeat(np.arange(6), 4)  # 24 attributes, 4 per column
    codec = ComboCodec(24, 4)
    for trial in range(15):
        survivors = {1: {(int(a),) for a in rng.choice(24, 14, replace=False)}}
        for length in range(2, 5):
            keys = sort_keys(codec.pack(np.array(sorted(survivors[length - 1])).reshape(-1, length - 1))) \
                if survivors[length - 1] else np.zeros((0, 1), np.int64)
            got = candidate_universe(codec, keys, length, columns)
            ids, lengths = codec.unpack(got)
            got_set = {tuple(int(x) for x in row[:length]) for row in ids}
            assert (lengths == length).all()
            assert got_set == brute_candidates(survivors[length - 1], survivors, length, columns), trial
            # keep a random 60 % as the next survivors
            survivors[length] = {c for c in got_set if rng.random() < 0.6}


# --------------------------------------------------------------------------- W, clipping (§3.4 b, d)
def plan_for(length, candidates, allowed=0, n_attrs=12, key=(9, 4), chunk_instances=7, dense_count_limit=1 << 22,
             max_length=3):
    codec = ComboCodec(n_attrs, max_length)
    keys = sort_keys(codec.pack(np.array(sorted(candidates)).reshape(-1, length)))
    plan = make_plan(codec, length, keys, n_attrs, allowed=allowed, clip_key=np.array(key, dtype=np.uint64),
                     chunk_instances=chunk_instances, dense_count_limit=dense_count_limit)
    return plan, keys


def totals_of(plan: LengthPlan, rows: list[list[int]], weights) -> np.ndarray:
    offsets, ids = csr_from_lists(rows)
    out = np.zeros(plan.candidates.size, np.int64)
    for index, count in clipped_counts(plan, offsets, ids, np.asarray(weights, np.int64)):
        np.add.at(out, index, count)
    return out


def key_tuples(plan: LengthPlan, keys: np.ndarray) -> list[tuple[int, ...]]:
    return [tuple(int(a) for a in row[:plan.length]) for row in plan.codec.unpack(keys)[0]]


@pytest.mark.parametrize("dense_limit,max_length", [(1 << 22, 3), (0, 3), (1 << 22, 20)])
def test_valid_sizes_and_clipping_match_brute_force(dense_limit, max_length):
    """Dense-vector and sort-and-reduce paths, one- and two-word keys; weighted rows count
    ``weight`` records each."""
    rng = np.random.default_rng(5)
    rows = sorted({tuple(sorted(rng.choice(12, int(rng.integers(0, 7)), replace=False).tolist())) for _ in range(60)})
    rows = [list(r) for r in rows]
    weights = rng.integers(1, 6, len(rows))
    candidates = {c for c in itertools.combinations(range(12), 2) if rng.random() < 0.5}
    offsets, ids = csr_from_lists(rows)
    for allowed in (1, 2, 3, 50):
        plan, keys = plan_for(2, candidates, allowed, dense_count_limit=dense_limit, max_length=max_length)
        assert plan.codec.n_words == (2 if max_length == 20 else 1)
        w = [[c for c in itertools.combinations(r, 2) if c in candidates] for r in rows]
        assert valid_sizes(plan, offsets, ids).tolist() == [len(x) for x in w]
        totals = totals_of(plan, rows, weights)
        assert totals.sum() == sum(m * min(len(x), allowed) for x, m in zip(w, weights, strict=True))
        exact = Counter()
        for x, m in zip(w, weights, strict=True):
            exact.update({c: int(m) for c in x})
        ordered = key_tuples(plan, keys)
        assert all(totals[i] <= exact[c] for i, c in enumerate(ordered))
        if allowed == 50:  # nothing clipped: every record adds all its valid combinations
            assert totals.tolist() == [exact[c] for c in ordered]


def test_clipping_is_reproducible_and_independent_of_blocks_order_and_chunks():
    rng = np.random.default_rng(6)
    rows = [list(r) for r in sorted({tuple(sorted(rng.choice(12, 6, replace=False).tolist())) for _ in range(40)})]
    weights = rng.integers(1, 20, len(rows))
    weights[3] = 500  # a heavy row: its copies are split over several expansion blocks
    candidates = set(itertools.combinations(range(12), 2))
    plan, keys = plan_for(2, candidates, allowed=2, chunk_instances=7)
    whole = totals_of(plan, rows, weights)
    n = len(rows)
    blocks = np.zeros(len(keys), np.int64)
    for start, stop in [(0, 13), (13, 14), (14, n)]:
        blocks += totals_of(plan, rows[start:stop], weights[start:stop])
    assert np.array_equal(whole, blocks)
    order = rng.permutation(n)
    assert np.array_equal(whole, totals_of(plan, [rows[i] for i in order], weights[order]))
    big_chunks, _ = plan_for(2, candidates, allowed=2, chunk_instances=1 << 17)
    assert np.array_equal(whole, totals_of(big_chunks, rows, weights))
    other_key, _ = plan_for(2, candidates, allowed=2, key=(1, 1))
    other = totals_of(other_key, rows, weights)
    assert not np.array_equal(whole, other) and whole.sum() == other.sum() == 2 * weights.sum()


def test_clipping_picks_a_uniform_subset_per_copy():
    """W of size 4, Delta = 1: over n copies of one row, and over n distinct rows, each member is
    chosen ~ Binomial(n, 1/4) times.

    4.5 binomial standard errors (sqrt(n*p*(1-p))) per member: false failure < 1e-4 overall.
    """
    n = 8000
    groups = np.repeat(np.arange(n), 4)
    keys = np.tile(np.arange(4), n).reshape(-1, 1) + 10
    offsets = np.arange(n + 1) * 2
    distinct_rows = row_hashes(offsets, np.arange(2 * n))  # n different attribute sets
    cases = {"copies of one row": (np.full(groups.size, 12345), groups),
             "distinct rows": (distinct_rows[groups], np.zeros(groups.size))}
    for name, (hashes, copies) in cases.items():
        prio = clipping_priorities(np.array([3, 8], np.uint64), 2, hashes, copies, keys)
        keep = clip_mask(groups, prio, 1)
        assert np.bincount(groups[keep], minlength=n).tolist() == [1] * n, name
        picked = np.bincount(keys[keep, 0] - 10, minlength=4)
        assert np.all(np.abs(picked - n / 4) <= 4.5 * math.sqrt(n * 0.25 * 0.75)), name


def per_record_distribution(w_size: int, allowed: int, m: int) -> dict[tuple[int, ...], float]:
    """Brute force: the exact distribution of H when m separate records each keep a uniform
    random Delta-subset of the same W (all choices enumerated)."""
    subsets = list(itertools.combinations(range(w_size), allowed))
    outcomes: Counter = Counter()
    for choice in itertools.product(subsets, repeat=m):
        h = [0] * w_size
        for subset in choice:
            for member in subset:
                h[member] += 1
        outcomes[tuple(h)] += 1
    total = len(subsets) ** m
    return {h: count / total for h, count in outcomes.items()}


def test_weighted_row_clips_like_separate_records():
    """A row of weight m: with |W| <= Delta it adds exactly m to each valid combination; with
    |W| > Delta, H over many clipping keys follows the exact per-record distribution.

    Every outcome h of the brute-force distribution (p_h) is seen n*p_h times within 4.5
    binomial standard errors sqrt(n*p_h*(1-p_h)) (+1 for discreteness), and no impossible
    outcome occurs. About 40 outcomes: false failure < 1e-3 for a fresh set of keys (the keys
    here are fixed, so the test is deterministic).
    """
    row = [[0, 1, 2, 3]]
    candidates = {(0, 1), (0, 2), (1, 3), (2, 3)}  # |W| = 4
    plan, keys = plan_for(2, candidates, allowed=4)
    assert totals_of(plan, row, [5]).tolist() == [5, 5, 5, 5]
    m, allowed, n = 3, 2, 3000
    expected = per_record_distribution(4, allowed, m)
    seen: Counter = Counter()
    for trial in range(n):
        plan, keys = plan_for(2, candidates, allowed=allowed, key=(trial, 77))
        seen[tuple(int(x) for x in totals_of(plan, row, [m]))] += 1
    assert set(seen) <= set(expected)
    for h, p in expected.items():
        assert abs(seen[h] - n * p) <= 4.5 * math.sqrt(n * p * (1 - p)) + 1, (h, seen[h], n * p)
