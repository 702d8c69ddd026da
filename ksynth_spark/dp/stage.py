"""The DP aggregates stage (spec §3) on Spark: the only DP module that imports pyspark.

Per length ``l`` the candidate universe ``V_l`` is built on the driver as sorted packed keys
(from the noisy survivors of length ``l-1``, or from the attribute table for ``l = 1``) and
broadcast with the length's :class:`~ksynth_spark.dp.marginals.LengthPlan`. Executors
enumerate the valid combinations of the distinct rows of ``data.rows`` (``mapInArrow``) and
run two jobs per length whose small results are collected: the weighted histogram of ``|W|``
(for the DP percentile) and the clipped per-candidate counts (at most ``|V_l|`` rows). Budget,
noise, thresholds and post-processing (§3.6) run on the driver. Sensitive rows are never
collected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.storagelevel import StorageLevel

from ksynth_spark.arrow_jobs import broadcast, csr, map_batches, numbers, record_batch
from ksynth_spark.combinations import ComboCodec, sortable
from ksynth_spark.config import Config
from ksynth_spark.dp.budget import BudgetPlan, plan_budget
from ksynth_spark.dp.marginals import (
    LengthPlan,
    candidate_universe,
    clipped_counts,
    length_threshold,
    make_plan,
    noisy_counts,
    select,
    single_attribute_keys,
    valid_sizes,
)
from ksynth_spark.dp.noise import TEST_SEED_WARNING, NoiseSource, noise_from_settings
from ksynth_spark.dp.percentile import dp_percentile_from_histogram, histogram
from ksynth_spark.dp.postprocess import postprocess
from ksynth_spark.dp.settings import DpSettings
from ksynth_spark.model import AGGREGATE_SCHEMA, EncodedData

logger = logging.getLogger(__name__)


@dataclass
class DpResult:
    """Output of :func:`dp_aggregates`.

    Attributes:
        aggregates: Spark DataFrame ``attrs array<int>, length int, count long``: DP counts
            (integers ≥ 1, after §3.6), ordered by length, count descending, key.
        protected_record_count: ``n'`` (spec §3.3), or None without N_p.
        spent: Everything spent or used (effective parameters, per-length σ, Δ and thresholds).
    """

    aggregates: DataFrame
    protected_record_count: int | None
    spent: dict


# ---------------------------------------------------------------------------------- executor jobs
def _size_histogram(spark: SparkSession, rows: DataFrame, plan: LengthPlan) -> tuple[np.ndarray, np.ndarray]:
    """Weighted histogram of ``|W|`` over the distinct rows (each counted ``weight`` times).

    The plan is broadcast. Collected to the driver: one row per distinct size (summed in Spark
    from per-batch histograms).
    """
    def sizes(batch, shared):
        offsets, ids = csr(batch)
        values, counts = histogram(valid_sizes(shared.value, offsets, ids), numbers(batch, "weight"))
        return record_batch(size=values, n=counts)

    with broadcast(spark, plan) as shared:
        table = (map_batches(rows, "size long, n long", sizes, setup=lambda: shared)
                 .groupBy("size").agg(F.sum("n").alias("n")).toArrow())
    return histogram(numbers(table, "size"), numbers(table, "n"))


def _clipped_totals(spark: SparkSession, rows: DataFrame, plan: LengthPlan) -> np.ndarray:
    """Clipped per-candidate counts ``H`` (before noise), in ``V_l`` order.

    The plan is broadcast. Collected to the driver: one row per candidate with a non-zero
    count (at most ``|V_l|`` rows).
    """
    def counts(batch, shared):
        offsets, ids = csr(batch)
        for index, total in clipped_counts(shared.value, offsets, ids, numbers(batch, "weight")):
            yield record_batch(cand=index.astype(np.int64), count=total.astype(np.int64))

    with broadcast(spark, plan) as shared:
        table = (map_batches(rows, "cand long, count long", counts, setup=lambda: shared)
                 .groupBy("cand").agg(F.sum("count").alias("count")).toArrow())
    dense = np.zeros(plan.candidates.size, dtype=np.int64)
    dense[numbers(table, "cand")] = numbers(table, "count")
    return dense


# ---------------------------------------------------------------------------------- driver
@dataclass
class _Run:
    """Driver-side state of one release."""

    settings: DpSettings
    codec: ComboCodec
    budget_plan: BudgetPlan
    noise: NoiseSource
    clip_key: np.ndarray
    survivors: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    per_length: dict[str, dict[int, float | None]] = field(
        default_factory=lambda: {"Delta": {}, "thresholds": {}, "candidates": {}, "selected": {}})


def _candidates(data: EncodedData, run: _Run, length: int) -> np.ndarray:
    """``V_l`` as sorted packed keys."""
    if length == 1:
        return single_attribute_keys(run.codec, data.attributes["attr_id"].to_numpy())
    return candidate_universe(run.codec, run.survivors[length - 1][0], length, data.attribute_columns)


def _extract_length(spark: SparkSession, rows: DataFrame, data: EncodedData, run: _Run, length: int) -> None:
    """Spec §3.4 for one length: candidates, Δ, clipped counts, noise, threshold → ``S[l]``."""
    settings, budget = run.settings, run.budget_plan.budget
    candidates = _candidates(data, run, length)
    record = run.per_length
    record["candidates"][length] = int(candidates.shape[0])
    allowed, plan = 0, None  # no candidates or no records: every |W| is 0, so Δ = 0
    if candidates.shape[0] and data.n_records:
        plan = make_plan(run.codec, length, candidates, data.n_attributes)
        values, counts = _size_histogram(spark, rows, plan)
        allowed = dp_percentile_from_histogram(values, counts, settings.percentile_percentage, budget.eps_q,
                                               run.noise)
    record["Delta"][length] = allowed
    if allowed == 0:
        record["thresholds"][length] = None
        record["selected"][length] = 0
        run.survivors[length] = (np.zeros((0, run.codec.n_words), np.int64), np.zeros(0))
        logger.info("DP length %d: %d candidates, allowed contribution 0, nothing selected",
                    length, candidates.shape[0])
        return
    assert plan is not None  # Δ > 0 only once a plan was made
    clipped = _clipped_totals(spark, rows, replace(plan, allowed=allowed, clip_key=run.clip_key))
    sigma_l = budget.sigma[length - 1]
    noisy = noisy_counts(clipped, sigma_l, allowed, run.noise)
    threshold = length_threshold(length, sigma_l, allowed, budget.delta, settings.noise_threshold_type,
                                 settings.noise_threshold_values)
    keep = select(noisy, threshold)
    run.survivors[length] = (candidates[keep], noisy[keep])
    record["thresholds"][length] = threshold
    record["selected"][length] = int(keep.sum())
    logger.info("DP length %d: %d candidates, allowed contribution %d, threshold %.4f, %d selected",
                length, candidates.shape[0], allowed, threshold, int(keep.sum()))


def _aggregates_frame(spark: SparkSession, codec: ComboCodec, keys: np.ndarray, counts: np.ndarray) -> DataFrame:
    """The output DataFrame from driver-side keys and counts (the released table, small)."""
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


def _spent(run: _Run) -> dict:
    """The ``spent`` record of a release: effective parameters and what each length used."""
    settings, budget = run.settings, run.budget_plan.budget
    r = settings.reporting_length
    return {
        "epsilon": budget.epsilon,
        "delta": budget.delta,
        "delta_source": run.budget_plan.delta_source,
        "eps_N": budget.eps_n,
        "eps_M": budget.eps_m,
        "rho": budget.rho,
        "eps_Q": budget.eps_q,
        "K": budget.k_sum,
        "budget_check_error": budget.check_error,
        "budget_check_tolerance": budget.tolerance,
        "reporting_length": r,
        "sigma_proportions": list(settings.sigma_proportions),
        "sigma": {length: budget.sigma[length - 1] for length in range(1, r + 1)},
        **{name: dict(values) for name, values in run.per_length.items()},
        "noise_threshold_type": settings.noise_threshold_type,
        "noise_threshold_values": dict(settings.noise_threshold_values),
        "percentile_percentage": settings.percentile_percentage,
        "percentile_epsilon_proportion": settings.percentile_epsilon_proportion,
        "number_of_records_epsilon_proportion": settings.number_of_records_epsilon_proportion,
        "noise_source": run.noise.name,
        "differentially_private": bool(run.noise.is_secure),
    }


def dp_aggregates(spark: SparkSession, data: EncodedData, config: Config, *,
                  noise: NoiseSource | None = None) -> DpResult:
    """Computes the DP aggregates of spec §3 (record count, per-length extraction, §3.6).

    Driver-side: the budget, candidate sets ``V_l`` (sorted packed keys, broadcast to the
    executors), the ``|W|`` histograms and clipped candidate counts (collected, small), noise,
    thresholds and post-processing. Executors: valid combinations and clipping of the distinct
    rows ``data.rows`` (``mapInArrow``), which are persisted for the ``2·R`` passes if they are
    not already.

    Args:
        spark: Active SparkSession.
        data: Encoded sensitive data (distinct rows with weights).
        config: Validated configuration with ``dp_aggregates: true`` (the DP keys of spec §3.1;
            ``reporting_length`` ≥ 1 is used as given, not capped by the number of columns).
        noise: Noise source; default from the config (secure, or seeded with ``dp_test_seed``).

    Returns:
        The DP aggregates, the protected record count and the spent budget.

    Raises:
        ConfigError: If δ is not strictly between 0 and 1.
        PrivacyCheckError: If the budget check fails or the protected record count is ≤ 0.
    """
    settings = DpSettings.from_config(config)
    noise = noise or noise_from_settings(settings)
    if settings.dp_test_seed is not None:
        logger.warning("%s Noise source: %s.", TEST_SEED_WARNING, noise.name)
    elif not noise.is_secure:
        logger.warning("A non-secure noise source (%s) is in use: this release is NOT differentially private; "
                       "use only for tests.", noise.name)
    r = settings.reporting_length
    codec = ComboCodec(max(data.n_attributes, 1), r)
    run = _Run(settings, codec, plan_budget(settings, data.n_records, noise), noise, noise.clipping_key())
    rows = data.rows.select(F.coalesce(F.col("attrs"), F.array().cast("array<int>")).alias("attrs"),
                            F.col("weight").cast("long"))
    persisted = not data.rows.is_cached
    if persisted:
        rows = rows.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        for length in range(1, r + 1):
            _extract_length(spark, rows, data, run, length)
    finally:
        if persisted:
            rows.unpersist()
    keys = np.concatenate([run.survivors[length][0] for length in range(1, r + 1)])
    noisy = np.concatenate([run.survivors[length][1] for length in range(1, r + 1)])
    keys, counts = postprocess(codec, keys, noisy)
    logger.info("DP aggregates: %d combinations after post-processing", len(counts))
    return DpResult(_aggregates_frame(spark, codec, keys, counts), run.budget_plan.protected_record_count, _spent(run))
