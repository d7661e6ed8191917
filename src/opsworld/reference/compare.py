"""Side-by-side runs of the batched engine and the request-level reference on one scenario.

A run has a calm phase at the scenario's base load, then (optionally) one component overloaded to `overload` times
its capacity by slowing its work down, then a recovery phase. Both simulators see the same traffic profile and the
same slowdown; `Comparison` holds what the fidelity tests and `opsworld fidelity` report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from opsworld.engine import Engine, Trajectory
from opsworld.reference.simulator import ReferenceResult, ReferenceSimulator, Slowdown
from opsworld.spec import Scenario, load_scenario

WARMUP = 30.0   # seconds of each run left out of the calm-phase statistics

# What "faithful" means here (the foundation issue's acceptance figures).
P50_TOLERANCE, P99_TOLERANCE, ERROR_TOLERANCE = 0.10, 0.25, 0.005
MIN_CORRELATION, FAILED_TOLERANCE = 0.9, 0.20


@dataclass
class EndpointFigures:
    endpoint: str
    engine_p50: float
    reference_p50: float
    engine_p99: float
    reference_p99: float
    engine_error: float
    reference_error: float


@dataclass
class Comparison:
    scenario: str
    overloaded: str | None
    slowdown: float
    calm: float
    hot: float
    endpoints: list[EndpointFigures]
    engine_timeline: np.ndarray          # [ticks] error ratio over all endpoints, mean over worlds
    reference_timeline: np.ndarray
    engine_failed: float                 # failed entry requests over the run, mean over worlds
    reference_failed: float
    truth: Trajectory = field(repr=False)
    reference: ReferenceResult = field(repr=False)

    @property
    def correlation(self) -> float:
        """Pearson correlation of the per-tick error-ratio timelines (nan when either is constant)."""
        if self.engine_timeline.std() == 0 or self.reference_timeline.std() == 0:
            return float("nan")
        return float(np.corrcoef(self.engine_timeline, self.reference_timeline)[0, 1])

    def checks(self) -> list[tuple[str, bool]]:
        """Each acceptance figure and whether it holds."""
        out = []
        for e in self.endpoints:
            out.append((f"{e.endpoint}: p50 within {P50_TOLERANCE:.0%}",
                        abs(e.engine_p50 / e.reference_p50 - 1.0) <= P50_TOLERANCE))
            out.append((f"{e.endpoint}: p99 within {P99_TOLERANCE:.0%}",
                        abs(e.engine_p99 / e.reference_p99 - 1.0) <= P99_TOLERANCE))
            out.append((f"{e.endpoint}: error rate within {ERROR_TOLERANCE * 100:g} points",
                        abs(e.engine_error - e.reference_error) <= ERROR_TOLERANCE))
        if self.overloaded:
            out.append((f"error timelines correlate >= {MIN_CORRELATION}", self.correlation >= MIN_CORRELATION))
            out.append((f"failed requests within {FAILED_TOLERANCE:.0%}",
                        abs(self.engine_failed / max(self.reference_failed, 1.0) - 1.0) <= FAILED_TOLERANCE))
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario, "overloaded": self.overloaded, "slowdown": self.slowdown,
            "endpoints": [vars(e) for e in self.endpoints],
            "error_timeline_correlation": self.correlation,
            "engine_failed": self.engine_failed, "reference_failed": self.reference_failed,
            "checks": [{"check": name, "ok": ok} for name, ok in self.checks()],
        }


def compare(source: str | Path | Scenario, overload: str | None = None, factor: float = 1.3, calm: float = 600.0,
            hot: float = 300.0, after: float = 300.0, worlds: int = 4, seed: int = 7) -> Comparison:
    """Run engine and reference side by side; `overload` names the component pushed to `factor` x its capacity."""
    duration = calm + (hot + after if overload else 0.0)
    if isinstance(source, Scenario):   # the same run-time changes as the overrides below, on a checked scenario
        traffic = source.traffic.model_copy(update={"noise": 0.0, "bursts": None})
        scenario = source.model_copy(update={"duration": duration, "traffic": traffic})
    else:
        scenario = load_scenario(source, {"duration": f"{duration:g}s", "traffic": {"noise": 0.0, "bursts": None}})
    name = scenario.name
    slowdown = 1.0
    if overload:
        probe = Engine(scenario.model_copy(update={"traffic": scenario.traffic.model_copy(
            update={"arrivals": "expected"})}), worlds=1)
        utilisation = float(probe.run(ticks=6).cpu_utilisation[-1, 0, probe.topology.index(overload)])
        slowdown = factor / max(utilisation, 1e-9)
    engine = Engine(scenario, worlds=worlds, seed=seed)
    frames = []
    for tick in range(engine.ticks):
        start = tick * engine.dt
        if overload and start == calm:
            engine.set("capacity", 1.0 / slowdown, overload)
        if overload and start == calm + hot:
            engine.set("capacity", 1.0, overload)
        frames.append(engine.step())
    truth = Trajectory.stack(frames)
    slowdowns = [Slowdown(overload, calm, calm + hot, slowdown)] if overload else []
    reference = ReferenceSimulator(scenario, seed=seed, rates=engine.rates, slowdowns=slowdowns).run()

    window = slice(int(WARMUP / engine.dt), int(calm / engine.dt))
    endpoints = []
    for p, endpoint in enumerate(engine.topology.endpoints):
        endpoints.append(EndpointFigures(
            endpoint=endpoint,
            engine_p50=float(np.median(truth.latency_p50[window, :, p])),
            reference_p50=reference.percentile(endpoint, 0.50, WARMUP, calm),
            engine_p99=float(np.median(truth.latency_p99[window, :, p])),
            reference_p99=reference.percentile(endpoint, 0.99, WARMUP, calm),
            engine_error=float(truth.failed[window, :, p].sum() / max(truth.requests[window, :, p].sum(), 1.0)),
            reference_error=reference.error_rate(endpoint, WARMUP, calm),
        ))
    engine_line = truth.failed.sum(axis=2).mean(axis=1) / np.maximum(truth.requests.sum(axis=2).mean(axis=1), 1.0)
    reference_line = reference.failed.sum(axis=1) / np.maximum(reference.requests.sum(axis=1), 1.0)
    n = min(len(engine_line), len(reference_line))
    return Comparison(
        scenario=name, overloaded=overload, slowdown=slowdown, calm=calm, hot=hot if overload else 0.0,
        endpoints=endpoints, engine_timeline=engine_line[:n], reference_timeline=reference_line[:n],
        engine_failed=float(truth.failed.sum(axis=(0, 2)).mean()), reference_failed=float(reference.failed.sum()),
        truth=truth, reference=reference,
    )
