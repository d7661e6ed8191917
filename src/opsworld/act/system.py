"""The backend seam: what the runbook, the score, the tools and the agents need from "a running system".

`System` is the interface; `ModelSystem` implements it with the model (engine, injector, dashboard, observability
stack). A backend of real processes implements the same members: it advances its clock one tick at a time and says
what truly happened in that tick (`Truth`, read by the score only), carries out the runbook's mitigations, knows
the controls as they stand (`knobs`) and which injected faults act, and offers the sensors the front ends read.
`envs.incident.Incidents` drives any `System` (`IncidentConfig.backend` builds it).
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

import numpy as np

from opsworld.act.mitigations import MITIGATIONS
from opsworld.engine import Engine, Truth
from opsworld.engine.knobs import Knobs
from opsworld.engine.topology import Topology
from opsworld.faults.base import Fault
from opsworld.faults.ground_truth import FaultTruth, fault_truths
from opsworld.faults.injector import Injector
from opsworld.observe.coverage import Coverage
from opsworld.observe.dashboard import Dashboard
from opsworld.observe.telemetry import Telemetry
from opsworld.spec import Scenario

# a fault placed in some worlds, each world with its own onset (seconds): (fault, worlds [W], onsets [W])
Placed = tuple[Fault, np.ndarray, np.ndarray]


class System(Protocol):
    """B worlds of one scenario, running, with faults placed in them (shapes: B worlds, S components)."""

    scenario: Scenario
    topology: Topology              # the scenario compiled: the indices of components, nodes, edges, endpoints
    worlds: int
    dt: float                       # seconds per tick
    dashboard: Dashboard            # per-tick signals and alerts as arrays (what a step-driven agent reads)
    telemetry: Telemetry | None     # metrics, alerts, logs, traces and changes (what the tools read); None: off
    truths: list[FaultTruth | None]  # per world, the placed fault's ground truth (None: nothing placed)
    carriers: dict[tuple[str, int], list]   # (change kind, component) -> the placed faults that change carries

    @property
    def time(self) -> float:
        """Seconds since the episode began."""

    @property
    def tick(self) -> int:
        """Ticks run so far."""

    @property
    def knobs(self) -> Knobs:
        """The controls as they stand now ([..., B] arrays: versions, replicas, limits, ...): truth, for the score."""

    def version_id(self, name: str) -> int:
        """The id a deploy or config version name has in `knobs`."""

    def step(self) -> Truth:
        """Run one tick in every world; what truly happened in it (for the score; never shown to an agent)."""

    def check(self, name: str, target: object, amount: object, worlds: np.ndarray) -> None:
        """Raise `MitigationError` where the mitigation `name` cannot be carried out so; change nothing."""

    def apply(self, name: str, target: object, amount: object, worlds: np.ndarray) -> None:
        """Carry out the mitigation `name` in `worlds` now (raises `MitigationError` before changing anything)."""

    def acting(self, where: Callable[[Fault], bool] = ...) -> np.ndarray:
        """[B] whether a placed fault (of those `where` picks) acts in each world now."""


class ModelSystem:
    """The model as a `System`: one engine of B worlds, the injector driving the placed faults through its knobs,
    the dashboard, and (with `telemetry`) the full observability stack."""

    def __init__(self, scenario: Scenario, worlds: int, seed: int, first_world: int = 0,
                 faults: Sequence[Placed] = (), companions: Sequence[Placed] = (), telemetry: bool = False,
                 gaps: float = 0.0, topology: Topology | None = None, coverage: Coverage | None = None) -> None:
        """`faults`: the drawn faults, whose ground truth is `truths`; `companions`: what they need beside them.
        `gaps`: the chance that a component's dashboard signals miss a tick; `topology`: the scenario compiled;
        `coverage`: how far the alerts of the dashboard and the rule files fall short (None: they do not)."""
        self.engine = engine = Engine(scenario, worlds=worlds, seed=seed, first_world=first_world, topology=topology)
        self.scenario, self.topology, self.worlds, self.dt = engine.scenario, engine.topology, worlds, engine.dt
        self.injector = injector = Injector(engine)
        for fault, where, onsets in faults:
            injector.add(fault, where, onsets)
        for fault, where, onsets in companions:
            injector.add(fault, where, onsets)
        self.dashboard = Dashboard(engine, gaps=gaps, coverage=coverage)
        self.telemetry = Telemetry(injector, coverage=coverage) if telemetry else None
        self.truths: list[FaultTruth | None] = [None] * worlds
        for where, truth in fault_truths(injector, first=len(faults)):
            for b in where:
                self.truths[int(b)] = truth
        self.carriers: dict[tuple[str, int], list] = {}
        for run in injector.running:
            if run.fault.change != "none" and run.fault.kind != "benign_change":
                key = (run.fault.change, self.topology.index(run.fault.change_target))
                self.carriers.setdefault(key, []).append(run)

    @property
    def time(self) -> float:
        return self.engine.time

    @property
    def tick(self) -> int:
        return self.engine.tick

    @property
    def knobs(self) -> Knobs:
        return self.engine.knobs

    def version_id(self, name: str) -> int:
        return self.engine.version_id(name)

    def step(self) -> Truth:
        truth = self.telemetry.step() if self.telemetry is not None else self.injector.step()
        self.dashboard.update(truth)
        return truth

    def check(self, name: str, target: object, amount: object, worlds: np.ndarray) -> None:
        MITIGATIONS[name].check(self.engine, target, amount, worlds)

    def apply(self, name: str, target: object, amount: object, worlds: np.ndarray) -> None:
        MITIGATIONS[name].act(self.engine, self.injector, target, amount, worlds)

    def acting(self, where: Callable[[Fault], bool] = lambda f: True) -> np.ndarray:
        return self.injector.acting(where)
