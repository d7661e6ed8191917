"""Deterministic randomness for the sensors, keyed by what it is about rather than drawn in sequence.

A sensor's coin flip (does this scrape fail, is this log line dropped, is this trace sampled) is a hash of
(seed, world, tick, what): the same world gives the same telemetry whatever batch it runs in and whatever was
queried before, and whole arrays of flips cost a few integer operations each — no generator per world.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
TEXTURE = 31      # stream: the metric sensor's counting noise, jitter, pod levels and stray outliers


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijection on uint64 that scrambles every bit."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def hashed(*keys: int | np.ndarray) -> np.ndarray:
    """uint64 hash of integer keys, broadcast together."""
    with np.errstate(over="ignore"):
        h = np.uint64(0x243F6A8885A308D3)
        for k in keys:
            h = _mix(h ^ (np.asarray(k).astype(np.uint64) + _GOLDEN))
        return np.asarray(h)


def uniform(*keys: int | np.ndarray) -> np.ndarray:
    """Uniform floats in [0, 1), one per broadcast combination of integer keys."""
    return (hashed(*keys) >> np.uint64(11)).astype(np.float64) * (1.0 / 2.0 ** 53)


def name_key(text: str) -> int:
    """A stable integer for a name (Python's own hash of str varies between processes)."""
    value = 1469598103934665603
    for byte in text.encode():
        value = ((value ^ byte) * 1099511628211) % 2 ** 64
    return value

# stream constants of keyed draws made outside a tick (what a world's monitoring looks like)
COVERAGE = 0xC0BE4A6E    # observe.coverage: which alerts are missing, mis-tuned, noisy or silenced
