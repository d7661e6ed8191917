"""The log sensor: the lines each component's processes print, produced lazily when someone queries them.

Nothing is written while an episode runs. `query_logs` walks the recorded ticks a query needs (newest first, until
`limit` lines match) and, for each component the query selects, derives from that tick's truth and the system's
state (knobs, replicas) what its processes would print: a few access lines in proportion to its requests, routine
chatter, harmless warnings and the odd benign error, and the lines real causes print — a caller's
`dial tcp 10.96.0.14:6379: connect: connection refused` when its calls are refused, a stack trace when its requests
fail in its own code, `OOMKilled` when a replica at its memory limit is killed, PostgreSQL's slow-query lines when
its tail latency passes a second (`log_templates` holds the words). Every draw is keyed by (seed, world, tick,
component, source, line), so the same world shows the same lines whatever else was queried, in whatever order.

Conventions: times are Unix seconds; `world` is the world's index in the recording's batch (its randomness is keyed
by its global number, `first_world + world`); results are newest first (`direction="backward"`, Loki's default)
or oldest first (`direction="forward"`). Stream labels: `service` (also `app`, `container`), `pod`, `node`, `zone`,
`namespace` and `level` (DEBUG, INFO, WARN, ERROR; matched without regard to case, so `level="error"` works).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Iterable

import numpy as np

from opsworld.engine import queueing as qt
from opsworld.engine.knobs import ERROR_KINDS, REFUSALS, Knobs
from opsworld.engine.replicas import CRASHED, RUNNING, STARTING
from opsworld.engine.topology import CONSUME, MISS, PUBLISH, idle_hold
from opsworld.engine.truth import Truth
from opsworld.observe import log_templates as tpl
from opsworld.observe.imperfection import Imperfections
from opsworld.observe.log_templates import Profile, Rand
from opsworld.observe.noise import hashed, name_key, uniform
from opsworld.observe.recording import Recording

LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")
LOGS, SKEW = 11, 12            # what a keyed draw is about (other sensors use other numbers)
TINY = 1e-12

# How much each source writes per component and tick, at most: enough to read what happens, few enough that a
# query over hours stays fast.
ACCESS_PER_REQUEST, ACCESS_BASE, ACCESS_CAP = 1.0 / 400.0, 0.2, 3.0
CHATTER_RATE, BENIGN_WARN_RATE, BENIGN_ERROR_RATE = 0.8, 0.03, 0.01
OWN_CAP, CALL_CAP, RETRY_CAP, SLOW_CAP, SERVER_CAP = 4.0, 3.0, 1.0, 3.0, 3.0
SLOW_REQUEST = 1.0             # seconds: services log requests slower than this (or 5x their idle latency)
SLOW_QUERY = 1.0               # seconds: the datastores' slow-query threshold
NOTICED, NOTICED_CAP = 0.02, 2.0   # share of wrong answers a caller's validation catches, and lines per callee
OOM_NEAR = 0.85                # a crash of a leaking replica above this share of its limit (a tick before) was OOM

# Sources of lines, each with its own keyed randomness, and the levels it may write (a query for ERROR lines skips
# the sources that never write one).
ACCESS, SLOW, CHATTER, BENIGN, OWN, CALLS, LIFECYCLE, PROBES, SERVER, GPU, DATA = range(11)
SOURCE_LEVELS = {ACCESS: {"INFO"}, SLOW: {"WARN"}, CHATTER: {"DEBUG", "INFO"}, BENIGN: {"WARN", "ERROR"},
                 OWN: {"ERROR"}, CALLS: {"ERROR", "WARN"}, LIFECYCLE: {"INFO", "WARN", "ERROR"}, PROBES: {"WARN"},
                 SERVER: {"WARN"}, GPU: {"INFO", "WARN"}, DATA: {"WARN"}}
N_SOURCES = len(SOURCE_LEVELS)


class LogQueryError(ValueError):
    """A LogQL query that cannot be parsed; the message names the bad part."""


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


# ---- what the sensors see of one world at one tick ------------------------------------------------------------------

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
        """[E, CALL_CAUSES] how the failed attempts on each edge fail, as weights (see `log_templates`)."""
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


# ---- producing lines ------------------------------------------------------------------------------------------------

def _count(expected: float, rng: Rand) -> int:
    """A whole number of lines with the given mean: its floor, plus one with the fraction's probability."""
    if not expected > 0.0:
        return 0
    whole = math.floor(expected)
    return int(whole + (rng.random() < expected - whole))


def _normal_ppf(p: float) -> float:
    """The standard normal quantile (Acklam's rational approximation, relative error below 1.2e-9)."""
    p = min(max(p, 1e-12), 1.0 - 1e-12)
    a = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02,
         -3.066479806614716e+01, 2.506628277459239e+00)
    b = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01,
         -1.328068155288572e+01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00,
         4.374664141464968e+00, 2.938163982698783e+00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00)
    if p < 0.02425:
        q = math.sqrt(-2.0 * math.log(p))
        return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / \
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0)
    if p > 1.0 - 0.02425:
        return -_normal_ppf(1.0 - p)
    q = p - 0.5
    r = q * q
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / \
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0)


def _gamma_draw(mean: float, var: float, u: float) -> float:
    """A draw from the Gamma with this mean and variance, at uniform u (Wilson-Hilferty)."""
    if mean <= 0.0:
        return 0.0
    return float(qt.gamma_quantile(np.float64(mean), np.float64(var), _normal_ppf(u)))


class _Out:
    """Lines of one component in one tick, as (time, pod, level, message, key) before imperfections."""

    __slots__ = ("lines", "wall", "dt")

    def __init__(self, wall: float, dt: float) -> None:
        self.lines: list[tuple[float, int, str, str, int]] = []
        self.wall, self.dt = wall, dt

    def add(self, rng: Rand, pod: int, level: str, message: str, key: int, at: float | None = None) -> None:
        time = self.wall + rng.random() * self.dt if at is None else at
        self.lines.append((time, pod, level, message, key))


def _line_rng(base: int, i: int) -> Rand:
    return Rand(base ^ ((i + 1) * 0xD1B54A32D192ED03 & 0xFFFFFFFFFFFFFFFF))


def component_lines(ts: TickState, s: int, levels: set[str], bases: list[int]
                    ) -> list[tuple[float, int, str, str, int]]:
    """Every line component s writes in tick `ts` at the given levels: (time, replica slot, level, message, key).
    `bases` are the keyed seeds of its sources this tick; a line's key identifies it for the imperfections."""
    view = ts.view
    p = view.profiles[s]
    out = _Out(ts.wall, ts.dt)
    pods = ts.running(s)
    for source in range(N_SOURCES):
        if not (SOURCE_LEVELS[source] & levels):
            continue
        if p.is_store and source in (ACCESS, BENIGN):
            continue
        first = len(out.lines)
        _WRITERS[source](ts, s, p, pods, bases[source], out)
        # a line's key is unique within its component and tick: the source, then the writer's own number
        out.lines[first:] = [(t, r, lv, msg, (source << 40) | key) for t, r, lv, msg, key in out.lines[first:]]
    return [line for line in out.lines if line[2] in levels]


def _pod(pods: np.ndarray, rng: Rand) -> int:
    return int(pods[rng.next64() % len(pods)])


def _route(ts: TickState, s: int, p: Profile, rng: Rand) -> str:
    view = ts.view
    eps = view.entry_endpoints[s]
    if len(eps):
        weights = [float(ts.requests[e]) for e in eps]
        return view.names.route(int(eps[rng.pick(weights)]))
    if p.protocol == "http":
        return p.operation(rng.randint(0, 3))
    return p.operation(rng.randint(0, 3))


def _access(ts: TickState, s: int, p: Profile, pods: np.ndarray, base: int, out: _Out) -> None:
    if not len(pods) or ts.served[s] <= 0.0:
        return
    rng = Rand(base)
    n = _count(min(ACCESS_CAP, ACCESS_BASE + ts.served[s] * ACCESS_PER_REQUEST), rng)
    own, dep = float(ts.own_error[s]), float(ts.dependency_error[s])
    eps = ts.view.entry_endpoints[s]
    for i in range(n):
        r = _line_rng(base, i)
        if len(eps):    # an entry service: each page fails as its own requests do
            p_ep = int(eps[r.pick([float(ts.requests[e]) for e in eps])])
            route = ts.view.names.route(p_ep)
            bad = float(ts.failed[p_ep] / max(ts.requests[p_ep], TINY))
            u = r.random()
            outcome = "ok" if u >= bad else ("error" if r.random() * (own + dep) < own else "dependency")
        else:
            route = _route(ts, s, p, r)
            u = r.random()
            outcome = "error" if u < own else "dependency" if u < own + dep else "ok"
        seconds = _gamma_draw(ts.rmean[s], ts.rvar[s], 0.02 + 0.96 * r.random())
        peer = _peer_ip(ts, s, r)
        out.add(r, _pod(pods, r), "INFO", tpl.access(p, route, outcome, seconds, peer, ts.wall, r), i)


def _peer_ip(ts: TickState, s: int, rng: Rand) -> str:
    """The address of a pod that calls component s (an ingress address for the entry services)."""
    view = ts.view
    callers = view.callers_of[s]
    if not len(callers):
        return f"10.128.0.{rng.randint(2, 250)}"
    src = int(view.topology.edge_src[int(callers[rng.next64() % len(callers)])])
    reps = view.replicas_of[src]
    return view.pod_ips[int(reps[rng.next64() % len(reps)])]


def _slow(ts: TickState, s: int, p: Profile, pods: np.ndarray, base: int, out: _Out) -> None:
    if not len(pods) or ts.served[s] <= 0.0:
        return
    threshold = SLOW_QUERY if p.is_store else float(ts.view.slow_threshold[s])
    mean, var = float(ts.rmean[s]), float(ts.rvar[s])
    if mean < 0.05 * threshold:        # far below the threshold: nothing is slow (and no tail to compute)
        return
    share = float(qt.gamma_sf(np.float64(mean), np.float64(var), np.float64(threshold)))
    rng = Rand(base)
    n = _count(min(SLOW_CAP, ts.served[s] * share), rng)
    for i in range(n):
        r = _line_rng(base, i)
        z = _normal_ppf(1.0 - share * (0.02 + 0.96 * r.random()))
        seconds = max(threshold * (1.0 + 0.01 * r.random()), float(qt.gamma_quantile(np.float64(mean),
                                                                                       np.float64(var), z)))
        if p.is_store:
            level, text = tpl.slow_query(p, seconds * 1000.0, r)
            if not text:
                return
            out.add(r, _pod(pods, r), "WARN", text, i)
        else:
            out.add(r, _pod(pods, r), "WARN", tpl.slow_request(p, _route(ts, s, p, r), seconds), i)


def _chatter(ts: TickState, s: int, p: Profile, pods: np.ndarray, base: int, out: _Out) -> None:
    if not len(pods):
        return
    rng = Rand(base)
    level = "INFO" if p.is_store else "DEBUG"
    n = _count(CHATTER_RATE * (0.4 if p.is_store else 1.0), rng)
    for i in range(n):
        r = _line_rng(base, i)
        out.add(r, _pod(pods, r), level, tpl.chatter(p, r), i)


def _benign(ts: TickState, s: int, p: Profile, pods: np.ndarray, base: int, out: _Out) -> None:
    if not len(pods):
        return
    rng = Rand(base)
    warn, err = _count(BENIGN_WARN_RATE, rng), _count(BENIGN_ERROR_RATE, rng)
    for i in range(warn + err):
        r = _line_rng(base, i)
        level = "WARN" if i < warn else "ERROR"
        out.add(r, _pod(pods, r), level, tpl.benign(level, r), i)


def _own(ts: TickState, s: int, p: Profile, pods: np.ndarray, base: int, out: _Out) -> None:
    failures = float(ts.causes[s, 0])
    if failures <= 0.0 or not len(pods):
        return
    rng = Rand(base)
    n = _count(min(OWN_CAP, failures), rng)
    disk, kv = float(ts.disk_error[s]), float(ts.kv_error[s])
    code = max(float(ts.error_rate[s]), 1e-6)
    kind = tpl_kind(int(ts.error_kind[s]))
    for i in range(n):
        r = _line_rng(base, i)
        which = r.pick([code, disk, kv])
        if which == 1:
            text = tpl.disk_full(p, r)
        elif which == 2:
            text = ": ".join(tpl.kv_failed(r))
        else:
            method = _route(ts, s, p, r) if len(ts.view.entry_endpoints[s]) else p.method(r.randint(0, 3))
            text = tpl.own_error(p, kind, method, r, ts.wall)[2]
        out.add(r, _pod(pods, r), "ERROR", text, i)


def tpl_kind(index: int) -> str:
    """The `ERROR_KINDS` name of a knob value."""
    return ERROR_KINDS[min(max(index, 0), len(ERROR_KINDS) - 1)]


def callee_answer(ts: TickState, d: int, rng: Rand, depth: int = 0) -> str:
    """The short error a failing component answers its callers with: its own failure, or (wrapped) the failure of
    one of its own calls, followed down at most three hops."""
    view = ts.view
    p = view.profiles[d]
    own, dep = float(ts.own_error[d]), float(ts.dependency_error[d])
    failing = [(e_d, edges) for e_d, edges in view.callees[d]]
    weights = [float((ts.calls_made[edges] * ts.edge_failure[edges]).sum()) for _, edges in failing]
    if depth >= 3 or not failing or sum(weights) <= 0.0 or rng.random() * (own + dep) < own:
        kind = tpl_kind(int(ts.error_kind[d]))
        if ts.kv_error[d] > 0.0 and rng.random() < ts.kv_error[d] / max(ts.kv_error[d] + ts.error_rate[d], TINY):
            return tpl.kv_failed(rng)[1]
        if ts.disk_error[d] > 0.0 and rng.random() < 0.5:
            return tpl.disk_full(p, rng).split("\n")[0]
        return tpl.own_error(p, kind, p.method(0), rng, ts.wall)[1]
    callee, edges = failing[rng.pick(weights)]
    _, message, _, behind = call_message(ts, d, callee, edges, rng, depth + 1)
    return f"failed to call {view.profiles[behind].name}: {message}"


def call_message(ts: TickState, s: int, d: int, edges: np.ndarray, rng: Rand, depth: int = 0, source: str = ""
                 ) -> tuple[str, str, int, int]:
    """(exception type, client library message, cause, callee) of one failed call from s to d, its cause drawn from
    the weights of the edges' failures; the callee is the datastore behind d when d is a cache whose lookup missed
    and whose query failed."""
    view = ts.view
    weights = (ts.call_causes[edges] * (ts.calls_made[edges] * ts.edge_failure[edges] + 1e-12)[:, None]).sum(axis=0)
    cause = rng.pick([float(w) for w in weights])
    if cause == tpl.CALLEE_ERROR and view.profiles[d].kind == "cache" and view.callees[d]:
        # cache-aside: a lookup that missed and whose query failed is the caller's own failed query
        own, dep = float(ts.own_error[d]), float(ts.dependency_error[d])
        if rng.random() * (own + dep) >= own:
            store, misses = view.callees[d][0]
            return call_message(ts, s, store, misses, rng, depth, source)
    e = int(edges[rng.next64() % len(edges)])
    inner = callee_answer(ts, d, rng, depth) if cause == tpl.CALLEE_ERROR else ""
    ctx = tpl.CallContext(view.profiles[s], view.profiles[d], view.service_ips[d], ts.wall + rng.random() * ts.dt,
                          float(ts.cert_not_after[d]), int(ts.pool_size[e]), float(ts.timeout[e]),
                          rng.randint(0, 3), inner, source or view.pod_ips[int(view.replicas_of[s][0])])
    etype, message = tpl.call_failure(cause, ctx, rng)
    return etype, message, cause, d


def _calls(ts: TickState, s: int, p: Profile, pods: np.ndarray, base: int, out: _Out) -> None:
    if not len(pods) or p.is_store:     # datastores, caches and queues do not log their clients' calls
        return
    view = ts.view
    topo = view.topology
    for j, (d, edges) in enumerate(view.callees[s]):
        failed = float((ts.calls_made[edges] * ts.edge_failure[edges]).sum())
        q = ts.attempt_failure[edges]
        retried = float((ts.calls_made[edges] * np.maximum(q - ts.edge_failure[edges], 0.0)).sum())
        if failed <= 0.0 and retried <= 0.0:
            continue
        key = hashed(base, j).item()
        rng = Rand(key)
        required = bool(topo.edge_required[edges].any())
        n_fail, n_retry = _count(min(CALL_CAP, failed), rng), _count(min(RETRY_CAP, retried * 0.1), rng)
        for i in range(n_fail):
            r = _line_rng(key, i)
            pod = _pod(pods, r)
            etype, message, _, callee = call_message(ts, s, d, edges, r, source=view.pod_ips[pod])
            text = tpl.call_log(p, view.profiles[callee], r.randint(0, 3), message)
            out.add(r, pod, "ERROR" if required else "WARN", text, j * 64 + i)
        for i in range(n_retry):
            r = _line_rng(key, 32 + i)
            tries = int(ts.tries[edges].max())
            out.add(r, _pod(pods, r), "WARN", tpl.retried(p, view.profiles[d], r.randint(0, 3), 2, tries),
                    j * 64 + 32 + i)


def _lifecycle(ts: TickState, s: int, p: Profile, pods: np.ndarray, base: int, out: _Out) -> None:
    view, kn, b = ts.view, ts.knobs, ts.view.world
    if ts.k == 0:
        return
    topo = view.topology
    for r_slot in view.replicas_of[s]:
        r_slot = int(r_slot)
        was, now = int(ts.prev_state[r_slot]), int(ts.state[r_slot])
        node_lost = bool(kn.node_down[int(topo.replica_node[r_slot]), b])
        started = ts.launched[r_slot] != ts.prev_launched[r_slot] and now in (STARTING, RUNNING)
        crashed = was in (RUNNING, STARTING) and now == CRASHED and not node_lost
        waiting = was == CRASHED and now == CRASHED and not node_lost
        stopped = was in (RUNNING, STARTING) and now == 0
        if not (started or crashed or waiting or stopped):
            continue
        r = _line_rng(base, r_slot)
        at = ts.wall + r.random() * ts.dt
        if started:
            version = view.rec.versions[int(kn.deploy[s, b])] if view.rec.versions else topo.deploy[s]
            out.add(r, r_slot, "INFO", tpl.startup(p, version, r), r_slot * 8, at=at)
        if crashed:
            leaking = kn.memory_growth[s, b] > 0 and ts.prev_memory_fraction[s] >= OOM_NEAR
            if leaking:
                for i, (level, text) in enumerate(tpl.oom_kill(p, view.pod_names[r_slot],
                                                               float(topo.memory_limit[s]), r)):
                    out.add(r, r_slot, level, text, r_slot * 8 + 1 + i, at=at + 0.001 * i)
            elif kn.crash_loop[s, b]:
                out.add(r, r_slot, "ERROR", tpl.crash_at_start(p, view.consumer_of[s], r), r_slot * 8 + 1, at=at)
                out.add(r, r_slot, "WARN", f"container {p.name} in pod {view.pod_names[r_slot]} terminated: "
                                           f"reason=Error exitCode={2 if p.runtime == 'go' else 1}",
                        r_slot * 8 + 2, at=at + 0.002)
            elif ts.t0 - ts.dt < kn.kill_at[s, b] <= ts.t0 + ts.dt:
                out.add(r, r_slot, "INFO", tpl.shutdown(p), r_slot * 8 + 1, at=at)
            else:
                out.add(r, r_slot, "WARN", f"container {p.name} in pod {view.pod_names[r_slot]} terminated: "
                                           f"reason=Error exitCode=1", r_slot * 8 + 1, at=at)
        if waiting:
            out.add(r, r_slot, "WARN", tpl.back_off(p, view.pod_names[r_slot], int(ts.restarts[s]), r),
                    r_slot * 8 + 5, at=at)
        if stopped:
            out.add(r, r_slot, "INFO", tpl.shutdown(p), r_slot * 8 + 6, at=at)


def _probes(ts: TickState, s: int, p: Profile, pods: np.ndarray, base: int, out: _Out) -> None:
    view = ts.view
    running = ts.running(s, serving=False)
    hung = running[ts.hung[running]]
    for r_slot in hung:
        r = _line_rng(base, int(r_slot))
        out.add(r, int(r_slot), "WARN", tpl.probe_failed(view.pod_ips[int(r_slot)], p.port, r), int(r_slot))
    flap = float(ts.knobs.flap[s, view.world])
    if flap > 0.0 and len(pods):
        rng = Rand(base)
        for i in range(_count(flap * len(pods), rng)):
            r = _line_rng(base, 1000 + i)
            pod = _pod(pods, r)
            out.add(r, pod, "WARN", tpl.probe_failed(view.pod_ips[pod], p.port, r), 1000 + i)


def _server(ts: TickState, s: int, p: Profile, pods: np.ndarray, base: int, out: _Out) -> None:
    """What a component logs about the requests it turns away: TLS handshakes its expired certificate fails, calls
    over its rate limit, clients its datastore refuses, requests dropped while queued."""
    if not len(pods):
        return
    view = ts.view
    rng = Rand(base)
    refused = float(ts.causes[s, 3])
    if ts.cert_expired[s] and refused > 0.0:
        for i in range(_count(min(SERVER_CAP, refused), rng)):
            r = _line_rng(base, i)
            out.add(r, _pod(pods, r), "WARN", tpl.tls_rejected(_peer_ip(ts, s, r), r), i)
    limited = float(ts.rate_limited[s] * ts.offered[s])
    if limited > 0.0:
        for i in range(_count(min(SERVER_CAP, limited), rng)):
            r = _line_rng(base, 100 + i)
            out.add(r, _pod(pods, r), "WARN", tpl.rate_limited(p, r), 100 + i)
    if p.is_store:
        for e in view.callers_of[s]:
            cause = int(ts.refusal[e])
            turned = float(ts.attempts[e] * ts.knobs.blocked[e, view.world])
            if cause in (tpl.UNAUTHORIZED, tpl.TOO_MANY_CLIENTS) and turned > 0.0:
                caller = view.topology.components[int(view.topology.edge_src[e])]
                for i in range(_count(min(SERVER_CAP, turned), rng)):
                    r = _line_rng(base, 200 + 8 * int(e) + i)
                    out.add(r, _pod(pods, r), "WARN",
                            tpl.refused_at_store(p, caller, cause, _peer_ip(ts, s, r), r), 200 + 8 * int(e) + i)
    dropped = float(ts.causes[s, 2]) if ts.backlog[s] > 0 else 0.0
    if dropped > 0.0 and not p.is_store:
        for i in range(_count(min(SERVER_CAP, dropped), rng)):
            r = _line_rng(base, 5000 + i)
            out.add(r, _pod(pods, r), "WARN", tpl.canceled(p, _route(ts, s, p, r)), 5000 + i)


def _gpu(ts: TickState, s: int, p: Profile, pods: np.ndarray, base: int, out: _Out) -> None:
    if p.runtime != "vllm" or not len(pods):
        return
    usage = float(ts.kv_usage[s])
    in_flight = ts.served[s] * ts.rmean[s] / ts.dt / max(len(pods), 1)
    for r_slot in pods:
        r = _line_rng(base, int(r_slot))
        out.add(r, int(r_slot), "INFO", tpl.kv_stats(int(round(in_flight)), int(ts.backlog[s] / max(len(pods), 1)),
                                                     min(usage, 1.0), r), int(r_slot))
    preempted = float(ts.kv_error[s] * ts.served[s])
    if preempted > 0.0:
        rng = Rand(base)
        total = int(ts.kv_error[s] * ts.served[s] * (ts.k + 1))
        for i in range(_count(min(SERVER_CAP, preempted), rng)):
            r = _line_rng(base, 1000 + i)
            out.add(r, _pod(pods, r), "WARN", tpl.kv_preempted(total + i, r), 1000 + i)


def _data(ts: TickState, s: int, p: Profile, pods: np.ndarray, base: int, out: _Out) -> None:
    """A caller's validation catching a few of the wrong answers its callees report as successes."""
    if not len(pods) or p.is_store:
        return
    view = ts.view
    for j, (d, edges) in enumerate(view.callees[s]):
        if ts.wrong[d] <= 0.0:
            continue
        share = ts.wrong[d] / max(ts.served[d], TINY)
        answered = float((ts.calls_made[edges] * (1.0 - ts.edge_failure[edges])).sum())
        key = hashed(base, j).item()
        rng = Rand(key)
        for i in range(_count(min(NOTICED_CAP, answered * share * NOTICED), rng)):
            r = _line_rng(key, i)
            out.add(r, _pod(pods, r), "WARN", tpl.bad_answer(p, view.profiles[d], r.randint(0, 3), r), j * 64 + i)


_WRITERS = {ACCESS: _access, SLOW: _slow, CHATTER: _chatter, BENIGN: _benign, OWN: _own, CALLS: _calls,
            LIFECYCLE: _lifecycle, PROBES: _probes, SERVER: _server, GPU: _gpu, DATA: _data}


# ---- LogQL ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Matcher:
    label: str
    op: str              # = != =~ !~
    value: str
    regex: re.Pattern | None = None

    def matches(self, value: str) -> bool:
        if self.op in ("=", "!="):
            hit = value.upper() == self.value.upper() if self.label == "level" else value == self.value
            return hit if self.op == "=" else not hit
        hit = self.regex.fullmatch(value) is not None
        return hit if self.op == "=~" else not hit


@dataclass(frozen=True)
class LineFilter:
    op: str              # |= != |~ !~
    value: str
    regex: re.Pattern | None = None

    def matches(self, text: str) -> bool:
        if self.op == "|=":
            return self.value in text
        if self.op == "!=":
            return self.value not in text
        hit = self.regex.search(text) is not None
        return hit if self.op == "|~" else not hit


@dataclass(frozen=True)
class LogQuery:
    matchers: tuple[Matcher, ...]
    filters: tuple[LineFilter, ...]


_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_logql(text: str) -> LogQuery:
    """Parse `{label op "value", ...} |= "text" != "text" |~ "re" !~ "re"`; raise LogQueryError naming the bad part."""
    pos = 0

    def fail(what: str) -> LogQueryError:
        found = text[pos:pos + 12]
        return LogQueryError(f"parse error at position {pos + 1}: {what}, found "
                             f"{repr(found) if found else 'end of query'}")

    def skip() -> None:
        nonlocal pos
        while pos < len(text) and text[pos].isspace():
            pos += 1

    def string() -> str:
        nonlocal pos
        skip()
        if pos >= len(text) or text[pos] not in "\"`":
            raise fail("expected a quoted string")
        quote, start = text[pos], pos
        pos += 1
        out = []
        while pos < len(text) and text[pos] != quote:
            if quote == '"' and text[pos] == "\\" and pos + 1 < len(text):
                nxt = text[pos + 1]
                out.append({"n": "\n", "t": "\t", "\\": "\\", '"': '"'}.get(nxt, "\\" + nxt))
                pos += 2
                continue
            out.append(text[pos])
            pos += 1
        if pos >= len(text):
            pos = start
            raise fail("unterminated string")
        pos += 1
        return "".join(out)

    def compile_re(pattern: str, flags: int = 0) -> re.Pattern:
        try:
            return re.compile(pattern, flags)
        except re.error as exc:
            raise LogQueryError(f"invalid regular expression {pattern!r}: {exc}") from None

    skip()
    matchers: list[Matcher] = []
    # Loki wants a selector; line filters alone (selecting every stream) are accepted as a convenience
    if not text.startswith(("|=", "!=", "|~", "!~"), pos):
        if pos >= len(text) or text[pos] != "{":
            raise fail("expected a stream selector starting with '{' (or a line filter)")
        pos += 1
        skip()
        closed = pos < len(text) and text[pos] == "}"
        pos += closed
        while not closed:
            skip()
            m = _LABEL.match(text, pos)
            if not m:
                raise fail("expected a label name")
            label = m.group(0)
            pos = m.end()
            skip()
            op = next((o for o in ("=~", "!~", "!=", "=") if text.startswith(o, pos)), None)
            if op is None:
                raise fail(f"expected '=', '!=', '=~' or '!~' after label '{label}'")
            pos += len(op)
            value = string()
            regex = compile_re(value, re.IGNORECASE if label == "level" else 0) if op in ("=~", "!~") else None
            matchers.append(Matcher(label, op, value, regex))
            skip()
            if pos < len(text) and text[pos] in ",}":
                closed = text[pos] == "}"
                pos += 1
                continue
            raise fail("expected ',' or '}' in the stream selector")
    filters = []
    while True:
        skip()
        if pos >= len(text):
            break
        op = next((o for o in ("|=", "!=", "|~", "!~") if text.startswith(o, pos)), None)
        if op is None:
            raise fail("expected a line filter ('|=', '!=', '|~' or '!~'); other pipeline stages are not supported")
        pos += len(op)
        value = string()
        filters.append(LineFilter(op, value, compile_re(value) if op in ("|~", "!~") else None))
    return LogQuery(tuple(matchers), tuple(filters))


# ---- the query ------------------------------------------------------------------------------------------------------

def _skews(view: WorldView, skew: float) -> np.ndarray:
    """[S] each component's clock offset, fixed per world: uniform in [-skew, +skew]."""
    if skew <= 0.0:
        return np.zeros(view.S)
    keys = np.array([name_key(n) for n in view.topology.components], dtype=np.uint64)
    return (2.0 * uniform(view.rec.seed, SKEW, view.gworld, keys) - 1.0) * skew


def _levels_wanted(level: str | Iterable[str] | None, matchers: tuple[Matcher, ...]) -> set[str]:
    wanted = set(LEVELS)
    if level is not None:
        asked = {level.upper()} if isinstance(level, str) else {str(x).upper() for x in level}
        wanted &= {"WARN" if x == "WARNING" else x for x in asked}
    for m in matchers:
        if m.label == "level":
            wanted = {lv for lv in wanted if m.matches(lv)}
    return wanted


def _line_labels(view: WorldView, s: int, r: int, level: str) -> dict[str, str]:
    topo = view.topology
    node = int(topo.replica_node[r])
    name = topo.components[s]
    return {"service": name, "app": name, "container": name, "pod": view.pod_names[r], "level": level,
            "namespace": view.names.namespace, "node": topo.nodes[node], "zone": topo.zones[int(topo.node_zone[node])]}


def query_logs(rec: Recording, world: int, service: str | None = None, level: str | Iterable[str] | None = None,
               start: float | None = None, end: float | None = None, query: str | None = None, limit: int = 500,
               imperfections: Imperfections | None = None, direction: str = "backward") -> list[LogLine]:
    """The log lines of one world matching a query, newest first (`direction="forward"`: oldest first), at most
    `limit`. `service`/`level` narrow like selector matchers; `start`/`end` are Unix seconds (both inclusive);
    `query` is LogQL: a stream selector and line filters (see `parse_logql`)."""
    if direction not in ("backward", "forward"):
        raise LogQueryError(f"direction must be 'backward' or 'forward', got {direction!r}")
    parsed = parse_logql(query) if query is not None and query.strip() else LogQuery((), ())
    if limit <= 0 or rec.ticks == 0:
        return []
    imp = imperfections or Imperfections()
    view = WorldView(rec, world)
    levels = _levels_wanted(level, parsed.matchers)
    service_labels = ("service", "app", "container")
    services = [s for s, name in enumerate(view.topology.components)
                if (service is None or name == service)
                and all(m.matches(name) for m in parsed.matchers if m.label in service_labels)]
    if not levels or not services:
        return []
    skews = _skews(view, imp.clock_skew)
    worst = float(np.abs(skews).max()) if len(skews) else 0.0
    lo = -math.inf if start is None else float(start)
    hi = math.inf if end is None else float(end)
    visible = rec.start + rec.ticks * rec.dt - imp.ingestion_delay        # newer lines are not ingested yet
    first = max(int(math.floor((lo - worst - rec.start) / rec.dt)), 0) if math.isfinite(lo) else 0
    last = min(int(math.floor((min(hi + worst, visible) - rec.start) / rec.dt)), rec.ticks - 1)
    if last < first:
        return []
    other = [m for m in parsed.matchers if m.label not in service_labels and m.label != "level"]
    found: list[tuple[float, int, LogLine]] = []
    order = range(last, first - 1, -1) if direction == "backward" else range(first, last + 1)
    svc = np.array(services, dtype=np.int64)
    src = np.arange(N_SOURCES)
    for k in order:
        if len(found) >= limit:
            cut = sorted(found, key=lambda x: (x[0], x[1]), reverse=direction == "backward")[limit - 1][0]
            if direction == "backward" and rec.start + (k + 1) * rec.dt + worst < cut:
                break
            if direction == "forward" and rec.start + k * rec.dt - worst > cut:
                break
        ts = view.tick(k)
        bases = hashed(rec.seed, LOGS, view.gworld, k, svc[:, None], src[None, :]).tolist()
        for j, s in enumerate(services):
            for time, r, lv, message, key in component_lines(ts, s, levels, bases[j]):
                if time > visible:
                    continue
                if imp.log_drop or imp.log_sample < 1.0:
                    # the line's own coins, apart from the draws that wrote it
                    keep = Rand(bases[j][0] ^ (key * 0x9E3779B97F4A7C15 + 0x5851F42D4C957F2D) & 0xFFFFFFFFFFFFFFFF)
                    if keep.random() < imp.log_drop:
                        continue
                    if lv in ("INFO", "DEBUG") and keep.random() >= imp.log_sample:
                        continue
                shown = time + float(skews[s])
                if not lo <= shown <= hi:
                    continue
                if other:
                    labels = _line_labels(view, s, r, lv)
                    if not all(m.matches(labels.get(m.label, "")) for m in other):
                        continue
                line = LogLine(round(shown, 6), view.topology.components[s], view.pod_names[r], lv, message)
                if not all(f.matches(message) for f in parsed.filters):   # filters read the line's text
                    continue
                found.append((shown, len(found), line))
    found.sort(key=lambda x: (x[0], x[1]), reverse=direction == "backward")
    return [line for _, _, line in found[:limit]]
