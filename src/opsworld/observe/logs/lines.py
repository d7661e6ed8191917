"""Producing lines: what each source of a component writes at one tick, from its `TickState`. Every draw is keyed
by (seed, world, tick, component, source, line)."""

from __future__ import annotations

import math

import numpy as np

from opsworld.engine import queueing as qt
from opsworld.engine.knobs import ERROR_KINDS
from opsworld.engine.replicas import CRASHED, RUNNING, STARTING
from opsworld.observe.logs import templates as tpl
from opsworld.observe.logs.templates import Profile, Rand
from opsworld.observe.logs.view import TINY, TickState
from opsworld.observe.noise import hashed


# How much each source writes per component and tick, at most: enough to read what happens, few enough that a
# query over hours stays fast.
ACCESS_PER_REQUEST, ACCESS_BASE, ACCESS_CAP = 1.0 / 400.0, 0.2, 3.0
CHATTER_RATE, BENIGN_WARN_RATE, BENIGN_ERROR_RATE = 0.8, 0.03, 0.01
OWN_CAP, CALL_CAP, RETRY_CAP, SLOW_CAP, SERVER_CAP = 4.0, 3.0, 1.0, 3.0, 3.0
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
