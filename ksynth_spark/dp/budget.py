"""The privacy budget of a DP release: δ, the split of ε and its check, the protected record
count (spec §3.1–3.3). Driver-side arithmetic on a few numbers (no Spark, no data)."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from ksynth_spark.dp.noise import NoiseSource
from ksynth_spark.dp.settings import DpSettings
from ksynth_spark.errors import ConfigError, PrivacyCheckError
from ksynth_spark.numerics import round_half_away

logger = logging.getLogger(__name__)


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
    """``1 / (ln(n) · n)`` (spec §3.1).

    Raises:
        ConfigError: If ``n <= 1`` (the formula is undefined or not below 1).
    """
    if n <= 1:
        raise ConfigError(
            "The default delta 1/(ln(n)*n) needs a (protected) record count above 1; "
            "set 'delta_factor' or use more records."
        )
    return 1.0 / (math.log(n) * n)


def resolve_delta(delta_factor: float | None, n_records: int, protected_count: int | None) -> float:
    """δ of spec §3.1: ``1/(delta_factor·N)`` (true N, [COMPAT]) or the default formula over the
    protected record count if there is one, else over N.

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
    sigma_proportions: Sequence[float],
    percentile_epsilon_proportion: float,
    number_of_records_epsilon_proportion: float | None,
) -> BudgetSplit:
    """Splits ε into the record count, the R percentiles and the R noise scales (spec §3.2).

    Args:
        epsilon: Total ε.
        delta: δ, strictly between 0 and 1.
        sigma_proportions: p_1..p_R (R is their number).
        percentile_epsilon_proportion: Q_p.
        number_of_records_epsilon_proportion: N_p, or None.

    Raises:
        ConfigError: If δ is not strictly between 0 and 1.
        PrivacyCheckError: If the spent zCDP budget does not add up to ρ within tolerance.
    """
    if not 0.0 < delta < 1.0:
        raise ConfigError("delta must be strictly between 0 and 1; check 'delta_factor'.")
    r = len(sigma_proportions)
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


@dataclass(frozen=True)
class BudgetPlan:
    """The budget of a release with the protected record count drawn (spec §3.1–3.3).

    Attributes:
        budget: The split of ε.
        protected_record_count: n', or None without N_p.
        delta_source: How δ was chosen (for the ``spent`` record).
    """

    budget: BudgetSplit
    protected_record_count: int | None
    delta_source: str


def plan_budget(settings: DpSettings, n_records: int, noise: NoiseSource) -> BudgetPlan:
    """Protected record count (§3.3), δ (§3.1) and budget split (§3.2) of a release.

    Draws one Laplace value from ``noise`` when N_p is set.

    Raises:
        ConfigError: If δ is not strictly between 0 and 1.
        PrivacyCheckError: If the protected record count is ≤ 0 or the budget check fails.
    """
    n_p = settings.number_of_records_epsilon_proportion
    protected = None
    if n_p is not None:
        protected = protected_record_count(n_records, n_p * settings.epsilon, noise)
    delta = resolve_delta(settings.delta_factor, n_records, protected)
    if settings.delta_factor is not None:
        source = "delta_factor (uses the true record count)"
    elif protected is not None:
        source = "1/(ln(n')*n') of the protected record count"
    else:
        source = "1/(ln(N)*N) of the true record count"
    budget = budget_split(settings.epsilon, delta, settings.sigma_proportions,
                          settings.percentile_epsilon_proportion, n_p)
    logger.info("DP budget: epsilon %.4g, delta %.3g (%s), rho %.4g, eps_Q %.4g", budget.epsilon, delta, source,
                budget.rho, budget.eps_q)
    return BudgetPlan(budget, protected, source)
