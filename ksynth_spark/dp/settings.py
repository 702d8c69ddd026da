"""The DP parameters of one release, resolved once from the configuration (spec §3.1).

:class:`DpSettings` holds every number the DP path uses, with the defaults filled in (sigma
proportions, thresholds per length). The rules on those values live in
:mod:`ksynth_spark.config`, which has validated them before a :class:`DpSettings` is built; the
other DP modules take a :class:`DpSettings` or plain numbers, never a ``Config``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ksynth_spark.config import Config


@dataclass(frozen=True)
class DpSettings:
    """Effective DP parameters (spec §3.1).

    Attributes:
        epsilon: Total budget ε (``noise_epsilon``).
        delta_factor: δ = 1/(delta_factor·N), or None for the default δ.
        percentile_percentage: Q, the percentile (in %) that sets the allowed contribution.
        percentile_epsilon_proportion: Q_p, share of the zCDP budget of the R percentiles.
        number_of_records_epsilon_proportion: N_p, share of ε spent on the record count, or
            None for no protected record count.
        sigma_proportions: p_1..p_R, one per length (default all 1.0).
        noise_threshold_type: ``fixed`` or ``adaptive``.
        noise_threshold_values: Threshold value of every length 2..R (the type's default, 0.0
            for fixed and 1.0 for adaptive, filled in).
        reporting_length: R, the longest length released.
        dp_test_seed: Seed of the reproducible (NOT private) test noise, or None.
    """

    epsilon: float
    delta_factor: float | None
    percentile_percentage: float
    percentile_epsilon_proportion: float
    number_of_records_epsilon_proportion: float | None
    sigma_proportions: tuple[float, ...]
    noise_threshold_type: str
    noise_threshold_values: dict[int, float]
    reporting_length: int
    dp_test_seed: int | None = None

    @classmethod
    def from_config(cls, config: Config) -> DpSettings:
        """The settings of a validated config that asks for DP aggregates."""
        r = config.reporting_length
        if config.sigma_proportions is None:
            sigma = (1.0,) * r
        else:
            sigma = tuple(float(p) for p in config.sigma_proportions)
        default = 0.0 if config.noise_threshold_type == "fixed" else 1.0
        thresholds = {length: float(config.noise_threshold_values.get(length, default)) for length in range(2, r + 1)}
        return cls(
            epsilon=float(config.noise_epsilon),
            delta_factor=config.delta_factor,
            percentile_percentage=config.percentile_percentage,
            percentile_epsilon_proportion=float(config.percentile_epsilon_proportion),
            number_of_records_epsilon_proportion=config.number_of_records_epsilon_proportion,
            sigma_proportions=sigma,
            noise_threshold_type=config.noise_threshold_type,
            noise_threshold_values=thresholds,
            reporting_length=r,
            dp_test_seed=config.dp_test_seed,
        )
