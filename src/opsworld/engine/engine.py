"""The batched engine: B independent worlds of one scenario advanced tick by tick with numpy.

Each tick: replicas live and die (`replicas.py`); traffic arrives at the entry endpoints; arrival rates flow down the
call graph level by level (served requests x calls x attempts, retries amplifying load); each component's fluid
backlog fills when offered load passes capacity; then latencies and failure probabilities flow back up the graph
(Erlang C waits for cores and request slots, sums of sequential calls, Clark's max of parallel calls, fitted
shifted-Gamma tails for timeouts); the entry endpoints' outcomes follow. `docs/model.md` states the request model this approximates.

No loop runs over worlds or requests; the Python loops run over call-graph levels and (few) parallel edges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from pathlib import Path
from typing import Callable

import numpy as np

from opsworld.engine import queueing as qt
from opsworld.engine.changes import CHANGE_KINDS, ChangeLog
from opsworld.engine.knobs import KNOB_NAMES, KnobError, KnobName, Knobs, Worlds, column, resolve_worlds
from opsworld.engine.random import Streams, poisson
from opsworld.engine.segments import Segments
from opsworld.engine.real import REAL
from opsworld.engine.replicas import Replicas
from opsworld.engine.topology import CONSUME, MISS, Topology, compile_topology, idle_hold
from opsworld.engine.traffic import tick_rates
from opsworld.engine.truth import TRUTH_FIELDS, Trajectory, Truth
from opsworld.spec import Scenario, load_scenario

RHO_CAP = 0.98          # past this the stochastic wait hands over to the fluid backlog
TINY = 1e-12
SLOWEST = 1e-6          # the least a component's speed can be set to (0 would mean work that never ends)
CACHE_FILL_TIME = 120.0  # seconds: time constant for a restarted cache to load its working set again
LONGEST = 1e4           # seconds: cap on waits, so that their powers stay finite in float32


@dataclass(frozen=True)
class _Level:
    """One level of the call graph: its components and their out-edges (both contiguous), and how to fold them."""

    components: slice
    edges: slice
    down: Segments | None                # positions in `edges`, grouped by callee, for arrivals
    sequential: Segments | None          # positions of sequential waited-for calls, grouped by calling row
    required: Segments | None            # positions of required calls, grouped by calling row
    parallel: "_Parallel | None"            # the callers' parallel calls
    pooled: np.ndarray                   # positions (among `calls`) of datastore calls through a connection pool
    calls: slice | np.ndarray            # one edge per distinct call (the same call made for several endpoints is
    call_of: np.ndarray | None           # computed once); call_of maps each edge to its call, None if all distinct
    whole_calls: bool                    # every edge makes a whole number of calls (no Bernoulli extra call)
    deadline_classes: list[tuple[int, list[int]]]  # components reached with several deadlines (see _patience)
    single_deadline: tuple[np.ndarray, np.ndarray]  # (rows, edge) of components called by one edge only
    rows: slice | np.ndarray             # latency rows: the level's components, then its operations (endpoints
    #                                      with calls of their own, rows S + o)
    hosts: slice | np.ndarray            # the component each row runs on
    mixes: list[tuple[int, list[tuple[int, int, np.ndarray]], np.ndarray]]
    # ^ per component with operations: (component, [(operation, endpoint, positions of its calls)], positions of
    #   the component's own calls); the share of its requests each makes


def _retries(q: np.ndarray, tries: np.ndarray, most: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For attempts that fail independently with probability q and up to `tries` attempts (whole, 1..most):
    P(all fail) = q**tries, E[attempts] = sum_{k<tries} q**k, and E[sum of backoff doublings] =
    sum_{1<=k<tries} 2**(k-1) q**k (multiply by the base backoff). Repeated products: faster than pow."""
    attempts = np.ones_like(q)
    backoff = np.zeros_like(q)
    final = q.copy()
    power = q
    for k in range(1, most):
        more = tries > k
        term = power * more
        attempts += term
        backoff += (2.0 ** (k - 1)) * term
        power = power * q
        final += (power - final) * more        # q**tries for rows that go on trying
    return final, attempts, backoff


def _erlang_wait(servers: np.ndarray, rate: np.ndarray, hold: np.ndarray, cv2: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, variance and third cumulant of the wait for one of `servers`: no wait with probability 1 - C, else
    exponential (Erlang C, with the Allen-Cunneen correction for the holding time's variability cv2)."""
    capacity = servers / np.maximum(hold, TINY)
    rho = np.minimum(rate / np.maximum(capacity, TINY), RHO_CAP)
    prob = qt.ErlangTable.lookup(servers, rho)
    scale = np.minimum(0.5 * (1.0 + cv2) / np.maximum(capacity * (1.0 - rho), TINY), LONGEST)
    square = scale * scale
    return prob * scale, prob * (2.0 - prob) * square, prob * (6.0 - prob * (6.0 - 2.0 * prob)) * square * scale


class Engine:
    """B worlds of one scenario. `step()` advances all of them by one tick and returns the tick's `Truth`.

    Faults and actions change a world only through `set(knob, value, target, worlds)`; see `Knobs`.
    """

    def __init__(self, scenario: Scenario | str | Path, worlds: int = 1, seed: int = 0, first_world: int = 0,
                 topology: Topology | None = None) -> None:
        """`topology`: this scenario already compiled (a batch reset many times compiles it once); read only."""
        if worlds < 1:
            raise ValueError("worlds must be at least 1")
        self.scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        self.topology = topo = topology if topology is not None else compile_topology(self.scenario)
        self.worlds, self.seed, self.first_world = worlds, seed, first_world
        self.dt = float(self.scenario.tick)
        self.ticks = int(math.ceil(self.scenario.duration / self.dt - 1e-9))
        self.versions: list[str] = []
        deploy_ids = np.array([self.version_id(v) for v in topo.deploy])
        config_ids = np.array([self.version_id(v) for v in topo.config])
        self.knobs = Knobs.initial(topo, worlds, deploy_ids, config_ids)
        self._writes = dict.fromkeys(KNOB_NAMES, 0)       # how often each knob was set (see `writes`)
        # and how often each row (component) of the version knobs was, for readers of one component's version
        self._row_writes = {k: np.zeros(topo.n_components, np.int64) for k in ("deploy", "config")}
        self.streams = Streams(seed, first_world + np.arange(worlds))
        self.replicas = Replicas(topo, worlds)
        self.tick, self.time = 0, 0.0
        self.changes = ChangeLog(self.scenario.traffic.start)
        S, E = topo.n_components, topo.n_edges
        self.backlog = np.zeros((S, worlds), REAL)
        self.hold = np.repeat(idle_hold(topo)[:, None], worlds, axis=1).astype(REAL)   # seconds a request holds a slot
        self.hold_cv2 = np.ones((S, worlds), REAL)                                            # and its variability
        self.attempts = np.ones((E, worlds), REAL)      # expected attempts per call, from the previous tick
        self.breaker_until = np.full((E, worlds), -np.inf)
        self.burst_until = np.full(worlds, -np.inf)
        self.node_slowdown = np.ones((S, worlds), REAL)
        self._no_slowdown = np.ones((S, worlds), REAL)
        self._node_memory: np.ndarray | None = None
        self._latency_cap = topo.endpoint_timeout.astype(REAL)
        self._slo_z = np.array([[NormalDist().inv_cdf(min(max(float(q), 1e-6), 1 - 1e-6))]
                                for q in topo.endpoint_slo_percentile], dtype=REAL)   # [P, 1] normal scores
        self._node_cores = topo.node_cpu[:, None].astype(REAL)
        self._static_patience = topo.deadline[:, None].astype(REAL)
        self.scale_down_since = np.full((S, worlds), np.inf)
        self.rates = tick_rates(topo, self.ticks)       # [ticks, endpoints] mean arrivals/s before noise and bursts
        self._knobs_changed = True
        self._flapping = self._limited = self._wrong = self._any_moved = self._hogging = self._buggy = False
        self._admitting = self._flooding = False
        self._caches = np.unique(topo.edge_src[topo.edge_kind == MISS])
        self._cache_replicas = np.flatnonzero(np.isin(topo.replica_component, self._caches))
        # Operations: endpoints with calls of their own. Each gets a latency row after the S components, runs on
        # its service's replicas, and makes its own calls instead of the service's dependencies.
        self._ops = np.flatnonzero(topo.endpoint_own_calls)
        self._op_host = topo.endpoint_component[self._ops]
        self._endpoint_row = np.array([S + int(np.flatnonzero(self._ops == p)[0]) if p in self._ops
                                       else int(topo.endpoint_component[p]) for p in range(len(topo.endpoints))])
        self._row_host = np.concatenate([np.arange(S), self._op_host]).astype(np.int64)
        self._mixed = [(int(h), [int(o) for o in np.flatnonzero(self._op_host == h)]) for h in np.unique(self._op_host)]
        self._levels = self._plan()
        self._cert_columns = [(c, int(topo.cert_component[c])) for c in range(len(topo.certificates))]
        self._replica_zone = topo.node_zone[topo.replica_node]
        self._consume_edges = np.flatnonzero(topo.edge_kind == CONSUME)
        self._consumers = np.unique(topo.edge_dst[self._consume_edges])
        self._gpu = np.flatnonzero(topo.gpu_count > 0)
        self._autoscaled = np.flatnonzero(topo.autoscaled)
        self._breakers = np.flatnonzero(topo.edge_cb_ratio <= 1.0)      # edges with a circuit breaker
        self._feeds = topo.feeds                                # [Q, 2] (queue, store) pairs
        self._freshness = topo.queue_freshness[topo.feeds[:, 0]][:, None].astype(REAL)    # [Q, 1]
        self._queues = np.flatnonzero(np.isfinite(topo.queue_capacity))
        self._queue_capacity = topo.queue_capacity[self._queues][:, None].astype(REAL)
        self.queue_depth = np.zeros((S, worlds), REAL)          # messages waiting, per queue component
        self.offered = np.zeros((S, worlds), REAL)              # requests per second reaching each component
        self._replicas_by_node = Segments.of(np.arange(len(topo.replica_node)), topo.replica_node)
        column = lambda a: np.asarray(a, dtype=REAL)[:, None]  # noqa: E731  static per-row constants
        self._col = {
            "cpu": column(topo.cpu), "service_mean": column(topo.service_mean), "concurrency": column(topo.concurrency),
            "cv2": column(topo.service_cv ** 2),
            "is_miss": (topo.edge_kind == MISS)[:, None], "edge_calls": column(topo.edge_calls),
            "edge_network": column(topo.edge_network),
            "cb_ratio": column(topo.edge_cb_ratio), "cb_min_calls": column(topo.edge_cb_min_calls),
            "cb_open_for": column(topo.edge_cb_open_for), "endpoint_timeout": column(topo.endpoint_timeout),
            "endpoint_slo": column(np.minimum(topo.endpoint_slo_latency, topo.endpoint_timeout)),
            "as_target": column(topo.as_target),
            "as_down_delay": column(topo.as_down_delay), "autoscaled": topo.autoscaled[:, None],
            "required": column(topo.edge_required),
            "slo_availability": column(topo.endpoint_slo_availability),
        }

    # ---- the control surface -------------------------------------------------------------------------------------
    def version_id(self, name: str) -> int:
        """The id of a deploy or config version name, registering it if new."""
        if name not in self.versions:
            self.versions.append(name)
        return self.versions.index(name)

    def writes(self, knob: str, row: int | None = None) -> int:
        """How many times `knob` was set so far (0 for a name that is no knob): an unchanged count means unchanged
        values, so readers can cache what they derive from them. `row`: only the writes that may have touched that
        component's row (the version knobs `deploy` and `config` only; others count every write)."""
        if row is not None:
            rows = self._row_writes.get(knob)
            if rows is not None:
                return int(rows[row])
        return self._writes.get(knob, 0)

    def set(self, knob: KnobName, value: float | str | np.ndarray,
            target: str | tuple[str, str] | tuple[str, int] | int | None = None, worlds: Worlds = None,
            by: str | None = None) -> None:
        """Set a knob for some worlds, e.g. `set("capacity", 0.5, "cartservice", worlds=[3])`.

        `target` picks the column (see `knobs.column`): a component, a (caller, callee) edge, a certificate, a node,
        an endpoint, a (zone, zone) pair, or a (component, replica) slot; None means every column. `worlds` is None
        (all), an index, a list of indices or a boolean mask. Version knobs also take version names. `by` names
        who made the change (a pipeline, a person): with it, a change knob's setting goes into `changes`.
        """
        if knob not in KNOB_NAMES:
            raise KnobError(f"unknown knob '{knob}'; known: {', '.join(KNOB_NAMES)}")
        if knob in ("deploy", "config") and isinstance(value, str):
            value = self.version_id(value)
        index = column(self.topology, knob, target)
        rows = resolve_worlds(worlds, self.worlds)
        array = getattr(self.knobs, knob)
        if by is not None and knob in CHANGE_KINDS:
            self._record(knob, array, index, rows, target, value, by)
        self._knobs_changed = True
        self._writes[knob] += 1
        row_writes = self._row_writes.get(knob)
        if row_writes is not None:
            row_writes[index] += 1
        if isinstance(index, np.ndarray) and isinstance(rows, np.ndarray):
            index, rows = np.ix_(index, rows)
        try:
            array[(*index, rows) if isinstance(index, tuple) else (index, rows)] = value
        except (ValueError, TypeError, IndexError) as exc:
            raise KnobError(f"cannot set '{knob}' to {value!r}: {exc}") from None

    def _record(self, knob: str, array: np.ndarray, index: object, rows: object, target: object, value: object,
                by: str) -> None:
        """Add a change to `changes`: one target column (the first copy of an edge made for several endpoints)."""
        worlds = rows.astype(np.int64) if isinstance(rows, np.ndarray) else np.arange(self.worlds)[rows]
        column_ = int(index[0]) if isinstance(index, np.ndarray) else index
        if not isinstance(column_, int):
            raise KnobError(f"a change to '{knob}' needs one target")
        before = array[column_, worlds]
        value = np.asarray(value)
        after = np.array(np.broadcast_to(value[0] if value.ndim == 2 else value, before.shape))
        text = self._change_text(knob)
        name = "->".join(target) if isinstance(target, tuple) else str(target)
        # the values are kept, and read as text only when the history is read
        self.changes.add(self.time, worlds, CHANGE_KINDS[knob], name, before, after, by, text)

    def _change_text(self, knob: str) -> Callable[[np.ndarray], np.ndarray]:
        """How a change knob's values read in the change history."""
        if knob in ("deploy", "config"):      # (versions are only ever added: an id names the same one later)
            versions = self.versions
            return lambda v: np.array(versions)[np.asarray(v, dtype=np.int64)]
        if knob == "restart_at":
            now = self.time
            return lambda v: np.where(np.asarray(v) >= now, "rolling restart", "running")
        if knob == "cert_not_after":
            return lambda v: np.char.add("valid until ", np.datetime_as_string(
                np.asarray(v).astype("datetime64[s]"), unit="m"))
        if knob == "admit":
            return lambda v: np.where(np.isfinite(v), np.char.add(np.char.mod("%.2g", np.asarray(v, dtype=float)),
                                                                  "x the normal rate"), "no limit")
        if knob == "flood":
            return lambda v: np.where(np.asarray(v) > 0, "one client source allowed", "client source blocked")
        if knob in ("replicas", "scale_min", "scale_max", "retries", "pool_size"):
            return lambda v: np.asarray(v).astype(np.int64).astype(str)
        return lambda v: np.asarray(v).astype(str)

    # ---- running ---------------------------------------------------------------------------------------------------
    def run(self, ticks: int | None = None, progress: Callable[[int], None] | None = None,
            fields: tuple[str, ...] | None = None) -> Trajectory:
        """Advance `ticks` ticks (default: to the end of the scenario) and stack the truth of every tick."""
        unknown = sorted(set(fields or ()) - set(TRUTH_FIELDS))
        if unknown:
            raise ValueError(f"unknown truth fields {unknown}; known: {', '.join(TRUTH_FIELDS)}")
        n = self.ticks - self.tick if ticks is None else ticks
        if n < 0:
            raise ValueError(f"ticks must be at least 0, got {n}")
        frames = []
        for _ in range(n):
            frames.append(self.step())
            if progress is not None:
                progress(1)
        return Trajectory.stack(frames) if fields is None else Trajectory.stack(frames, fields)

    def step(self) -> Truth:
        """Advance every world by one tick. Internal arrays are [S, B] (world axis last); `Truth` shows [B, S]."""
        topo, k, dt, B = self.topology, self.knobs, self.dt, self.worlds
        t0, t1, tick = self.time, self.time + self.dt, self.tick
        S = topo.n_components
        col = self._col

        # -- replicas and what reaches them
        if self._knobs_changed:
            self._flapping = bool(k.flap.any())
            self._limited = bool(np.isfinite(k.rate_limit).any())
            self._admitting = bool(np.isfinite(k.admit).any())
            self._flooding = bool((k.flood > 0).any())
            self._wrong = bool(k.wrong.any())
            self._hogging = bool(k.cpu_hog.any())
            self._buggy = bool(k.handler_error.any())
            self._any_moved = self._any_moved or bool(k.node_down.any() or k.drained.any())
        reps = self.replicas.step(t0, dt, k, self._knobs_changed, self._writes)
        self._knobs_changed = False
        in_rot, serving = reps.in_rotation, reps.serving
        if self._flapping:   # health checks that wrongly fail take a share of the replicas out of rotation
            in_rot, serving = in_rot * (1.0 - k.flap), serving * (1.0 - k.flap)
        hung = (in_rot - serving) / np.maximum(in_rot, 1.0)
        refused = (in_rot <= 0).astype(REAL)
        wall = topo.scenario.traffic.start + t0
        for c, comp in self._cert_columns:  # an expired certificate fails every TLS handshake to its component
            refused[comp] = np.maximum(refused[comp], wall >= k.cert_not_after[c])
        # the share of the replicas serving (before a flap takes any out: it takes full and healthy ones alike)
        disk_error = reps.disk_full / np.maximum(reps.serving, 1.0)
        if len(self._consumers):   # messages for consumers that cannot take them wait in their queue
            refused[self._consumers] = 0.0
            hung[self._consumers] = 0.0
        if len(self._queues):  # a full queue refuses publishes
            q = self._queues
            refused[q] = np.maximum(refused[q], self.queue_depth[q] >= self._queue_capacity)

        # -- traffic at the entry endpoints: what arrives (users, and a flooding client), less what the front door
        #    refuses; the refused are users who were failed as surely as by an error
        arrived, users = self._requests(tick, t0)            # [P, B] requests arriving this tick, users' among them
        requests, door = arrived, None                       # [P, B] admitted, refused at the door
        if self._admitting:
            normal = self.rates[min(tick, len(self.rates) - 1)][:, None]
            cap = np.where(np.isfinite(k.admit), normal * np.where(np.isfinite(k.admit), k.admit, 0.0) * dt, np.inf)
            requests = np.minimum(arrived, cap).astype(REAL)
            door = arrived - requests
        arrivals = np.zeros((S, B), REAL)
        for p, comp in enumerate(topo.endpoint_component):
            arrivals[comp] += requests[p] / dt

        # -- speeds and capacities
        hog = np.clip(k.cpu_hog, 0.0, 0.99) if self._hogging else 0.0   # CPU burnt in the containers by others
        limit_cores = serving * col["cpu"]
        cores = limit_cores * (1.0 - hog) if self._hogging else limit_cores
        core_servers = np.maximum(np.rint(cores), 1.0)
        work = np.minimum(col["service_mean"] * self.node_slowdown / np.maximum(k.capacity, SLOWEST), LONGEST)
        work_on_core = np.minimum(work * core_servers / np.maximum(cores, TINY), LONGEST)  # fractional limits (CFS)
        slots = serving * col["concurrency"]
        capacity = np.minimum(cores / np.maximum(work, TINY), slots / self.hold)   # 0 without serving replicas

        # -- edges: calls, retry amplification from last tick's failures, what is refused before it leaves
        calls = np.where(col["is_miss"], 1.0 - self._hit_ratio(t0)[topo.edge_src], col["edge_calls"])
        tries = k.retries + 1.0
        most_tries = int(tries.max()) if tries.size else 1
        attempts = self.attempts                       # from last tick's failures: retries amplify load
        breaker = (k.breaker_open | (self.breaker_until > t0)).astype(REAL)
        blocked = np.clip(k.blocked + self._partition_blocked(), 0.0, 1.0)
        reach = (1.0 - blocked) * (1.0 - breaker)

        # -- down the graph: arrivals, service, backlog
        served = np.zeros((S, B), REAL)
        dropped = np.zeros((S, B), REAL)
        reached = np.zeros((S, B), REAL)
        sent = np.zeros_like(calls)
        inflow = np.zeros_like(calls)                       # attempts per second that reach each callee
        entry = requests / dt
        share = np.zeros((len(self._ops), B), REAL)         # each operation's share of its service's requests
        generic = np.ones((S, B), REAL)                     # the share that makes the service's own calls
        for level in self._levels:
            cs = level.components
            a_in = arrivals[cs] * (1.0 - refused[cs]) * (1.0 - hung[cs])
            if self._limited:    # a rate limit refuses what passes it
                limit = k.rate_limit[cs]
                over_limit = np.where(a_in > limit, 1.0 - limit / np.maximum(a_in, TINY), 0.0)
                refused[cs] = 1.0 - (1.0 - refused[cs]) * (1.0 - over_limit)
                a_in = a_in * (1.0 - over_limit)
            cap = capacity[cs]
            srv = np.minimum(a_in + self.backlog[cs] / dt, cap)
            left = self.backlog[cs] + (a_in - srv) * dt
            waits = self._patience(level, cap, inflow, entry, k.timeout)
            # requests past their deadline are dropped: the backlog holds what is served within it, or, with nothing
            # served (a stalled consumer), what arrived within it
            over = np.maximum(left - waits * np.where(cap > 0, cap, a_in), 0.0)
            self.backlog[cs] = np.maximum(left - over, 0.0)
            served[cs], dropped[cs], reached[cs] = srv, over / dt, a_in
            if level.down is not None:
                es = level.edges
                out = served[topo.edge_src[es]] * calls[es] * attempts[es]
                for host, operations, own_calls in level.mixes:   # each endpoint's share of its service's requests
                    everyone = np.maximum(arrivals[host], TINY)
                    rest = np.ones(B, REAL)
                    for o, p, positions in operations:
                        share[o] = np.minimum(entry[p] / everyone, 1.0)
                        rest = rest - share[o]
                        out[positions] *= share[o]
                    generic[host] = np.maximum(rest, 0.0)
                    out[own_calls] *= generic[host]
                sent[es] = out
                inflow[es] = out * reach[es]
                arrivals[level.down.targets] += level.down.sum(inflow[es])

        gpu_fraction, gpu_error = self._gpu_memory(served, serving)
        own_wrong = self._own_wrong(k, arrivals) if (self._wrong or len(self._feeds)) else None

        # -- up the graph: latency moments and failure probabilities
        # What does not depend on callees is computed for every component and edge at once, outside the level loop.
        cv2 = col["cv2"]
        own = work_on_core
        w_cpu, w_cpu_var, w_cpu_k3 = _erlang_wait(core_servers, served, own, cv2)
        # own work, the wait for a core, and waits that use no core (`latency`: locks, a lagging disk): these hold
        # the request's slot (through `hold`) but leave the cores to others
        base_mean = own + w_cpu + k.latency
        own_var = cv2 * own * own
        base_var = own_var + w_cpu_var
        base_k3 = 2.0 * own_var * own_var / np.maximum(own, TINY) + w_cpu_k3   # Gamma work: 2 cv^4 mean^3
        fluid = self.backlog / np.maximum(capacity, TINY) * (capacity > 0)
        # the wait for a request slot, held for the whole request (downstream calls included); it is taken from the
        # last tick's holding time, as the slot capacity is, so that it is computed for all components at once
        w_slot, w_slot_var, w_slot_k3 = _erlang_wait(np.maximum(slots, 1.0), served, self.hold, self.hold_cv2)
        drop_share = np.minimum(dropped / np.maximum(reached, TINY), 1.0)
        slow_fail = 1.0 - (1.0 - hung) * (1.0 - drop_share)     # the caller waits out its timeout
        own_error = 1.0 - (1.0 - np.clip(k.error_rate, 0.0, 1.0)) * (1.0 - disk_error) * (1.0 - gpu_error)
        net = col["edge_network"] + k.network_latency                                  # [E, B]
        tau = k.timeout
        fast = 1.0 - reach * (1.0 - refused[topo.edge_dst])       # refused at once: no replica, TLS, partition
        frac = calls - np.floor(calls)
        call_var_n = frac * (1.0 - frac)                          # variance of the number of calls
        # Two latencies per component: of every request (what holds slots and connections), and of the requests
        # that succeed (what a caller's timeout is judged on: a request that failed a call often took long to fail,
        # while the ones that succeed may be quick).
        # Rows: the S components, then one per operation (an endpoint with calls of its own).
        R = S + len(self._ops)
        t_mean, t_var = np.zeros((R, B), REAL), np.zeros((R, B), REAL)
        ok_t_mean, ok_t_var, ok_t_k3 = (np.zeros((R, B), REAL) for _ in range(3))
        h_mean_all = np.zeros((R, B), REAL)
        h_var_all = np.zeros((R, B), REAL)
        answer_fail = np.zeros((R, B), REAL)          # P(a served request is answered with a failure)
        log_ok = np.zeros((R, B), REAL)
        wrong = np.zeros((R, B), REAL) if own_wrong is not None else None   # P(an answer is wrong but looks fine)
        call_fail = np.zeros_like(calls)
        q_now = np.zeros_like(calls)
        attempts_next = np.ones_like(calls)
        required = col["required"]
        all_doublings = np.exp2(tries - 1.0) - 1.0                # backoff doublings when every attempt fails
        for level in reversed(self._levels):
            es, rows, hosts = level.edges, level.rows, level.hosts
            h_mean, h_var = base_mean[hosts].copy(), base_var[hosts].copy()
            ok_mean_h, ok_var_h, ok_k3_h = base_mean[hosts].copy(), base_var[hosts].copy(), base_k3[hosts].copy()
            log_ok_rows = np.zeros_like(h_mean)
            if level.down is not None:
                ce = level.calls                                          # per distinct call, then per edge below
                dst = topo.edge_dst[ce]
                m = t_mean[dst] + net[ce]
                m_ok = ok_t_mean[dst] + net[ce]
                v_ok = ok_t_var[dst]
                k3_ok = ok_t_k3[dst]
                slow = slow_fail[dst]
                if len(level.pooled):
                    sp = level.pooled
                    pe = (ce[sp] if level.call_of is not None else es.start + sp)
                    conns = k.pool_size[pe] * serving[topo.edge_src[pe]]
                    held = np.minimum(m[sp], tau[pe])
                    load = sent[pe] * reach[pe]
                    w, wv, wk3 = _erlang_wait(np.maximum(conns, 1.0), load, held, cv2[topo.edge_dst[pe]])
                    m[sp] += w
                    m_ok[sp] += w
                    v_ok[sp] += wv
                    k3_ok[sp] += wk3
                    over = load * held / np.maximum(conns, TINY)
                    pool_timeout = 1.0 - 1.0 / np.maximum(over, 1.0)      # the connections cannot carry it
                    slow[sp] = 1.0 - (1.0 - slow[sp]) * (1.0 - pool_timeout)
                tau_e, fast_e = tau[ce], fast[ce]
                p_late = qt.skewed_sf(m_ok, v_ok, k3_ok, tau_e)          # a good answer that comes too late
                answered = (1.0 - fast_e) * (1.0 - slow)
                q_error = answered * answer_fail[dst]
                q_timeout = (1.0 - fast_e) * slow + answered * (1.0 - answer_fail[dst]) * p_late
                q = np.minimum(fast_e + q_timeout + q_error, 1.0)
                final, expected_tries, doublings = _retries(q, tries[ce], most_tries)
                failed_attempts = q * expected_tries
                cost = (fast_e * net[ce] + q_timeout * tau_e + q_error * np.minimum(m, tau_e)) / np.maximum(q, TINY)
                backoff = k.backoff[ce]
                good = np.minimum(m_ok, tau_e)                            # latency of the attempt that succeeds
                good_var = v_ok * (1.0 - p_late) ** 2
                spread = (1.0 - q) * cost * cost
                c_mean = (1.0 - final) * good + failed_attempts * cost + backoff * doublings
                c_var = (1.0 - final) * good_var + failed_attempts * spread
                # given that the call succeeds in the end: fewer failed attempts, and only the backoff they caused
                succeeds = np.maximum(1.0 - final, TINY)
                fails_ok = (failed_attempts - final * tries[ce]) / succeeds
                c_ok_mean = good + fails_ok * cost + backoff * (doublings - final * all_doublings[ce]) / succeeds
                c_ok_var = good_var + fails_ok * spread
                c_ok_k3 = k3_ok * (1.0 - p_late) ** 3 + fails_ok * (1.0 - 2.0 * q) * spread * cost
                if level.call_of is not None:                             # back to one row per edge
                    at = level.call_of
                    q, final, expected_tries, succeeds = q[at], final[at], expected_tries[at], succeeds[at]
                    c_mean, c_var, c_ok_mean, c_ok_var, c_ok_k3 = (c_mean[at], c_var[at], c_ok_mean[at],
                                                                   c_ok_var[at], c_ok_k3[at])
                n, r = calls[es], required[es]
                if level.whole_calls:   # no Bernoulli extra call: every term below is n times the call's
                    f = 0.0
                    e_mean, e_var, e_ok_k3 = n * c_mean, n * c_var, n * c_ok_k3
                    e_ok_mean = n * (r * c_ok_mean + (1.0 - r) * c_mean)
                    e_ok_var = n * (r * c_ok_var + (1.0 - r) * c_var)
                else:
                    f = frac[es]
                    e_mean = n * c_mean
                    e_var = n * c_var + call_var_n[es] * c_mean * c_mean
                    # the optional extra call happens less often among requests that succeed
                    f_ok = f * succeeds / np.maximum(1.0 - f * final, TINY)
                    n_ok = n - f + f_ok
                    e_ok_mean = r * (n_ok * c_ok_mean) + (1.0 - r) * e_mean
                    e_ok_var = r * (n_ok * c_ok_var + f_ok * (1.0 - f_ok) * c_ok_mean * c_ok_mean) + (1.0 - r) * e_var
                    # a random number of calls: k3 = E[N] k3(X) + 3 Var(N) E[X] Var(X) + k3(N) E[X]^3
                    f_use = r * f_ok + (1.0 - r) * f
                    var_n = f_use * (1.0 - f_use)
                    e_ok_k3 = ((n - f + f_use) * c_ok_k3 + 3.0 * var_n * c_ok_mean * c_ok_var
                               + var_n * (1.0 - 2.0 * f_use) * c_ok_mean * c_ok_mean * c_ok_mean)
                q_now[es], call_fail[es], attempts_next[es] = q, final, expected_tries
                if level.sequential is not None:
                    seg, at = level.sequential, level.sequential.targets
                    h_mean[at] += seg.sum(e_mean)
                    h_var[at] += seg.sum(e_var)
                    ok_mean_h[at] += seg.sum(e_ok_mean)
                    ok_var_h[at] += seg.sum(e_ok_var)
                    ok_k3_h[at] += seg.sum(e_ok_k3)
                if level.required is not None:
                    seg = level.required
                    # floor(n) calls always, one more with probability frac(n): all must succeed
                    log_fail = np.log(np.maximum(1.0 - final, 1e-30))
                    log_ok_rows[seg.targets] = seg.sum(n * log_fail if level.whole_calls else
                                                       (n - f) * log_fail + np.log(np.maximum(1.0 - f * final, 1e-30)))
                    if wrong is not None:   # one wrong answer from a required call spoils the request's answer
                        log_right = np.zeros_like(h_mean)
                        log_right[seg.targets] = seg.sum(n * np.log(np.maximum(1.0 - wrong[topo.edge_dst[es]], 1e-30)))
                        wrong[rows] = 1.0 - np.exp(log_right)
                if level.parallel is not None:     # the request waits for the slowest of its parallel calls
                    par = level.parallel
                    head = par.table[:, 0]
                    g_mean, g_var = e_mean[head], e_var[head]
                    o_mean, o_var, o_k3 = e_ok_mean[head], e_ok_var[head], e_ok_k3[head]
                    for j in range(1, par.table.shape[1]):    # all callers with a j-th parallel call at once
                        n, pj = par.counts[j], par.table[:par.counts[j], j]
                        g_mean[:n], g_var[:n], _ = _clark_max(g_mean[:n], g_var[:n], e_mean[pj], e_var[pj])
                        o_mean[:n], o_var[:n], first = _clark_max(o_mean[:n], o_var[:n], e_ok_mean[pj], e_ok_var[pj])
                        o_k3[:n] = first * o_k3[:n] + (1.0 - first) * e_ok_k3[pj]   # the likelier maximum's skew
                    at = par.callers
                    h_mean[at] += g_mean
                    h_var[at] += g_var
                    ok_mean_h[at] += o_mean
                    ok_var_h[at] += o_var
                    ok_k3_h[at] += o_k3
            queued = fluid[hosts] + w_slot[hosts]
            t_mean[rows] = queued + h_mean
            t_var[rows] = h_var + w_slot_var[hosts]
            ok_t_mean[rows] = queued + ok_mean_h
            ok_t_var[rows] = ok_var_h + w_slot_var[hosts]
            ok_t_k3[rows] = ok_k3_h + w_slot_k3[hosts]
            h_mean_all[rows] = h_mean
            h_var_all[rows] = h_var
            log_ok[rows] = log_ok_rows
            answer_fail[rows] = 1.0 - (1.0 - own_error[hosts]) * np.exp(log_ok_rows)
            if wrong is not None:
                wrong[rows] = 1.0 - (1.0 - own_wrong[hosts]) * (1.0 - wrong[rows])
        dependency_fail = (1.0 - own_error[self._row_host]) * (1.0 - np.exp(log_ok))          # [R, B]
        hold, hold_var = h_mean_all[:S].copy(), h_var_all[:S].copy()
        fail_mix = dependency_fail[:S].copy()
        for host, ops in self._mixed:   # a service with operations holds slots for the mix of what its requests do
            weights = [(generic[host], host)] + [(share[o], S + o) for o in ops]
            hold[host] = sum(w * h_mean_all[r] for w, r in weights)
            second = sum(w * (h_var_all[r] + h_mean_all[r] * h_mean_all[r]) for w, r in weights)
            hold_var[host] = np.maximum(second - hold[host] * hold[host], 0.0)
            fail_mix[host] = sum(w * dependency_fail[r] for w, r in weights)
        self.hold = np.where(serving > 0, hold, self.hold)
        self.hold_cv2 = np.where(serving > 0, hold_var / np.maximum(hold * hold, TINY), self.hold_cv2)
        dependency_fail = fail_mix

        # -- entry endpoints: a request succeeds when it is answered well within its timeout
        ec, er = topo.endpoint_component, self._endpoint_row      # the service, and the row of what it does
        m, v, k3 = ok_t_mean[er], ok_t_var[er], ok_t_k3[er]
        timeout = col["endpoint_timeout"]
        fit = qt.SkewedGamma(m, v, k3)
        good = (1.0 - refused[ec]) * (1.0 - slow_fail[ec]) * (1.0 - answer_fail[er])
        if self._buggy:          # a bug in one endpoint's handler fails its answers after the work
            handler_fail = good * k.handler_error
            good = good - handler_fail
        ok = good * (1.0 - fit.sf(timeout))
        met = good * (1.0 - fit.sf(col["endpoint_slo"]))
        # the SLO over this tick: availability at or above target, and the latency percentile within its threshold
        percentile = fit.quantile(self._slo_z)                          # [P, B] at each endpoint's SLO percentile
        breached = (ok < col["slo_availability"]) | (percentile > col["endpoint_slo"])

        # -- circuit breakers trip on this tick's failure ratio
        if len(self._breakers):
            b = self._breakers
            trip = (q_now[b] > col["cb_ratio"][b]) & (sent[b] * dt >= col["cb_min_calls"][b]) & (self.breaker_until[b] <= t0)
            self.breaker_until[b] = np.where(trip, t1 + col["cb_open_for"][b], self.breaker_until[b])
        self.attempts = attempts_next

        # -- resources: CPU per replica, nodes, contention for the next tick
        busy_cores = served * work + hog * limit_cores if self._hogging else served * work
        cpu_util = busy_cores / np.maximum(limit_cores, TINY)
        node_cpu, node_memory, slowdown = self._nodes(busy_cores / np.maximum(serving, 1.0), k.cpu_steal)
        self.node_slowdown = slowdown
        slot_util = served * self.hold / np.maximum(slots, TINY)
        self._autoscale(cpu_util, in_rot, t1)

        failed_by_cause = np.stack([                     # [4, S, B], shown as [B, S, 4]
            served * own_error,
            served * dependency_fail,
            arrivals * (1.0 - refused) * hung + dropped,
            arrivals * refused,
        ]) * dt
        offered = arrivals * dt
        if self._buggy:          # the entry service's own errors, from its failing handler
            np.add.at(failed_by_cause[0], ec, requests * handler_fail)
        if door is not None:     # the entry service answers those refused at its door as unavailable
            at_door = np.zeros((S, B), REAL)
            np.add.at(at_door, ec, door)
            failed_by_cause[3] += at_door
            offered = offered + at_door
        queue_depth = self.queue_depth = np.zeros((S, B), REAL)
        for e in self._consume_edges:  # messages of this queue waiting at its consumer
            q_comp, consumer = topo.edge_src[e], topo.edge_dst[e]
            fraction = sent[e] / np.maximum(arrivals[consumer], TINY)
            queue_depth[q_comp] = self.backlog[consumer] * np.clip(fraction, 0.0, 1.0)

        self.tick, self.time = tick + 1, t1
        self.offered = arrivals          # [S, B] requests per second that reached each component this tick
        return Truth(
            time=t1,
            requests=arrived.T,
            users=users.T,
            failed=(requests * (1.0 - ok) + (door if door is not None else 0.0)).T,
            wrong=(requests * ok * wrong[er]).T if wrong is not None else np.zeros((B, len(er)), REAL),
            slo_met=(requests * met).T,
            slo_breached=breached.T.astype(REAL),
            latency_mean=m.T,
            latency_var=v.T,
            latency_third=k3.T,
            offered=offered.T,
            served=(served * dt).T,
            wrong_answers=(served * dt * wrong[:S]).T if wrong is not None else np.zeros((B, S), REAL),
            failed_by_cause=failed_by_cause.transpose(2, 1, 0),
            response_mean=t_mean[:S].T,
            response_var=t_var[:S].T,
            cpu_utilisation=cpu_util.T,
            slot_utilisation=slot_util.T,
            backlog=self.backlog.T.copy(),
            queue_depth=queue_depth.T,
            ready_replicas=in_rot.T,
            desired_replicas=k.replicas.T.astype(REAL),
            restarts=reps.restarts.T,
            memory_used=reps.memory_used.T,
            memory_max_fraction=reps.memory_max_fraction.T,
            disk_max_fraction=reps.disk_max_fraction.T,
            gpu_memory_fraction=gpu_fraction.T,
            edge_attempts=(sent * dt).T,
            edge_failure=call_fail.T,
            node_cpu=node_cpu.T,
            node_memory=node_memory.T,
            latency_cap=self._latency_cap,
        )

    # ---- pieces of a tick ------------------------------------------------------------------------------------------
    def _requests(self, tick: int, t0: float) -> tuple[np.ndarray, np.ndarray]:
        """[P, B] requests arriving at each endpoint this tick (the rate profile x (users' knob + a flooding client's)
        x noise x bursts, Poisson), and [P, B] the users' share of them."""
        k, dt, traffic = self.knobs, self.dt, self.topology.scenario.traffic
        P = len(self.topology.endpoints)
        sent = k.traffic + k.flood if self._flooding else k.traffic
        rate = self.rates[min(tick, len(self.rates) - 1)][:, None] * sent
        if traffic.noise > 0:
            sigma2 = math.log1p(traffic.noise * traffic.noise)
            z = self.streams.normal(tick, 2, 1)[:, 0]
            rate = rate * np.exp(math.sqrt(sigma2) * z - 0.5 * sigma2)
        if traffic.bursts is not None and traffic.bursts.rate > 0:
            start = self.streams.uniform(tick, 3, 1)[:, 0] < traffic.bursts.rate * dt
            self.burst_until = np.where(start & (self.burst_until < t0), t0 + traffic.bursts.duration, self.burst_until)
            rate = rate * np.where(self.burst_until > t0, traffic.bursts.magnitude, 1.0)
        if traffic.arrivals == "expected":
            requests = (rate * dt).astype(REAL)
        else:
            requests = poisson(rate * dt, self.streams.normal(tick, 1, P).T,
                               lambda: self.streams.uniform(tick, 0, P).T).astype(REAL)
        if not self._flooding:
            return requests, requests
        return requests, (requests * (k.traffic / np.maximum(sent, TINY))).astype(REAL)

    def _hit_ratio(self, now: float) -> np.ndarray:
        """[S, B] the share of lookups each cache answers: its configured ratio, times how full it is since its
        replicas last started (a restarted cache is empty and sends every lookup to what it fronts)."""
        k, rows = self.knobs, self._caches
        if not len(rows):
            return k.hit_ratio
        reps, pick = self.replicas, self._cache_replicas
        if not ((reps.running[pick] > 0) & (reps.started[pick] > now - 20.0 * CACHE_FILL_TIME)).any():
            return k.hit_ratio          # every cache replica has been up long enough to be full
        hit = k.hit_ratio.copy()
        hit[rows] *= self.replicas.warmth(rows, now, CACHE_FILL_TIME)
        return hit

    def _gpu_memory(self, served: np.ndarray, serving: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """GPU memory in use / available [S, B], and the share of requests failing because the KV cache of the
        in-flight requests no longer fits beside the model weights."""
        topo, S, B = self.topology, self.topology.n_components, self.worlds
        fraction, error = np.zeros((S, B), REAL), np.zeros((S, B), REAL)
        if not self._gpu.size:
            return fraction, error
        g = self._gpu
        in_flight = served[g] * self.hold[g] / np.maximum(serving[g], 1.0)      # per replica, by Little's law
        available = (topo.gpu_count * topo.gpu_memory)[g][:, None].astype(REAL)
        model = topo.gpu_model_memory[g][:, None].astype(REAL)
        kv_need = in_flight * topo.gpu_kv_per_request[g][:, None].astype(REAL) * self.knobs.request_size[g]
        fraction[g] = (model + kv_need) / available
        kv_room = np.maximum(available - model, 0.0)
        error[g] = np.where(kv_need > kv_room, 1.0 - kv_room / np.maximum(kv_need, TINY), 0.0)
        return fraction, error

    def _partition_blocked(self) -> np.ndarray | float:
        """[E, B] fraction of call attempts whose caller and callee replicas sit in zones that cannot talk."""
        k, topo = self.knobs, self.topology
        if not k.partition.any():
            return 0.0
        # only the worlds with a partition are worked out: in the others every term is 0 (shares are finite)
        cut = np.flatnonzero(k.partition.any(axis=(0, 1)))
        reps = self.replicas
        running = reps.running[:, cut] * ~reps.moved[:, cut]      # rescheduled replicas sit in no zone's way
        Z = len(topo.zones)
        share = np.stack([reps.per_component(running * (self._replica_zone == z)[:, None])
                          for z in range(Z)])                                   # [Z, S, W]
        total = share[0].copy()
        for z in range(1, Z):               # zone by zone, in order
            total += share[z]
        share = share / np.maximum(total, 1.0)
        src, dst = share[:, topo.edge_src], share[:, topo.edge_dst]            # [Z, E, W]
        part = k.partition[:, :, cut]
        cut_blocked = np.zeros((topo.n_edges, len(cut)), REAL)
        for a in range(Z):
            for b in range(Z):
                cut_blocked += src[a] * dst[b] * part[a, b]
        blocked = np.zeros((topo.n_edges, self.worlds), REAL)
        blocked[:, cut] = cut_blocked
        return blocked

    def _patience(self, level: "_Level", capacity: np.ndarray, inflow: np.ndarray, entry: np.ndarray,
                  timeout: np.ndarray) -> np.ndarray:
        """[level components, B] the longest wait an overloaded component's queue settles at.

        Callers give up at different deadlines. When offered load passes capacity, the requests with the shortest
        deadlines are dropped first, so the wait grows to the longest deadline whose callers (with all longer ones)
        still offer more than the capacity: the deadline of class j where, counting from the longest, the arrival
        rate first reaches capacity.
        """
        waits = np.repeat(self._static_patience[level.components], self.worlds, axis=1)
        rows, edges = level.single_deadline
        if len(rows):
            waits[rows] = timeout[edges]
        for row, sources in level.deadline_classes:   # (row in level, [(edge or -1 - endpoint), ...] longest first)
            rates = [inflow[e] if e >= 0 else entry[-1 - e] for e in sources]
            limits = [timeout[e] if e >= 0 else self._col["endpoint_timeout"][-1 - e] for e in sources]
            cumulative = np.cumsum(rates, axis=0)
            wait = limits[-1] + np.zeros(self.worlds, REAL)
            for j in range(len(sources) - 1, -1, -1):       # shortest first, so the longest that qualifies wins
                wait = np.where(cumulative[j] >= capacity[row], limits[j], wait)
            waits[row] = wait
        return waits

    def _nodes(self, cpu_per_replica: np.ndarray, steal: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cores and bytes in use per node [N, B], and each component's mean CPU contention factor [S, B]."""
        topo, reps = self.topology, self.replicas
        # replicas rescheduled off their node run on spare capacity elsewhere: neither counted nor slowed here
        running = reps.running * ~reps.moved if self._any_moved else reps.running
        by_node = self._replicas_by_node
        cpu = np.zeros((len(topo.nodes), self.worlds), REAL)
        cpu[by_node.targets] = by_node.sum(running * cpu_per_replica[topo.replica_component])
        if reps.memory_changed or self._node_memory is None:
            self._node_memory = np.zeros_like(cpu)
            self._node_memory[by_node.targets] = by_node.sum(reps.memory * (running > 0))
            reps.memory_changed = False
        memory = self._node_memory
        demand = (cpu + steal) / self._node_cores
        if not (demand > 1.0).any():   # no node is short of cores: nobody is slowed down
            return cpu, memory, self._no_slowdown
        per_replica = np.maximum(demand, 1.0)[topo.replica_node] * running + (reps.running - running)
        total = reps.per_component(per_replica)
        count = reps.per_component(reps.running)
        return cpu, memory, np.where(count > 0, total / np.maximum(count, 1.0), 1.0)

    def _autoscale(self, cpu_util: np.ndarray, ready: np.ndarray, now: float) -> None:
        """Kubernetes-HPA-like: desired = ceil(ready x utilisation / target), 10% tolerance, delayed scale-down."""
        rows = self._autoscaled
        if not len(rows):
            return
        k, col = self.knobs, self._col
        ready = ready[rows]
        current = k.replicas[rows]
        ratio = cpu_util[rows] / col["as_target"][rows]
        want = np.clip(np.ceil(ready * ratio), k.scale_min[rows], k.scale_max[rows])
        act = (ready > 0) & (np.abs(ratio - 1.0) > 0.1)
        up = act & (want > current)
        down = act & (want < current)
        since = np.where(down, np.minimum(self.scale_down_since[rows], now), np.inf)
        settle = down & (now - since >= col["as_down_delay"][rows])
        change = up | settle
        self.scale_down_since[rows] = np.where(settle, np.inf, since)
        if change.any():
            k.replicas[rows] = np.where(change, want, current).astype(np.int64)
            self._knobs_changed = True
            self._writes["replicas"] += 1
            for i, s in enumerate(rows):
                hit = np.flatnonzero(change[i])
                if hit.size:
                    self.changes.add(now, hit, "scale", self.topology.components[s], current[i, hit].astype(str),
                                     want[i, hit].astype(np.int64).astype(str), "horizontal-pod-autoscaler")

    def _deadline_classes(self, cs: slice) -> list[tuple[int, list[int]]]:
        """For components called with more than one deadline: their callers, longest deadline first. An edge is
        named by its index, an endpoint p by -1 - p."""
        topo = self.topology
        out = []
        for c in range(cs.start, cs.stop):
            sources = [(float(topo.edge_timeout[e]), int(e)) for e in np.flatnonzero(topo.edge_dst == c)]
            sources += [(float(topo.endpoint_timeout[p]), -1 - p) for p in np.flatnonzero(topo.endpoint_component == c)]
            if len({t for t, _ in sources}) > 1:
                out.append((c - cs.start, [e for _, e in sorted(sources, key=lambda x: -x[0])]))
        return out

    def _single_deadline(self, cs: slice) -> tuple[np.ndarray, np.ndarray]:
        topo = self.topology
        rows, edges = [], []
        for c in range(cs.start, cs.stop):
            callers = np.flatnonzero(topo.edge_dst == c)
            if len(callers) == 1 and not (topo.endpoint_component == c).any():
                rows.append(c - cs.start)
                edges.append(int(callers[0]))
        return np.array(rows, dtype=np.int64), np.array(edges, dtype=np.int64)

    def _distinct_calls(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Edges that are the same call (same caller, callee and policy, made for different endpoints) share one
        computation of attempts, failures and latency; only the number of calls differs. Calls through a
        connection pool or a circuit breaker keep their own (their state is per edge)."""
        topo = self.topology
        index: dict[tuple, int] = {}
        first, call_of = [], []
        for i, e in enumerate(ids):
            alone = topo.edge_pool[e] > 0 or topo.edge_cb_ratio[e] <= 1.0 or topo.edge_kind[e] == CONSUME
            key = ("edge", int(e)) if alone else (int(topo.edge_src[e]), int(topo.edge_dst[e]), int(topo.edge_kind[e]),
                                                  float(topo.edge_timeout[e]), float(topo.edge_retries[e]),
                                                  float(topo.edge_backoff[e]), float(topo.edge_network[e]))
            if key not in index:
                index[key] = len(first)
                first.append(i)
            call_of.append(index[key])
        if len(first) == len(ids):
            return np.arange(len(ids)), None
        return np.array(first, dtype=np.int64), np.array(call_of, dtype=np.int64)

    def _own_wrong(self, k: Knobs, arrivals: np.ndarray) -> np.ndarray | None:
        """[S, B] P(a component's own answer is wrong but looks fine): what a fault makes wrong, and the stores a
        queue's consumer keeps up to date read stale while its messages wait longer than the queue's freshness
        (the wait: the backlog left last tick over this tick's publish rate, the age of the oldest message when
        the consumer stopped); None when nothing is wrong anywhere."""
        own = np.clip(k.wrong, 0.0, 1.0) if self._wrong else None
        if len(self._feeds):
            q, store = self._feeds[:, 0], self._feeds[:, 1]
            lag = self.queue_depth[q] / np.maximum(arrivals[q], TINY)                   # [Q, B] seconds
            late = np.maximum(lag - self._freshness, 0.0)
            if late.any():
                stale = np.zeros_like(arrivals)
                np.maximum.at(stale, store, -np.expm1(-late / self._freshness))
                own = stale if own is None else 1.0 - (1.0 - own) * (1.0 - stale)
        return own

    def _plan(self) -> list[_Level]:
        topo = self.topology
        levels = []
        for cs in topo.level_slices:
            edges = slice(topo.out_slices[cs.start].start, topo.out_slices[cs.stop - 1].stop)
            ids = np.arange(edges.start, edges.stop)
            ops = [o for o, h in enumerate(self._op_host) if cs.start <= h < cs.stop]
            # an endpoint's own calls fold into its operation's row, after the level's component rows
            row_of = {int(self._ops[o]): cs.stop - cs.start + i for i, o in enumerate(ops)}
            caller = np.array([topo.edge_src[e] - cs.start if topo.edge_endpoint[e] < 0
                               else row_of[int(topo.edge_endpoint[e])] for e in ids], dtype=np.int64)
            waited = topo.edge_kind[ids] != CONSUME                      # the caller waits for these calls
            first, call_of = self._distinct_calls(ids)
            seq = np.flatnonzero(waited & ~topo.edge_parallel[ids])
            req = np.flatnonzero(waited & topo.edge_required[ids])
            par = np.flatnonzero(waited & topo.edge_parallel[ids])
            levels.append(_Level(
                components=cs,
                edges=edges,
                down=Segments.of(np.arange(len(ids)), topo.edge_dst[ids]),
                sequential=Segments.of(seq, caller[seq]),
                required=Segments.of(req, caller[req]),
                parallel=_Parallel.of(caller, par),
                pooled=np.flatnonzero(topo.edge_pool[ids[first]] > 0),
                calls=ids[first] if call_of is not None else edges,
                call_of=call_of,
                whole_calls=bool(np.all(topo.edge_calls[ids] == np.floor(topo.edge_calls[ids]))
                                 and not np.any(topo.edge_kind[ids] == MISS)),
                deadline_classes=self._deadline_classes(cs),
                single_deadline=self._single_deadline(cs),
                rows=np.concatenate([np.arange(cs.start, cs.stop), topo.n_components + np.array(ops, dtype=np.int64)])
                if ops else cs,
                hosts=np.concatenate([np.arange(cs.start, cs.stop), self._op_host[ops]]) if ops else cs,
                mixes=[(int(h), [(o, int(self._ops[o]), np.flatnonzero(topo.edge_endpoint[ids] == self._ops[o]))
                                 for o in ops if self._op_host[o] == h],
                        np.flatnonzero((topo.edge_src[ids] == h) & (topo.edge_endpoint[ids] < 0)))
                       for h in sorted({int(self._op_host[o]) for o in ops})],
            ))
        return levels


@dataclass(frozen=True)
class _Parallel:
    """A level's parallel calls as a table: row g holds the positions of caller g's parallel calls, callers with more
    calls first, so the callers that have a j-th call are the first `counts[j]` rows."""

    callers: np.ndarray    # [G] level-relative rows
    table: np.ndarray      # [G, K] positions, padded with -1
    counts: np.ndarray     # [K]

    @staticmethod
    def of(caller: np.ndarray, par: np.ndarray) -> "_Parallel | None":
        if not len(par):
            return None
        groups = [par[caller[par] == c] for c in np.unique(caller[par])]
        order = sorted(range(len(groups)), key=lambda g: -len(groups[g]))
        table = np.full((len(groups), len(groups[order[0]])), -1, np.int64)
        for row, g in enumerate(order):
            table[row, :len(groups[g])] = groups[g]
        return _Parallel(np.unique(caller[par])[order], table, (table >= 0).sum(axis=0))


def _clark_max(m1: np.ndarray, v1: np.ndarray, m2: np.ndarray, v2: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and variance of the max of two independent normals (Clark, 1961), and P(the first is the larger)."""
    theta = np.sqrt(np.maximum(v1 + v2, TINY))
    alpha = (m1 - m2) / theta
    cdf = 1.0 - qt.normal_sf(alpha)
    pdf = np.exp(-0.5 * alpha * alpha) / math.sqrt(2.0 * math.pi)
    mean = m1 * cdf + m2 * (1.0 - cdf) + theta * pdf
    second = (m1 * m1 + v1) * cdf + (m2 * m2 + v2) * (1.0 - cdf) + (m1 + m2) * theta * pdf
    return mean, np.maximum(second - mean * mean, 0.0), cdf
