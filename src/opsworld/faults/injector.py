"""The injector: drives a batch of worlds' faults tick by tick, through the engine's knobs only.

Before each tick it works out each fault's strength in each of its worlds (onset, ramp, duration; zero once the
change that carried it is rolled back, once the processes holding it restarted, or once someone repaired it) and,
where that changed, moves the fault's knobs between the world's own values and their values at full strength.
Nothing here is visible to an agent; the engine's knobs carry no name of a fault.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from opsworld.engine import Engine, Truth
from opsworld.engine.knobs import ERROR_KINDS, REFUSALS, Worlds, column, resolve_worlds
from opsworld.engine.truth import Trajectory
from opsworld.faults.base import Effect, Fault, next_version


@dataclass
class _Running:
    """A fault placed in some worlds, with what the injector remembers about it."""

    fault: Fault
    worlds: np.ndarray                   # [W] world indices
    onset: float                         # seconds after the start
    effects: list[Effect] | None = None  # fixed at onset
    base: list[np.ndarray] = field(default_factory=list)   # each effect's knob values before the fault, [..., W]
    on: list[np.ndarray] = field(default_factory=list)     # each effect's strength last applied, [W]
    repaired_at: np.ndarray | None = None  # [W] when someone fixed it for good (inf: not yet)
    version: int | None = None           # the deploy or config version that carries it
    begun: float = 0.0                   # when it took effect (its change was pushed)


class Injector:
    """Faults in a batch of worlds of one engine. Call `step()` instead of `engine.step()`."""

    def __init__(self, engine: Engine, faults: Iterable[Fault | tuple[Fault, Worlds]] = ()) -> None:
        self.engine = engine
        self.running: list[_Running] = []
        self.last: Truth | None = None
        for item in faults:
            fault, worlds = item if isinstance(item, tuple) else (item, None)
            self.add(fault, worlds)

    def add(self, fault: Fault, worlds: Worlds = None) -> None:
        """Place a fault in some worlds (None: all). Raises FaultError when it cannot act on this scenario."""
        fault.check(self.engine.scenario)
        rows = resolve_worlds(worlds, self.engine.worlds)
        idx = np.arange(self.engine.worlds)[rows]
        self.running.append(_Running(fault, idx, fault.onset_seconds(self.engine.scenario),
                                     repaired_at=np.full(len(idx), np.inf)))

    def repair(self, worlds: Worlds = None, where: Callable[[Fault], bool] = lambda f: True) -> None:
        """Someone fixed the cause for good in these worlds (a human, or a mitigation that removes it)."""
        mask = np.zeros(self.engine.worlds, bool)
        mask[resolve_worlds(worlds, self.engine.worlds)] = True
        for run in self.running:
            if where(run.fault):
                hit = mask[run.worlds]
                run.repaired_at[hit] = np.minimum(run.repaired_at[hit], self.engine.time)

    # ---- running ---------------------------------------------------------------------------------------------------
    def step(self) -> Truth:
        """Move every fault's knobs for the coming tick, then advance the engine one tick."""
        for run in self.running:
            self._apply(run)
        self.last = self.engine.step()
        return self.last

    def run(self, ticks: int | None = None, fields: tuple[str, ...] | None = None) -> Trajectory:
        """Advance `ticks` ticks (default: to the end of the scenario) and stack the truth of every tick."""
        engine = self.engine
        n = engine.ticks - engine.tick if ticks is None else ticks
        frames = [self.step() for _ in range(max(n, 0))]
        return Trajectory.stack(frames) if fields is None else Trajectory.stack(frames, fields)

    def _apply(self, run: _Running) -> None:
        engine, fault, W = self.engine, run.fault, len(run.worlds)
        t = engine.time
        level = np.full(W, fault.level(t, run.onset), dtype=np.float64)
        if level.any() and run.effects is None:
            self._begin(run)
        if run.effects is None:
            return
        level[run.repaired_at <= t] = 0.0
        if run.version is not None:        # active only while the version that carries it runs
            knob = getattr(engine.knobs, fault.change)[engine.topology.index(fault.change_target)]
            level[knob[run.worlds] != run.version] = 0.0
            if fault.change == "deploy":   # and only in the replicas the rollout has replaced so far
                level = level * self._rolled_out(run)
        # state held in the processes (not in a build or config, which outlive restarts)
        if (fault.restart_clears and fault.change == "none") or fault.restart_resets:
            level = self._uptime_level(run, level, t)
        for i, (effect, base) in enumerate(zip(run.effects, run.base)):
            on = level if effect.scale is None else level * effect.scale(engine)[run.worlds]
            if effect.until is not None and t >= run.onset + effect.until:
                on = np.zeros(W)
            moved = on != run.on[i]
            if not moved.any():
                continue
            run.on[i] = on
            full = effect.full(base, engine) if callable(effect.full) else effect.full
            full = np.broadcast_to(np.asarray(full), base.shape)
            if effect.switch:
                value = np.where(on > 0, full, base)
            else:
                value = base + on * (full.astype(np.float64) - base)
            pick = np.flatnonzero(moved)
            dtype = getattr(engine.knobs, effect.knob).dtype
            value = np.rint(value) if dtype.kind == "i" else value
            engine.set(effect.knob, value[..., pick].astype(dtype), effect.target, worlds=run.worlds[pick],
                       by=fault.made_by)
            said = _SAYS.get(effect.knob)
            if said is not None:   # what the failures print is a fact of the same broken code or path
                start = np.flatnonzero(on[pick] > 0)
                if start.size:
                    engine.set(said[0], said[1].index(getattr(fault, said[0])), effect.target,
                               worlds=run.worlds[pick][start])

    def _begin(self, run: _Running) -> None:
        """At onset: roll out the carrying change, fix the effects and remember the knobs' values before them."""
        engine, fault = self.engine, run.fault
        run.begun = engine.time
        if fault.change != "none":
            s = engine.topology.index(fault.change_target)
            current = getattr(engine.knobs, fault.change)[s, run.worlds[0]]
            name = next_version(engine.versions[int(current)], sum(1 for r in self.running if r.version is not None))
            run.version = engine.version_id(name)
            engine.set(fault.change, run.version, fault.change_target, worlds=run.worlds, by=PIPELINES[fault.change])
        run.effects = fault.effects(engine)
        run.base = [_read(engine, e.knob, e.target, run.worlds) for e in run.effects]
        run.on = [np.zeros(len(run.worlds)) for _ in run.effects]

    def _rolled_out(self, run: _Running) -> np.ndarray:
        """[W] share of the carrying component's running replicas started since its last rollout."""
        engine = self.engine
        s = engine.topology.index(run.fault.change_target)
        rows = engine.topology.replica_component == s
        running = engine.replicas.running[rows][:, run.worlds] > 0
        since = np.maximum(engine.replicas.rollout_at[s, run.worlds], run.begun)
        new = engine.replicas.launched[rows][:, run.worlds] >= since
        return (running & new).sum(axis=0) / np.maximum(running.sum(axis=0), 1)

    def _uptime_level(self, run: _Running, level: np.ndarray, t: float) -> np.ndarray:
        """Faults held by the processes: cleared once every replica restarted after onset, or grown again from the
        last restart (mean start time of the running replicas)."""
        engine, fault = self.engine, run.fault
        reps = engine.replicas
        rows = engine.topology.replica_component == engine.topology.index(fault.target)
        running = reps.running[rows][:, run.worlds] > 0
        launched = reps.launched[rows][:, run.worlds]
        if fault.restart_clears:
            fresh = np.where(running, launched, np.inf).min(axis=0) > run.onset
            return np.where(fresh & running.any(axis=0), 0.0, level)
        since = np.maximum(np.where(running, launched, 0.0).sum(axis=0) / np.maximum(running.sum(axis=0), 1), run.onset)
        grown = (t - since) / max(fault.ramp, 1.0)
        grown = (grown >= 1.0).astype(float) if fault.sudden else np.clip(grown, 0.0, 1.0)
        return np.where(level > 0, fault.severity * grown, 0.0)


PIPELINES = {"deploy": "deploy-pipeline", "config": "config-sync"}   # who pushes builds and config
_SAYS = {"error_rate": ("error_kind", ERROR_KINDS), "blocked": ("refusal", REFUSALS)}


def _read(engine: Engine, knob: str, target: object, worlds: np.ndarray) -> np.ndarray:
    """A knob's current values at `target` for some worlds, [..., W] (copied)."""
    index = column(engine.topology, knob, target)
    values = np.array(getattr(engine.knobs, knob)[index][..., worlds])
    return values.astype(np.float64) if values.dtype.kind == "f" else values
