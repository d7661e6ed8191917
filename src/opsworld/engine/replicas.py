"""Replica lifecycle for every replica slot of every world: start-up, readiness, memory and disk, OOM kills,
crash loops with back-off, health-check ejection, and scaling to the desired count.

Arrays are [R, B] over replica slots (grouped by component, `Topology.replica_starts`) and worlds; per-component
counts add each group's rows in a fixed order (`Segments`), so a world's sums never depend on its batch.
Times are kept as moments (`started`, `timer`, `hung_since`) rather than counters, so a quiet tick costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opsworld.engine.knobs import Knobs
from opsworld.engine.real import REAL
from opsworld.engine.segments import Segments
from opsworld.engine.topology import Topology

ABSENT, STARTING, RUNNING, CRASHED = 0, 1, 2, 3
CRASH_LOOP_AFTER = 5.0      # seconds a broken build survives once started
BACKOFF_BASE, BACKOFF_MAX = 10.0, 300.0   # Kubernetes' CrashLoopBackOff
BACKOFF_RESET = 600.0       # a replica up this long has its back-off forgotten
RESCHEDULE_AFTER = 300.0    # seconds before the pods of a lost node are rescheduled (Kubernetes' eviction timeout)


@dataclass
class ReplicaCounts:
    """Per component [S, B]: what the load balancer routes to and what actually serves."""

    in_rotation: np.ndarray   # replicas the load balancer sends traffic to
    serving: np.ndarray       # of those, replicas that answer
    disk_full: np.ndarray     # of those, replicas whose disk is full (their writes fail)
    memory_used: np.ndarray   # bytes over all replicas
    memory_max_fraction: np.ndarray
    disk_max_fraction: np.ndarray
    restarts: np.ndarray


class Replicas:
    """State of every replica slot in a batch of worlds."""

    def __init__(self, topo: Topology, worlds: int) -> None:
        self.topo = topo
        comp = topo.replica_component
        col = (lambda a: np.asarray(a, dtype=REAL)[:, None])
        self.limit = col(topo.memory_limit[comp])
        self.baseline = col(topo.memory_baseline[comp])
        self.disk_size = col(topo.disk[comp])
        self.startup = col(topo.startup[comp])
        self.eject_after = col(topo.hc_eject_after[comp])
        # a rolling restart replaces one replica after another: each new one starts beside the old (a surge) and
        # takes over when ready, so the count in rotation does not dip
        self.roll_offset = col((topo.replica_index + 1) * topo.startup[comp])
        # replicas of one component leak (and deadlock) at slightly different speeds (different traffic mixes), so
        # they do not all run out of memory in the same tick
        self.leak_spread = col(1.0 + 0.1 * ((topo.replica_index * 7) % 5 - 2.0) / 2.0)
        active = (topo.replica_index < topo.replicas[comp])[:, None]
        B = worlds
        self.state = np.where(active, RUNNING, ABSENT).astype(np.int8).repeat(B, axis=1)
        self.timer = np.zeros((len(comp), B))        # when STARTING ends or a CRASHED replica restarts
        self.started = np.where(active, -86400.0, 0.0).repeat(B, axis=1)   # up for a day when the episode begins
        self.launched = self.started.copy()          # when the replica last began starting
        self.memory = np.where(active, self.baseline, 0.0).repeat(B, axis=1)
        self.disk = np.where(active, 0.2 * self.disk_size, 0.0).repeat(B, axis=1)
        self.restarts = np.zeros((len(comp), B), REAL)
        self.streak = np.zeros((len(comp), B))
        self.hung_since = np.full((len(comp), B), np.inf)
        self.warmed_at = np.full((len(comp), B), -np.inf)   # when a cache replica was pre-loaded (counts as full)
        self.moved = np.zeros((len(comp), B), dtype=bool)   # rescheduled off its node (drained or lost)
        self.deploy_seen: np.ndarray | None = None
        self.rollout_at = np.full((topo.n_components, B), -np.inf)   # the last rolling restart ordered
        self._growing = False
        self._counts: ReplicaCounts | None = None
        self._by_component = Segments.of(np.arange(len(comp)), comp)
        self.memory_changed = True       # whether `memory` moved since the last tick (for per-node sums)
        self.running = (self.state == RUNNING).astype(REAL)   # [R, B] 1.0 where a replica runs
        self._settled = False
        # When each component's replicas last changed in each world (`running`, `launched` or `rollout_at`), as a
        # count of the steps that did any work (`steps`): readers such as the fault injector cache on it.
        self.steps = 0
        self._slot_views: dict[str, tuple] = {}   # knob -> (its write count, its values per slot), see _per_slot
        self._hung_lately = True          # whether hung_since may hold a finite time (see step)
        self._restless: np.ndarray | None = None   # [B] worlds not settled at the last step (see step)
        self._busy: np.ndarray | None = None       # [B] worlds whose knobs make their replicas change
        self._wanted: np.ndarray | None = None     # [R, B] the wanted slots at the last step
        self.touched = np.zeros((topo.n_components, B), np.int64)   # [S, B]
        self.touched_any = np.zeros(topo.n_components, np.int64)    # [S] the latest over worlds

    def per_component(self, values: np.ndarray, op: np.ufunc = np.add) -> np.ndarray:
        """[S, B] `values` over replica slots [R, B] combined per component (sum by default)."""
        return self._by_component.sum(values, op)

    def step(self, now: float, dt: float, knobs: Knobs, changed: bool = True,
             writes: dict[str, int] | None = None) -> ReplicaCounts:
        """Advance every replica by one tick (to `now + dt`). `changed` says whether any knob was set since the
        last tick; without it, a settled fleet that neither leaks, fills its disk, crash-loops, hangs nor rolls is
        left as it is. `writes` (how often each knob was set, see `Engine.writes`) lets the knobs' per-slot views be
        kept while the knob is not set.

        Steps whose outcome is known without them are skipped (no node lost or drained, no kill ordered, nothing
        rolling, no crash, no hang): each skipped `np.where` would have returned its input unchanged."""
        topo, comp = self.topo, self.topo.replica_component
        was = self.running, self.launched, self.rollout_at     # (compared with the new ones before they are stored)
        if changed or self._counts is None:
            if self.deploy_seen is None:
                self.deploy_seen = knobs.deploy.copy()
            new_version = knobs.deploy != self.deploy_seen      # a new version rolls out replica by replica
            self.rollout_at = np.where(new_version, now, np.maximum(self.rollout_at, knobs.restart_at))
            self.deploy_seen = knobs.deploy.copy()
            self._growing = bool(knobs.memory_growth.any() or knobs.disk_growth.any() or knobs.crash_loop.any()
                                 or knobs.hung.any() or np.isfinite(knobs.hang_after).any()
                                 or (knobs.kill_at > now).any() or knobs.node_down.any() or knobs.drained.any())
            # what can happen at all until the knobs are next set
            self._rolling = bool((self.rollout_at > -np.inf).any())      # launched < -inf never holds
            self._rollout = self.rollout_at[comp] if self._rolling else None
            self._roll_due = self._rollout + self.roll_offset if self._rolling else None
            self._kills = bool((knobs.kill_at > -np.inf).any())
            self._evicting = bool(knobs.node_down.any() or knobs.drained.any())
            self._broken = bool(knobs.crash_loop.any())
            self._hanging = bool(knobs.hung.any() or np.isfinite(knobs.hang_after).any())
        if self._settled and not changed and not self._growing and self._counts is not None:
            return self._counts          # nothing starts, stops, grows, hangs or rolls: last tick's counts hold
        slot = lambda name, make: self._per_slot(name, writes, dt, make)   # noqa: E731
        wanted = slot("replicas", lambda: topo.replica_index[:, None] < knobs.replicas[comp])   # [R, B]
        # Worlds where nothing can happen are left as they are: settled at the last step (every wanted replica
        # running, nothing rolling, no crash streak, nothing hung), and no knob there that grows, breaks, hangs,
        # kills or evicts, and no change to the wanted replicas or the rollout. Every step below is the identity
        # for them (each `np.where` keeps its input), so only the other worlds are worked out.
        if changed or self._busy is None:
            self._busy = (knobs.memory_growth.any(axis=0) | knobs.disk_growth.any(axis=0)
                          | knobs.crash_loop.any(axis=0) | knobs.hung.any(axis=0)
                          | np.isfinite(knobs.hang_after).any(axis=0) | (knobs.kill_at > -np.inf).any(axis=0)
                          | knobs.node_down.any(axis=0) | knobs.drained.any(axis=0))
        if self._counts is None or self._restless is None:
            cols = None
        else:
            active = self._restless | self._busy | (self.rollout_at != was[2]).any(axis=0)
            if wanted is not self._wanted:
                active |= (wanted != self._wanted).any(axis=0)
            cols = np.flatnonzero(active) if active.sum() * 2 < len(active) else None
        self._wanted = wanted
        self._advance(now, dt, knobs, slot, wanted, cols, was)
        return self._counts

    def _advance(self, now: float, dt: float, knobs: Knobs, slot, wanted: np.ndarray, cols: np.ndarray | None,
                 was: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        """One tick for the worlds `cols` (None: all of them); the others keep their state and counts."""
        topo, comp = self.topo, self.topo.replica_component
        if cols is None:
            sub = lambda a: a          # noqa: E731
        else:
            sub = lambda a: a.take(cols, axis=1)  # noqa: E731
        wanted = sub(wanted)
        state = np.where(wanted, sub(self.state), ABSENT)
        timer, launched, started, moved = sub(self.timer), sub(self.launched), sub(self.started), sub(self.moved)
        # replicas on a lost node die and are rescheduled elsewhere after the eviction delay; on a drained node
        # they are evicted at once and start elsewhere
        if self._evicting:
            on_node = ~moved & wanted & (state != ABSENT)
            lost = on_node & sub(knobs.node_down)[topo.replica_node]
            evicted = on_node & sub(knobs.drained)[topo.replica_node]
            moved |= lost | evicted
            state = np.where(lost & ~evicted, CRASHED, state)
            timer = np.where(lost & ~evicted, now + RESCHEDULE_AFTER, timer)
            state = np.where(evicted, ABSENT, state)
        # a kill, and rolling restarts: each replica started before the order is replaced in its turn
        present = state != ABSENT
        if self._kills:
            kill_at = sub(slot("kill_at", lambda: knobs.kill_at[comp]))
            killed = present & (launched < kill_at) & (kill_at <= now)
        rollout = sub(self._rollout) if self._rolling else None
        if self._rolling:
            replaced = present & (launched < rollout) & (now >= sub(self._roll_due))
            state = np.where(replaced, RUNNING, state)
        else:
            replaced = np.zeros_like(present)
        new = wanted & (state == ABSENT)
        restart = (state == CRASHED) & (now >= timer)
        begin = new | restart
        state = np.where(begin, STARTING, state)
        timer = np.where(begin, now + self.startup, timer)
        launched = np.where(begin | replaced, now, launched)
        ready = (state == STARTING) & (now >= timer)
        state = np.where(ready, RUNNING, state)
        ready |= replaced
        begin |= replaced
        started = np.where(ready, now, started)
        running = state == RUNNING
        leak = sub(slot("memory_growth", lambda: knobs.memory_growth[comp] * self.leak_spread * dt))
        memory = np.where(running, np.where(ready, self.baseline, sub(self.memory) + leak),
                          np.where(state == STARTING, self.baseline, 0.0))
        # local disk is the pod's own (emptyDir): a new pod starts with a fresh one
        disk = np.where(begin, 0.2 * self.disk_size, sub(self.disk))
        fill = sub(slot("disk_growth", lambda: knobs.disk_growth[comp] * dt))
        disk = np.where(wanted, np.minimum(disk + fill, self.disk_size), 0.0)
        # OOM kills and broken builds: a crash, then CrashLoopBackOff
        uptime = now - started
        if self._broken:
            # a broken build crashes the replicas started since the last rollout (those still on the old build run
            # on; with no rollout ordered, every launch is since it)
            broken = sub(slot("crash_loop", lambda: knobs.crash_loop[comp])) & (uptime >= CRASH_LOOP_AFTER)
            if self._rolling:
                broken &= launched >= rollout
            crash = running & ((memory > self.limit) | broken)
        else:
            crash = running & (memory > self.limit)
        down = crash | (killed & ~begin) if self._kills else crash
        streak, restarts = sub(self.streak), sub(self.restarts)
        if crash.any():
            streak = np.where(crash, streak + 1.0, np.where(running & (uptime > BACKOFF_RESET), 0.0, streak))
            backoff = np.minimum(BACKOFF_BASE * np.exp2(np.maximum(streak - 1.0, 0.0)), BACKOFF_MAX)
            timer = np.where(crash, now + backoff, np.where(down, now + BACKOFF_BASE, timer))
        else:
            if streak.any():         # (an all-zero streak stays zero)
                streak = np.where(running & (uptime > BACKOFF_RESET), 0.0, streak)
            if self._kills:
                timer = np.where(down, now + BACKOFF_BASE, timer)
        if down.any():
            restarts = restarts + down
            state = np.where(down, CRASHED, state)
            memory = np.where(down, 0.0, memory)
        running = state == RUNNING
        # health checks: a hung replica stays in rotation until it has failed enough probes
        hung_since = sub(self.hung_since)
        if self._hanging or self._hung_lately:
            # a build that deadlocks does so in the replicas started since the last rollout
            hang_after = sub(slot("hang_after", lambda: knobs.hang_after[comp] * self.leak_spread))
            deadlocked = uptime >= hang_after
            if self._rolling:
                deadlocked &= launched >= rollout
            hung = running & (sub(knobs.hung) | deadlocked)
            hung_since = np.where(hung, np.minimum(hung_since, now), np.inf)
            self._hung_lately = bool(hung.any())
            in_rotation = running & (now + dt - hung_since < self.eject_after)
            serving = in_rotation & ~hung
        else:                        # nothing hung: hung_since is inf everywhere, every running replica serves
            in_rotation = serving = running
        disk_full = serving & (disk >= self.disk_size)
        rolling = (wanted & (launched < rollout)).any(axis=0) if self._rolling else np.zeros(running.shape[1], bool)
        settled = (running == wanted).all(axis=0) & ~rolling
        self._settled = bool(settled.all())
        self.memory_changed = True
        real = running.astype(REAL)
        self.steps += 1
        touched = self.per_component((real != sub(was[0])) | (launched != sub(was[1])), np.logical_or)
        restless = ~settled | streak.any(axis=0) | np.isfinite(hung_since).any(axis=0)
        counts = ReplicaCounts(
            in_rotation=self.per_component(in_rotation.astype(REAL)),
            serving=self.per_component(serving.astype(REAL)),
            disk_full=self.per_component(disk_full.astype(REAL)),
            memory_used=self.per_component(memory),
            memory_max_fraction=self.per_component(memory / self.limit, np.maximum),
            disk_max_fraction=self.per_component(disk / self.disk_size, np.maximum),
            restarts=self.per_component(restarts),
        )
        if cols is None:
            self.state, self.timer, self.launched, self.started, self.moved = state, timer, launched, started, moved
            self.memory, self.disk, self.streak, self.restarts, self.hung_since = memory, disk, streak, restarts, hung_since
            self.running, self._restless, self._counts = real, restless, counts
        else:                        # the replicas' own arrays are updated in place, the counts (shown in the
            #                          truth of each tick) are new arrays
            B = self.state.shape[1]
            at = (np.arange(len(comp))[:, None] * B + cols).ravel()   # flat positions of the worlds' slots
            for name, value in (("state", state), ("timer", timer), ("launched", launched), ("started", started),
                                ("moved", moved), ("memory", memory), ("disk", disk), ("streak", streak),
                                ("restarts", restarts), ("hung_since", hung_since), ("running", real)):
                _flat(getattr(self, name))[at] = value.reshape(-1)
            self._restless[cols] = restless
            at = (np.arange(touched.shape[0])[:, None] * B + cols).ravel()   # and of their components
            last = self._counts
            self._counts = ReplicaCounts(**{f: _put(getattr(last, f), at, getattr(counts, f))
                                            for f in ReplicaCounts.__dataclass_fields__})
            touched = _put(np.zeros(self.touched.shape, bool), at, touched)
        touched |= self.rollout_at != was[2]
        self.touched[touched] = self.steps
        self.touched_any[touched.any(axis=1)] = self.steps

    def _per_slot(self, knob: str, writes: dict[str, int] | None, dt: float, make) -> np.ndarray:
        """A knob's values per replica slot [R, B] (`make()`), kept until the knob is next set."""
        count = None if writes is None else (writes[knob], dt)
        kept = self._slot_views.get(knob)
        if kept is not None and count is not None and kept[0] == count:
            return kept[1]
        value = make()
        self._slot_views[knob] = (count, value)
        return value

    def warmth(self, rows: np.ndarray, now: float, fill_time: float) -> np.ndarray:
        """[len(rows), B] for components `rows` (caches): how full their running replicas are, 0 just after a start,
        approaching 1 as the working set is loaded again (time constant `fill_time`)."""
        comp = self.topo.replica_component
        pick = np.isin(comp, rows)
        started = self.started[pick]
        # a replica pre-loaded since it started (`warm`) is full; one started after its pre-load is not
        up = np.where(started < self.warmed_at[pick], np.inf, np.maximum(now - started, 0.0))
        full = self.running[pick] * (1.0 - np.exp(-up / fill_time))
        owner = comp[pick]
        out = np.zeros((len(rows), self.running.shape[1]), REAL)
        count = np.zeros_like(out)
        for i, r in enumerate(rows):
            mine = owner == r
            out[i] = full[mine].sum(axis=0)
            count[i] = self.running[pick][mine].sum(axis=0)
        return np.where(count > 0, out / np.maximum(count, 1.0), 1.0)

    def warm(self, components: np.ndarray, worlds: np.ndarray | slice, now: float) -> None:
        """Pre-load the caches `components` in `worlds` (an index or slice): their replicas running now count as
        full (`warmth` 1) until they next start; replicas not running are left to warm up when they do."""
        pick = np.flatnonzero(np.isin(self.topo.replica_component, components))
        cols = np.arange(self.state.shape[1])[worlds]
        sub = np.ix_(pick, cols)
        self.warmed_at[sub] = np.where(self.state[sub] == RUNNING, now, self.warmed_at[sub])


def _put(old: np.ndarray, at: np.ndarray, new: np.ndarray) -> np.ndarray:
    """A copy of `old` with the flat positions `at` replaced by `new` (in the same order)."""
    out = old.copy()
    _flat(out)[at] = new.reshape(-1)
    return out


def _flat(a: np.ndarray) -> np.ndarray:
    """A flat view of `a` (which must be C-contiguous, so that writing to the view writes to `a`)."""
    if not a.flags.c_contiguous:
        raise ValueError("replica arrays are kept C-contiguous")
    return a.reshape(-1)
