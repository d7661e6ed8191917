"""The call tree of an endpoint, the per-tick parameters of a chunk of ticks, and the simulation of a batch of sampled
requests through that tree (durations and failures drawn around the truth of each tick)."""


from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from opsworld.engine import queueing as qt
from opsworld.engine.topology import CONSUME, MISS, PUBLISH
from opsworld.observe.logs import templates as tpl
from opsworld.observe.logs.templates import Rand
from opsworld.observe.logs.view import TickState, WorldView
from opsworld.observe.traces.spans import (CLIENT, CONSUMER, DB, DRAW_SALTS, FAST_CAUSES, M64, MAX_NODES, MIN_SHARE, OK,
                                           ORIGIN, PRE_WORK, PRODUCER, PROPAGATE, SERVER, TINY)


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
class Node:
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


def finalise(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser over uint64 arrays (wrapping multiplication)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def mix(*parts: int) -> int:
    h = 0x243F6A8885A308D3
    for part in parts:
        h = Rand(h ^ (int(part) & M64)).next64()
    return h


class Tree:
    """Every span position a request at one endpoint can produce, numbered depth-first."""

    def __init__(self, view: WorldView, endpoint: int, max_tries: np.ndarray) -> None:
        self.view, self.endpoint = view, endpoint
        topo = view.topology
        self.nodes: list[Node] = []
        root_comp = int(topo.endpoint_component[endpoint])
        own_calls = bool(topo.endpoint_own_calls[endpoint])
        edges = [e for e in range(*topo.out_slices[root_comp].indices(view.E))
                 if (topo.edge_endpoint[e] == endpoint if own_calls else topo.edge_endpoint[e] < 0)]
        self.root = self._server(root_comp, -1, -1, view.names.route(endpoint), edges, mix(endpoint, 1), max_tries,
                                 SERVER)
        self.kind = np.array([n.kind for n in self.nodes])
        self.comp = np.array([n.comp for n in self.nodes])
        self.names = [n.name for n in self.nodes]
        self.keys = np.array([n.key for n in self.nodes], dtype=np.uint64)

    def _add(self, node: Node) -> int:
        if len(self.nodes) >= MAX_NODES:
            raise RuntimeError("call tree too large to trace")
        self.nodes.append(node)
        return len(self.nodes) - 1

    def _server(self, comp: int, parent: int, edge: int, name: str, edges: list[int], key: int,
                max_tries: np.ndarray, kind: int) -> int:
        topo, view = self.view.topology, self.view
        me = self._add(Node(key, kind, comp, -1, edge, 0, 0, parent, name))
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
                    group.attempts.append(self._attempt(me, comp, e, dst, j, a, mix(key, e, j, a), max_tries))
                callee = view.profiles[dst]
                if callee.kind == "cache":
                    misses = [m for m in range(*topo.out_slices[dst].indices(view.E)) if topo.edge_kind[m] == MISS]
                    if misses:
                        m = misses[0]
                        store = int(topo.edge_dst[m])
                        group.miss, group.miss_edge = self._add(Node(
                            mix(key, e, j, 999), DB, comp, store, m, j, 0, me,
                            view.profiles[store].operation(j))), m
                groups.append(group)
        self.nodes[me].groups = groups
        return me

    def _attempt(self, parent: int, comp: int, e: int, dst: int, slot: int, attempt: int, key: int,
                 max_tries: np.ndarray) -> int:
        topo, view = self.view.topology, self.view
        callee = view.profiles[dst]
        if topo.edge_kind[e] == PUBLISH:
            node = self._add(Node(key, PRODUCER, comp, dst, e, slot, attempt, parent, f"publish {callee.name}"))
            consumer = next((int(topo.edge_dst[c]) for c in range(*topo.out_slices[dst].indices(view.E))
                             if topo.edge_kind[c] == CONSUME), -1)
            if consumer >= 0:
                edges = [c for c in range(*topo.out_slices[consumer].indices(view.E)) if topo.edge_endpoint[c] < 0]
                self.nodes[node].child = self._server(consumer, node, e, f"process {callee.name}", edges,
                                                      mix(key, 7), max_tries, CONSUMER)
            return node
        if callee.is_store:
            return self._add(Node(key, DB, comp, dst, e, slot, attempt, parent, callee.operation(slot)))
        node = self._add(Node(key, CLIENT, comp, dst, e, slot, attempt, parent, callee.operation(slot)))
        edges = [c for c in range(*topo.out_slices[dst].indices(view.E)) if topo.edge_endpoint[c] < 0]
        self.nodes[node].child = self._server(dst, node, e, callee.operation(slot), edges, mix(key, 5), max_tries,
                                              SERVER)
        return node


# ---- per-tick parameters of a chunk of ticks ------------------------------------------------------------------------

class Params:
    """What the simulation reads for ticks [k0, k1]: per component [T, S] and per edge [T, E] (and causes)."""

    def __init__(self, view: WorldView, ticks: list[int]) -> None:
        states = [view.tick(k) for k in ticks]
        topo = view.topology
        self.states = states
        self.wall = np.array([ts.wall for ts in states])
        stack = lambda f: np.stack([f(ts) for ts in states])      # noqa: E731
        self.rmean, self.rvar = stack(lambda t: t.rmean), stack(lambda t: t.rvar)
        self.own = stack(lambda t: t.own_error)
        self.root_own = stack(lambda t: t.endpoint_own_error)         # [T, P]: a bug in one handler fails its own
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

class Run:
    """The traces of a set of requests at one endpoint (rows), simulated span position by span position with numpy
    over the rows that reach each position. Results are [nodes, rows] arrays."""

    def __init__(self, tree: Tree, params: Params, tick_of: np.ndarray, keys: np.ndarray, start: np.ndarray,
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
            base = finalise(self.keys[rows] ^ self.tree.keys[node])
            bits = finalise(base[None, :] + DRAW_SALTS[:, None])
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
        own_error = self.p.root_own[tk, self.tree.endpoint] if node == self.tree.root else self.p.own[tk, c]
        fails_own = u[3] < own_error
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
