"""`opsworld bench`: engine episodes per second, against the request-level reference on the same scenario.

An episode is the scenario's hour at 10-second ticks (360 ticks), engine only (no telemetry), in this one process.
The SimPy reference is run over a shorter horizon and normalised per simulated hour. Every figure is the median of
several timed runs; the individual runs are reported too, because these machines are noisy.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Any, Callable

import numpy as np

from opsworld.engine import Engine
from opsworld.engine.queueing import ErlangTable
from opsworld.reference import ReferenceSimulator
from opsworld.spec import load_scenario


def _engine_episode_seconds(scenario: Any, worlds: int, seed: int) -> float:
    engine = Engine(scenario, worlds=worlds, seed=seed)
    start = time.perf_counter()
    for _ in range(engine.ticks):
        engine.step()
    return time.perf_counter() - start


def run_bench(runs: int = 5, worlds: int = 8192, reference_horizon: float = 120.0,
              scenario_name: str = "online-shop", progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Time the engine and the reference; return medians and every run."""
    scenario = load_scenario(scenario_name, {"duration": "1h", "tick": "10s"})
    ErlangTable.table()                                   # built once per process, not part of an episode
    _engine_episode_seconds(scenario, min(worlds, 64), seed=0)  # warm caches and imports
    engine_eps = []
    for run in range(runs):
        seconds = _engine_episode_seconds(scenario, worlds, seed=run + 1)
        engine_eps.append(worlds / seconds)
        if progress:
            progress(f"engine run {run + 1}/{runs}: {engine_eps[-1]:,.0f} episodes/s")

    reference = load_scenario(scenario_name, {"duration": f"{reference_horizon:g}s", "tick": "10s"})
    rates = Engine(reference, worlds=1).rates          # the engine's own traffic profile, so both see the same
    reference_eps, reference_rps = [], []
    for run in range(max(1, min(runs, 3))):
        start = time.perf_counter()
        result = ReferenceSimulator(reference, seed=run + 1, rates=rates).run()
        seconds = time.perf_counter() - start
        reference_eps.append(reference_horizon / 3600.0 / seconds)   # simulated hours per second
        reference_rps.append(result.events / seconds)
        if progress:
            progress(f"reference run {run + 1}: {seconds:.1f} s for {reference_horizon:g} simulated s")

    eps = statistics.median(engine_eps)
    ref = statistics.median(reference_eps)
    ticks_per_episode = int(np.ceil(3600.0 / 10.0))
    return {
        "scenario": scenario_name,
        "episode": "1 h at 10 s ticks, engine only, one process",
        "worlds_per_batch": worlds,
        "episodes_per_s": eps,
        "episodes_per_hour": eps * 3600.0,
        "world_ticks_per_s": eps * ticks_per_episode,
        "reference_episodes_per_s": ref,
        "reference_horizon_s": reference_horizon,
        "reference_component_requests_per_s": statistics.median(reference_rps),
        "speedup_vs_reference": eps / ref,
        "runs": {"episodes_per_s": engine_eps, "reference_episodes_per_s": reference_eps},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "numpy": np.__version__, "processor": platform.processor() or platform.machine()},
    }
