"""Tests of :mod:`ksynth_spark.dp.noise`: secure and seeded noise sources."""

from __future__ import annotations

import math

import numpy as np

from ksynth_spark.dp.noise import NoiseSource, SecureNoise, SeededNoise, noise_from_settings
from ksynth_spark.dp.settings import DpSettings
from tests.test_dp_settings import dp_config


class ZeroNoise(NoiseSource):
    """Test-only source: every draw is 0 (makes the mechanism deterministic); shared by the DP
    test modules."""

    name = "zero (test)"

    def __init__(self, laplace_value: float = 0.0):
        self.laplace_value = laplace_value

    def standard_normal(self, size):
        return np.zeros(size)

    def exponential(self, scale, size):
        return np.zeros(size)

    def laplace(self, scale):
        return self.laplace_value

    def clipping_key(self):
        return np.array([1, 2], dtype=np.uint64)


def test_secure_noise_moments():
    """os.urandom-based draws, 4.5 standard errors per check (not reproducible by design).

    Standard errors for n draws: N(0,1) mean 1/sqrt(n), sd 1/sqrt(2n); Exponential(mean m) mean
    m/sqrt(n); Laplace(b) has variance 2b^2 and kurtosis 6, so its sample variance has standard
    error 2b^2*sqrt(5/n). False-failure probability below 1e-5 per check.
    """
    source = SecureNoise()
    n = 200_000
    z = source.standard_normal(n)
    assert z.shape == (n,) and abs(z.mean()) < 4.5 / math.sqrt(n)
    assert abs(z.std() - 1) < 4.5 / math.sqrt(2 * n)
    e = source.exponential(2.0, n)
    assert (e > 0).all() and abs(e.mean() - 2.0) < 4.5 * 2.0 / math.sqrt(n)
    lap = np.array([source.laplace(1.5) for _ in range(20_000)])
    assert abs(lap.var() - 2 * 1.5 ** 2) < 4.5 * 2 * 1.5 ** 2 * math.sqrt(5 / 20_000)
    u = source.uniform(n)
    assert (u > 0).all() and (u < 1).all()
    assert not np.array_equal(source.clipping_key(), source.clipping_key())
    assert source.is_secure and not SeededNoise(1).is_secure


def test_seeded_noise_is_reproducible_and_settings_select_it():
    a, b = SeededNoise(5), SeededNoise(5)
    assert np.array_equal(a.standard_normal(7), b.standard_normal(7))
    assert np.array_equal(a.uniform(3), b.uniform(3))
    assert np.array_equal(a.clipping_key(), SeededNoise(5).clipping_key())
    assert a.clipping_key().dtype == np.uint64 and a.clipping_key().shape == (2,)
    assert not np.array_equal(a.clipping_key(), SeededNoise(6).clipping_key())
    assert isinstance(noise_from_settings(DpSettings.from_config(dp_config(dp_test_seed=5))), SeededNoise)
    assert isinstance(noise_from_settings(DpSettings.from_config(dp_config())), SecureNoise)
    assert SeededNoise(2).uniform(0).size == 0 and SecureNoise().uniform(0).size == 0
