"""An imported scenario held against the traces it came from: does the model, simulated, make the calls and the
latencies the recording measured?

`opsworld import traces PATH --check` simulates the scenario the importer wrote (healthy, at its measured rate) and
compares, per call edge, the calls per user request, and per service and per endpoint the median latency as served,
with what the traces measured. A figure within `TOLERANCE` of the traces' agrees.

    rows = check_import(model, scenario)
"""

from __future__ import annotations

from dataclasses import dataclass

from opsworld.engine import Engine
from opsworld.spec import Scenario
from opsworld.spec.traces.build import TraceModel

TOLERANCE = 0.2


@dataclass(frozen=True)
class Agreement:
    """One figure, as the traces measured it and as the simulated model makes it."""

    what: str          # "calls", "p50 served" or "p50 endpoint"
    name: str          # `caller -> callee`, a service or an endpoint
    traces: float
    model: float

    @property
    def ratio(self) -> float:
        return self.model / self.traces if self.traces > 0 else float("inf") if self.model > 0 else 1.0

    @property
    def agrees(self) -> bool:
        return abs(self.ratio - 1.0) <= TOLERANCE


def measured_calls(model: TraceModel) -> dict[tuple[str, str], float]:
    """(caller, callee) -> calls per user request, as the traces measured them."""
    out: dict[tuple[str, str], float] = {}
    for ep in model.endpoints:
        for e in ep.calls:
            out[(ep.service, e.target)] = out.get((ep.service, e.target), 0.0) + e.calls * ep.share
    for s in model.services.values():
        for e in s.dependencies:
            # a service's calls are per its own request; its share of the root requests comes from its rate
            per_root = e.calls * s.rate / max(model.base_rate, 1e-12)
            out[(s.name, e.target)] = out.get((s.name, e.target), 0.0) + per_root
    return out


def check_import(model: TraceModel, scenario: Scenario, minutes: float = 10.0, worlds: int = 4,
                 seed: int = 0) -> list[Agreement]:
    """Simulate `scenario` (the import of `model`) for `minutes` in `worlds` worlds and compare its calls per user
    request and median latencies with the traces'."""
    # exactly the expected arrivals: a rare endpoint's few requests would otherwise make its calls look off by noise
    calm = scenario.model_copy(update={"traffic": scenario.traffic.model_copy(update={"arrivals": "expected",
                                                                                      "noise": 0.0})})
    engine = Engine(calm, worlds=worlds, seed=seed)
    topo = engine.topology
    ticks = max(1, int(round(minutes * 60.0 / scenario.tick)))
    run = engine.run(ticks, fields=("requests", "edge_attempts", "served", "response_mean", "response_var",
                                    "latency_mean", "latency_var", "latency_third"))
    arrays = run.arrays
    users = float(arrays["requests"].sum())
    attempts = arrays["edge_attempts"].sum(axis=(0, 1))                           # [E]
    simulated: dict[tuple[str, str], float] = {}
    for e in range(len(topo.edge_src)):
        key = (topo.components[int(topo.edge_src[e])], topo.components[int(topo.edge_dst[e])])
        simulated[key] = simulated.get(key, 0.0) + float(attempts[e]) / max(users, 1.0)
    rows = [Agreement("calls", f"{a} -> {b}", v, simulated.get((a, b), 0.0))
            for (a, b), v in sorted(measured_calls(model).items())]
    served = arrays["served"]                                                     # [T, B, S]
    p50 = run.response_p50                                                        # [T, B, S]
    entry = {ep.service for ep in model.endpoints}      # their latency as served is their endpoints', below
    for s, m in model.services.items():
        if m.rate <= 0 or s not in topo.components or s in entry:
            continue
        i = topo.components.index(s)
        weight = served[..., i]
        if weight.sum() <= 0:
            continue
        rows.append(Agreement("p50 served", s, m.p50, float((p50[..., i] * weight).sum() / weight.sum())))
    ep_p50 = run.latency_p50                                                      # [T, B, P]
    names = [ep.name for ep in scenario.traffic.endpoints]
    for ep in model.endpoints:
        if ep.name in names:
            j = names.index(ep.name)
            w = arrays["requests"][..., j]
            rows.append(Agreement("p50 endpoint", ep.name, ep.p50, float((ep_p50[..., j] * w).sum() / w.sum())))
    return rows


def agreement_share(rows: list[Agreement]) -> float:
    """The share of figures within TOLERANCE of the traces'."""
    return sum(r.agrees for r in rows) / max(len(rows), 1)
