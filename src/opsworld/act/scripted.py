"""A scripted run: worlds with faults and mitigations ordered at set times, their counterfactual (the same worlds
with neither), and the ground truth read off the two. What `opsworld fault` and the calibration run; an incident an
agent works is `envs.incident.Incidents`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from opsworld.act.mitigations import MITIGATIONS, mitigate
from opsworld.engine import Engine, Trajectory
from opsworld.engine.knobs import Worlds
from opsworld.faults.base import Fault
from opsworld.faults.ground_truth import GroundTruth, ground_truth
from opsworld.faults.injector import Injector
from opsworld.spec import Scenario


@dataclass(frozen=True)
class Order:
    """A mitigation ordered at `time` (seconds after the start); it lands `MITIGATIONS[action].takes` later."""

    time: float
    action: str
    target: object = None
    worlds: Worlds = None
    amount: object = None           # the mitigation's number (replicas, rps, connections), or one per world

    @property
    def lands(self) -> float:
        return self.time + MITIGATIONS[self.action].takes


@dataclass
class ScriptedRun:
    trajectory: Trajectory          # the worlds with their faults (and mitigations)
    baseline: Trajectory            # the same worlds, seed and traffic with neither
    truth: list[GroundTruth]        # one per world
    injector: Injector


def run_scripted(scenario: Scenario | str | Path, faults: Iterable[Fault | tuple[Fault, Worlds]], worlds: int = 1,
                seed: int = 0, ticks: int | None = None, orders: Sequence[Order] = (),
                progress: Callable[[int], None] | None = None) -> ScriptedRun:
    """Run the faulted worlds and their counterfactual side by side; mitigations land when `orders` say."""
    engine = Engine(scenario, worlds=worlds, seed=seed)
    twin = Engine(engine.scenario, worlds=worlds, seed=seed)
    injector = Injector(engine, faults)
    n = engine.ticks if ticks is None else ticks
    pending = sorted(orders, key=lambda o: o.lands)
    frames, twins = [], []
    for _ in range(n):
        while pending and pending[0].lands <= engine.time + 1e-9:
            order = pending.pop(0)
            mitigate(engine, order.action, order.target, amount=order.amount, worlds=order.worlds, injector=injector)
        frames.append(injector.step())
        twins.append(twin.step())
        if progress is not None:
            progress(1)
    faulted, baseline = Trajectory.stack(frames), Trajectory.stack(twins)
    return ScriptedRun(faulted, baseline, ground_truth(injector, faulted, baseline), injector)
