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
        self.moved = np.zeros((len(comp), B), dtype=bool)   # rescheduled off its node (drained or lost)
        self.deploy_seen: np.ndarray | None = None
        self.rollout_at = np.full((topo.n_components, B), -np.inf)   # the last rolling restart ordered
        self._growing = False
        self._counts: ReplicaCounts | None = None
        self._by_component = Segments.of(np.arange(len(comp)), comp)
        self.memory_changed = True       # whether `memory` moved since the last tick (for per-node sums)
        self.running = (self.state == RUNNING).astype(REAL)   # [R, B] 1.0 where a replica runs
        self._settled = False

    def per_component(self, values: np.ndarray, op: np.ufunc = np.add) -> np.ndarray:
        """[S, B] `values` over replica slots [R, B] combined per component (sum by default)."""
        return self._by_component.sum(values, op)

    def step(self, now: float, dt: float, knobs: Knobs, changed: bool = True) -> ReplicaCounts:
        """Advance every replica by one tick (to `now + dt`). `changed` says whether any knob was set since the
        last tick; without it, a settled fleet that neither leaks, fills its disk, crash-loops, hangs nor rolls is
        left as it is."""
        topo, comp = self.topo, self.topo.replica_component
        if changed or self._counts is None:
            if self.deploy_seen is None:
                self.deploy_seen = knobs.deploy.copy()
            new_version = knobs.deploy != self.deploy_seen      # a new version rolls out replica by replica
            self.rollout_at = np.where(new_version, now, np.maximum(self.rollout_at, knobs.restart_at))
            self.deploy_seen = knobs.deploy.copy()
            self._growing = bool(knobs.memory_growth.any() or knobs.disk_growth.any() or knobs.crash_loop.any()
                                 or knobs.hung.any() or np.isfinite(knobs.hang_after).any()
                                 or (knobs.kill_at > now).any() or knobs.node_down.any() or knobs.drained.any())
        if self._settled and not changed and not self._growing and self._counts is not None:
            return self._counts          # nothing starts, stops, grows, hangs or rolls: last tick's counts hold
        wanted = topo.replica_index[:, None] < knobs.replicas[comp]          # [R, B]
        state = np.where(wanted, self.state, ABSENT)
        # replicas on a lost node die and are rescheduled elsewhere after the eviction delay; on a drained node
        # they are evicted at once and start elsewhere
        on_node = ~self.moved & wanted & (state != ABSENT)
        lost = on_node & knobs.node_down[topo.replica_node]
        evicted = on_node & knobs.drained[topo.replica_node]
        self.moved |= lost | evicted
        state = np.where(lost & ~evicted, CRASHED, state)
        self.timer = np.where(lost & ~evicted, now + RESCHEDULE_AFTER, self.timer)
        state = np.where(evicted, ABSENT, state)
        # a kill, and rolling restarts: each replica started before the order is replaced in its turn
        killed = (state != ABSENT) & (self.launched < knobs.kill_at[comp]) & (knobs.kill_at[comp] <= now)
        replaced = (state != ABSENT) & (self.launched < self.rollout_at[comp]) & \
            (now >= self.rollout_at[comp] + self.roll_offset)
        state = np.where(replaced, RUNNING, state)
        new = wanted & (state == ABSENT)
        restart = (state == CRASHED) & (now >= self.timer)
        begin = new | restart
        state = np.where(begin, STARTING, state)
        self.timer = np.where(begin, now + self.startup, self.timer)
        self.launched = np.where(begin | replaced, now, self.launched)
        ready = (state == STARTING) & (now >= self.timer)
        state = np.where(ready, RUNNING, state)
        ready |= replaced
        begin |= replaced
        self.started = np.where(ready, now, self.started)
        running = state == RUNNING
        leak = knobs.memory_growth[comp] * self.leak_spread * dt
        self.memory = np.where(running, np.where(ready, self.baseline, self.memory + leak),
                               np.where(state == STARTING, self.baseline, 0.0))
        # local disk is the pod's own (emptyDir): a new pod starts with a fresh one
        disk = np.where(begin, 0.2 * self.disk_size, self.disk)
        self.disk = np.where(wanted, np.minimum(disk + knobs.disk_growth[comp] * dt, self.disk_size), 0.0)
        # OOM kills and broken builds: a crash, then CrashLoopBackOff
        uptime = now - self.started
        # a broken build crashes the replicas started since the last rollout (those still on the old build run on)
        broken = knobs.crash_loop[comp] & (self.launched >= self.rollout_at[comp]) & (uptime >= CRASH_LOOP_AFTER)
        crash = running & ((self.memory > self.limit) | broken)
        self.streak = np.where(crash, self.streak + 1.0, np.where(running & (uptime > BACKOFF_RESET), 0.0, self.streak))
        backoff = np.minimum(BACKOFF_BASE * np.exp2(np.maximum(self.streak - 1.0, 0.0)), BACKOFF_MAX)
        down = crash | (killed & ~begin)
        self.restarts = self.restarts + down
        state = np.where(down, CRASHED, state)
        self.timer = np.where(crash, now + backoff, np.where(down, now + BACKOFF_BASE, self.timer))
        self.memory = np.where(down, 0.0, self.memory)
        self.state = state
        running = state == RUNNING
        # health checks: a hung replica stays in rotation until it has failed enough probes
        # a build that deadlocks does so in the replicas started since the last rollout
        deadlocked = (uptime >= knobs.hang_after[comp] * self.leak_spread) & (self.launched >= self.rollout_at[comp])
        hung = running & (knobs.hung | deadlocked)
        self.hung_since = np.where(hung, np.minimum(self.hung_since, now), np.inf)
        in_rotation = running & (now + dt - self.hung_since < self.eject_after)
        serving = in_rotation & ~hung
        disk_full = serving & (self.disk >= self.disk_size)
        rolling_on = (wanted & (self.launched < self.rollout_at[comp])).any()
        self._settled = bool(np.all(running == wanted)) and not rolling_on
        self.memory_changed = True
        self.running = running.astype(REAL)
        self._counts = ReplicaCounts(
            in_rotation=self.per_component(in_rotation.astype(REAL)),
            serving=self.per_component(serving.astype(REAL)),
            disk_full=self.per_component(disk_full.astype(REAL)),
            memory_used=self.per_component(self.memory),
            memory_max_fraction=self.per_component(self.memory / self.limit, np.maximum),
            disk_max_fraction=self.per_component(self.disk / self.disk_size, np.maximum),
            restarts=self.per_component(self.restarts),
        )
        return self._counts

    def warmth(self, rows: np.ndarray, now: float, fill_time: float) -> np.ndarray:
        """[len(rows), B] for components `rows` (caches): how full their running replicas are, 0 just after a start,
        approaching 1 as the working set is loaded again (time constant `fill_time`)."""
        comp = self.topo.replica_component
        pick = np.isin(comp, rows)
        full = self.running[pick] * (1.0 - np.exp(-np.maximum(now - self.started[pick], 0.0) / fill_time))
        owner = comp[pick]
        out = np.zeros((len(rows), self.running.shape[1]), REAL)
        count = np.zeros_like(out)
        for i, r in enumerate(rows):
            mine = owner == r
            out[i] = full[mine].sum(axis=0)
            count[i] = self.running[pick][mine].sum(axis=0)
        return np.where(count > 0, out / np.maximum(count, 1.0), 1.0)
