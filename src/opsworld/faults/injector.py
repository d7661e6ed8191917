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
    onset: np.ndarray                    # [W] seconds after the start, per world
    effects: list[Effect] | None = None  # fixed at the first onset
    base: list[np.ndarray] = field(default_factory=list)   # each effect's knob values before the fault, [..., W]
    on: list[np.ndarray] = field(default_factory=list)     # each effect's strength last applied, [W]
    repaired_at: np.ndarray | None = None  # [W] when someone fixed it for good (inf: not yet)
    version: int | None = None           # the deploy or config version that carries it
    begun: np.ndarray | None = None      # [W] when it took effect in each world (its change was pushed); inf: not yet
    # What lets a tick skip it (see Injector._still): what its strength was last worked out from.
    wake: float = -np.inf                # the clock time before which its strength cannot move by the clock alone
    levels: np.ndarray | None = None     # a fault with its own `levels`: the strengths they gave (compared instead)
    writes: int = -1                     # the count of writes to its version's knob when that was last read
    change_row: int | None = None        # the component whose version carries it (rows of that knob counted apart)
    carried: np.ndarray | None = None    # [W] whether each world ran the version that carries it, then
    seen: int = -1                       # the replicas' step count then
    reads: tuple[int, ...] = ()          # the components whose replicas its strength is read from
    growing: bool = False                # a fault held by the processes is still growing with their uptime

    @property
    def first(self) -> float:
        """The earliest onset among its worlds."""
        return float(self.onset.min()) if len(self.onset) else np.inf


class Injector:
    """Faults in a batch of worlds of one engine. Call `step()` instead of `engine.step()`."""

    def __init__(self, engine: Engine, faults: Iterable[Fault | tuple[Fault, Worlds]] = ()) -> None:
        self.engine = engine
        self.running: list[_Running] = []
        self.last: Truth | None = None
        self._flat_cache: tuple[list[_Running], tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
        for item in faults:
            fault, worlds = item if isinstance(item, tuple) else (item, None)
            self.add(fault, worlds)

    def add(self, fault: Fault, worlds: Worlds = None, onset: float | np.ndarray | None = None) -> None:
        """Place a fault in some worlds (None: all), at its own onset or at `onset` seconds, one per world (so one
        fault object serves a batch whose worlds start it at different times). Raises FaultError when it cannot act
        on this scenario."""
        fault.check(self.engine.scenario)
        rows = resolve_worlds(worlds, self.engine.worlds)
        idx = np.arange(self.engine.worlds)[rows]
        start = fault.onset_seconds(self.engine.scenario) if onset is None else onset
        onsets = np.broadcast_to(np.asarray(start, dtype=np.float64), idx.shape).copy()
        self.running.append(_Running(fault, idx, onsets, repaired_at=np.full(len(idx), np.inf),
                                     begun=np.full(len(idx), np.inf)))

    def repair(self, worlds: Worlds = None, where: Callable[[Fault], bool] = lambda f: True,
               begun_by: float | None = None) -> None:
        """Someone fixed the cause for good in these worlds (a human, or a mitigation that removes it): the faults
        `where` picks that had begun by `begun_by` (default: now). A fault yet to begin is not there to fix: an order
        made before it changes nothing about it."""
        runs = self.running
        mask = np.zeros(self.engine.worlds, bool)
        mask[resolve_worlds(worlds, self.engine.worlds)] = True
        if not runs:
            return
        flat_worlds, owner, repaired = self._flat()
        t = self.engine.time
        begun = np.concatenate([run.begun for run in runs])          # [sum W] (kept per entry, read now)
        by = t if begun_by is None else min(float(begun_by), t)
        # the (entry, world) pairs it may fix now: begun by then and not repaired already (the others' strengths
        # cannot move)
        now = np.flatnonzero(mask[flat_worlds] & (repaired > t) & (begun <= by))
        if not now.size:
            return
        picked = [int(i) for i in np.unique(owner[now]) if where(runs[int(i)].fault)]
        if not picked:
            return
        if len(picked) < len(np.unique(owner[now])):
            now = now[np.isin(owner[now], picked)]
        repaired[now] = t
        for i in picked:
            runs[i].wake = -np.inf        # its strength is worked out again on the next tick

    def _flat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every entry's worlds in one array, [sum W]: the world, the entry it belongs to, and when it was repaired
        (each entry's `repaired_at` is a view into the last), rebuilt when the entries change."""
        runs = self.running
        cached = self._flat_cache
        if cached is not None and len(cached[0]) == len(runs) and all(a is b for a, b in zip(cached[0], runs)):
            return cached[1]
        sizes = [len(run.worlds) for run in runs]
        flat_worlds = np.concatenate([run.worlds for run in runs]).astype(np.int64)
        owner = np.repeat(np.arange(len(runs)), sizes)
        repaired = np.concatenate([run.repaired_at for run in runs]).astype(np.float64)
        at = 0
        for run, n in zip(runs, sizes):
            run.repaired_at = repaired[at:at + n]
            at += n
        self._flat_cache = (list(runs), (flat_worlds, owner, repaired))
        return self._flat_cache[1]

    def acting(self, where: Callable[[Fault], bool] = lambda f: True) -> np.ndarray:
        """[B] whether any fault (of those `where` picks) acts on the world now (at some strength, in some
        replica)."""
        out = np.zeros(self.engine.worlds, bool)
        for run in self.running:
            if run.on and where(run.fault):
                for on in run.on:
                    out[run.worlds[on > 0]] = True
        return out

    # ---- running ---------------------------------------------------------------------------------------------------
    def step(self) -> Truth:
        """Move every fault's knobs for the coming tick, then advance the engine one tick.

        A fault whose strength cannot have moved since it was last worked out is skipped (`_still`): its knobs would
        not move, so skipping it changes nothing."""
        engine = self.engine
        t = engine.time
        reps = engine.replicas
        row_writes, touched_any, steps = engine._row_writes, reps.touched_any, reps.steps
        for run in self.running:
            # what `_still` says at once where no count it compares moved (it does no more then)
            if t < run.wake and run.levels is None:
                if run.version is not None:
                    counts = row_writes.get(run.fault.change)
                    same = counts is not None and run.change_row is not None and counts[run.change_row] == run.writes
                else:
                    same = True
                if same:
                    if not run.reads:
                        continue
                    if all(touched_any[s] <= run.seen for s in run.reads):
                        run.seen = steps
                        continue
            if not self._still(run, t):
                self._apply(run)
        self.last = self.engine.step()
        return self.last

    def run(self, ticks: int | None = None, fields: tuple[str, ...] | None = None) -> Trajectory:
        """Advance `ticks` ticks (default: to the end of the scenario) and stack the truth of every tick."""
        engine = self.engine
        n = engine.ticks - engine.tick if ticks is None else ticks
        frames = [self.step() for _ in range(max(n, 0))]
        return Trajectory.stack(frames) if fields is None else Trajectory.stack(frames, fields)

    def _still(self, run: _Running, t: float) -> bool:
        """Whether nothing the fault's strength is worked out from changed since the last time it was: the clock
        passed none of its thresholds (`_wake`; or its own `levels` give the same strengths), the knob carrying its
        version was not set or still carries it in the same worlds, and no replica it reads from changed in its
        worlds (`Replicas.touched`)."""
        if not t < run.wake:
            return False
        engine = self.engine
        if run.levels is not None and not np.array_equal(run.fault.levels(t, run.onset), run.levels):
            return False
        if run.version is not None:
            writes = engine.writes(run.fault.change, run.change_row)
            if writes != run.writes:
                if not np.array_equal(self._carried(run), run.carried):
                    return False
                run.writes = writes
        if run.reads:
            reps = engine.replicas
            for s in run.reads:
                if reps.touched_any[s] > run.seen and (reps.touched[s, run.worlds] > run.seen).any():
                    return False
            run.seen = reps.steps          # none of its worlds' replicas changed up to now
        return True

    def _carried(self, run: _Running) -> np.ndarray:
        """[W] whether each world runs the version that carries the fault."""
        engine = self.engine
        return getattr(engine.knobs, run.fault.change)[engine.topology.index(run.fault.change_target)][run.worlds] \
            == run.version

    def _apply(self, run: _Running) -> None:
        engine, fault = self.engine, run.fault
        t = engine.time
        if run.change_row is None and fault.change != "none":
            run.change_row = engine.topology.index(fault.change_target)
        run.writes = engine.writes(fault.change, run.change_row)
        run.seen = engine.replicas.steps
        self._work_out(run, t)
        run.wake = self._wake(run, t)

    def _work_out(self, run: _Running, t: float) -> None:
        """Work out the fault's strength in each of its worlds and move its knobs where it changed."""
        engine, fault = self.engine, run.fault
        if run.effects is None and t < run.first:
            return
        level = fault.levels(t, run.onset)
        if type(fault).levels is not Fault.levels:
            run.levels = level.copy()
        starting = (level > 0) & ~np.isfinite(run.begun)
        if starting.any():
            self._begin(run, np.flatnonzero(starting))
        if run.effects is None:
            return
        level[~np.isfinite(run.begun) | (run.repaired_at <= t)] = 0.0
        reads = []
        if run.version is not None:        # active only while the version that carries it runs
            run.carried = self._carried(run)
            level[~run.carried] = 0.0
            if fault.change == "deploy":   # and only in the replicas the rollout has replaced so far
                level = level * self._rolled_out(run)
                reads.append(engine.topology.index(fault.change_target))
        # state held in the processes (not in a build or config, which outlive restarts)
        if (fault.restart_clears and fault.change == "none") or fault.restart_resets:
            level = self._uptime_level(run, level, t)
            reads.append(engine.topology.index(fault.target))
        run.reads = tuple(reads)
        for i, (effect, base) in enumerate(zip(run.effects, run.base)):
            on = level if effect.scale is None else level * effect.scale(engine)[run.worlds]
            if effect.until is not None:
                on = np.where(t >= run.onset + effect.until, 0.0, on)
            moved = on != run.on[i]
            if not moved.any():
                continue
            run.on[i] = on
            full = np.asarray(effect.full(base, engine) if callable(effect.full) else effect.full)
            if full.ndim and full.shape[-1] == engine.worlds != base.shape[-1]:
                full = full[..., run.worlds]      # read off the whole batch's state (e.g. its demand): this entry's worlds
            full = np.broadcast_to(full, base.shape)
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

    def _wake(self, run: _Running, t: float) -> float:
        """The earliest clock time after `t` at which the fault's strength may move by the clock alone (-inf: any
        tick): its onset, the end of its ramp, its duration (as the base class's `levels` has them; a fault with
        its own `levels` is compared by their values instead), an effect's `until`. An effect scaled by the engine's
        state, or a strength still growing with the processes' uptime, is worked out every tick."""
        fault = run.fault
        if run.effects is None and t < run.first:
            return run.first
        effects = run.effects or ()
        if run.growing or any(e.scale is not None for e in effects):
            return -np.inf
        wake = np.inf
        if run.levels is None:
            since = t - run.onset
            ahead = since < 0
            if ahead.any():                                  # strength leaves 0 when t >= onset
                wake = float(run.onset[ahead].min())
            live = ~ahead
            if fault.duration is not None:
                live &= since < fault.duration
                if live.any():                               # and drops to 0 when t - onset >= duration: wake a
                    end = float((run.onset[live] + fault.duration).min())   # little early, clear of rounding
                    wake = min(wake, end - 1e-6 * (abs(end) + 1.0))
            if fault.ramp > 0 and not fault.restart_resets and (live & (since < fault.ramp)).any():
                return -np.inf                               # still ramping up: it moves every tick
        for effect in effects:
            if effect.until is not None:                     # an effect ends when t >= onset + until
                ends = run.onset + effect.until
                later = ends[ends > t]
                if later.size:
                    wake = min(wake, float(later.min()))
        return wake

    def _begin(self, run: _Running, starting: np.ndarray) -> None:
        """At onset, in the worlds `starting` (positions in run.worlds): roll out the carrying change, fix the
        effects (once) and remember the knobs' values before them."""
        engine, fault = self.engine, run.fault
        run.begun[starting] = engine.time
        worlds = run.worlds[starting]
        if fault.change != "none":
            if run.version is None:
                s = engine.topology.index(fault.change_target)
                current = getattr(engine.knobs, fault.change)[s, worlds[0]]
                name = next_version(engine.versions[int(current)],
                                    sum(1 for r in self.running if r.version is not None))
                run.version = engine.version_id(name)
            # pushed by hand, it is in the running version but not in the history
            engine.set(fault.change, run.version, fault.change_target, worlds=worlds,
                       by=PIPELINES[fault.change] if fault.logged else None)
        if run.effects is None:
            run.effects = fault.effects(engine)
            run.base = [_read(engine, e.knob, e.target, run.worlds) for e in run.effects]
            run.on = [np.zeros(len(run.worlds)) for _ in run.effects]
        else:
            for e, base in zip(run.effects, run.base):
                base[..., starting] = _read(engine, e.knob, e.target, worlds)

    def _rolled_out(self, run: _Running) -> np.ndarray:
        """[W] share of the carrying component's running replicas started since its last rollout."""
        engine = self.engine
        s = engine.topology.index(run.fault.change_target)
        rows = _replica_rows(engine, s)
        running = engine.replicas.running[rows, run.worlds] > 0
        since = np.maximum(engine.replicas.rollout_at[s, run.worlds], run.begun)
        new = engine.replicas.launched[rows, run.worlds] >= since
        return (running & new).sum(axis=0) / np.maximum(running.sum(axis=0), 1)

    def _uptime_level(self, run: _Running, level: np.ndarray, t: float) -> np.ndarray:
        """Faults held by the processes: cleared once every replica restarted after onset, or grown again from the
        last restart (mean start time of the running replicas)."""
        engine, fault = self.engine, run.fault
        reps = engine.replicas
        rows = _replica_rows(engine, engine.topology.index(fault.target))
        running = reps.running[rows, run.worlds] > 0
        launched = reps.launched[rows, run.worlds]
        if fault.restart_clears:
            fresh = np.where(running, launched, np.inf).min(axis=0) > run.onset
            return np.where(fresh & running.any(axis=0), 0.0, level)
        since = np.maximum(np.where(running, launched, 0.0).sum(axis=0) / np.maximum(running.sum(axis=0), 1), run.onset)
        grown = (t - since) / max(fault.ramp, 1.0)
        run.growing = bool(((level > 0) & (grown < 1.0)).any())   # it moves with the clock until grown everywhere
        grown = (grown >= 1.0).astype(float) if fault.sudden else np.clip(grown, 0.0, 1.0)
        return np.where(level > 0, fault.severity * grown, 0.0)


def _replica_rows(engine: Engine, s: int) -> np.ndarray:
    """[n, 1] the replica slots of component s, shaped to index [R, B] arrays against a [W] world list."""
    topo = engine.topology
    start = int(topo.replica_starts[s])
    count = int(topo.max_replicas[s])
    return np.arange(start, start + count)[:, None]


PIPELINES = {"deploy": "deploy-pipeline", "config": "config-sync"}   # who pushes builds and config
_SAYS = {"error_rate": ("error_kind", ERROR_KINDS), "blocked": ("refusal", REFUSALS)}


def _read(engine: Engine, knob: str, target: object, worlds: np.ndarray) -> np.ndarray:
    """A knob's current values at `target` for some worlds, [..., W] (copied)."""
    index = column(engine.topology, knob, target)
    values = np.array(getattr(engine.knobs, knob)[index][..., worlds])
    return values.astype(np.float64) if values.dtype.kind == "f" else values
