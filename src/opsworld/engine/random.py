"""Counter-based random streams: a draw depends only on (seed, world, tick, stream, index).

So a world's episode is the same whether it runs alone or in a batch of any size, and no generator state has to be
carried or split. The mixer is SplitMix64's finaliser, applied to a key built from those counters.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TICK = np.uint64(0xD6E8FEB86659FD93)
_STREAM = np.uint64(0xA0761D6478BD642F)


def _mix(x: np.ndarray) -> np.ndarray:
    x = x + _GOLDEN                      # a new array: the steps below work in place on it
    if not isinstance(x, np.ndarray):
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))
    x ^= x >> np.uint64(30)
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


class Streams:
    """Uniform and normal draws for a batch of worlds, keyed by counters instead of generator state."""

    def __init__(self, seed: int, world_ids: np.ndarray) -> None:
        with np.errstate(over="ignore"):
            key = np.uint64(seed & 0xFFFFFFFFFFFFFFFF)
            self._world_key = _mix(_mix(np.full(len(world_ids), key, dtype=np.uint64)) ^ world_ids.astype(np.uint64))

    def uniform(self, tick: int, stream: int, n: int) -> np.ndarray:
        """[worlds, n] uniforms in (0, 1) for this tick and stream."""
        with np.errstate(over="ignore"):
            salt = np.uint64(tick) * _TICK + np.uint64(stream) * _STREAM
            counters = (salt + np.arange(n, dtype=np.uint64))[None, :]
            bits = _mix(self._world_key[:, None] ^ counters)
        return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / 9007199254740992.0)

    def normal(self, tick: int, stream: int, n: int) -> np.ndarray:
        """[worlds, n] standard normals: Box-Muller on the two 24-bit halves of 64-bit draws, both of its outputs
        used (cosine and sine), so n normals cost n/2 draws."""
        pairs = (n + 1) // 2
        with np.errstate(over="ignore"):
            salt = np.uint64(tick) * _TICK + np.uint64(stream) * _STREAM
            bits = _mix(self._world_key[:, None] ^ (salt + np.arange(pairs, dtype=np.uint64))[None, :])
        # 24 bits per uniform is plenty for a normal deviate and keeps the arithmetic in float32 (twice as fast)
        scale = np.float32(1.0 / 16777216.0)
        u1 = (bits >> np.uint64(40)).astype(np.float32)
        u1 += np.float32(0.5)
        u1 *= scale
        bits >>= np.uint64(8)
        bits &= np.uint64(0xFFFFFF)
        u2 = bits.astype(np.float32)
        u2 += np.float32(0.5)
        u2 *= scale
        radius = np.log(u1)
        radius *= np.float32(-2.0)
        np.sqrt(radius, out=radius)
        angle = u2
        angle *= np.float32(2.0 * np.pi)
        out = np.empty((bits.shape[0], 2 * pairs), np.float32)
        np.cos(angle, out=out[:, :pairs])
        np.sin(angle, out=out[:, pairs:])
        out[:, :pairs] *= radius
        out[:, pairs:] *= radius
        return out[:, :n]


def poisson(mean: np.ndarray, normal: np.ndarray, uniform: "Callable[[], np.ndarray]") -> np.ndarray:
    """Poisson counts with the given means: a continuity-corrected normal from 30 up, inversion of a uniform (drawn
    only when some mean is that small) below."""
    big = np.maximum(np.floor(mean + np.sqrt(mean) * normal + 0.5), 0.0)
    small_mask = mean < 30.0
    if not small_mask.any():
        return big
    u = uniform()
    lam = np.where(small_mask, mean, 0.0)
    term = np.exp(-lam)
    cdf = term.copy()
    count = np.zeros_like(lam)
    for k in range(1, 80):  # the tail past 80 is below 1e-12 for means under 30
        more = u > cdf
        if not more.any():
            break
        term = term * lam / k
        cdf = cdf + term
        count = count + more
    return np.where(small_mask, count, big)
