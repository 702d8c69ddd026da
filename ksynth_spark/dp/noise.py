"""Where the random draws of a DP release come from: the noise sources (no Spark here).

The default :class:`SecureNoise` builds every draw from ``os.urandom`` bytes (the operating
system's CSPRNG) and keys the random Δ-subsets of clipping with 128 fresh random bits.
:class:`SeededNoise` (chosen by ``dp_test_seed``) draws from a seeded numpy Generator and derives
the clipping key from the seed: the release is reproducible and NOT differentially private.
Continuous distributions (normal, exponential, Laplace) are built here from uniforms, so a test
source only has to provide uniforms, or override the distributions it wants to pin.
"""

from __future__ import annotations

import math
import os

import numpy as np

from ksynth_spark.dp.settings import DpSettings
from ksynth_spark.randomness import MASK64, PHASE_DP_CLIPPING, uniform_keys

TEST_SEED_WARNING = (
    "dp_test_seed is set: this release is NOT differentially private; use only for tests "
    "(noise and clipping are reproducible from the seed)."
)


class NoiseSource:
    """The random draws of one DP release (injectable for tests).

    Subclasses implement :meth:`uniform` (open interval (0, 1)) and :meth:`clipping_key`.

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
        """Two uint64 words keying the random Δ-subsets of clipping (spec §3.4 d) of one release."""
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


def _open_unit(raw: np.ndarray) -> np.ndarray:
    """53-bit integers to floats centred in their cells of (0, 1), so 0 and 1 never occur."""
    return (raw.astype(np.float64) + 0.5) * 2.0 ** -53


class SecureNoise(NoiseSource):
    """Draws built from ``os.urandom`` bytes (the operating system's CSPRNG); no seed."""

    name = "os.urandom"
    is_secure = True

    def uniform(self, size: int) -> np.ndarray:
        """53 random bits per draw."""
        if size <= 0:
            return np.zeros(0)
        return _open_unit(np.frombuffer(os.urandom(8 * size), dtype=np.uint64) >> np.uint64(11))

    def clipping_key(self) -> np.ndarray:
        """128 fresh random bits."""
        return np.frombuffer(os.urandom(16), dtype=np.uint64).copy()


class SeededNoise(NoiseSource):
    """Reproducible draws from a seeded numpy Generator: for tests only, NOT private.

    Args:
        seed: The test seed (taken modulo 2^64).
    """

    is_secure = False

    def __init__(self, seed: int):
        self.seed = int(seed)
        self.name = f"seeded numpy PCG64 (dp_test_seed={self.seed}, NOT private)"
        self._rng = np.random.Generator(np.random.PCG64(self.seed & MASK64))

    def uniform(self, size: int) -> np.ndarray:
        """Generator integers of 53 bits mapped into the open interval (0, 1)."""
        if size <= 0:
            return np.zeros(0)
        return _open_unit(self._rng.integers(0, 1 << 53, size=size, dtype=np.int64))

    def clipping_key(self) -> np.ndarray:
        """Derived from the seed only (the streams ``(seed, PHASE_DP_CLIPPING, 0 and 1)``), not
        from the draw stream."""
        return uniform_keys(self.seed, PHASE_DP_CLIPPING, np.arange(2))


def noise_from_settings(settings: DpSettings) -> NoiseSource:
    """The noise source the settings ask for: secure, or seeded when ``dp_test_seed`` is set."""
    if settings.dp_test_seed is not None:
        return SeededNoise(settings.dp_test_seed)
    return SecureNoise()
