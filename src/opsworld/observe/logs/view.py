"""What the log and trace sensors see of one world at one tick (`WorldView`, `TickState`), the line a log store
returns (`LogLine`), and the sources of lines with their rates and levels."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from opsworld.engine import queueing as qt
from opsworld.engine.knobs import REFUSALS, Knobs
from opsworld.engine.replicas import RUNNING
from opsworld.engine.topology import CONSUME, MISS, PUBLISH, idle_hold
from opsworld.engine.truth import Truth
from opsworld.observe.logs import templates as tpl
from opsworld.observe.logs.templates import Profile
from opsworld.observe.noise import name_key, uniform
from opsworld.observe.recording import Recording


LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")
LOGS, SKEW = 11, 12            # what a keyed draw is about (other sensors use other numbers)
TINY = 1e-12
SLOW_REQUEST = 1.0             # seconds: services log requests slower than this (or 5x their idle latency)



@dataclass(frozen=True)
class LogLine:
    """One log line as a log store returns it."""

    time: float          # Unix seconds, as the source's clock wrote it
    service: str
    pod: str
    level: str           # DEBUG, INFO, WARN or ERROR
    message: str         # may span several lines (stack traces)

    def __str__(self) -> str:
        return f"{tpl.iso(self.time)} {self.level} {self.pod} {self.message}"



class WorldView:
    """The static facts of one world of a recording that both lazy sensors use: names, profiles, replicas, and the
    per-tick state (`tick(k)`, computed once per query)."""

    def __init__(self, rec: Recording, world: int) -> None:
        if not 0 <= world < max(rec.worlds, 1):
            raise ValueError(f"world must be in 0..{rec.worlds - 1}, got {world}")
        self.rec, self.world = rec, world
        self.gworld = rec.first_world + world
        self.topology = topo = rec.topology
        self.names = rec.names
        self.profiles: list[Profile] = tpl.profiles(topo)
        self.S, self.E = topo.n_components, topo.n_edges
        self.replicas_of = [np.flatnonzero(topo.replica_component == s) for s in range(self.S)]
        self.pod_names = [self.names.pod(r) for r in range(len(topo.replica_component))]
        self.pod_ips = [self.names.pod_ip(r) for r in range(len(topo.replica_component))]
        self.service_ips = [self.names.service_ip(s) for s in range(self.S)]
        self.entry_endpoints = [np.flatnonzero(topo.endpoint_component == s) for s in range(self.S)]
        # callees of each component, with the edges that make the calls (per-endpoint edges folded together)
        self.callees: list[list[tuple[int, np.ndarray]]] = []
        for s in range(self.S):
            out = [e for e in range(*topo.out_slices[s].indices(self.E)) if topo.edge_kind[e] != CONSUME]
            dsts = sorted({int(topo.edge_dst[e]) for e in out})
            self.callees.append([(d, np.array([e for e in out if topo.edge_dst[e] == d])) for d in dsts])
        self.callers_of = [np.flatnonzero((topo.edge_dst == s) & (topo.edge_kind != CONSUME)) for s in range(self.S)]
        consumed = {int(topo.edge_dst[e]): topo.components[int(topo.edge_src[e])]
                    for e in np.flatnonzero(topo.edge_kind == CONSUME)}
        self.consumer_of: list[str | None] = [consumed.get(s) for s in range(self.S)]
        idx = topo.replica_index
        self.leak_spread = 1.0 + 0.1 * ((idx * 7) % 5 - 2.0) / 2.0      # as the engine staggers replicas
        self.slow_threshold = np.maximum(SLOW_REQUEST, 5.0 * idle_hold(topo))
        self._ticks: dict[int, TickState] = {}

    @property
    def ticks(self) -> int:
        return self.rec.ticks

    def tick(self, k: int) -> "TickState":
        if k not in self._ticks:
            self._ticks[k] = TickState(self, k)
        return self._ticks[k]

    def rollout_at(self, s: int, t: float) -> float:
        """When component s last began a rolling restart at or before t: a deploy version change or an ordered
        restart (replicas launched before it run the old build)."""
        rec, b = self.rec, self.world
        last, prev = -math.inf, None
        for when, snap in zip(rec.knob_times, rec.knob_snapshots):
            if when > t:
                break
            version = int(snap.deploy[s, b])
            if prev is not None and version != prev:
                last = when
            prev = version
            if snap.restart_at[s, b] <= t:
                last = max(last, float(snap.restart_at[s, b]))
        return last


class TickState:
    """One tick of one world as the sensors may read it: the truth, the knobs that held, the replicas' states, and
    what follows from them (why calls on each edge fail, which replicas hang). Arrays are 1-D over components [S],
    edges [E], replicas [R] or endpoints [P]."""

    def __init__(self, view: WorldView, k: int) -> None:
        rec, b = view.rec, view.world
        self.view, self.k = view, k
        self.dt = rec.dt
        self.t0 = k * rec.dt                       # seconds since the start
        self.wall = rec.start + self.t0            # Unix seconds at the tick's start
        truth: Truth = rec.frames[k]
        self.knobs: Knobs = rec.knobs_at(self.t0 + 1e-6)
        kn = self.knobs
        self.served = truth.served[b].astype(np.float64)
        self.offered = truth.offered[b].astype(np.float64)
        self.causes = truth.failed_by_cause[b].astype(np.float64)          # [S, 4]
        self.rmean = truth.response_mean[b].astype(np.float64)
        self.rvar = truth.response_var[b].astype(np.float64)
        self.ready = truth.ready_replicas[b].astype(np.float64)
        self.restarts = truth.restarts[b]
        self.memory_fraction = truth.memory_max_fraction[b]
        self.disk_fraction = truth.disk_max_fraction[b]
        self.gpu_fraction = truth.gpu_memory_fraction[b].astype(np.float64)
        self.backlog = truth.backlog[b]
        self.queue_depth = truth.queue_depth[b]
        self.attempts = truth.edge_attempts[b].astype(np.float64)
        self.edge_failure = np.clip(truth.edge_failure[b].astype(np.float64), 0.0, 1.0)
        self.wrong = truth.wrong_answers[b].astype(np.float64)
        self.requests = truth.requests[b].astype(np.float64)
        self.failed = truth.failed[b].astype(np.float64)
        self.state = rec.replica_state[k][:, b]
        self.launched = rec.replica_launched[k][:, b]
        self.prev_state = rec.replica_state[k - 1][:, b] if k > 0 else self.state
        self.prev_launched = rec.replica_launched[k - 1][:, b] if k > 0 else self.launched
        self.prev_memory_fraction = rec.frames[k - 1].memory_max_fraction[b] if k > 0 else self.memory_fraction
        self.error_rate = kn.error_rate[:, b]
        self.error_kind = kn.error_kind[:, b]
        self.refusal = kn.refusal[:, b].astype(np.int64)
        self.retries = kn.retries[:, b].astype(np.float64)
        self.timeout = kn.timeout[:, b].astype(np.float64)
        self.backoff = kn.backoff[:, b].astype(np.float64)
        self.network = view.topology.edge_network + kn.network_latency[:, b]
        self.pool_size = kn.pool_size[:, b].astype(np.float64)
        self.breaker = kn.breaker_open[:, b].astype(np.float64)
        self.rate_limit = kn.rate_limit[:, b].astype(np.float64)
        self.handler_error = kn.handler_error[:, b].astype(np.float64)      # [P]

    # -- calls: why attempts on each edge fail ------------------------------------------------------------------------
    @cached_property
    def partition_share(self) -> np.ndarray:
        """[E] share of attempts whose caller and callee replicas sit in zones that cannot reach each other."""
        topo, kn, b = self.view.topology, self.knobs, self.view.world
        part = kn.partition[:, :, b]
        if not part.any():
            return np.zeros(self.view.E)
        zone = topo.node_zone[topo.replica_node]
        running = (self.state == RUNNING).astype(np.float64)
        share = np.zeros((len(topo.zones), self.view.S))
        for z in range(len(topo.zones)):
            np.add.at(share[z], topo.replica_component, running * (zone == z))
        share /= np.maximum(share.sum(axis=0, keepdims=True), 1.0)
        src, dst = share[:, topo.edge_src], share[:, topo.edge_dst]
        return np.einsum("ae,be,ab->e", src, dst, part.astype(np.float64))

    @cached_property
    def block(self) -> np.ndarray:
        """[E] share of attempts refused before they leave (a wrong address, a name that does not resolve, a
        partition, rejected credentials)."""
        return np.clip(self.knobs.blocked[:, self.view.world] + self.partition_share, 0.0, 1.0)

    @cached_property
    def cert_not_after(self) -> np.ndarray:
        """[S] the earliest not-after among each component's certificates (inf without one)."""
        topo, b = self.view.topology, self.view.world
        out = np.full(self.view.S, np.inf)
        for c in range(len(topo.certificates)):
            s = int(topo.cert_component[c])
            out[s] = min(out[s], float(self.knobs.cert_not_after[c, b]))
        return out

    @cached_property
    def cert_expired(self) -> np.ndarray:
        return self.wall >= self.cert_not_after

    @cached_property
    def unavailable(self) -> np.ndarray:
        """[S] share of the requests reaching each component that it turns away at once (no replica in rotation,
        a failed TLS handshake, a rate limit, a full queue)."""
        share = self.causes[:, 3] / np.maximum(self.offered, TINY)
        idle = self.offered <= TINY
        return np.where(idle, np.maximum((self.ready <= 0) * 1.0, self.cert_expired * 1.0), np.clip(share, 0.0, 1.0))

    @cached_property
    def rate_limited(self) -> np.ndarray:
        """[S] share of the requests refused by a rate limit."""
        rate = self.offered / self.dt
        return np.where(np.isfinite(self.rate_limit) & (rate > self.rate_limit),
                        1.0 - self.rate_limit / np.maximum(rate, TINY), 0.0)

    @cached_property
    def hang(self) -> np.ndarray:
        """[S] share of the requests reaching each component that are never answered (hung replicas, requests
        dropped from an overloaded queue): the callers wait out their timeout."""
        return np.clip(self.causes[:, 2] / np.maximum(self.offered, TINY), 0.0, 1.0)

    @cached_property
    def own_error(self) -> np.ndarray:
        """[S] share of the served requests that fail in the component's own code or resources."""
        return np.clip(self.causes[:, 0] / np.maximum(self.served, TINY), 0.0, 1.0)

    @cached_property
    def endpoint_own_error(self) -> np.ndarray:
        """[P] share of each endpoint's requests that fail in its entry service's own code: the service's errors
        that are no handler's, plus its endpoint's handler's (a bug in one handler fails that endpoint alone)."""
        topo = self.view.topology
        ec = topo.endpoint_component
        own = self.own_error[ec]
        if not self.handler_error.any():
            return own
        by_handler = np.zeros(self.view.S)
        np.add.at(by_handler, ec, self.requests * self.handler_error)
        generic = np.clip(self.own_error - by_handler / np.maximum(self.served, TINY), 0.0, 1.0)[ec]
        return 1.0 - (1.0 - generic) * (1.0 - self.handler_error)

    @cached_property
    def dependency_error(self) -> np.ndarray:
        return np.clip(self.causes[:, 1] / np.maximum(self.served, TINY), 0.0, 1.0)

    @cached_property
    def tries(self) -> np.ndarray:
        return self.retries + 1.0

    @cached_property
    def attempt_failure(self) -> np.ndarray:
        """[E] probability that one attempt fails (the truth gives the probability that all of them do)."""
        return self.edge_failure ** (1.0 / self.tries)

    @cached_property
    def calls_made(self) -> np.ndarray:
        """[E] calls made this tick (attempts over the expected attempts per call)."""
        q = np.minimum(self.attempt_failure, 1.0 - 1e-9)
        per_call = (1.0 - q ** self.tries) / (1.0 - q)
        return self.attempts / np.maximum(per_call, 1.0)

    @cached_property
    def pool_timeout(self) -> np.ndarray:
        """[E] share of attempts that time out waiting for a pooled connection: attempts x the time each holds a
        connection exceed the connections the caller's ready replicas hold."""
        topo = self.view.topology
        pooled = topo.edge_pool > 0
        if not pooled.any():
            return np.zeros(self.view.E)
        held = np.minimum(self.rmean[topo.edge_dst] + self.network, self.timeout)
        conns = self.pool_size * np.maximum(self.ready[topo.edge_src], 0.0)
        over = (self.attempts / self.dt) * held / np.maximum(conns, TINY)
        return np.where(pooled & (conns > 0), 1.0 - 1.0 / np.maximum(over, 1.0), 0.0)

    @cached_property
    def late(self) -> np.ndarray:
        """[E] share of attempts answered after the caller's timeout."""
        topo = self.view.topology
        d = topo.edge_dst
        return qt.gamma_sf(self.rmean[d] + self.network, self.rvar[d], self.timeout)

    @cached_property
    def call_causes(self) -> np.ndarray:
        """[E, CALL_CAUSES] how the failed attempts on each edge fail, as weights (see `templates.py`)."""
        topo, E = self.view.topology, self.view.E
        d = topo.edge_dst
        w = np.zeros((E, tpl.CALL_CAUSES))
        blocked = self.block
        partitioned = self.partition_share > 0.0
        refusal = np.where(partitioned & (self.knobs.blocked[:, self.view.world] <= 0),
                           REFUSALS.index("timeout"), self.refusal)
        w[np.arange(E), refusal] = blocked
        passed = 1.0 - blocked
        w[:, tpl.BREAKER_OPEN] = passed * self.breaker
        passed = passed * (1.0 - self.breaker)
        unavailable = passed * self.unavailable[d]
        limited = np.minimum(self.rate_limited[d], 1.0)
        cert = self.cert_expired[d] * 1.0
        full = (topo.edge_kind == PUBLISH) & (self.unavailable[d] > 0)
        w[:, tpl.CERT_EXPIRED] = unavailable * cert
        rest = unavailable * (1.0 - cert)
        w[:, tpl.RATE_LIMITED] = rest * limited
        rest = rest * (1.0 - limited)
        w[:, tpl.QUEUE_FULL] = np.where(full, rest, 0.0)
        w[:, tpl.NO_ENDPOINTS] = np.where(full, 0.0, rest)
        reached = passed * (1.0 - self.unavailable[d])
        w[:, tpl.POOL_EXHAUSTED] = reached * self.pool_timeout
        w[:, tpl.DEADLINE] = reached * (1.0 - self.pool_timeout) * (self.hang[d] + self.late)
        w[:, tpl.CALLEE_ERROR] = reached * (self.own_error[d] + self.dependency_error[d])
        w[topo.edge_kind == MISS, tpl.DEADLINE] += 1e-9    # a miss that fails and says nothing else timed out
        return w

    # -- components ---------------------------------------------------------------------------------------------------
    @cached_property
    def kv_usage(self) -> np.ndarray:
        """[S] share of the GPUs' KV-cache room the in-flight requests need (may pass 1)."""
        topo = self.view.topology
        available = topo.gpu_count * topo.gpu_memory
        room = np.maximum(available - topo.gpu_model_memory, TINY)
        need = self.gpu_fraction * available - topo.gpu_model_memory
        return np.where(topo.gpu_count > 0, np.maximum(need, 0.0) / room, 0.0)

    @cached_property
    def kv_error(self) -> np.ndarray:
        """[S] share of requests preempted for lack of KV cache (the engine's rule)."""
        u = self.kv_usage
        return np.where(u > 1.0, 1.0 - 1.0 / np.maximum(u, TINY), 0.0)

    @cached_property
    def disk_error(self) -> np.ndarray:
        """[S] share of requests failing on a full disk: at least one replica's disk is full."""
        return np.where(self.disk_fraction >= 1.0, 1.0 / np.maximum(self.ready, 1.0), 0.0)

    @cached_property
    def hung(self) -> np.ndarray:
        """[R] replicas alive but serving nothing: stopped as ordered, or stuck after `hang_after` seconds of
        uptime in a build rolled out since (the engine's rule)."""
        topo, kn, b = self.view.topology, self.knobs, self.view.world
        comp = topo.replica_component
        hung = kn.hung[:, b].copy()
        after = kn.hang_after[:, b]
        finite = np.isfinite(after)
        if finite.any():
            started = self.launched + topo.startup[comp]
            uptime = self.t0 - started
            rollout = np.array([self.view.rollout_at(s, self.t0) if finite[s] else math.inf
                                for s in range(self.view.S)])
            hung |= finite[comp] & (uptime >= after[comp] * self.view.leak_spread) & (self.launched >= rollout[comp])
        return hung & (self.state == RUNNING)

    def running(self, s: int, serving: bool = True) -> np.ndarray:
        """Replica slots of component s that run (and, with `serving`, answer) this tick."""
        reps = self.view.replicas_of[s]
        mine = reps[self.state[reps] == RUNNING]
        return mine[~self.hung[mine]] if serving else mine


def clock_skews(view: WorldView, skew: float) -> np.ndarray:
    """[S] each component's clock offset, fixed per world: uniform in [-skew, +skew]."""
    if skew <= 0.0:
        return np.zeros(view.S)
    keys = np.array([name_key(n) for n in view.topology.components], dtype=np.uint64)
    return (2.0 * uniform(view.rec.seed, SKEW, view.gworld, keys) - 1.0) * skew
