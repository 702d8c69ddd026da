"""Differentially private aggregates ("DP marginals", spec §3).

Two layers live here:

* Pure numpy/python kernels (no Spark): the budget split and its check (§3.2), the protected
  record count (§3.3), ``Quantile_R8`` (§3.7), the DP percentile and its score vector (§3.5),
  the length thresholds (§3.4 f), candidate generation (§3.4 a), per-record valid combinations
  and their clipping to a uniform random Δ-subset (§3.4 b, d), noise and selection (§3.4 e, f)
  and the consistency post-processing (§3.6).
* The Spark orchestration of §3.4 (:func:`dp_aggregates`). Per length ``l`` the candidate
  universe ``V_l`` is built on the driver as sorted packed keys (it is derived from the noisy
  survivors of length ``l-1``, or from the attribute table for ``l = 1``) and shipped to the
  executors. Executors enumerate each record's ``l``-subsets with :mod:`ksynth_spark.combinations`
  (``mapInArrow`` over ``data.records``) and keep the members of ``V_l``. Two small aggregates
  are collected per length: the histogram of ``|W_i|`` (for the DP percentile) and the clipped
  per-candidate counts (at most ``|V_l|`` rows). Noise, thresholds and §3.6 run on the driver.
  The sensitive records are never collected.

Randomness: noise comes from a :class:`NoiseSource`. The default, :class:`SecureNoise`, builds
every draw from ``os.urandom`` bytes. ``dp_test_seed`` switches to :class:`SeededNoise` (a seeded
numpy Generator) and logs a loud warning: such a release is not differentially private. The
random Δ-subset of each record is chosen by hashing (clipping key, length, record id, packed
combination) to priorities and keeping the Δ smallest, so it is reproducible from the test seed
and independent of partitioning and enumeration order; without a test seed the clipping key is
128 fresh random bits.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from dataclasses import dataclass, field, replace
from fractions import Fraction
from statistics import NormalDist
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from ksynth_spark.combinations import (
    ComboCodec,
    CountAccumulator,
    enumerate_combinations,
    from_sortable,
    reduce_counts,
    sortable,
    subset_positions,
)
from ksynth_spark.config import Config
from ksynth_spark.errors import ConfigError, PrivacyCheckError
from ksynth_spark.model import AGGREGATE_SCHEMA, EncodedData, arrow_csr

log = logging.getLogger(__name__)

TEST_SEED_WARNING = (
    "dp_test_seed is set: this release is NOT differentially private; use only for tests "
    "(noise and clipping are reproducible from the seed)."
)

# Upper bound of candidate combinations materialised at once during candidate generation.
_CANDIDATE_CHUNK = 1 << 22
# Largest |V_l| counted with a dense per-partition vector (8 bytes per candidate).
_DENSE_COUNT_LIMIT = 1 << 22
# Combination instances enumerated at once per task: small chunks stay in cache and keep
# Python-worker memory flat (measured on adult: 4M instances ~ +300 MB and no faster).
_DP_CHUNK_INSTANCES = 1 << 17

_U64 = np.uint64
_MIX1 = _U64(0xBF58476D1CE4E5B9)
_MIX2 = _U64(0x94D049BB133111EB)
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_MASK64 = (1 << 64) - 1


# ============================================================================== noise sources
class NoiseSource:
    """Where the random draws of a DP release come from (injectable for tests).

    Subclasses implement :meth:`uniform` (open interval (0, 1)) and :meth:`clipping_key`;
    the continuous distributions are derived here from uniforms.

    Attributes:
        name: Short description written to the ``spent`` record.
        is_secure: True only for a source fit for a real release.
    """

    name = "abstract"
    is_secure = False

    def uniform(self, size: int) -> np.ndarray:
        """``size`` independent draws from the open interval (0, 1)."""
        raise NotImplementedError

    def clipping_key(self) -> np.ndarray:
        """Two uint64 words keying the per-record random Δ-subsets of one release."""
        raise NotImplementedError

    def standard_normal(self, size: int) -> np.ndarray:
        """``size`` independent N(0, 1) draws (Box–Muller over :meth:`uniform`)."""
        pairs = (size + 1) // 2
        u1, u2 = self.uniform(pairs), self.uniform(pairs)
        radius = np.sqrt(-2.0 * np.log(u1))
        angle = 2.0 * math.pi * u2
        return np.concatenate([radius * np.cos(angle), radius * np.sin(angle)])[:size]

    def exponential(self, scale: float, size: int) -> np.ndarray:
        """``size`` independent exponential draws with mean ``scale`` (rate ``1/scale``)."""
        return -np.log(self.uniform(size)) * scale

    def laplace(self, scale: float) -> float:
        """One Laplace(0, ``scale``) draw (difference of two exponentials)."""
        e = self.exponential(scale, 2)
        return float(e[0] - e[1])


class SecureNoise(NoiseSource):
    """Draws built from ``os.urandom`` bytes (the operating system's CSPRNG); no seed."""

    name = "os.urandom"
    is_secure = True

    def uniform(self, size: int) -> np.ndarray:
        """53 random bits per draw, centred in its cell so 0 and 1 never occur."""
        if size <= 0:
            return np.zeros(0)
        raw = np.frombuffer(os.urandom(8 * size), dtype=np.uint64) >> _U64(11)
        return (raw.astype(np.float64) + 0.5) * 2.0 ** -53

    def clipping_key(self) -> np.ndarray:
        """128 fresh random bits."""
        return np.frombuffer(os.urandom(16), dtype=np.uint64).copy()


class SeededNoise(NoiseSource):
    """Reproducible draws from a seeded numpy Generator — for tests only, NOT private."""

    is_secure = False

    def __init__(self, seed: int):
        self.seed = int(seed)
        self.name = f"seeded numpy PCG64 (dp_test_seed={self.seed}, NOT private)"
        self._rng = np.random.Generator(np.random.PCG64(self.seed & _MASK64))

    def uniform(self, size: int) -> np.ndarray:
        """Generator uniforms mapped into the open interval (0, 1)."""
        if size <= 0:
            return np.zeros(0)
        raw = self._rng.integers(0, 1 << 53, size=size, dtype=np.int64)
        return (raw.astype(np.float64) + 0.5) * 2.0 ** -53

    def clipping_key(self) -> np.ndarray:
        """Derived from the seed only (not from the draw stream)."""
        low = np.array([self.seed & _MASK64], dtype=np.uint64)
        high = np.array([(self.seed >> 64) & _MASK64], dtype=np.uint64)
        return np.concatenate([_mix64(low ^ _GOLDEN), _mix64(high + _MIX1)])


def noise_from_config(config: Config) -> NoiseSource:
    """The noise source a config asks for: secure, or seeded when ``dp_test_seed`` is set."""
    if config.dp_test_seed is not None:
        return SeededNoise(config.dp_test_seed)
    return SecureNoise()


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = np.asarray(x, dtype=np.uint64)
        x = (x ^ (x >> _U64(30))) * _MIX1
        x = (x ^ (x >> _U64(27))) * _MIX2
        return x ^ (x >> _U64(31))


# ============================================================================== small numerics
def round_half_away(x):
    """Rounds half away from zero (``2.5 → 3``, ``-2.5 → -3``); arrays or scalars."""
    values = np.asarray(x, dtype=np.float64)
    magnitude = np.abs(values)
    whole = np.floor(magnitude)
    whole = whole + (magnitude - whole >= 0.5)
    result = np.copysign(whole, values)
    return result if result.ndim else float(result)


def normal_upper_quantile(tail: float) -> float:
    """``Φ⁻¹(1 − tail)`` computed from the tail (accurate when ``tail`` is tiny)."""
    if tail >= 0.5:
        return 0.0 if tail == 0.5 else -NormalDist().inv_cdf(1.0 - tail)
    return -NormalDist().inv_cdf(tail)


# ============================================================================== budget (§3.2)
@dataclass(frozen=True)
class BudgetSplit:
    """The privacy budget of one release (spec §3.2).

    Attributes:
        epsilon: Total ε.
        delta: δ.
        eps_n: ε spent on the protected record count (0 without N_p).
        eps_m: ε left for the marginals.
        rho: zCDP budget of the marginals.
        eps_q: ε of the DP percentile of EACH length.
        k_sum: ``K = Σ 1/p_j²``.
        sigma: Noise scale σ_j of length j = 1..R (index j-1).
        check_error: ``|R·ε_Q²/2 + Σ 1/(2σ_j²) − ρ|``.
        tolerance: The largest error the check accepts.
    """

    epsilon: float
    delta: float
    eps_n: float
    eps_m: float
    rho: float
    eps_q: float
    k_sum: float
    sigma: tuple[float, ...]
    check_error: float
    tolerance: float


def default_delta(n: int) -> float:
    """``1 / (ln(n) · n)`` (spec §3.1). Raises ConfigError when undefined or not in (0, 1)."""
    if n <= 1:
        raise ConfigError(
            "The default delta 1/(ln(n)*n) needs a (protected) record count above 1; "
            "set 'delta_factor' or use more records."
        )
    return 1.0 / (math.log(n) * n)


def resolve_delta(delta_factor: Optional[float], n_records: int, protected_count: Optional[int]) -> float:
    """δ of spec §3.1: ``1/(delta_factor·N)`` (true N, [COMPAT]) or the default formula.

    Raises:
        ConfigError: If δ is not strictly between 0 and 1.
    """
    if delta_factor is not None:
        if n_records <= 0:
            raise ConfigError("'delta_factor' needs at least one record.")
        delta = 1.0 / (delta_factor * n_records)
    else:
        delta = default_delta(protected_count if protected_count is not None else n_records)
    if not 0.0 < delta < 1.0:
        raise ConfigError("Invalid value for 'delta_factor': delta = 1/(delta_factor * number of records) is "
                          "not below 1; use a larger delta_factor.")
    return delta


def budget_tolerance(delta: float) -> float:
    """``min(1e-8, 10^-d)``, ``d`` the smallest integer with ``delta·10^d ≥ 1`` (spec §3.2)."""
    d = 0
    while delta * 10.0 ** d < 1.0:
        d += 1
    return min(1e-8, 10.0 ** -d)


def budget_split(
    epsilon: float,
    delta: float,
    reporting_length: int,
    percentile_epsilon_proportion: float,
    number_of_records_epsilon_proportion: Optional[float],
    sigma_proportions: Sequence[float],
) -> BudgetSplit:
    """Splits ε into the record count, the R percentiles and the R noise scales (spec §3.2).

    Raises:
        ConfigError: For parameters outside their ranges.
        PrivacyCheckError: If the spent zCDP budget does not add up to ρ within tolerance.
    """
    r = int(reporting_length)
    if r < 1:
        raise ConfigError("Invalid value for 'reporting_length': the DP path needs an explicit length >= 1.")
    if len(sigma_proportions) != r or any(p <= 0 for p in sigma_proportions):
        raise ConfigError(f"Invalid value for 'sigma_proportions': needs {r} values, all > 0.")
    if not 0.0 < delta < 1.0:
        raise ConfigError("delta must be strictly between 0 and 1.")
    n_p = number_of_records_epsilon_proportion
    eps_n = n_p * epsilon if n_p is not None else 0.0
    eps_m = epsilon - eps_n
    lg = math.log(2.0 / delta)
    rho = (math.sqrt(eps_m + lg) - math.sqrt(lg)) ** 2
    q_p = percentile_epsilon_proportion
    k_sum = sum(1.0 / p ** 2 for p in sigma_proportions)
    eps_q = math.sqrt(2.0 * rho * q_p / r)
    base = math.sqrt(k_sum / (2.0 * rho * (1.0 - q_p)))
    sigma = tuple(p * base for p in sigma_proportions)
    spent = r * eps_q ** 2 / 2.0 + sum(1.0 / (2.0 * s ** 2) for s in sigma)
    error = abs(spent - rho)
    tolerance = budget_tolerance(delta)
    if error > tolerance:
        raise PrivacyCheckError(
            f"DP budget check failed: percentile and noise spend differ from rho by {error:.3g} "
            f"(tolerance {tolerance:.3g}). Check sigma_proportions and percentile_epsilon_proportion."
        )
    return BudgetSplit(epsilon, delta, eps_n, eps_m, rho, eps_q, k_sum, sigma, error, tolerance)


def protected_record_count(n_records: int, eps_n: float, noise: NoiseSource) -> int:
    """``round_half_away(N + Laplace(1/eps_N))`` (spec §3.3).

    Raises:
        PrivacyCheckError: If the protected count is not positive (nothing sensible to release).
    """
    value = int(round_half_away(n_records + noise.laplace(1.0 / eps_n)))
    if value <= 0:
        raise PrivacyCheckError(
            "The protected record count came out <= 0: the data set is too small for the "
            "number_of_records_epsilon_proportion budget. Use more records or a larger budget."
        )
    return value


# ============================================================================== percentile (§3.5, §3.7)
def quantile_r8(x: Sequence[float], p: float) -> float:
    """Hyndman–Fan type 8 quantile of sorted ``x`` (spec §3.7); NaN for empty input."""
    values = np.asarray(x, dtype=np.float64)
    if values.size == 0:
        return float("nan")
    return _quantile_r8_at(lambda i: float(values[i]), values.size, p)


def _quantile_r8_at(element: Callable[[int], float], n: int, p: float) -> float:
    h = (n + 1.0 / 3.0) * p + 1.0 / 3.0
    j = math.floor(h)
    if j <= 0 or p == 0:
        return element(0)
    if j >= n or p == 1:
        return element(n - 1)
    low = element(j - 1)
    return low + (h - j) * (element(j) - low)


def _ceil_fraction(n: int, percentage: float) -> int:
    """``ceil(n · percentage / 100)`` without floating-point error for decimal percentages."""
    return math.ceil(n * Fraction(str(percentage)) / 100)


def histogram(data: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """``(values, counts)`` of a multiset of non-negative integers, values ascending."""
    values, counts = np.unique(np.asarray(data, dtype=np.int64), return_counts=True)
    return values, counts.astype(np.int64)


def percentile_scores_from_histogram(values: np.ndarray, counts: np.ndarray, percentage: float) -> np.ndarray:
    """Score vector of the DP percentile (spec §3.5) for candidates ``0..max``.

    Args:
        values: Distinct non-negative integer values, ascending.
        counts: Multiplicity of each value (> 0).
        percentage: Q, the percentile in percent.

    Returns:
        int64 scores (``-raw``) for candidates ``0..max(values)``; empty for empty data.
    """
    values = np.asarray(values, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    cum = np.cumsum(counts)
    n = int(cum[-1])
    p = percentage / 100.0

    def element(i: int) -> float:
        return float(values[np.searchsorted(cum, i, side="right")])

    q = math.floor(_quantile_r8_at(element, n, p))
    pi = int(cum[np.searchsorted(values, q, side="right") - 1]) - 1
    pv = int(element(pi))
    top = int(values[-1])

    last = np.full(top + 1, -1, dtype=np.int64)
    last[values] = cum - 1
    candidates = np.arange(top + 1)
    anchor = last >= 0
    anchor[0] = True
    raw = np.zeros(top + 1, dtype=np.int64)
    below = anchor & (candidates < pv)
    above = anchor & (candidates > pv)
    raw[below] = pi - last[below]
    raw[above] = last[above] - pi
    if top > pv:
        raw[top] = _ceil_fraction(n, 100 - percentage)
    if last[0] < 0 and pv > 0:  # i = 0 not present
        raw[0] = _ceil_fraction(n, percentage)
    raw[pv] = 0
    # a non-anchor candidate repeats its left neighbour's raw score, at least 1
    nearest_anchor = np.maximum.accumulate(np.where(anchor, candidates, 0))
    filled = np.maximum(raw[nearest_anchor], 1)
    raw = np.where(anchor, raw, filled)
    return -raw


def percentile_scores(data: Sequence[int], percentage: float) -> np.ndarray:
    """Score vector of the DP percentile over a plain list of values (spec §3.5)."""
    return percentile_scores_from_histogram(*histogram(data), percentage)


def dp_percentile_from_histogram(
    values: np.ndarray, counts: np.ndarray, percentage: float, epsilon: float, noise: NoiseSource
) -> int:
    """``DpPercentile`` (spec §3.5): argmax of score + Exponential(mean 2/ε); 0 for empty data."""
    scores = percentile_scores_from_histogram(values, counts, percentage)
    if scores.size == 0:
        return 0
    noisy = scores + noise.exponential(2.0 / epsilon, scores.size)
    return int(np.argmax(noisy))  # first maximum: ties keep the smaller candidate


def dp_percentile(data: Sequence[int], percentage: float, epsilon: float, noise: NoiseSource) -> int:
    """``DpPercentile`` over a plain list of non-negative integers (spec §3.5)."""
    return dp_percentile_from_histogram(*histogram(data), percentage, epsilon, noise)


# ============================================================================== thresholds (§3.4 f)
def length_threshold(
    length: int,
    sigma_l: float,
    allowed: int,
    delta: float,
    threshold_type: str,
    threshold_values: dict[int, float],
) -> float:
    """Selection threshold ``rho_l`` of length ``l`` with allowed contribution Δ = ``allowed``.

    Length 1 carries the δ part of the guarantee and cannot be configured.
    """
    if length == 1:
        tail = -math.expm1(math.log1p(-delta / 2.0) / allowed)  # 1 − (1 − δ/2)^(1/Δ)
        return 1.0 + sigma_l * math.sqrt(allowed) * normal_upper_quantile(tail)
    if threshold_type == "fixed":
        return float(threshold_values.get(length, 0.0))
    eta = float(threshold_values.get(length, 1.0))
    return sigma_l * math.sqrt(allowed) * normal_upper_quantile(min(eta / 2.0, 0.5))


def effective_threshold_values(config: Config, reporting_length: int) -> dict[int, float]:
    """Configured thresholds for lengths 2..R with the type's default filled in."""
    default = 0.0 if config.noise_threshold_type == "fixed" else 1.0
    return {l: float(config.noise_threshold_values.get(l, default)) for l in range(2, reporting_length + 1)}


# ============================================================================== candidates (§3.4 a)
def _member(sorted_view: np.ndarray, view: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(hit, position)``: which entries of ``view`` are in ``sorted_view`` and where."""
    if sorted_view.size == 0:
        return np.zeros(view.shape[0], dtype=bool), np.zeros(view.shape[0], dtype=np.int64)
    pos = np.searchsorted(sorted_view, view)
    pos = np.minimum(pos, sorted_view.size - 1)
    return sorted_view[pos] == view, pos


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
        Sorted packed keys of ``V_l`` (driver-side).
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
    for rows in _row_blocks(extra, _CANDIDATE_CHUNK):
        parents = np.repeat(rows, extra[rows])
        if parents.size == 0:
            continue
        first = np.repeat(np.cumsum(extra[rows]) - extra[rows], extra[rows])
        added = attrs[starts[parents] + np.arange(parents.size) - first]
        ids = np.column_stack([prev_ids[parents], added])
        cols = columns[ids]
        keep = ~(cols[:, :-1] == cols[:, -1:]).any(axis=1)
        for drop in range(length - 1) if length >= 3 else ():  # dropping the last slot gives the parent
            sub = np.delete(ids, drop, axis=1)
            keep &= _member(prev_view, sortable(codec.pack(sub)))[0]
        found.append(codec.pack(ids[keep]))
    if not found:
        return np.zeros((0, codec.n_words), dtype=np.int64)
    return sort_keys(np.concatenate(found))


def _row_blocks(sizes: np.ndarray, limit: int) -> Iterator[np.ndarray]:
    """Consecutive row index blocks whose ``sizes`` sum to about ``limit`` (one row may exceed it)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    block = (np.cumsum(sizes) - sizes) // max(limit, 1)
    bounds = np.flatnonzero(np.diff(block)) + 1
    yield from (rows for rows in np.split(np.arange(sizes.size), bounds) if rows.size)


# ============================================================================== per-record kernels (§3.4 b, d)
@dataclass(frozen=True)
class LengthPlan:
    """What the executors need for one length: shipped to them with the task (small).

    Attributes:
        codec: Packing of combinations.
        length: ``l``.
        candidates: Sorted 1-D sortable view of ``V_l``'s packed keys.
        attribute_mask: bool per attribute id: does it occur in some candidate.
        allowed: Δ (0 while only the sizes are wanted).
        clip_key: Two uint64 words keying the random Δ-subsets.
        chunk_instances: Enumeration chunk size.
    """

    codec: ComboCodec
    length: int
    candidates: np.ndarray
    attribute_mask: np.ndarray
    allowed: int = 0
    clip_key: np.ndarray = field(default_factory=lambda: np.zeros(2, dtype=np.uint64))
    chunk_instances: int = _DP_CHUNK_INSTANCES


def make_plan(codec: ComboCodec, length: int, candidate_keys: np.ndarray, n_attributes: int,
              chunk_instances: int = _DP_CHUNK_INSTANCES) -> LengthPlan:
    """Builds the :class:`LengthPlan` of a length from ``V_l``'s sorted packed keys."""
    ids = codec.unpack(candidate_keys)[0][:, :length]
    mask = np.zeros(max(n_attributes, 1), dtype=bool)
    mask[ids.reshape(-1)] = True
    return LengthPlan(codec, length, sortable(candidate_keys).copy(), mask, chunk_instances=chunk_instances)


def _restrict(offsets: np.ndarray, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drops from every CSR record the attribute ids outside ``mask`` (cuts enumeration work)."""
    keep = mask[ids]
    rows = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    sizes = np.bincount(rows[keep], minlength=len(offsets) - 1)
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64), ids[keep]


def valid_combinations(
    plan: LengthPlan, offsets: np.ndarray, ids: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Every record's valid combinations ``W_i`` (its ``l``-subsets that are in ``V_l``).

    Each record's combinations come in one chunk (needed for clipping).

    Yields:
        ``(rows, candidate_index, keys)``: record row numbers, positions in ``V_l``, packed keys.
    """
    offsets, ids = _restrict(np.asarray(offsets, np.int64), np.asarray(ids, np.int64), plan.attribute_mask)
    for rows, keys, _ in enumerate_combinations(plan.codec, offsets, ids, [plan.length], plan.chunk_instances):
        hit, pos = _member(plan.candidates, sortable(keys))
        yield rows[hit], pos[hit], keys[hit]


def valid_sizes(plan: LengthPlan, offsets: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``|W_i|`` of every CSR record (zeros included)."""
    sizes = np.zeros(len(offsets) - 1, dtype=np.int64)
    for rows, _, _ in valid_combinations(plan, offsets, ids):
        sizes += np.bincount(rows, minlength=sizes.size)
    return sizes


def clipping_priorities(clip_key: np.ndarray, length: int, record_ids: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Pseudo-random uint64 priority of each (record, combination) pair.

    A function of (clip key, length, record id, packed combination) only, so the chosen subsets
    do not depend on partitioning or enumeration order.
    """
    key = np.asarray(clip_key, dtype=np.uint64)
    with np.errstate(over="ignore"):
        seed = _mix64(key[:1] ^ (_U64(length) * _GOLDEN))
        h = _mix64(np.asarray(record_ids, dtype=np.int64).astype(np.uint64) ^ seed) + key[1]
        keys = np.asarray(keys, dtype=np.int64).reshape(len(h), -1)
        for word in range(keys.shape[1]):
            h = _mix64(h ^ _mix64(keys[:, word].astype(np.uint64) + _GOLDEN))
    return h


def clip_mask(rows: np.ndarray, priorities: np.ndarray, allowed: int) -> np.ndarray:
    """Keeps, per record row, the ``allowed`` entries of smallest priority (all if fewer).

    With i.i.d. uniform priorities this is a uniform random Δ-subset of each ``W_i``.
    """
    if rows.size == 0:
        return np.zeros(0, dtype=bool)
    order = np.lexsort((priorities, rows))
    sorted_rows = rows[order]
    group_start = np.flatnonzero(np.concatenate(([True], sorted_rows[1:] != sorted_rows[:-1])))
    starts = np.repeat(group_start, np.diff(np.append(group_start, rows.size)))
    keep = np.zeros(rows.size, dtype=bool)
    keep[order] = (np.arange(rows.size) - starts) < allowed
    return keep


def clipped_counts(
    plan: LengthPlan, record_ids: np.ndarray, offsets: np.ndarray, ids: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Clipped contributions per candidate for a block of CSR records (spec §3.4 d).

    Counts go to a dense vector over ``V_l`` when it is small enough (``_DENSE_COUNT_LIMIT``),
    else to a sort-and-reduce accumulator.

    Yields:
        ``(candidate_index, count)`` partial sums; an index may repeat across yields.
    """
    n_candidates = plan.candidates.size
    dense = np.zeros(n_candidates, dtype=np.int64) if n_candidates <= _DENSE_COUNT_LIMIT else None
    acc = CountAccumulator(1)
    record_ids = np.asarray(record_ids, dtype=np.int64)
    for rows, positions, keys in valid_combinations(plan, offsets, ids):
        chosen = positions[_clip_block(plan, record_ids, rows, keys)]
        if dense is not None:
            dense += np.bincount(chosen, minlength=n_candidates)
            continue
        for index, sums in acc.add(chosen.reshape(-1, 1), np.ones(chosen.size, dtype=np.int64)):
            yield index.reshape(-1), sums
    if dense is not None:
        index = np.flatnonzero(dense)
        yield index, dense[index]
    for index, sums in acc.drain():
        yield index.reshape(-1), sums


def _clip_block(plan: LengthPlan, record_ids: np.ndarray, rows: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Mask of the valid combinations kept after clipping each record to Δ (one chunk)."""
    keep = np.ones(rows.size, dtype=bool)
    over = np.bincount(rows, minlength=record_ids.size)[rows] > plan.allowed
    if over.any():
        prio = clipping_priorities(plan.clip_key, plan.length, record_ids[rows[over]], keys[over])
        keep[over] = clip_mask(rows[over], prio, plan.allowed)
    return keep


# ============================================================================== noise and selection (§3.4 e, f)
def noisy_counts(counts: np.ndarray, sigma_l: float, allowed: int, noise: NoiseSource) -> np.ndarray:
    """``H[c] + σ_l·√Δ·N(0,1)`` for every candidate (independent draws, candidate order)."""
    counts = np.asarray(counts, dtype=np.float64)
    return counts + sigma_l * math.sqrt(allowed) * noise.standard_normal(counts.size)


def select(noisy: np.ndarray, threshold: float) -> np.ndarray:
    """Mask of the candidates that survive: ``H > rho_l`` and ``H > 0``."""
    return (noisy > threshold) & (noisy > 0)


# ============================================================================== post-processing (§3.6)
def _reduce_max(view: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum of ``values`` per distinct entry of 1-D ``view`` (distinct entries ascending)."""
    order = np.argsort(view, kind="stable")
    sorted_view = view[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_view[1:] != sorted_view[:-1])))
    return sorted_view[starts], np.maximum.reduceat(values[order], starts)


def _subsets(codec: ComboCodec, ids: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Packed ``size``-subsets of every row of ``ids``: ``(owner_row, sortable view)``."""
    positions = subset_positions(ids.shape[1], size)
    subs = ids[:, positions].reshape(-1, size)
    owners = np.repeat(np.arange(ids.shape[0]), positions.shape[0])
    return owners, sortable(codec.pack(subs))


def postprocess(codec: ComboCodec, keys: np.ndarray, noisy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Consistency post-processing (spec §3.6) on the driver.

    Args:
        codec: Packing of combinations.
        keys: Packed keys of ``∪ S[l]`` (distinct).
        noisy: Their noisy counts ``H[c]``.

    Returns:
        ``(keys, counts)`` sorted by key: integer counts ≥ 1, each ≤ the count of every present
        subset.
    """
    keys = np.asarray(keys, dtype=np.int64).reshape(-1, codec.n_words)
    counts = round_half_away(np.asarray(noisy, dtype=np.float64)).astype(np.int64).reshape(-1)
    present = counts > 0
    keys, counts = keys[present], counts[present]
    keys, counts = _add_missing_parents(codec, keys, counts)
    return keys, _normalise(codec, keys, counts)


def _proper_subsets(codec: ComboCodec, keys: np.ndarray, smallest: int):
    """Yields ``(rows, owners, subs)`` per combination length and subset size: the packed
    ``subs`` of size ``smallest .. length-1`` of the combinations ``keys[rows]``, ``owners``
    indexing ``rows``."""
    ids, lengths = codec.unpack(keys)
    for length in np.unique(lengths):
        rows = np.flatnonzero(lengths == length)
        block = ids[rows, :length]
        for size in range(smallest, int(length)):
            owners, subs = _subsets(codec, block, size)
            yield rows, owners, subs


def _add_missing_parents(codec: ComboCodec, keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step 2: absent sub-combinations (length ≥ 2) get the max count of their present supersets."""
    order = np.argsort(sortable(keys), kind="stable")
    keys, counts = keys[order], counts[order]
    view = sortable(keys)
    sub_views, sub_counts = [], []
    for rows, owners, subs in _proper_subsets(codec, keys, smallest=2):
        sub_views.append(subs)
        sub_counts.append(counts[rows][owners])
    if not sub_views:
        return keys, counts
    subs, maxima = _reduce_max(np.concatenate(sub_views), np.concatenate(sub_counts))
    missing = ~_member(view, subs)[0]
    if not missing.any():
        return keys, counts
    merged = np.concatenate([keys, from_sortable(subs[missing], codec.n_words)])
    merged_counts = np.concatenate([counts, maxima[missing]])
    order = np.argsort(sortable(merged), kind="stable")
    return merged[order], merged_counts[order]


def _normalise(codec: ComboCodec, keys: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Step 3: each count becomes the minimum over itself and its present proper subsets
    (one pass, against the pre-normalisation counts). ``keys`` must be sorted."""
    view = sortable(keys)
    result = counts.copy()
    for rows, owners, subs in _proper_subsets(codec, keys, smallest=1):
        hit, pos = _member(view, subs)
        np.minimum.at(result, rows[owners[hit]], counts[pos[hit]])
    return result


# ============================================================================== Spark orchestration
@dataclass
class DpResult:
    """Output of :func:`dp_aggregates`.

    Attributes:
        aggregates: Spark DataFrame ``attrs array<int>, length int, count long``: DP counts
            (integers ≥ 1, after §3.6), ordered by length, count descending, key.
        protected_record_count: ``n'`` (spec §3.3), or None without N_p.
        spent: Everything spent or used (effective parameters, per-length σ, Δ and thresholds).
    """

    aggregates: object
    protected_record_count: Optional[int]
    spent: dict


def _records_input(data: EncodedData):
    from pyspark.sql import functions as F

    return data.records.select(
        F.col("record_id").cast("long"),
        F.coalesce(F.col("attrs"), F.array().cast("array<int>")).alias("attrs"),
    )


def _share(spark, plan: LengthPlan):
    """Ships the plan to executors: a Spark broadcast where available, else the task closure.

    Returns:
        ``(getter, release)``.
    """
    try:
        handle = spark.sparkContext.broadcast(plan)
    except Exception:  # Spark Connect has no SparkContext: ship with the closure
        return (lambda: plan), (lambda: None)
    return (lambda: handle.value), handle.unpersist


def _size_histogram_job(spark, records, plan: LengthPlan) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of ``|W_i|`` over all records, computed on executors.

    Collected to the driver: each partition's histogram (at most ``max|W_i| + 1`` rows per
    partition, no shuffle), summed on the driver.
    """
    import pyarrow as pa

    get, release = _share(spark, plan)

    def sizes(batches):
        local = get()
        total: Counter = Counter()
        for batch in batches:
            offsets, ids = arrow_csr(batch)
            values, counts = histogram(valid_sizes(local, offsets, ids))
            total.update(dict(zip(values.tolist(), counts.tolist())))
        yield pa.RecordBatch.from_arrays(
            [pa.array(list(total), pa.int64()), pa.array(list(total.values()), pa.int64())], names=["size", "n"])

    try:
        table = records.mapInArrow(sizes, "size long, n long").toArrow()
    finally:
        release()
    values = table.column("size").to_numpy().astype(np.int64)
    counts = table.column("n").to_numpy().astype(np.int64)
    distinct, sums = reduce_counts(values, counts)
    return distinct, sums


def _clipped_count_job(spark, records, plan: LengthPlan, n_candidates: int) -> np.ndarray:
    """Clipped per-candidate counts ``H`` (before noise), computed on executors.

    Collected to the driver: one row per candidate with a non-zero count (≤ ``|V_l|`` rows).
    """
    import pyarrow as pa
    from pyspark.sql import functions as F

    get, release = _share(spark, plan)

    def counts(batches):
        local = get()
        for batch in batches:
            record_ids = batch.column("record_id").to_numpy().astype(np.int64)
            offsets, ids = arrow_csr(batch)
            for index, total in clipped_counts(local, record_ids, offsets, ids):
                yield pa.RecordBatch.from_arrays([pa.array(index), pa.array(total)], names=["cand", "count"])

    try:
        table = (records.mapInArrow(counts, "cand long, count long").groupBy("cand")
                 .agg(F.sum("count").alias("count")).toArrow())
    finally:
        release()
    dense = np.zeros(n_candidates, dtype=np.int64)
    dense[table.column("cand").to_numpy().astype(np.int64)] = table.column("count").to_numpy()
    return dense


@dataclass
class _Run:
    """Driver-side state of one release."""

    codec: ComboCodec
    budget: BudgetSplit
    noise: NoiseSource
    clip_key: np.ndarray
    survivors: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    spent_lengths: dict[str, dict[int, float]] = field(
        default_factory=lambda: {"Delta": {}, "thresholds": {}, "candidates": {}, "selected": {}})


def _candidates(data: EncodedData, run: _Run, length: int) -> np.ndarray:
    """``V_l`` as sorted packed keys (driver-side)."""
    if length == 1:
        return single_attribute_keys(run.codec, data.attributes["attr_id"].to_numpy())
    return candidate_universe(run.codec, run.survivors[length - 1][0], length, data.attribute_columns)


def _extract_length(spark, records, data: EncodedData, config: Config, run: _Run, length: int,
                    thresholds: dict[int, float]) -> None:
    """Spec §3.4 for one length: candidates, Δ, clipped counts, noise, threshold → ``S[l]``."""
    candidates = _candidates(data, run, length)
    record = run.spent_lengths
    record["candidates"][length] = int(candidates.shape[0])
    allowed, plan = 0, None  # no candidates or no records: every |W_i| is 0, so Δ = 0
    if candidates.shape[0] and data.n_records:
        plan = make_plan(run.codec, length, candidates, data.n_attributes)
        values, counts = _size_histogram_job(spark, records, plan)
        allowed = dp_percentile_from_histogram(values, counts, config.percentile_percentage,
                                               run.budget.eps_q, run.noise)
    record["Delta"][length] = allowed
    if allowed == 0:
        record["thresholds"][length] = None
        record["selected"][length] = 0
        run.survivors[length] = (np.zeros((0, run.codec.n_words), np.int64), np.zeros(0))
        log.info("DP length %d: %d candidates, allowed contribution 0, nothing selected",
                 length, candidates.shape[0])
        return
    plan = replace(plan, allowed=allowed, clip_key=run.clip_key)
    clipped = _clipped_count_job(spark, records, plan, candidates.shape[0])
    sigma_l = run.budget.sigma[length - 1]
    noisy = noisy_counts(clipped, sigma_l, allowed, run.noise)
    threshold = length_threshold(length, sigma_l, allowed, run.budget.delta, config.noise_threshold_type,
                                 thresholds)
    keep = select(noisy, threshold)
    run.survivors[length] = (candidates[keep], noisy[keep])
    record["thresholds"][length] = threshold
    record["selected"][length] = int(keep.sum())
    log.info("DP length %d: %d candidates, allowed contribution %d, threshold %.4f, %d selected",
             length, candidates.shape[0], allowed, threshold, int(keep.sum()))


def _aggregates_frame(spark, codec: ComboCodec, keys: np.ndarray, counts: np.ndarray):
    """Builds the output DataFrame from driver-side keys and counts (small)."""
    import pandas as pd

    ids, lengths = codec.unpack(keys)
    key_rank = np.argsort(np.argsort(sortable(keys), kind="stable"))
    order = np.lexsort((key_rank, -counts, lengths))
    frame = pd.DataFrame({
        "attrs": [ids[i, : lengths[i]].astype(np.int32).tolist() for i in order],
        "length": lengths[order].astype(np.int32),
        "count": counts[order].astype(np.int64),
    })
    if frame.empty:
        return spark.createDataFrame([], AGGREGATE_SCHEMA)
    return spark.createDataFrame(frame, AGGREGATE_SCHEMA)


def _sigma_proportions(config: Config, reporting_length: int) -> list[float]:
    if config.sigma_proportions is None:
        return [1.0] * reporting_length
    if len(config.sigma_proportions) != reporting_length:
        raise ConfigError(f"Invalid value for 'sigma_proportions': needs one value per length 1..{reporting_length}.")
    return [float(p) for p in config.sigma_proportions]


def plan_budget(config: Config, n_records: int, noise: NoiseSource) -> tuple[BudgetSplit, Optional[int], str]:
    """Record count (§3.3), δ (§3.1) and budget split (§3.2) of a release.

    Returns:
        ``(budget, protected_record_count or None, how δ was chosen)``.
    """
    r = config.reporting_length
    n_p = config.number_of_records_epsilon_proportion
    protected = None
    if n_p is not None:
        protected = protected_record_count(n_records, n_p * config.noise_epsilon, noise)
    delta = resolve_delta(config.delta_factor, n_records, protected)
    source = ("delta_factor (uses the true record count)" if config.delta_factor is not None
              else "1/(ln(n')*n') of the protected record count" if protected is not None
              else "1/(ln(N)*N) of the true record count")
    budget = budget_split(config.noise_epsilon, delta, r, config.percentile_epsilon_proportion, n_p,
                          _sigma_proportions(config, r))
    return budget, protected, source


def _spent(config: Config, budget: BudgetSplit, delta_source: str, thresholds: dict[int, float],
           run: _Run) -> dict:
    r = config.reporting_length
    return {
        "epsilon": budget.epsilon,
        "delta": budget.delta,
        "delta_source": delta_source,
        "eps_N": budget.eps_n,
        "eps_M": budget.eps_m,
        "rho": budget.rho,
        "eps_Q": budget.eps_q,
        "K": budget.k_sum,
        "budget_check_error": budget.check_error,
        "budget_check_tolerance": budget.tolerance,
        "reporting_length": r,
        "sigma_proportions": _sigma_proportions(config, r),
        "sigma": {l: budget.sigma[l - 1] for l in range(1, r + 1)},
        "Delta": dict(run.spent_lengths["Delta"]),
        "thresholds": dict(run.spent_lengths["thresholds"]),
        "candidates": dict(run.spent_lengths["candidates"]),
        "selected": dict(run.spent_lengths["selected"]),
        "noise_threshold_type": config.noise_threshold_type,
        "noise_threshold_values": thresholds,
        "percentile_percentage": config.percentile_percentage,
        "percentile_epsilon_proportion": config.percentile_epsilon_proportion,
        "number_of_records_epsilon_proportion": config.number_of_records_epsilon_proportion,
        "noise_source": run.noise.name,
        "differentially_private": bool(run.noise.is_secure),
    }


def dp_aggregates(spark, data: EncodedData, config: Config, *, noise: Optional[NoiseSource] = None) -> DpResult:
    """Computes the DP aggregates of spec §3 (record count, per-length extraction, §3.6).

    Driver-side: the budget, candidate sets ``V_l`` (sorted packed keys, broadcast to the
    executors), the ``|W_i|`` histograms and clipped candidate counts (collected, small), noise,
    thresholds and post-processing. Executors: per-record valid combinations and clipping over
    ``data.records`` (``mapInArrow``). ``data.records`` is persisted for the ``2·R`` passes if it
    is not already.

    Args:
        spark: Active SparkSession.
        data: Encoded sensitive data.
        config: Effective configuration (DP keys of spec §3.1; ``reporting_length`` ≥ 1 is used
            as given, not capped by the number of columns).
        noise: Noise source; default from the config (secure, or seeded with ``dp_test_seed``).

    Returns:
        The DP aggregates, the protected record count and the spent budget.

    Raises:
        ConfigError: For invalid DP parameters.
        PrivacyCheckError: If the budget check fails or the protected record count is ≤ 0.
    """
    noise = noise or noise_from_config(config)
    if config.dp_test_seed is not None:
        log.warning("%s Noise source: %s.", TEST_SEED_WARNING, noise.name)
    elif not noise.is_secure:
        log.warning("A non-secure noise source (%s) is in use: this release is NOT differentially private; "
                    "use only for tests.", noise.name)
    r = config.reporting_length
    if r < 1:
        raise ConfigError("Invalid value for 'reporting_length': the DP path needs an explicit length >= 1.")
    budget, protected, delta_source = plan_budget(config, data.n_records, noise)
    thresholds = effective_threshold_values(config, r)
    codec = ComboCodec(max(data.n_attributes, 1), r)
    run = _Run(codec, budget, noise, noise.clipping_key())
    records = _records_input(data)
    persisted = not data.records.is_cached
    if persisted:
        records = records.persist()
    try:
        for length in range(1, r + 1):
            _extract_length(spark, records, data, config, run, length, thresholds)
    finally:
        if persisted:
            records.unpersist()
    keys = np.concatenate([run.survivors[l][0] for l in range(1, r + 1)])
    noisy = np.concatenate([run.survivors[l][1] for l in range(1, r + 1)])
    keys, counts = postprocess(codec, keys, noisy)
    log.info("DP aggregates: %d combinations after post-processing", len(counts))
    return DpResult(_aggregates_frame(spark, codec, keys, counts), protected,
                    _spent(config, budget, delta_source, thresholds, run))
