"""The trace sensor: distributed traces of requests at the entry endpoints, produced lazily when queried.

A request is traced when head sampling keeps it (`Imperfections.trace_sample`, 10% by default): request `i` of
endpoint `p` in tick `k` is kept when a keyed coin flip on (seed, world, k, p, i) says so, and everything about its
trace is drawn from keys of (seed, world, k, p, i, span position), so the same world gives the same traces whatever
was queried before. Its spans follow the real call graph from the endpoint's component: the endpoint's own calls
(`edge_endpoint`) or the component's dependencies, each call made `edge_calls` times (the fraction as a Bernoulli
extra call), parallel calls started together, sequential ones one after another (a handler stops at the first
required call that fails), retries as repeated client spans after their backoff. Durations are drawn around the
truth of the request's tick (each component's own time: its response time less its calls; the network latency of
each edge), and failures from the truth's failure shares of that tick (refusals and their kind, an open breaker, a
callee without replicas or with an expired certificate, rate limits, exhausted connection pools, callees that
hang, answers later than the timeout, errors in the callee's own code).

Instrumentation follows OpenTelemetry: a SERVER span per request a service handles, a CLIENT span per call attempt
(datastores and caches do not trace themselves: their calls are the caller's CLIENT spans), PRODUCER spans for
publishes and a CONSUMER span, child of the publish, for the consumer's processing. A cache lookup that misses is
followed by the caller's own query to the datastore behind it (cache-aside). Attributes use the semantic
conventions (`rpc.*`, `http.*`, `db.*`, `messaging.*`, `server.address`, `peer.service`, `error.type`).

Where an error comes from. The span where an error *originates* has status ERROR, its own status message (what the
failing code or client library said: `dial tcp: lookup shippingservice on 10.96.0.10:53: no such host` on the
caller's CLIENT span for a refused call, the exception on the SERVER span whose code threw) and an `exception`
event (`exception.type`, `exception.message`, and `exception.stacktrace` where the runtime prints one). Spans that
only pass a failure on have status ERROR with the message `downstream call failed` and no exception event. With
retries every failed attempt is an origin of its own. A request refused before its entry service sees it (no replica
in rotation) leaves no trace; nor does one its entry service never answers.

Conventions: times are Unix seconds; results are newest first by the root span's start; `start`/`end` select
requests by their arrival; `min_duration` compares the root span's duration (the request's latency: a consumer's
processing of a published message is asynchronous and may end after the root); `service` matches any span's
service; `operation` matches any span's name. Clock skew shifts each service's span times by its own offset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from opsworld.engine import queueing as qt
from opsworld.engine.topology import CONSUME, MISS, PUBLISH
from opsworld.observe.imperfection import Imperfections
from opsworld.observe.logs import templates as tpl
from opsworld.observe.logs.lines import tpl_kind
from opsworld.observe.logs.templates import Profile, Rand
from opsworld.observe.logs.view import TickState, WorldView, clock_skews
from opsworld.observe.noise import hashed, name_key, uniform
from opsworld.observe.recording import Recording


TRACES, SAMPLE = 21, 22           # what a keyed draw is about
OK, ORIGIN, PROPAGATE = 0, 1, 2   # a span's error status: fine, where an error began, passing one on
DOWNSTREAM = "downstream call failed"
SERVER, CLIENT, DB, PRODUCER, CONSUMER = range(5)
SPAN_KIND = {SERVER: "SERVER", CLIENT: "CLIENT", DB: "CLIENT", PRODUCER: "PRODUCER", CONSUMER: "CONSUMER"}
FAST_CAUSES = 10                  # the causes a caller sees at once (refusals, breaker, callee turning it away)
MAX_NODES = 20000                 # a bound on one endpoint's call tree (retries multiply it)
CHUNK_TICKS = 64                  # most ticks simulated together (newest first, starting small)
CELLS = 4_000_000                 # most (span position, request) cells simulated together
PRE_WORK = 0.3                    # share of a handler's own time spent before its first call
MIN_SHARE = 0.05                  # no draw of a duration is shorter than this share of its mean
TINY = 1e-12
_M64 = (1 << 64) - 1
DRAWS = 10                        # uniforms drawn per span position (see `_Run.draws`)
_SPAN_SALT, _TEXT_SALT = 0x5DEECE66D1F0A3C7, 0x2545F4914F6CDD1D    # span ids and error texts, apart from draws
_DRAW_SALTS = np.array([(d + 1) * 0x9E3779B97F4A7C15 & _M64 for d in range(DRAWS)], dtype=np.uint64)


# ---- spans and traces ------------------------------------------------------------------------------------------------

@dataclass
class Span:
    """One span, as OpenTelemetry records it."""

    trace_id: str                  # 32 hex digits
    span_id: str                   # 16 hex digits
    parent_id: str | None
    service: str
    operation: str
    start: float                   # Unix seconds
    duration: float                # seconds
    status: str                    # OK or ERROR
    status_message: str
    attributes: dict = field(default_factory=dict)
    events: list = field(default_factory=list)     # [{"name", "time", "attributes"}]
    kind: str = "INTERNAL"         # SERVER, CLIENT, PRODUCER, CONSUMER

    @property
    def end(self) -> float:
        return self.start + self.duration

    @property
    def is_error(self) -> bool:
        return self.status == "ERROR"


@dataclass
class Trace:
    """The spans of one request, parents before children."""

    trace_id: str
    spans: list[Span]

    @property
    def root(self) -> Span:
        return next(s for s in self.spans if s.parent_id is None)

    @property
    def duration(self) -> float:
        """The request's latency: the root span's duration."""
        return self.root.duration

    @property
    def has_error(self) -> bool:
        return any(s.is_error for s in self.spans)

    def children(self, span: Span) -> list[Span]:
        return [s for s in self.spans if s.parent_id == span.span_id]

    def render(self) -> str:
        """A trace viewer's text view: one line per span, indented under its parent, with its offset from the
        start of the trace, its duration and `!` on errors."""
        root = self.root
        lines = [f"trace {self.trace_id}  {tpl.iso(root.start)}  {_ms(self.duration)}  "
                 f"{sum(s.is_error for s in self.spans)} error span(s) of {len(self.spans)}"]

        def walk(span: Span, depth: int) -> None:
            mark = "!" if span.is_error else " "
            note = f"  [{span.status_message}]" if span.is_error else ""
            lines.append(f"{mark} {'  ' * depth}{span.service}: {span.operation} ({span.kind.lower()})  "
                         f"+{_ms(span.start - root.start)}  {_ms(span.duration)}{note}")
            for child in sorted(self.children(span), key=lambda s: s.start):
                walk(child, depth + 1)

        walk(root, 0)
        return "\n".join(lines)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000.0:.1f}ms" if seconds < 10.0 else f"{seconds:.2f}s"


# ---- the call tree of an endpoint -----------------------------------------------------------------------------------

@dataclass
class _Group:
    """One call slot on one edge: its attempts (node ids), and the query that follows a cache lookup that missed."""

    edge: int
    slot: int
    floor: int                     # whole calls per request on the edge (slots below always happen)
    parallel: bool
    required: bool
    attempts: list[int]
    miss: int = -1                 # node id of the query after a miss (cache lookups)
    miss_edge: int = -1


@dataclass
class _Node:
    key: int                       # structural key: the draws of this span position
    kind: int
    comp: int                      # the service whose span it is
    peer: int                      # the callee (client kinds), -1 for servers
    edge: int
    slot: int
    attempt: int
    parent: int
    name: str
    groups: list[_Group] = field(default_factory=list)     # servers: the calls they make, in order
    child: int = -1                # attempts: the callee's server span, or the consumer's span


def _finalise(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser over uint64 arrays (wrapping multiplication)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _mix(*parts: int) -> int:
    h = 0x243F6A8885A308D3
    for part in parts:
        h = Rand(h ^ (int(part) & _M64)).next64()
    return h


class _Tree:
    """Every span position a request at one endpoint can produce, numbered depth-first."""

    def __init__(self, view: WorldView, endpoint: int, max_tries: np.ndarray) -> None:
        self.view, self.endpoint = view, endpoint
        topo = view.topology
        self.nodes: list[_Node] = []
        root_comp = int(topo.endpoint_component[endpoint])
        own_calls = bool(topo.endpoint_own_calls[endpoint])
        edges = [e for e in range(*topo.out_slices[root_comp].indices(view.E))
                 if (topo.edge_endpoint[e] == endpoint if own_calls else topo.edge_endpoint[e] < 0)]
        self.root = self._server(root_comp, -1, -1, view.names.route(endpoint), edges, _mix(endpoint, 1), max_tries,
                                 SERVER)
        self.kind = np.array([n.kind for n in self.nodes])
        self.comp = np.array([n.comp for n in self.nodes])
        self.names = [n.name for n in self.nodes]
        self.keys = np.array([n.key for n in self.nodes], dtype=np.uint64)

    def _add(self, node: _Node) -> int:
        if len(self.nodes) >= MAX_NODES:
            raise RuntimeError("call tree too large to trace")
        self.nodes.append(node)
        return len(self.nodes) - 1

    def _server(self, comp: int, parent: int, edge: int, name: str, edges: list[int], key: int,
                max_tries: np.ndarray, kind: int) -> int:
        topo, view = self.view.topology, self.view
        me = self._add(_Node(key, kind, comp, -1, edge, 0, 0, parent, name))
        groups = []
        ordered = [e for e in edges if topo.edge_parallel[e]] + [e for e in edges if not topo.edge_parallel[e]]
        for e in ordered:
            if topo.edge_kind[e] == CONSUME:
                continue
            calls = float(topo.edge_calls[e])
            dst = int(topo.edge_dst[e])
            for j in range(int(math.ceil(calls - 1e-9))):
                group = _Group(e, j, int(math.floor(calls + 1e-9)), bool(topo.edge_parallel[e]),
                               bool(topo.edge_required[e]), [])
                for a in range(int(max_tries[e])):
                    group.attempts.append(self._attempt(me, comp, e, dst, j, a, _mix(key, e, j, a), max_tries))
                callee = view.profiles[dst]
                if callee.kind == "cache":
                    misses = [m for m in range(*topo.out_slices[dst].indices(view.E)) if topo.edge_kind[m] == MISS]
                    if misses:
                        m = misses[0]
                        store = int(topo.edge_dst[m])
                        group.miss, group.miss_edge = self._add(_Node(
                            _mix(key, e, j, 999), DB, comp, store, m, j, 0, me,
                            view.profiles[store].operation(j))), m
                groups.append(group)
        self.nodes[me].groups = groups
        return me

    def _attempt(self, parent: int, comp: int, e: int, dst: int, slot: int, attempt: int, key: int,
                 max_tries: np.ndarray) -> int:
        topo, view = self.view.topology, self.view
        callee = view.profiles[dst]
        if topo.edge_kind[e] == PUBLISH:
            node = self._add(_Node(key, PRODUCER, comp, dst, e, slot, attempt, parent, f"publish {callee.name}"))
            consumer = next((int(topo.edge_dst[c]) for c in range(*topo.out_slices[dst].indices(view.E))
                             if topo.edge_kind[c] == CONSUME), -1)
            if consumer >= 0:
                edges = [c for c in range(*topo.out_slices[consumer].indices(view.E)) if topo.edge_endpoint[c] < 0]
                self.nodes[node].child = self._server(consumer, node, e, f"process {callee.name}", edges,
                                                      _mix(key, 7), max_tries, CONSUMER)
            return node
        if callee.is_store:
            return self._add(_Node(key, DB, comp, dst, e, slot, attempt, parent, callee.operation(slot)))
        node = self._add(_Node(key, CLIENT, comp, dst, e, slot, attempt, parent, callee.operation(slot)))
        edges = [c for c in range(*topo.out_slices[dst].indices(view.E)) if topo.edge_endpoint[c] < 0]
        self.nodes[node].child = self._server(dst, node, e, callee.operation(slot), edges, _mix(key, 5), max_tries,
                                              SERVER)
        return node


# ---- per-tick parameters of a chunk of ticks ------------------------------------------------------------------------

class _Params:
    """What the simulation reads for ticks [k0, k1]: per component [T, S] and per edge [T, E] (and causes)."""

    def __init__(self, view: WorldView, ticks: list[int]) -> None:
        states = [view.tick(k) for k in ticks]
        topo = view.topology
        self.states = states
        self.wall = np.array([ts.wall for ts in states])
        stack = lambda f: np.stack([f(ts) for ts in states])      # noqa: E731
        self.rmean, self.rvar = stack(lambda t: t.rmean), stack(lambda t: t.rvar)
        self.own = stack(lambda t: t.own_error)
        self.unavailable, self.hang = stack(lambda t: t.unavailable), stack(lambda t: t.hang)
        self.self_mean, self.self_var = (np.stack(x) for x in zip(*(_self_time(ts) for ts in states)))
        causes = stack(lambda t: t.call_causes)                                      # [T, E, C]
        self.fast = causes[:, :, :FAST_CAUSES]
        self.fast_total = self.fast.sum(axis=2)
        self.pool = stack(lambda t: t.pool_timeout)
        self.timeout, self.net = stack(lambda t: t.timeout), stack(lambda t: t.network)
        self.tries, self.backoff = stack(lambda t: t.tries), stack(lambda t: t.backoff)
        miss = topo.edge_kind == MISS
        calls = np.broadcast_to(topo.edge_calls.astype(np.float64), (len(ticks), view.E)).copy()
        if miss.any():   # the share of lookups that miss, as the truth counted the calls through
            served = stack(lambda t: t.served)
            calls[:, miss] = np.clip(stack(lambda t: t.attempts)[:, miss] / np.maximum(served[:, topo.edge_src[miss]],
                                                                                      TINY), 0.0, 1.0)
        self.calls = calls
        # seconds a published message waits in its queue before the consumer takes it
        wait = np.zeros((len(ticks), view.S))
        for e in np.flatnonzero(topo.edge_kind == CONSUME):
            q, c = int(topo.edge_src[e]), int(topo.edge_dst[e])
            rate = stack(lambda t: t.served[c] / t.dt)
            wait[:, q] = stack(lambda t: t.queue_depth[q]) / np.maximum(rate, TINY)
        self.queue_wait = np.minimum(wait, 3600.0)


def _self_time(ts: TickState) -> tuple[np.ndarray, np.ndarray]:
    """[S] mean and variance of the time a request spends in each component outside its calls: the response time
    less the expected time of its calls (for an entry service, the mix over its endpoints), at least half its work."""
    view = ts.view
    topo = view.topology
    d = topo.edge_dst
    waited = topo.edge_kind != CONSUME
    calls = topo.edge_calls.astype(np.float64).copy()
    miss = topo.edge_kind == MISS
    calls[miss] = np.clip(ts.attempts[miss] / np.maximum(ts.served[topo.edge_src[miss]], TINY), 0.0, 1.0)
    cost = calls * (ts.rmean[d] + ts.network) * waited
    cvar = calls * ts.rvar[d] * waited
    generic = topo.edge_endpoint < 0
    spent = np.zeros(view.S)
    spent_var = np.zeros(view.S)
    seq = generic & ~topo.edge_parallel
    np.add.at(spent, topo.edge_src[seq], cost[seq])
    np.add.at(spent_var, topo.edge_src[seq], cvar[seq])
    par = generic & topo.edge_parallel
    longest = np.zeros(view.S)
    np.maximum.at(longest, topo.edge_src[par], cost[par])
    spent += longest
    for s in range(view.S):     # entry services whose pages make their own calls: the mix over their requests
        eps = view.entry_endpoints[s]
        own = [p for p in eps if topo.endpoint_own_calls[p]]
        if not own:
            continue
        total = max(float(ts.requests[eps].sum()), TINY)
        mix = spent[s] * float(sum(ts.requests[p] for p in eps if not topo.endpoint_own_calls[p])) / total
        for p in own:
            mine = topo.edge_endpoint == p
            p_seq, p_par = mine & ~topo.edge_parallel, mine & topo.edge_parallel
            spent_p = cost[p_seq].sum() + (cost[p_par].max() if p_par.any() else 0.0)
            mix += spent_p * float(ts.requests[p]) / total
        spent[s] = mix
    floor = 0.5 * topo.service_mean
    mean = np.maximum(ts.rmean - spent, floor)
    var = np.clip(ts.rvar - spent_var, (topo.service_cv * mean) ** 2, (2.0 * mean) ** 2)    # cv between the
    return mean, var                                                                           # work's and 2


# ---- simulating a batch of requests ---------------------------------------------------------------------------------

class _Run:
    """The traces of a set of requests at one endpoint (rows), simulated span position by span position with numpy
    over the rows that reach each position. Results are [nodes, rows] arrays."""

    def __init__(self, tree: _Tree, params: _Params, tick_of: np.ndarray, keys: np.ndarray, start: np.ndarray,
                 horizon: float) -> None:
        self.tree, self.p = tree, params
        self.tick_of, self.keys = tick_of, keys
        self.horizon = horizon                    # spans starting after the recording's end have not happened yet
        M, N = len(tree.nodes), len(keys)
        self.exists = np.zeros((M, N), dtype=bool)
        self.start = np.zeros((M, N))
        self.end = np.zeros((M, N))
        self.status = np.zeros((M, N), dtype=np.int8)
        self.cause = np.full((M, N), -1, dtype=np.int8)
        rows = np.arange(N)
        self.served = np.ones(N, dtype=bool)
        root = tree.nodes[tree.root]
        # a request the entry service turns away or never answers leaves no trace
        c = root.comp
        lost = self.u(tree.root, 9, rows) < self.p.unavailable[tick_of, c] + self.p.hang[tick_of, c]
        self.served = ~lost
        keep = rows[self.served]
        end, failed = self.server(tree.root, keep, start[keep])
        timeout = float(tree.view.topology.endpoint_timeout[tree.endpoint])
        late = end - start[keep] > timeout
        if late.any():    # the entry service's deadline: the request fails with a timeout where it began
            r = keep[late]
            self.end[tree.root, r] = start[keep][late] + timeout
            self.status[tree.root, r] = ORIGIN
            self.cause[tree.root, r] = tpl.DEADLINE

    def draws(self, node: int, rows: np.ndarray) -> np.ndarray:
        """[DRAWS, rows] uniforms keyed by (request, span position, draw): one SplitMix round over the request's
        key and the position's (both hashes already), one more per draw; made together for speed."""
        with np.errstate(over="ignore"):
            base = _finalise(self.keys[rows] ^ self.tree.keys[node])
            bits = _finalise(base[None, :] + _DRAW_SALTS[:, None])
        return (bits >> np.uint64(11)).astype(np.float64) * (1.0 / 2.0 ** 53)

    def u(self, node: int, draw: int, rows: np.ndarray) -> np.ndarray:
        return self.draws(node, rows)[draw]

    @staticmethod
    def normal(u: np.ndarray) -> np.ndarray:
        """Standard normals from the draws' rows 1 and 2 (Box-Muller)."""
        return np.sqrt(-2.0 * np.log(np.maximum(u[1], 1e-300))) * np.cos(2.0 * math.pi * u[2])

    def record(self, node: int, rows: np.ndarray, start: np.ndarray, end: np.ndarray, status: np.ndarray,
               cause: np.ndarray | None = None) -> None:
        self.exists[node, rows] = start <= self.horizon
        self.start[node, rows], self.end[node, rows] = start, end
        self.status[node, rows] = status
        if cause is not None:
            self.cause[node, rows] = cause

    # -- a service handling a request -----------------------------------------------------------------------------
    def server(self, node: int, rows: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = self.tree.nodes[node]
        tk, c = self.tick_of[rows], n.comp
        u = self.draws(node, rows)
        mean = self.p.self_mean[tk, c]
        own = np.maximum(qt.gamma_quantile(mean, self.p.self_var[tk, c], self.normal(u)), MIN_SHARE * mean)
        fails_own = u[3] < self.p.own[tk, c]
        cursor = t + PRE_WORK * own
        alive = np.ones(len(rows), dtype=bool)
        parallel = [g for g in n.groups if g.parallel]
        if parallel:
            finish, broken = cursor.copy(), np.zeros(len(rows), dtype=bool)
            for g in parallel:
                made = self.slot_made(g, rows)
                if made.any():
                    end, failed = self.call(g, rows[made], cursor[made])
                    finish[made] = np.maximum(finish[made], end)
                    if g.required:
                        broken[made] |= failed
            cursor, alive = finish, ~broken
        for g in n.groups:
            if g.parallel:
                continue
            made = alive & self.slot_made(g, rows)
            if made.any():
                end, failed = self.call(g, rows[made], cursor[made])
                cursor[made] = end
                if g.required:
                    alive[made] &= ~failed
        end = np.where(alive, cursor + (1.0 - PRE_WORK) * own, cursor)    # a failed call ends the handler
        status = np.where(~alive, PROPAGATE, np.where(fails_own, ORIGIN, OK)).astype(np.int8)
        self.record(node, rows, t, end, status)
        return end, status != OK

    def slot_made(self, g: _Group, rows: np.ndarray) -> np.ndarray:
        """Rows whose request makes this call slot: the whole calls always, the fractional one by chance."""
        if g.slot < g.floor:
            return np.ones(len(rows), dtype=bool)
        frac = self.p.calls[self.tick_of[rows], g.edge] - g.slot
        return self.u(g.attempts[0], 8, rows) < frac

    # -- a call, with its retries ----------------------------------------------------------------------------------
    def call(self, g: _Group, rows: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tk = self.tick_of[rows]
        tries = self.p.tries[tk, g.edge]
        end, failed = t.copy(), np.ones(len(rows), dtype=bool)
        trying = np.arange(len(rows))
        cursor = t.copy()
        for a, node in enumerate(g.attempts):
            trying = trying[tries[trying] > a]
            if not len(trying):
                break
            if a:
                cursor[trying] += self.p.backoff[tk[trying], g.edge] * 2.0 ** (a - 1)
            e_a, f_a = self.attempt(node, rows[trying], cursor[trying])
            end[trying], failed[trying], cursor[trying] = e_a, f_a, e_a
            trying = trying[f_a]
        if g.miss >= 0:     # the lookup answered; where it missed, the caller queries the datastore itself
            found = ~failed
            frac = self.p.calls[tk, g.miss_edge]
            missed = found & (self.u(g.miss, 8, rows) < frac)
            if missed.any():
                e_m, f_m = self.attempt(g.miss, rows[missed], end[missed])
                end[missed], failed[missed] = e_m, f_m
        return end, failed

    def attempt(self, node: int, rows: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = self.tree.nodes[node]
        p, e, d = self.p, n.edge, n.peer
        tk = self.tick_of[rows]
        net, timeout = p.net[tk, e], p.timeout[tk, e]
        k = len(rows)
        u = self.draws(node, rows)
        end = np.zeros(k)
        status = np.zeros(k, dtype=np.int8)
        cause = np.full(k, -1, dtype=np.int8)
        # refused at once: the kind of refusal, an open breaker, a callee that turns the call away
        fast = u[0] < p.fast_total[tk, e]
        if fast.any():
            f = np.flatnonzero(fast)
            weights = np.cumsum(p.fast[tk[f], e], axis=1)
            pick = u[4, f] * weights[:, -1]
            which = (weights <= pick[:, None]).sum(axis=1).clip(0, FAST_CAUSES - 1)
            took = np.select([which == tpl.IO_TIMEOUT, which == tpl.NO_SUCH_HOST, which == tpl.BREAKER_OPEN,
                              np.isin(which, (tpl.UNAUTHORIZED, tpl.TOO_MANY_CLIENTS, tpl.CERT_EXPIRED))],
                             [timeout[f], 0.001 + 0.004 * u[5, f], np.full(len(f), 1e-4),
                              3.0 * net[f] + 0.002], default=net[f] + 1e-4)
            end[f], status[f], cause[f] = t[f] + took, ORIGIN, which
        rest = np.flatnonzero(~fast)
        if len(rest):
            r_t, r_tk = t[rest], tk[rest]
            pool = u[6, rest] < p.pool[r_tk, e]
            hang = ~pool & (u[7, rest] < p.hang[r_tk, d])
            stuck = pool | hang
            end[rest[stuck]] = r_t[stuck] + timeout[rest[stuck]]
            status[rest[stuck]] = ORIGIN
            cause[rest[stuck]] = np.where(pool[stuck], tpl.POOL_EXHAUSTED, tpl.DEADLINE)
            go = np.flatnonzero(~stuck)
            if len(go):
                rr, rt = rest[go], r_t[go]
                if n.kind == CLIENT:
                    s_end, s_failed = self.server(n.child, rows[rr], rt + 0.5 * net[rr])
                    took = s_end + 0.5 * net[rr] - rt
                    late = took > timeout[rr]
                    end[rr] = rt + np.minimum(took, timeout[rr])
                    status[rr] = np.where(late, ORIGIN, np.where(s_failed, PROPAGATE, OK))
                    cause[rr] = np.where(late, tpl.DEADLINE, -1)
                else:   # a datastore, cache or queue: the client span covers the whole exchange
                    mean = p.rmean[tk[rr], d]
                    dur = net[rr] + np.maximum(qt.gamma_quantile(mean, np.minimum(p.rvar[tk[rr], d], (2.0 * mean) ** 2),
                                                                 self.normal(u[:, rr])), MIN_SHARE * mean)
                    late = dur > timeout[rr]
                    errs = ~late & (u[3, rr] < p.own[tk[rr], d])
                    end[rr] = rt + np.minimum(dur, timeout[rr])
                    status[rr] = np.where(late | errs, ORIGIN, OK)
                    cause[rr] = np.where(late, tpl.DEADLINE, np.where(errs, tpl.CALLEE_ERROR, -1))
                    if n.kind == PRODUCER and n.child >= 0:   # the consumer takes the message later, on its own
                        ok = np.flatnonzero(status[rr] == OK)
                        if len(ok):
                            q_wait = p.queue_wait[tk[rr[ok]], d] * (0.5 + u[9, rr[ok]])
                            self.server(n.child, rows[rr[ok]], end[rr[ok]] + q_wait + 0.0005)
        self.record(node, rows, t, end, status, cause)
        return end, status != OK


# ---- turning simulated rows into spans -----------------------------------------------------------------------------

_GRPC_CODES = {tpl.REFUSED: 14, tpl.NO_SUCH_HOST: 14, tpl.IO_TIMEOUT: 14, tpl.UNAUTHORIZED: 16,
               tpl.TOO_MANY_CLIENTS: 14, tpl.CERT_EXPIRED: 14, tpl.RATE_LIMITED: 8, tpl.NO_ENDPOINTS: 14,
               tpl.QUEUE_FULL: 14, tpl.BREAKER_OPEN: 14, tpl.DEADLINE: 4, tpl.POOL_EXHAUSTED: 4, tpl.CALLEE_ERROR: 2}
_HTTP_CODES = {tpl.RATE_LIMITED: 429, tpl.UNAUTHORIZED: 401, tpl.DEADLINE: 504}


class _Builder:
    """Spans of chosen rows of a run."""

    def __init__(self, run: _Run, params: _Params, skews: np.ndarray) -> None:
        self.run, self.p, self.skews = run, params, skews
        self.tree = run.tree
        self.view = run.tree.view
        self._attrs: dict[tuple[int, int, int], dict] = {}

    def trace(self, row: int) -> Trace:
        run, tree = self.run, self.tree
        rowkey = int(run.keys[row])
        trace_id = f"{_mix(rowkey, 1):016x}{_mix(rowkey, 2):016x}"
        ts = self.p.states[int(run.tick_of[row])]
        present = np.flatnonzero(run.exists[:, row])
        with np.errstate(over="ignore"):
            span_ids = _finalise(run.keys[row] ^ tree.keys[present] ^ np.uint64(_SPAN_SALT)).tolist()
        ids: dict[int, str] = {}
        spans = []
        for m, sid in zip(present.tolist(), span_ids):
            node = tree.nodes[m]
            parent = ids.get(node.parent) if node.parent >= 0 else None
            if node.parent >= 0 and parent is None:
                continue        # its parent has not happened yet (a message still queued)
            ids[m] = f"{sid:016x}"
            spans.append(self.span(m, node, row, rowkey, trace_id, ids[m], parent, ts))
        return Trace(trace_id, spans)

    def span(self, m: int, node: _Node, row: int, rowkey: int, trace_id: str, span_id: str, parent: str | None,
             ts: TickState) -> Span:
        run, view = self.run, self.view
        start, end = float(run.start[m, row]), float(run.end[m, row])
        skew = float(self.skews[node.comp])
        status, cause = int(run.status[m, row]), int(run.cause[m, row])
        me, peer = view.profiles[node.comp], view.profiles[node.peer] if node.peer >= 0 else None
        known = self._attrs.get((m, status, cause))
        if known is None:       # the same span position with the same outcome has the same attributes
            known = self._attrs[(m, status, cause)] = self.attributes(node, me, peer, status, cause)
        attrs = dict(known)
        events: list[dict] = []
        message = ""
        if status == PROPAGATE:
            message = DOWNSTREAM
        elif status == ORIGIN:
            rng = Rand(rowkey ^ int(self.tree.keys[m]) ^ _TEXT_SALT)
            etype, message, stack = self.origin(node, me, peer, cause, ts, rng, end)
            event = {"exception.type": etype, "exception.message": message}
            if stack and stack != message:
                event["exception.stacktrace"] = stack
            events.append({"name": "exception", "time": end + skew, "attributes": event})
            attrs["error.type"] = etype
        if status != OK and "error.type" not in attrs:
            attrs["error.type"] = "500" if me.protocol == "http" else "2"
        return Span(trace_id, span_id, parent, me.name, node.name, start + skew, max(end - start, 0.0),
                    "ERROR" if status != OK else "OK", message, attrs, events, SPAN_KIND[node.kind])

    def origin(self, node: _Node, me: Profile, peer: Profile | None, cause: int, ts: TickState, rng: Rand,
               end: float) -> tuple[str, str, str]:
        """(exception type, message, full text) of the error that begins at this span."""
        view = self.view
        if node.kind in (SERVER, CONSUMER):
            if cause == tpl.DEADLINE:
                return "context.DeadlineExceeded", "context deadline exceeded", ""
            c = node.comp
            disk, kv = float(ts.disk_error[c]), float(ts.kv_error[c])
            which = rng.pick([max(float(ts.error_rate[c]), 1e-6), disk, kv])
            if which == 1:
                text = tpl.disk_full(me, rng)
                return "OSError", text.split("\n")[0], text
            if which == 2:
                etype, text = tpl.kv_failed(rng)
                return etype, text, ""
            method = node.name.split("/")[-1] if me.protocol != "http" else node.name
            return tpl.own_error(me, tpl_kind(int(ts.error_kind[c])), method, rng, end)
        assert peer is not None
        e = node.edge
        if cause == tpl.CALLEE_ERROR:
            etype, msg, text = tpl.store_error(peer, tpl_kind(int(ts.error_kind[node.peer])), rng)
            return etype, msg, text
        pod = view.replicas_of[node.comp][0]
        ctx = tpl.CallContext(me, peer, view.service_ips[node.peer], end, float(ts.cert_not_after[node.peer]),
                              int(ts.pool_size[e]), float(ts.timeout[e]), node.slot, source=view.pod_ips[int(pod)])
        etype, msg = tpl.call_failure(cause, ctx, rng)
        return etype, msg, ""

    def attributes(self, node: _Node, me: Profile, peer: Profile | None, status: int, cause: int) -> dict:
        view = self.view
        attrs: dict = {}
        if node.kind in (SERVER, CONSUMER) and node.parent < 0:          # the entry request
            method, _, path = node.name.partition(" ")
            code = 200 if status == OK else (504 if cause == tpl.DEADLINE else 500)
            attrs.update({"http.request.method": method or "GET", "http.route": path or node.name,
                          "url.scheme": "https", "http.response.status_code": code,
                          "server.address": me.name, "server.port": me.port})
            return attrs
        if node.kind == CONSUMER:
            queue = view.profiles[self.tree.nodes[node.parent].peer]
            attrs.update({"messaging.system": tpl.MESSAGING_SYSTEM.get(queue.runtime, queue.runtime),
                          "messaging.operation.type": "process", "messaging.destination.name": queue.name,
                          "messaging.consumer.group.name": me.name})
            return attrs
        if node.kind == SERVER:
            attrs.update(_rpc_attrs(me, node.slot, status, cause, server=True))
            attrs.update({"server.address": me.name, "server.port": me.port})
            return attrs
        assert peer is not None
        if node.kind == PRODUCER:
            attrs.update({"messaging.system": tpl.MESSAGING_SYSTEM.get(peer.runtime, peer.runtime),
                          "messaging.operation.type": "send", "messaging.destination.name": peer.name})
        elif node.kind == DB:
            op = peer.method(node.slot)
            attrs.update({"db.system": tpl.DB_SYSTEM.get(peer.runtime, peer.runtime), "db.operation.name": op})
            if peer.runtime in ("postgres", "mysql", "mongodb"):
                table = peer.name.split("-")[-1]
                attrs["db.collection.name"] = table
                if peer.runtime != "mongodb":
                    attrs["db.query.text"] = f"{op} ... {table} WHERE id = $1" if op != "INSERT" else \
                        f"INSERT INTO {table} VALUES ($1, $2)"
        else:
            attrs.update(_rpc_attrs(peer, node.slot, status, cause, server=False))
            if node.attempt and peer.protocol == "http":
                attrs["http.request.resend_count"] = node.attempt
        attrs.update({"server.address": peer.name, "server.port": peer.port, "peer.service": peer.name})
        return attrs


def _rpc_attrs(p: Profile, slot: int, status: int, cause: int, server: bool) -> dict:
    if p.protocol == "http":
        code = 200 if status == OK else _HTTP_CODES.get(cause, 500)
        if not server and status == ORIGIN and cause in (tpl.REFUSED, tpl.NO_SUCH_HOST, tpl.IO_TIMEOUT,
                                                         tpl.NO_ENDPOINTS, tpl.CERT_EXPIRED, tpl.POOL_EXHAUSTED,
                                                         tpl.BREAKER_OPEN, tpl.DEADLINE):
            return {"http.request.method": "POST", "url.full": f"http://{p.name}:{p.port}{p.method(slot)}"}
        out = {"http.request.method": "POST", "http.response.status_code": code}
        out["http.route" if server else "url.full"] = p.method(slot) if server else \
            f"http://{p.name}:{p.port}{p.method(slot)}"
        return out
    code = 0 if status == OK else (_GRPC_CODES.get(cause, 2) if status == ORIGIN else 13)
    system = "grpc" if p.protocol == "grpc" else "apache_thrift"
    out = {"rpc.system": system, "rpc.service": p.rpc_service, "rpc.method": p.method(slot)}
    if system == "grpc":
        out["rpc.grpc.status_code"] = code
    return out


# ---- the query ------------------------------------------------------------------------------------------------------

def _sampled(view: WorldView, ticks: list[int], endpoint: int, rate: float
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sampled requests of an endpoint in some ticks: (tick position, request index, request key)."""
    rec = view.rec
    counts = [int(round(float(view.tick(k).requests[endpoint]))) for k in ticks]
    if not sum(counts):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint64)
    pos = np.repeat(np.arange(len(ticks)), counts)
    idx = np.concatenate([np.arange(n) for n in counts])
    tick = np.asarray(ticks)[pos]
    keep = uniform(rec.seed, SAMPLE, view.gworld, tick, endpoint, idx) < rate
    pos, idx, tick = pos[keep], idx[keep], tick[keep]
    keys = hashed(rec.seed, TRACES, name_key(view.topology.scenario.name), view.gworld, tick, endpoint, idx)
    return pos, idx, np.atleast_1d(keys)


def query_traces(rec: Recording, world: int, service: str | None = None, operation: str | None = None,
                 start: float | None = None, end: float | None = None, min_duration: float | None = None,
                 error: bool | None = None, limit: int = 20, imperfections: Imperfections | None = None
                 ) -> list[Trace]:
    """Sampled traces of one world's requests, newest first, at most `limit`: those with a span of `service`, a
    span named `operation`, arriving in [start, end] (Unix seconds), lasting at least `min_duration` seconds,
    and with (error=True) or without (error=False) an error span."""
    if limit <= 0 or rec.ticks == 0:
        return []
    imp = imperfections or Imperfections()
    view = WorldView(rec, world)
    topo = view.topology
    if service is not None and service not in topo.components:
        return []
    skews = clock_skews(view, imp.clock_skew)
    recorded_end = rec.start + rec.ticks * rec.dt
    visible = recorded_end - imp.ingestion_delay
    lo = -math.inf if start is None else float(start)
    hi = min(math.inf if end is None else float(end), visible)
    first = max(int(math.floor((lo - rec.start) / rec.dt)), 0) if math.isfinite(lo) else 0
    last = min(int(math.floor((hi - rec.start) / rec.dt)), rec.ticks - 1)
    if last < first:
        return []
    max_tries = np.ones(view.E)
    for snap in rec.knob_snapshots:
        max_tries = np.maximum(max_tries, snap.retries[:, world] + 1.0)
    trees = [_Tree(view, p, max_tries) for p in range(len(topo.endpoints))]
    wanted_comp = topo.components.index(service) if service is not None else None
    found: list[Trace] = []
    # ticks are simulated newest first in chunks that grow (a plain query needs the last tick or two; a search
    # through an hour, a few large chunks), each small enough that its [span positions, requests] arrays stay small
    widest = max(len(tree.nodes) for tree in trees)
    per_tick = float(np.mean([view.tick(k).requests.sum() for k in (first, last)])) * imp.trace_sample
    most = max(1, min(CHUNK_TICKS, int(CELLS / max(widest * per_tick, 1.0))))
    span = min(2, most)
    k = last
    while k >= first and len(found) < limit:
        ticks = list(range(max(k - span + 1, first), k + 1))
        params = _Params(view, ticks)
        candidates: list[tuple[float, int, _Run, int]] = []
        for p, tree in enumerate(trees):
            if wanted_comp is not None and wanted_comp not in tree.comp:
                continue
            if operation is not None and operation not in tree.names:
                continue
            pos, idx, keys = _sampled(view, ticks, p, imp.trace_sample)
            if not len(keys):
                continue
            arrive = params.wall[pos] + uniform(keys, 0x51A27) * rec.dt
            run = _Run(tree, params, pos, keys, arrive, visible)
            ok = run.served & (arrive >= lo) & (arrive <= hi)
            ok &= run.end[tree.root] <= visible               # a trace is queryable once its request ended
            if wanted_comp is not None:
                ok &= run.exists[tree.comp == wanted_comp].any(axis=0)
            if operation is not None:
                named = np.array([n == operation for n in tree.names])
                ok &= run.exists[named].any(axis=0)
            if min_duration is not None:
                ok &= run.end[tree.root] - run.start[tree.root] >= float(min_duration)
            if error is not None:
                erred = (run.exists & (run.status != OK)).any(axis=0)
                ok &= erred if error else ~erred
            for r in np.flatnonzero(ok):
                candidates.append((float(arrive[r]), p, run, int(r)))
        candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)
        builders: dict[int, _Builder] = {}
        for _, p, run, r in candidates[:limit - len(found)]:
            if p not in builders:
                builders[p] = _Builder(run, params, skews)
            found.append(builders[p].trace(r))
        k = ticks[0] - 1
        span = min(2 * span, most)
    return found
