"""A scenario compiled into flat arrays: components in topological order, call edges, replicas, nodes, endpoints.

Everything here is shared by all worlds of a batch and never changes during an episode; what varies per world lives
in `Knobs` (what faults and actions set) and in the engine's state.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from opsworld.spec.schema import Cache, Datastore, Dependency, Queue, Scenario

KINDS = ("service", "cache", "datastore", "queue")

# Edge kinds: how a call on the edge behaves.
CALL, PUBLISH, MISS, CONSUME = 0, 1, 2, 3
NO_DEADLINE = 1e6  # seconds (11 days): messages taken off a queue wait as long as it takes


@dataclass(frozen=True)
class Topology:
    """Static structure of a scenario. Arrays over components are [S], over edges [E], over replicas [R]."""

    scenario: Scenario
    components: list[str]          # in topological order: every caller before its callees
    kind: np.ndarray               # [S] index into KINDS
    level: np.ndarray              # [S] longest call path from a root
    level_slices: list[slice]      # components of each level, contiguous
    replicas: np.ndarray           # [S] replicas at start
    max_replicas: np.ndarray       # [S] replica slots kept: room to double the replicas or reach the autoscaler max
    concurrency: np.ndarray        # [S]
    cpu: np.ndarray                # [S] cores per replica
    idle_cpu: np.ndarray           # [S] share of each replica's limit its runtime uses at rest
    service_mean: np.ndarray       # [S] seconds of own work
    service_cv: np.ndarray         # [S]
    error_rate: np.ndarray         # [S]
    memory_limit: np.ndarray       # [S] bytes per replica
    memory_baseline: np.ndarray    # [S] bytes per replica at rest
    disk: np.ndarray               # [S] bytes per replica
    startup: np.ndarray            # [S] seconds to ready
    hc_eject_after: np.ndarray     # [S] seconds a replica fails health checks before it leaves the load balancer
    hit_ratio: np.ndarray          # [S] caches: fraction of lookups answered; others 1
    queue_capacity: np.ndarray     # [S] queues: most messages held before publishes are refused; others inf
    queue_freshness: np.ndarray    # [S] queues: seconds a message may wait before what it updates reads stale; inf
    feeds: np.ndarray              # [Q, 2] (queue, store): the stores each queue's consumer keeps up to date
    autoscaled: np.ndarray         # [S] bool
    as_min: np.ndarray             # [S]
    as_max: np.ndarray             # [S]
    as_target: np.ndarray          # [S] target CPU utilisation
    as_interval: np.ndarray        # [S]
    as_down_delay: np.ndarray      # [S]
    gpu_count: np.ndarray          # [S] GPUs per replica, 0 without
    gpu_memory: np.ndarray         # [S] bytes per GPU
    gpu_model_memory: np.ndarray   # [S] bytes of weights per replica
    gpu_kv_per_request: np.ndarray # [S] bytes of KV cache per in-flight request
    deploy: list[str]              # [S] deploy version at start
    config: list[str]              # [S] config version at start
    # edges, sorted by source (so each component's out-edges are contiguous)
    edge_src: np.ndarray           # [E]
    edge_dst: np.ndarray           # [E]
    edge_kind: np.ndarray          # [E] CALL, PUBLISH, MISS or CONSUME
    edge_calls: np.ndarray         # [E] mean calls per request (MISS edges: set per tick from the hit ratio)
    edge_parallel: np.ndarray      # [E] bool
    edge_timeout: np.ndarray       # [E] seconds
    edge_retries: np.ndarray       # [E]
    edge_backoff: np.ndarray       # [E] seconds
    edge_required: np.ndarray      # [E] bool
    edge_network: np.ndarray       # [E] seconds of round trip
    edge_pool: np.ndarray          # [E] connections per caller replica (datastore calls), 0 = no pool
    edge_cb_ratio: np.ndarray      # [E] failure ratio that opens the breaker (> 1: no breaker)
    edge_cb_open_for: np.ndarray   # [E]
    edge_cb_min_calls: np.ndarray  # [E]
    edge_endpoint: np.ndarray      # [E] the endpoint whose requests alone make this call, or -1 for every request
    out_slices: list[slice]        # [S] each component's out-edges
    deadline: np.ndarray           # [S] the longest time a caller waits for this component
    # replicas: every replica slot of every component, grouped by component
    replica_component: np.ndarray  # [R]
    replica_index: np.ndarray      # [R] index within its component
    replica_node: np.ndarray       # [R]
    replica_starts: np.ndarray     # [S] first replica slot of each component
    # nodes and zones
    nodes: list[str]
    node_zone: np.ndarray          # [N]
    node_cpu: np.ndarray           # [N] cores
    node_memory: np.ndarray        # [N] bytes
    zones: list[str]
    # entry endpoints
    endpoints: list[str]
    endpoint_component: np.ndarray # [P]
    endpoint_share: np.ndarray     # [P] fraction of the base rate
    endpoint_timeout: np.ndarray   # [P]
    endpoint_slo_latency: np.ndarray   # [P]
    endpoint_slo_availability: np.ndarray  # [P]
    endpoint_slo_percentile: np.ndarray    # [P]
    endpoint_own_calls: np.ndarray         # [P] bool: the endpoint lists its own calls (possibly none)
    # certificates
    certificates: list[str]
    cert_component: np.ndarray     # [C]
    cert_not_after: np.ndarray     # [C] Unix seconds

    @property
    def n_components(self) -> int:
        return len(self.components)

    @property
    def n_edges(self) -> int:
        return len(self.edge_src)

    def index(self, component: str) -> int:
        """Position of a component by name."""
        try:
            return self.components.index(component)
        except ValueError:
            raise KeyError(f"no component named '{component}'; known: {', '.join(self.components)}") from None


def compile_topology(scenario: Scenario) -> Topology:
    """Flatten a checked scenario into a `Topology`."""
    comps = scenario.components
    raw_edges: list[tuple[str, str, int, dict]] = []

    def call(caller: str, dep: Dependency, endpoint: int) -> None:
        kind = PUBLISH if isinstance(comps[dep.target], Queue) else CALL
        pool = comps[dep.target].pool_size if isinstance(comps[dep.target], Datastore) else 0
        cb = dep.circuit_breaker
        raw_edges.append((caller, dep.target, kind, dict(
            calls=dep.calls, parallel=dep.mode == "parallel", timeout=dep.timeout, retries=dep.retries,
            backoff=dep.backoff, required=dep.required, network=dep.network_latency, pool=pool,
            cb_ratio=cb.failure_ratio if cb else 2.0, cb_open_for=cb.open_for if cb else 0.0,
            cb_min_calls=cb.min_calls if cb else 0.0, endpoint=endpoint)))

    for p, ep in enumerate(scenario.traffic.endpoints):
        for dep in ep.calls or []:
            call(ep.service, dep, p)
    for name, comp in comps.items():
        for dep in comp.dependencies:
            call(name, dep, -1)
        if isinstance(comp, Cache):
            pool = comps[comp.fronts].pool_size if isinstance(comps[comp.fronts], Datastore) else 0
            raw_edges.append((name, comp.fronts, MISS, dict(
                calls=1.0 - comp.hit_ratio, parallel=False, timeout=0.0, retries=0, backoff=0.0, required=True,
                network=0.0005, pool=pool, cb_ratio=2.0, cb_open_for=0.0, cb_min_calls=0.0, endpoint=-1)))
        if isinstance(comp, Queue):
            raw_edges.append((name, comp.consumer, CONSUME, dict(
                calls=1.0, parallel=False, timeout=NO_DEADLINE, retries=0, backoff=0.0, required=False,
                network=0.0005, pool=0, cb_ratio=2.0, cb_open_for=0.0, cb_min_calls=0.0, endpoint=-1)))

    # longest-path levels give a topological order in which callers come first
    level = {name: 0 for name in comps}
    for _ in range(len(comps)):
        changed = False
        for src, dst, _, _ in raw_edges:
            if level[dst] < level[src] + 1:
                level[dst] = level[src] + 1
                changed = True
        if not changed:
            break
    names = sorted(comps, key=lambda n: (level[n], list(comps).index(n)))
    pos = {n: i for i, n in enumerate(names)}
    raw_edges.sort(key=lambda e: (pos[e[0]], pos[e[1]] if e[2] != CONSUME else 10**6))
    S, E = len(names), len(raw_edges)
    levels = np.array([level[n] for n in names])
    level_slices = [slice(int(np.searchsorted(levels, lv)), int(np.searchsorted(levels, lv, side="right")))
                    for lv in range(int(levels.max()) + 1)]

    def arr(values, dtype=np.float64) -> np.ndarray:
        return np.array(list(values), dtype=dtype)

    cs = [comps[n] for n in names]
    e_src = arr((pos[e[0]] for e in raw_edges), np.int64)
    e_dst = arr((pos[e[1]] for e in raw_edges), np.int64)
    e_kind = arr((e[2] for e in raw_edges), np.int64)
    out_slices = [slice(int(np.searchsorted(e_src, s)), int(np.searchsorted(e_src, s, side="right"))) for s in range(S)]

    # A cache's miss call lives as long as the cache request does: the longest deadline of its callers.
    timeout = arr(e[3]["timeout"] for e in raw_edges)
    deadline = np.zeros(S)
    for p, ep in enumerate(scenario.traffic.endpoints):
        deadline[pos[ep.service]] = max(deadline[pos[ep.service]], ep.timeout)
    incoming: list[list[int]] = [[] for _ in range(S)]
    for e in range(E):
        if e_kind[e] != MISS:
            incoming[int(e_dst[e])].append(e)
    for s in range(S):  # in topological order, so callers are settled first
        for e in incoming[s]:
            deadline[s] = max(deadline[s], timeout[e])
        for e in range(*out_slices[s].indices(E)):
            if e_kind[e] == MISS:
                timeout[e] = deadline[s]
    for e in range(E):
        if e_kind[e] == MISS:
            deadline[e_dst[e]] = max(deadline[e_dst[e]], timeout[e])

    replicas = arr((c.instances for c in cs), np.int64)
    as_max = arr(((c.autoscaler.max if c.autoscaler else c.instances) for c in cs), np.int64)
    max_replicas = np.maximum(np.maximum(2 * replicas, as_max), 1)   # room for an operator to scale up

    node_names = [n.name for n in scenario.nodes]
    zones = scenario.zones
    rep_comp, rep_idx, rep_node = [], [], []
    node_at = {n: i for i, n in enumerate(node_names)}
    pools: dict[str, list[int]] = {}
    for i, n in enumerate(scenario.nodes):
        pools.setdefault(n.pool, []).append(i)
    for s, c in enumerate(cs):
        placed = [node_at[n] for n in c.nodes] if c.nodes else pools[c.node_pool]
        for r in range(int(max_replicas[s])):
            rep_comp.append(s)
            rep_idx.append(r)
            rep_node.append(placed[(r + s) % len(placed)])  # spread, offset per component
    replica_starts = np.concatenate([[0], np.cumsum(max_replicas)[:-1]]).astype(np.int64)

    eps = scenario.traffic.endpoints
    total_share = sum(ep.share for ep in eps)
    feeds = [(pos[name], pos[store]) for name, q in comps.items() if isinstance(q, Queue)
             for store in (q.feeds if q.feeds is not None else
                           [d.target for d in comps[q.consumer].dependencies
                            if isinstance(comps[d.target], (Datastore, Cache))])]

    return Topology(
        scenario=scenario,
        components=names,
        kind=arr((KINDS.index(c.kind) for c in cs), np.int64),
        level=levels,
        level_slices=level_slices,
        replicas=replicas,
        max_replicas=max_replicas,
        concurrency=arr(c.concurrency for c in cs),
        cpu=arr(c.cpu for c in cs),
        idle_cpu=arr(c.idle_cpu for c in cs),
        service_mean=arr(c.service_time.mean for c in cs),
        service_cv=arr(c.service_time.cv for c in cs),
        error_rate=arr(c.error_rate for c in cs),
        memory_limit=arr(c.memory for c in cs),
        memory_baseline=arr((c.memory_baseline if c.memory_baseline is not None else 0.4 * c.memory) for c in cs),
        disk=arr(c.disk for c in cs),
        startup=arr(c.startup for c in cs),
        hc_eject_after=arr(c.health_check.interval * c.health_check.unhealthy_threshold for c in cs),
        hit_ratio=arr((c.hit_ratio if isinstance(c, Cache) else 1.0) for c in cs),
        queue_capacity=arr((float(c.capacity) if isinstance(c, Queue) else np.inf) for c in cs),
        queue_freshness=arr((float(c.freshness) if isinstance(c, Queue) else np.inf) for c in cs),
        feeds=np.array(feeds, dtype=np.int64).reshape(-1, 2),
        autoscaled=arr((c.autoscaler is not None for c in cs), bool),
        as_min=arr(((c.autoscaler.min if c.autoscaler else c.instances) for c in cs), np.int64),
        as_max=as_max,
        as_target=arr(((c.autoscaler.target_cpu if c.autoscaler else 1.0) for c in cs)),
        as_interval=arr(((c.autoscaler.interval if c.autoscaler else 15.0) for c in cs)),
        as_down_delay=arr(((c.autoscaler.scale_down_delay if c.autoscaler else 300.0) for c in cs)),
        gpu_count=arr(((c.gpu.count if c.gpu else 0) for c in cs)),
        gpu_memory=arr(((c.gpu.memory if c.gpu else 0.0) for c in cs)),
        gpu_model_memory=arr(((c.gpu.model_memory if c.gpu else 0.0) for c in cs)),
        gpu_kv_per_request=arr(((c.gpu.kv_cache_per_request if c.gpu else 0.0) for c in cs)),
        deploy=[c.deploy for c in cs],
        config=[c.config for c in cs],
        edge_src=e_src,
        edge_dst=e_dst,
        edge_kind=e_kind,
        edge_calls=arr(e[3]["calls"] for e in raw_edges),
        edge_parallel=arr((e[3]["parallel"] for e in raw_edges), bool),
        edge_timeout=timeout,
        edge_retries=arr(e[3]["retries"] for e in raw_edges),
        edge_backoff=arr(e[3]["backoff"] for e in raw_edges),
        edge_required=arr((e[3]["required"] for e in raw_edges), bool),
        edge_network=arr(e[3]["network"] for e in raw_edges),
        edge_pool=arr(e[3]["pool"] for e in raw_edges),
        edge_cb_ratio=arr(e[3]["cb_ratio"] for e in raw_edges),
        edge_cb_open_for=arr(e[3]["cb_open_for"] for e in raw_edges),
        edge_cb_min_calls=arr(e[3]["cb_min_calls"] for e in raw_edges),
        edge_endpoint=arr((e[3]["endpoint"] for e in raw_edges), np.int64),
        out_slices=out_slices,
        deadline=np.maximum(deadline, 1e-3),
        replica_component=arr(rep_comp, np.int64),
        replica_index=arr(rep_idx, np.int64),
        replica_node=arr(rep_node, np.int64),
        replica_starts=replica_starts,
        nodes=node_names,
        node_zone=arr((zones.index(n.zone) for n in scenario.nodes), np.int64),
        node_cpu=arr(n.cpu for n in scenario.nodes),
        node_memory=arr(n.memory for n in scenario.nodes),
        zones=zones,
        endpoints=[ep.name for ep in eps],
        endpoint_component=arr((pos[ep.service] for ep in eps), np.int64),
        endpoint_share=arr(ep.share / total_share for ep in eps),
        endpoint_timeout=arr(ep.timeout for ep in eps),
        endpoint_slo_latency=arr(ep.slo.latency for ep in eps),
        endpoint_slo_availability=arr(ep.slo.availability for ep in eps),
        endpoint_slo_percentile=arr(ep.slo.percentile for ep in eps),
        endpoint_own_calls=arr((ep.calls is not None for ep in eps), bool),
        certificates=[c.name for c in scenario.certificates],
        cert_component=arr((pos[c.component] for c in scenario.certificates), np.int64),
        cert_not_after=arr(c.not_after for c in scenario.certificates),
    )


_RECENT: dict[int, tuple[Scenario, Topology]] = {}


def topology_of(scenario: Scenario) -> Topology:
    """The compiled topology of a scenario, kept for the last few scenarios: checking hundreds of faults against one
    scenario then compiles it once. Shared, so read it only (an `Engine` compiles its own)."""
    hit = _RECENT.get(id(scenario))
    if hit is None or hit[0] is not scenario:
        if len(_RECENT) >= 4:
            _RECENT.pop(next(iter(_RECENT)))
        hit = _RECENT[id(scenario)] = (scenario, compile_topology(scenario))
    return hit[1]


def idle_hold(topo: Topology) -> np.ndarray:
    """[S] seconds a request holds a component with no queueing anywhere: its own work and its calls (sequential
    ones added, parallel ones the longest), bottom up."""
    hold = topo.service_mean.astype(np.float64)
    for s in reversed(range(topo.n_components)):
        seq, par = 0.0, 0.0
        for e in range(*topo.out_slices[s].indices(topo.n_edges)):
            if topo.edge_kind[e] == CONSUME or topo.edge_endpoint[e] >= 0:
                continue
            cost = topo.edge_calls[e] * (hold[topo.edge_dst[e]] + topo.edge_network[e])
            if topo.edge_parallel[e]:
                par = max(par, cost)
            else:
                seq += cost
        hold[s] += seq + par
    return hold


def read_only(topology: Topology) -> Topology:
    """The same topology with its arrays made read-only, to be shared by many engines: a write is an error."""
    for f in fields(topology):
        value = getattr(topology, f.name)
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    return topology
