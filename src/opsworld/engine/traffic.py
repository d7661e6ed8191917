"""Offered traffic at the entry endpoints: base rate x share x diurnal shape (deterministic part)."""

from __future__ import annotations

import numpy as np

from opsworld.engine.topology import Topology


def mean_rates(topology: Topology, times: np.ndarray) -> np.ndarray:
    """[len(times), endpoints] arrival rates per second at episode times `times`, before noise and bursts."""
    traffic = topology.scenario.traffic
    wall = traffic.start + np.asarray(times, dtype=np.float64)
    phase = 2.0 * np.pi * ((wall % 86400.0) - traffic.diurnal.peak) / 86400.0
    shape = 1.0 + traffic.diurnal.amplitude * np.cos(phase)
    return traffic.base_rate * shape[:, None] * topology.endpoint_share[None, :]


def tick_rates(topology: Topology, ticks: int) -> np.ndarray:
    """[ticks, endpoints] mean rates, piecewise constant per tick (taken at each tick's midpoint)."""
    dt = topology.scenario.tick
    return mean_rates(topology, (np.arange(ticks) + 0.5) * dt)
