"""Fidelity of the batched engine against the request-level SimPy reference, on three templates.

Each template runs 20 simulated minutes: 10 at its base load (moderate: components at 5-30% CPU), then one service
overloaded to 1.3x its capacity for 5 minutes (its work slowed down), then 5 minutes of recovery. Both simulators
see the same traffic (the engine's rate profile) and the same slowdown.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from opsworld import Engine, load_scenario
from opsworld.engine import Trajectory
from opsworld.reference import ReferenceResult, ReferenceSimulator, Slowdown

CASES = {"online-shop": "productcatalogservice", "social-network": "post-storage-service",
         "hotel-reservation": "profile"}
CALM_END, HOT_START, HOT_END, DURATION = 600.0, 600.0, 900.0, 1200.0
WARMUP = 30.0
OVERLOAD = 1.3


@dataclass
class Pair:
    engine: Engine
    truth: Trajectory
    reference: ReferenceResult


def _simulate(template: str) -> Pair:
    calm = {"duration": "20m", "traffic": {"noise": 0.0, "bursts": None}}
    scenario = load_scenario(template, calm)
    target = CASES[template]
    probe = Engine(load_scenario(template, calm | {"traffic": calm["traffic"] | {"arrivals": "expected"}}))
    utilisation = float(probe.run(ticks=6).cpu_utilisation[-1, 0, probe.topology.index(target)])
    factor = OVERLOAD / utilisation
    engine = Engine(scenario, worlds=4, seed=7)
    frames = []
    for tick in range(engine.ticks):
        start = tick * engine.dt
        if start == HOT_START:
            engine.set("capacity", 1.0 / factor, target)
        if start == HOT_END:
            engine.set("capacity", 1.0, target)
        frames.append(engine.step())
    reference = ReferenceSimulator(scenario, seed=7, rates=engine._rates,
                                   slowdowns=[Slowdown(target, HOT_START, HOT_END, factor)]).run()
    return Pair(engine, Trajectory.stack(frames), reference)


@pytest.fixture(scope="module", params=list(CASES))
def pair(request: pytest.FixtureRequest) -> Pair:
    return _simulate(request.param)


def _calm_ticks(pair: Pair) -> slice:
    return slice(int(WARMUP / pair.engine.dt), int(CALM_END / pair.engine.dt))


def test_entry_latency_at_moderate_load(pair: Pair) -> None:
    calm = _calm_ticks(pair)
    for p, name in enumerate(pair.engine.topology.endpoints):
        p50 = float(np.median(pair.truth.latency_p50[calm, :, p]))
        p99 = float(np.median(pair.truth.latency_p99[calm, :, p]))
        assert p50 == pytest.approx(pair.reference.percentile(name, 0.50, WARMUP, CALM_END), rel=0.10), name
        assert p99 == pytest.approx(pair.reference.percentile(name, 0.99, WARMUP, CALM_END), rel=0.25), name


def test_entry_error_rate_at_moderate_load(pair: Pair) -> None:
    calm = _calm_ticks(pair)
    for p, name in enumerate(pair.engine.topology.endpoints):
        engine_rate = float(pair.truth.failed[calm, :, p].sum() / pair.truth.requests[calm, :, p].sum())
        assert abs(engine_rate - pair.reference.error_rate(name, WARMUP, CALM_END)) <= 0.005, name


def _error_timeline(pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    engine = pair.truth.failed.sum(axis=2).mean(axis=1) / pair.truth.requests.sum(axis=2).mean(axis=1)
    ref = pair.reference.failed.sum(axis=1) / np.maximum(pair.reference.requests.sum(axis=1), 1.0)
    n = min(len(engine), len(ref))
    return engine[:n], ref[:n]


def test_overload_error_timelines_correlate(pair: Pair) -> None:
    engine, ref = _error_timeline(pair)
    assert ref.max() > 0.2, "the overload must actually fail requests"
    assert np.corrcoef(engine, ref)[0, 1] >= 0.9


def test_overload_total_failed_requests_agree(pair: Pair) -> None:
    engine_failed = float(pair.truth.failed.sum(axis=(0, 2)).mean())
    ref_failed = float(pair.reference.failed.sum())
    assert engine_failed == pytest.approx(ref_failed, rel=0.20)
