"""Tests of :mod:`ksynth_spark.dp.budget` (spec §3.1–3.3): §8.5 vectors and invariant D1."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ksynth_spark.dp.budget import (
    budget_split,
    budget_tolerance,
    plan_budget,
    protected_record_count,
    resolve_delta,
)
from ksynth_spark.dp.marginals import length_threshold
from ksynth_spark.dp.settings import DpSettings
from ksynth_spark.errors import ConfigError, PrivacyCheckError
from tests.test_dp_noise import ZeroNoise
from tests.test_dp_settings import dp_config


def test_budget_vector_n12_r2():
    delta = resolve_delta(None, 12, None)
    assert delta == pytest.approx(0.0335358003, abs=1e-10)
    budget = budget_split(4.0, delta, [1.0, 0.5], 0.01, None)
    assert budget.rho == pytest.approx(0.6757497000, abs=1e-10)
    assert budget.eps_q == pytest.approx(0.0822039962, abs=1e-10)
    assert budget.sigma[0] == pytest.approx(1.9331229474, abs=1e-10)
    assert budget.sigma[1] == pytest.approx(0.9665614737, abs=1e-10)
    expected_rho1 = {1: 5.1090642, 2: 7.5344698, 3: 9.4881768}
    for allowed, value in expected_rho1.items():
        assert length_threshold(1, budget.sigma[0], allowed, delta, "adaptive", {}) == pytest.approx(value, abs=1e-7)
    expected_rho2 = {1.0: 0.0, 0.55: 1.0007303, 0.1: 2.7537046, 0.01: 4.3122823}
    for eta, value in expected_rho2.items():
        got = length_threshold(2, budget.sigma[1], 3, delta, "adaptive", {2: eta})
        assert got == pytest.approx(value, abs=1e-7)


def test_budget_vector_r3_balanced():
    budget = budget_split(4.0, 1e-6, [1.0, 1.0, 1.0], 0.01, None)
    assert budget.rho == pytest.approx(0.2431927380, abs=1e-10)
    assert budget.eps_q == pytest.approx(0.0402651825, abs=1e-10)
    assert budget.sigma == pytest.approx((2.4960468407,) * 3, abs=1e-10)


@pytest.mark.parametrize("seed", range(20))
def test_d1_budget_adds_up(seed):
    rng = np.random.default_rng(seed)
    r = int(rng.integers(1, 7))
    proportions = list(rng.uniform(0.05, 3.0, r))
    n_p = None if seed % 3 == 0 else float(rng.uniform(0.001, 0.5))
    delta = float(10 ** -rng.uniform(1, 12))
    budget = budget_split(float(rng.uniform(0.05, 20)), delta, proportions, float(rng.uniform(0.001, 0.5)), n_p)
    spent = r * budget.eps_q ** 2 / 2 + sum(1 / (2 * s ** 2) for s in budget.sigma)
    assert abs(spent - budget.rho) <= 1e-8
    assert len(budget.sigma) == r
    for j in range(r):
        assert budget.sigma[j] / budget.sigma[0] == pytest.approx(proportions[j] / proportions[0], rel=1e-12)
    assert budget.eps_m + budget.eps_n == pytest.approx(budget.epsilon)


def test_budget_tolerance_follows_delta():
    assert budget_tolerance(0.0335) == 1e-8
    assert budget_tolerance(1e-6) == 1e-8
    assert budget_tolerance(1e-9) == pytest.approx(1e-9)
    assert budget_tolerance(2e-12) == pytest.approx(1e-12)


def test_budget_errors():
    with pytest.raises(ConfigError):
        budget_split(4.0, 1.5, [1.0, 1.0], 0.01, None)
    with pytest.raises(ConfigError):
        budget_split(4.0, 0.0, [1.0, 1.0], 0.01, None)
    # a delta so small that the check's tolerance is below float rounding: the check fails
    with pytest.raises(PrivacyCheckError, match="budget check failed"):
        budget_split(4.0, 1e-300, [1.0, 0.3, 0.7], 0.01, None)


def test_delta_resolution():
    assert resolve_delta(2.0, 100, 90) == pytest.approx(1 / 200)  # true N, [COMPAT]
    assert resolve_delta(None, 100, 90) == pytest.approx(1 / (math.log(90) * 90))
    assert resolve_delta(None, 100, None) == pytest.approx(1 / (math.log(100) * 100))
    with pytest.raises(ConfigError):
        resolve_delta(None, 100, 1)
    with pytest.raises(ConfigError):
        resolve_delta(0.5, 1, None)  # delta = 2


def test_protected_record_count_rounds_half_away():
    assert protected_record_count(12, 0.02, ZeroNoise(0.5)) == 13
    assert protected_record_count(12, 0.02, ZeroNoise(-0.5)) == 12   # 11.5 -> 12
    assert protected_record_count(12, 0.02, ZeroNoise(-0.49)) == 12
    with pytest.raises(PrivacyCheckError):
        protected_record_count(3, 0.02, ZeroNoise(-3.4))


def test_plan_budget_uses_the_protected_count_for_delta():
    settings = DpSettings.from_config(dp_config(reporting_length=2, sigma_proportions=[1.0, 0.5]))
    plan = plan_budget(settings, 100, ZeroNoise(-10.0))
    assert plan.protected_record_count == 90
    assert plan.budget.delta == pytest.approx(1 / (math.log(90) * 90))
    assert plan.budget.eps_n == pytest.approx(0.005 * 4.0) and len(plan.budget.sigma) == 2
    assert "protected" in plan.delta_source
    settings = DpSettings.from_config(dp_config(number_of_records_epsilon_proportion=None, delta_factor=2.0))
    plan = plan_budget(settings, 100, ZeroNoise(-10.0))
    assert plan.protected_record_count is None and plan.budget.eps_n == 0.0
    assert plan.budget.delta == pytest.approx(1 / 200) and "delta_factor" in plan.delta_source
