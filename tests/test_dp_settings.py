"""Tests of :mod:`ksynth_spark.dp.settings`: DP parameters resolved from the config (spec §3.1)."""

from __future__ import annotations

import dataclasses

import pytest

from ksynth_spark.config import Config
from ksynth_spark.dp.settings import DpSettings


def dp_config(**overrides) -> Config:
    """A valid DP config (R = 3 unless overridden); shared by the DP test modules."""
    base = dict(sensitive_microdata_path="unused", dp_aggregates=True, synthesis_mode="aggregate_seeded",
                reporting_length=3)
    base.update(overrides)
    return Config(**base)


def test_defaults_are_resolved():
    settings = DpSettings.from_config(dp_config())
    assert settings.sigma_proportions == (1.0, 1.0, 1.0)
    assert settings.noise_threshold_type == "adaptive"
    assert settings.noise_threshold_values == {2: 1.0, 3: 1.0}
    assert settings.epsilon == 4.0 and settings.delta_factor is None
    assert settings.percentile_percentage == 99 and settings.percentile_epsilon_proportion == 0.01
    assert settings.number_of_records_epsilon_proportion == 0.005
    assert settings.reporting_length == 3 and settings.dp_test_seed is None


def test_effective_threshold_values_fill_defaults():
    config = dp_config(reporting_length=4, noise_threshold_type="fixed", noise_threshold_values={3: 5.0})
    assert DpSettings.from_config(config).noise_threshold_values == {2: 0.0, 3: 5.0, 4: 0.0}
    config = dp_config(noise_threshold_values={2: 0.55})
    assert DpSettings.from_config(config).noise_threshold_values == {2: 0.55, 3: 1.0}


def test_configured_values_are_kept():
    config = dp_config(reporting_length=2, sigma_proportions=[1, 0.5], noise_epsilon=1.5, delta_factor=3.0,
                       number_of_records_epsilon_proportion=None, dp_test_seed=7, percentile_percentage=90)
    settings = DpSettings.from_config(config)
    assert settings.sigma_proportions == (1.0, 0.5)
    assert settings.noise_threshold_values == {2: 1.0}
    assert (settings.epsilon, settings.delta_factor, settings.dp_test_seed) == (1.5, 3.0, 7)
    assert settings.number_of_records_epsilon_proportion is None and settings.percentile_percentage == 90
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.epsilon = 2.0
