"""The request-level reference simulator: docs/model.md followed literally, one SimPy process per request.

It exists to validate the batched engine, so it favours being obviously right over being clever: every rule of the
request model maps to a few lines below, named after the step of docs/model.md it implements. It is still written
for speed (the fidelity tests run it for minutes of simulated time on a dozen components), which is why the
scenario is resolved once into plain tuples and lists, random numbers are drawn in blocks, requests that get a free
resource at once do not yield to the event loop, and no closure or logging sits on the per-request path.

Out of scope (the engine models them, the reference does not): circuit breakers, autoscalers, health checks,
certificates, nodes, queue capacity, diurnal traffic, bursts and noise (pass the engine's own `rates` instead).

Counting conventions, per tick of `scenario.tick` seconds:
- endpoint arrays (`requests`, `failed`, `slo_met`) are indexed by the entry request's *arrival* time;
- component `offered` by the time an attempt reaches the component, `served` by the time its own work ends,
  `failed` by the time it answers failure (a drop at dequeue answers at once). Activity after the last tick (the
  run drains in-flight entry requests after `duration`) is not counted in the component arrays.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Generator, Iterator, Sequence

import numpy as np
import simpy

from opsworld.spec.schema import Cache, Datastore, Dependency, Queue, Scenario

INF = math.inf
Proc = Generator[simpy.Event, Any, bool]  # a request's process: yields events, returns success
_BLOCK = 4096  # random numbers drawn per refill: large enough to amortise numpy's call overhead
# The cache -> fronts miss call has no Dependency of its own; it gets a default edge's round trip (as the engine's
# topology does).
_MISS_NETWORK = float(Dependency.model_fields["network_latency"].default)


@dataclass(frozen=True)
class Slowdown:
    """A fault: the component's own-work time is multiplied by `factor` for work that starts in [start, end)."""

    component: str
    start: float  # seconds from episode start
    end: float
    factor: float  # multiplies the component's own-work time while start <= t < end


@dataclass
class ReferenceResult:
    """What one reference run observed, per tick (`tick` seconds) and per request."""

    tick: float
    endpoints: list[str]
    components: list[str]
    requests: np.ndarray  # [ticks, endpoints] entry requests by arrival tick (counts as float64, like all arrays)
    failed: np.ndarray  # [ticks, endpoints] of which failed (error or timeout)
    slo_met: np.ndarray  # [ticks, endpoints] of which succeeded within slo.latency
    latencies: list[np.ndarray]  # per endpoint, every request's latency in seconds (timeouts count as the timeout)
    arrival_times: list[np.ndarray]  # per endpoint, arrival time of each request, aligned with `latencies`
    succeeded: list[np.ndarray]  # per endpoint, bool per request, aligned with `latencies`
    offered: np.ndarray  # [ticks, components] attempts arriving (retries included)
    served: np.ndarray  # [ticks, components] requests that got a slot and did their own work
    # [ticks, components] requests that answered failure, dequeue drops included (the brief's per-component
    # `failed`, renamed because `failed` is the per-endpoint array)
    component_failed: np.ndarray
    events: int  # component-level requests simulated (entry requests, every call attempt, consumer messages)

    def _window(self, endpoint: str, start: float, end: float) -> np.ndarray:
        e = self.endpoints.index(endpoint)
        arrivals = self.arrival_times[e]
        return (arrivals >= start) & (arrivals < end)

    def percentile(self, endpoint: str, q: float, start: float = 0.0, end: float = INF) -> float:
        """Latency quantile `q` (a fraction, e.g. 0.99 as in `slo.percentile`) of requests arriving in [start, end).

        NaN when no request arrived in the window.
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q={q!r} must be a fraction in [0, 1], e.g. 0.99 for p99")
        lat = self.latencies[self.endpoints.index(endpoint)][self._window(endpoint, start, end)]
        return float(np.quantile(lat, q)) if lat.size else math.nan

    def error_rate(self, endpoint: str, start: float = 0.0, end: float = INF) -> float:
        """Fraction of the requests arriving in [start, end) that failed; NaN when none arrived."""
        ok = self.succeeded[self.endpoints.index(endpoint)][self._window(endpoint, start, end)]
        return float(1.0 - ok.mean()) if ok.size else math.nan

    def mean_latency(self, endpoint: str, start: float = 0.0, end: float = INF) -> float:
        """Mean latency of the requests arriving in [start, end); NaN when none arrived."""
        lat = self.latencies[self.endpoints.index(endpoint)][self._window(endpoint, start, end)]
        return float(lat.mean()) if lat.size else math.nan


# --- static structure, resolved once at construction -------------------------------------------------------------


@dataclass(frozen=True)
class _EdgeSpec:
    target: int
    calls_floor: int
    calls_frac: float
    timeout: float
    retries: int
    backoff: float
    required: bool
    network: float
    parallel: bool
    pool_key: tuple[int, int] | None  # (caller, datastore) when the call takes a pooled connection


@dataclass(frozen=True)
class _ComponentSpec:
    name: str
    slots: int
    cores: int
    mean: float  # own-work mean already scaled by cores / (replicas x cpu)
    cv: float
    error_rate: float
    edges: tuple[_EdgeSpec, ...]
    miss_prob: float  # caches: 1 - hit_ratio, else 0
    miss_edge: _EdgeSpec | None  # caches: the call to `fronts` (its timeout is set per request)
    consumer: int  # queues: index of the consumer component, else -1


def _gamma_stream(rng: np.random.Generator, mean: float, cv: float) -> Iterator[float]:
    """Endless own-work durations: Gamma(shape 1/cv^2, scale mean cv^2), drawn in blocks from the shared generator."""
    shape, scale = 1.0 / (cv * cv), mean * cv * cv
    while True:
        yield from (rng.standard_gamma(shape, _BLOCK) * scale).tolist()


def _uniform_stream(rng: np.random.Generator) -> Iterator[float]:
    while True:
        yield from rng.random(_BLOCK).tolist()


class ReferenceSimulator:
    """Simulates every request of a scenario through SimPy resources, exactly as docs/model.md states the rules.

    `rates`, when given, is a [ticks, endpoints] array of arrival rates per second, constant within each tick (pass
    the engine's rate profile so both see the same traffic); otherwise every endpoint gets
    `base_rate * share / sum(shares)` throughout. `slowdowns` multiply a component's own-work time inside a window.
    One `numpy.random.Generator(PCG64(seed))` drives the whole run, so a run is a pure function of its inputs.
    """

    def __init__(
        self,
        scenario: Scenario,
        seed: int = 0,
        rates: np.ndarray | None = None,
        slowdowns: Sequence[Slowdown] = (),
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        self.component_names: list[str] = list(scenario.components)
        self.endpoint_names: list[str] = [ep.name for ep in scenario.traffic.endpoints]
        index = {name: i for i, name in enumerate(self.component_names)}
        comps = scenario.components

        if rates is not None:
            rates = np.asarray(rates, dtype=np.float64)
            if rates.ndim != 2 or rates.shape[1] != len(self.endpoint_names):
                raise ValueError(f"rates must be [ticks, {len(self.endpoint_names)} endpoints], got {rates.shape}")
            if np.any(rates < 0) or not np.all(np.isfinite(rates)):
                raise ValueError("rates must be finite and non-negative")
        self.rates = rates

        self._slowdowns: list[list[tuple[float, float, float]]] = [[] for _ in self.component_names]
        for s in slowdowns:
            if s.component not in index:
                raise ValueError(f"slowdown on unknown component {s.component!r}")
            if s.factor <= 0:
                raise ValueError(f"slowdown factor must be positive, got {s.factor}")
            self._slowdowns[index[s.component]].append((s.start, s.end, s.factor))

        specs = []
        self._pool_sizes: dict[tuple[int, int], int] = {}
        for ci, name in enumerate(self.component_names):
            comp = comps[name]
            raw_cores = comp.instances * comp.cpu * (1.0 - comp.idle_cpu)   # the runtime's share is not for requests
            cores = max(1, round(raw_cores))
            edges = []
            for dep in comp.dependencies:
                edges.append(self._edge(ci, comp.instances, index[dep.target], dep.calls, dep.timeout, dep.retries,
                                        dep.backoff, dep.required, dep.network_latency, dep.mode == "parallel"))
            miss_edge, miss_prob = None, 0.0
            if isinstance(comp, Cache):
                miss_prob = 1.0 - comp.hit_ratio
                # A miss is one required call without retries; its timeout is the cache request's own deadline.
                miss_edge = self._edge(ci, comp.instances, index[comp.fronts], 1.0, INF, 0, 0.0, True,
                                       _MISS_NETWORK, False)
            specs.append(_ComponentSpec(
                name=name,
                slots=comp.instances * comp.concurrency,
                cores=cores,
                # Work runs on one of `cores` whole cores; a fractional CPU limit (replicas x cpu below the rounded
                # core count) stretches it the way a CFS quota does.
                mean=comp.service_time.mean * cores / raw_cores,
                cv=comp.service_time.cv,
                error_rate=comp.error_rate,
                edges=tuple(edges),
                miss_prob=miss_prob,
                miss_edge=miss_edge,
                consumer=index[comp.consumer] if isinstance(comp, Queue) else -1,
            ))
        self._specs = specs
        self._entry_specs = [(index[ep.service], ep.timeout, ep.slo.latency) for ep in scenario.traffic.endpoints]
        # An endpoint that lists its own calls makes them in place of its service's dependencies.
        self._endpoint_edges: list[tuple[_EdgeSpec, ...] | None] = []
        for ep in scenario.traffic.endpoints:
            host = index[ep.service]
            self._endpoint_edges.append(None if ep.calls is None else tuple(
                self._edge(host, comps[ep.service].instances, index[d.target], d.calls, d.timeout, d.retries,
                           d.backoff, d.required, d.network_latency, d.mode == "parallel") for d in ep.calls))

    def _edge(self, caller: int, caller_replicas: int, target: int, calls: float, timeout: float, retries: int,
              backoff: float, required: bool, network: float, parallel: bool) -> _EdgeSpec:
        target_comp = self.scenario.components[self.component_names[target]]
        pool_key = None
        if isinstance(target_comp, Datastore):
            # One pool per (caller, datastore) pair: pool_size connections in each caller replica.
            pool_key = (caller, target)
            self._pool_sizes[pool_key] = target_comp.pool_size * caller_replicas
        floor = int(math.floor(calls))
        return _EdgeSpec(target, floor, calls - floor, timeout, retries, backoff, required, network, parallel,
                         pool_key)

    # --- the run --------------------------------------------------------------------------------------------------

    def run(self, duration: float | None = None) -> ReferenceResult:
        """Simulate arrivals over [0, duration) (default `scenario.duration`) and every request they cause.

        After `duration` no request arrives, but in-flight entry requests are followed until they answer or reach
        their deadline, so every arrival has a latency. Each call starts afresh from `seed`.
        """
        duration = float(self.scenario.duration if duration is None else duration)
        tick = float(self.scenario.tick)
        n_ticks = max(1, int(math.ceil(duration / tick - 1e-9)))
        n_comp, n_ep = len(self._specs), len(self.endpoint_names)
        rng = np.random.Generator(np.random.PCG64(self.seed))
        env = simpy.Environment()
        self._env = env

        # Arrivals: Poisson with a rate constant per tick, so per tick a Poisson count placed uniformly.
        rates = self._rates(n_ticks)
        starts = np.arange(n_ticks) * tick
        lengths = np.minimum(starts + tick, duration) - starts
        counts = rng.poisson(rates * lengths[:, None])  # [ticks, endpoints]
        flat = counts.reshape(-1)
        times = np.repeat(np.repeat(starts, n_ep), flat) + rng.random(int(flat.sum())) * np.repeat(
            np.repeat(lengths, n_ep), flat)
        eps = np.repeat(np.tile(np.arange(n_ep), n_ticks), flat)
        order = np.argsort(times, kind="stable")
        times, eps = times[order], eps[order]
        n_req = times.size

        # Runtime structures: a tuple per component so the hot path unpacks instead of looking attributes up.
        self._u = _uniform_stream(rng).__next__
        pools = {key: simpy.Resource(env, capacity=size) for key, size in self._pool_sizes.items()}

        def edge_tuple(e: _EdgeSpec) -> tuple:
            return (e.target, e.calls_floor, e.calls_frac, e.timeout, e.retries, e.backoff, e.required, e.network,
                    pools[e.pool_key] if e.pool_key is not None else None)

        self._comps = []
        for ci, s in enumerate(self._specs):
            work = (itertools.repeat(s.mean).__next__ if s.cv == 0.0 else _gamma_stream(rng, s.mean, s.cv).__next__)
            self._comps.append((
                simpy.Resource(env, capacity=s.slots),
                simpy.Resource(env, capacity=s.cores),
                work,
                s.error_rate,
                tuple(edge_tuple(e) for e in s.edges if not e.parallel),
                tuple(edge_tuple(e) for e in s.edges if e.parallel),
                s.miss_prob,
                edge_tuple(s.miss_edge) if s.miss_edge is not None else None,
                s.consumer,
                tuple(self._slowdowns[ci]),
            ))

        self._endpoint_calls = [None if edges is None else (
            tuple(edge_tuple(e) for e in edges if not e.parallel), tuple(edge_tuple(e) for e in edges if e.parallel))
            for edges in self._endpoint_edges]

        # Counters: flat lists indexed tick * n_comp + component; row n_ticks collects activity after the run.
        self._n_comp, self._n_ticks, self._inv_tick = n_comp, n_ticks, 1.0 / tick
        self._offered = [0] * ((n_ticks + 1) * n_comp)
        self._served = [0] * ((n_ticks + 1) * n_comp)
        self._cfailed = [0] * ((n_ticks + 1) * n_comp)
        self._events = 0
        self._latency = [math.nan] * n_req
        self._ok = [False] * n_req
        self._remaining = n_req
        self._done = env.event()

        env.process(self._arrivals(times.tolist(), eps.tolist()))
        env.run(until=duration)
        if self._remaining:
            # Drain: follow in-flight entry requests until they all answer or the last deadline passes.
            latency = np.asarray(self._latency)
            open_ = np.isnan(latency)
            timeouts = np.array([t for _, t, _ in self._entry_specs])
            last_deadline = float(np.max(times[open_] + timeouts[eps[open_]]))
            env.run(until=env.any_of([self._done, env.timeout(max(0.0, last_deadline - env.now))]))

        return self._result(times, eps, n_ticks, tick)

    def _rates(self, n_ticks: int) -> np.ndarray:
        if self.rates is None:
            traffic = self.scenario.traffic
            shares = np.array([ep.share for ep in traffic.endpoints])
            return np.tile(traffic.base_rate * shares / shares.sum(), (n_ticks, 1))
        if self.rates.shape[0] < n_ticks:
            raise ValueError(f"rates cover {self.rates.shape[0]} ticks; the run needs {n_ticks}")
        return self.rates[:n_ticks]

    def _result(self, times: np.ndarray, eps: np.ndarray, n_ticks: int, tick: float) -> ReferenceResult:
        n_ep, n_comp = len(self.endpoint_names), self._n_comp
        latency = np.asarray(self._latency)
        ok = np.asarray(self._ok, dtype=bool)
        slo = np.array([s for _, _, s in self._entry_specs])
        timeouts = np.array([t for _, t, _ in self._entry_specs])
        unanswered = np.isnan(latency)  # still in flight at their deadline: timed out
        latency[unanswered] = timeouts[eps[unanswered]]
        ok[unanswered] = False
        met = ok & (latency <= slo[eps])
        cell = np.minimum((times / tick).astype(np.int64), n_ticks - 1) * n_ep + eps

        def per_tick(weights: np.ndarray | None) -> np.ndarray:
            return np.bincount(cell, weights=weights, minlength=n_ticks * n_ep).reshape(n_ticks, n_ep)

        def counters(values: list[int]) -> np.ndarray:
            return np.asarray(values, dtype=np.float64).reshape(n_ticks + 1, n_comp)[:n_ticks]

        return ReferenceResult(
            tick=tick,
            endpoints=list(self.endpoint_names),
            components=list(self.component_names),
            requests=per_tick(None).astype(np.float64),
            failed=per_tick((~ok).astype(np.float64)),
            slo_met=per_tick(met.astype(np.float64)),
            latencies=[latency[eps == e] for e in range(n_ep)],
            arrival_times=[times[eps == e] for e in range(n_ep)],
            succeeded=[ok[eps == e] for e in range(n_ep)],
            offered=counters(self._offered),
            served=counters(self._served),
            component_failed=counters(self._cfailed),
            events=self._events,
        )

    # --- processes ------------------------------------------------------------------------------------------------

    def _row(self, now: float) -> int:
        # Counter row of the tick `now` falls in; the spare last row takes anything after the run's ticks.
        row = int(now * self._inv_tick)
        return row if row < self._n_ticks else self._n_ticks

    def _arrivals(self, times: list[float], eps: list[int]) -> Generator[simpy.Event, Any, None]:
        """One driver process starts every entry request at its arrival time."""
        env, process, entry = self._env, self._env.process, self._entry
        timeout = env.timeout
        for i, (t, e) in enumerate(zip(times, eps)):
            wait = t - env.now
            if wait > 0.0:
                yield timeout(wait)
            process(entry(i, e, t))

    def _entry(self, i: int, e: int, arrival: float) -> Generator[simpy.Event, Any, None]:
        """An endpoint request: deadline arrival + timeout, no retries; latency capped at the timeout."""
        service, timeout, _ = self._entry_specs[e]
        ok = yield from self._handle(service, arrival + timeout, 0.0, self._endpoint_calls[e])
        elapsed = self._env.now - arrival
        if elapsed > timeout:  # the client gave up at its timeout; the service's answer came too late
            elapsed, ok = timeout, False
        self._latency[i] = elapsed
        self._ok[i] = ok
        self._remaining -= 1
        if self._remaining == 0:
            self._done.succeed()

    def _handle(self, c: int, deadline: float, network: float, calls: tuple | None = None) -> Proc:
        """A request at component `c` (docs/model.md, Components, steps 1-5). Returns success; ends `network`
        seconds after the component answers, so the process's end is when the answer reaches the caller.
        `calls`, (sequential, parallel) edge tuples, replace the component's own for an endpoint with calls."""
        env = self._env
        slots, cores, work, error_rate, seq, par, miss_prob, miss_edge, consumer, slowdowns = self._comps[c]
        if calls is not None:
            seq, par = calls
        n_comp = self._n_comp
        self._events += 1
        self._offered[self._row(env.now) * n_comp + c] += 1

        # 1-2. FIFO for a slot; dropped on reaching it if the caller has already given up.
        slot = slots.request()
        if not slot.triggered:  # a free slot is granted at once: no need to wait on the event loop
            yield slot
        if env.now > deadline:
            slots.release(slot)
            self._cfailed[self._row(env.now) * n_comp + c] += 1
            return False

        # 3. Own work on one core (second FIFO), Gamma time scaled by the CPU quota and any active slowdown.
        core = cores.request()
        if not core.triggered:
            yield core
        duration = work()
        if slowdowns:
            now = env.now
            for start, end, factor in slowdowns:
                if start <= now < end:
                    duration *= factor
        if duration > 0.0:
            yield env.timeout(duration)
        cores.release(core)
        self._served[self._row(env.now) * n_comp + c] += 1

        if consumer >= 0:
            # A queue's served request is a published message: the consumer takes it up with no deadline, and
            # its outcome never reaches the publisher.
            env.process(self._handle(consumer, INF, 0.0))

        # 4. Application error after own work; the calls are made regardless.
        u = self._u
        ok = error_rate == 0.0 or u() >= error_rate
        if miss_edge is not None and miss_prob > 0.0 and u() < miss_prob:
            # Cache miss: one required call to `fronts`, no retries, timing out at the cache's own deadline.
            if not (yield from self._attempt(miss_edge, max(0.0, deadline - env.now))):
                ok = False
        for edge in seq:
            n = edge[1]
            if edge[2] > 0.0 and u() < edge[2]:
                n += 1
            for _ in range(n):
                if not (yield from self._call(edge)) and edge[6]:
                    ok = False
        if par:
            calls, required = [], []
            for edge in par:
                n = edge[1]
                if edge[2] > 0.0 and u() < edge[2]:
                    n += 1
                for _ in range(n):
                    calls.append(env.process(self._call(edge)))
                    required.append(edge[6])
            if calls:
                yield env.all_of(calls)  # the request waits for the slowest call
                for proc, req in zip(calls, required):
                    if req and not proc.value:
                        ok = False

        # 5. Release the slot and answer; the answer reaches the caller after the network round trip.
        slots.release(slot)
        if not ok:
            self._cfailed[self._row(env.now) * n_comp + c] += 1
        if network > 0.0:
            yield env.timeout(network)
        return ok

    def _call(self, edge: tuple) -> Proc:
        """One call on an edge: attempts with retries after backoff * 2**k; fails when the last attempt fails."""
        retries, backoff = edge[4], edge[5]
        k = 0
        while True:
            ok = yield from self._attempt(edge, edge[3])
            if ok or k >= retries:
                return ok
            if backoff > 0.0:
                yield self._env.timeout(backoff * 2**k)
            k += 1

    def _attempt(self, edge: tuple, timeout: float) -> Proc:
        """One attempt: the callee's answer (plus round trip) or failure at `timeout`, whichever comes first.

        The callee's deadline is the attempt start + timeout; it runs on to completion when the caller gives up.
        Datastore calls first take a connection from the caller's pool; the wait counts against the timeout and
        the connection is held until the answer or the timeout.
        """
        env = self._env
        target, network, pool = edge[0], edge[7], edge[8]
        deadline = env.now + timeout
        timer = None
        conn = None
        if pool is not None:
            conn = pool.request()
            if not conn.triggered and timeout == INF:  # no deadline (a miss under a consumer): wait for it
                yield conn
            elif not conn.triggered:
                timer = env.timeout(timeout)
                yield simpy.AnyOf(env, [conn, timer])
                if not conn.triggered:  # no connection before the timeout: the attempt fails, nothing was sent
                    conn.cancel()
                    return False
        proc = env.process(self._handle(target, deadline, network))
        if timeout == INF:
            ok = yield proc
        else:
            if timer is None:
                timer = env.timeout(timeout)
            yield simpy.AnyOf(env, [proc, timer])
            # Answered in time only if the callee's process (which ends when the answer arrives) has finished.
            ok = proc.processed and proc.value
        if conn is not None:
            pool.release(conn)
        return ok
