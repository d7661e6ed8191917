"""Queueing formulas the engine's latency model rests on: Erlang C, and Gamma quantiles and tails.

`erlang_c` is the exact textbook formula (used by tests and the reference); `ErlangTable` is the same function
tabulated once so the engine can look it up for arrays of worlds without a loop over servers.
"""

from __future__ import annotations

import math

import numpy as np

MAX_TABLE_SERVERS = 256  # beyond this the probability of waiting is negligible below the fluid regime
RHO_GRID = 2001


def erlang_c(servers: int, offered: float) -> float:
    """Probability that an arrival waits in an M/M/c queue with `servers` and offered load `offered` (= lambda/mu)."""
    if offered >= servers:
        return 1.0
    blocking = 1.0  # Erlang B by the stable recursion B(k) = a B(k-1) / (k + a B(k-1))
    for k in range(1, servers + 1):
        blocking = offered * blocking / (k + offered * blocking)
    rho = offered / servers
    return blocking / (1.0 - rho * (1.0 - blocking))


def mmc_mean_response(servers: int, arrival_rate: float, service_rate: float) -> float:
    """Mean response time (wait + service) of an M/M/c queue."""
    offered = arrival_rate / service_rate
    wait = erlang_c(servers, offered) / (servers * service_rate - arrival_rate)
    return wait + 1.0 / service_rate


class ErlangTable:
    """Erlang C tabulated over servers 1..256 and utilisation 0..1; `lookup` interpolates linearly in utilisation."""

    _table: np.ndarray | None = None

    @classmethod
    def table(cls) -> np.ndarray:  # [servers, rho]
        if cls._table is None:
            rho = np.linspace(0.0, 1.0, RHO_GRID)
            servers = np.arange(1, MAX_TABLE_SERVERS + 1, dtype=np.float64)[:, None]
            offered = servers * rho[None, :]
            blocking = np.ones_like(offered)
            for k in range(1, MAX_TABLE_SERVERS + 1):
                active = servers[:, 0] >= k  # rows whose recursion has not reached their own c yet
                step = offered[active] * blocking[active]
                blocking[active] = step / (k + step)
            table = blocking / (1.0 - rho[None, :] * (1.0 - blocking))
            table[:, -1] = 1.0
            cls._table = np.ascontiguousarray(table, dtype=np.float32)
        return cls._table

    @classmethod
    def lookup(cls, servers: np.ndarray, rho: np.ndarray) -> np.ndarray:
        """Erlang C for arrays of whole server counts (>= 1) and utilisations in 0..1."""
        flat = cls.table().reshape(-1)
        pos = np.clip(rho, 0.0, 0.9999) * (RHO_GRID - 1)
        col = pos.astype(np.int32)
        base = (np.minimum(servers, MAX_TABLE_SERVERS).astype(np.int32) - 1) * RHO_GRID + col
        low = flat.take(base)
        return low + (flat.take(base + 1) - low) * (pos - col)


def normal_sf(z: np.ndarray) -> np.ndarray:
    """P(Z > z) for a standard normal, by Abramowitz and Stegun 7.1.26 (error below 1.5e-7)."""
    x = np.abs(z) * (1.0 / math.sqrt(2.0))
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    half_erfc = 0.5 * poly * np.exp(-x * x)
    return half_erfc + (z < 0.0) * (1.0 - 2.0 * half_erfc)   # symmetry, without a branch


def gamma_quantile(mean: np.ndarray, var: np.ndarray, z: float | np.ndarray) -> np.ndarray:
    """Quantile at standard-normal score `z` of the Gamma with this mean and variance (Wilson-Hilferty)."""
    inv9k = var / (9.0 * np.maximum(mean * mean, 1e-30))      # 1 / (9 x shape)
    cube = np.maximum(1.0 - inv9k + z * np.sqrt(inv9k), 0.0)
    return mean * cube * cube * cube


def gamma_sf(mean: np.ndarray, var: np.ndarray, x: np.ndarray) -> np.ndarray:
    """P(T > x) for the Gamma with this mean and variance (Wilson-Hilferty)."""
    mean = np.maximum(mean, 1e-12)
    sd = np.maximum(np.sqrt(var), 1e-9 * mean)
    # z = (cbrt(x / mean) - 1 + 1/(9k)) / sqrt(1/(9k)), with 1/(9k) = var / (9 mean^2)
    z = (np.cbrt(np.maximum(x, 0.0) / mean) - 1.0) * (3.0 * mean / sd) + sd / (3.0 * mean)
    return normal_sf(z)


SKEW_WEIGHT = 0.5


def _shifted(mean: np.ndarray, var: np.ndarray, third: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The shift and Gamma mean of a shifted Gamma with this mean and variance and a skewness between the plain
    Gamma's (2 cv) and the one the third cumulant gives.

    Why between: fractional calls make end-to-end latency a mixture (most requests short, a few long). Matching
    the third cumulant exactly turns the fit J-shaped and puts the median too low; ignoring it misses the tail the
    rare long requests make. Half-way is within 6% at p50 and 10% at p99 of the request-level reference on the
    built-in templates (tests/engine/test_fidelity.py measures it).
    """
    sd = np.maximum(np.sqrt(var), 1e-6)      # below a microsecond of spread the shape does not matter
    plain = 2.0 * sd / np.maximum(mean, 1e-6)
    skew = np.clip(plain + SKEW_WEIGHT * (third / (sd * sd * sd) - plain), 0.05, 20.0)
    gamma_mean = 2.0 * sd / skew          # shape 4/skew^2, scale sd*skew/2
    return mean - gamma_mean, gamma_mean


class SkewedGamma:
    """The shifted Gamma of `_shifted`, fitted once and asked several questions."""

    def __init__(self, mean: np.ndarray, var: np.ndarray, third: np.ndarray) -> None:
        self.var = var
        self.shift, self.gamma_mean = _shifted(mean, var, third)

    def sf(self, x: np.ndarray) -> np.ndarray:
        return gamma_sf(self.gamma_mean, self.var, x - self.shift)

    def quantile(self, z: float | np.ndarray) -> np.ndarray:
        return np.maximum(self.shift + gamma_quantile(self.gamma_mean, self.var, z), 0.0)


def skewed_quantile(mean: np.ndarray, var: np.ndarray, third: np.ndarray, z: float | np.ndarray) -> np.ndarray:
    """Quantile at normal score `z` of the shifted Gamma matching mean, variance and third cumulant."""
    return SkewedGamma(mean, var, third).quantile(z)


def skewed_sf(mean: np.ndarray, var: np.ndarray, third: np.ndarray, x: np.ndarray) -> np.ndarray:
    """P(T > x) for the shifted Gamma matching mean, variance and third cumulant."""
    return SkewedGamma(mean, var, third).sf(x)


Z50, Z90, Z99 = 0.0, 1.2815515655446004, 2.3263478740408408
