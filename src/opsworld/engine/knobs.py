"""The engine's control surface: per-world parameters that faults and actions change, and nothing else.

Faults (a leak, a bad deploy, an expired certificate) and runbook actions (scale, roll back, drain) act on a world
only by setting these arrays through `Knobs.set`; the engine's dynamics turn them into symptoms. Neither reaches
into the engine's internals, and nothing here is visible to an agent.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal, Sequence

import numpy as np

from opsworld.engine.real import REAL
from opsworld.engine.topology import Topology

Worlds = int | Sequence[int] | np.ndarray | None

COMPONENT_KNOBS = ("capacity", "error_rate", "latency", "replicas", "memory_growth", "disk_growth", "hit_ratio",
                   "crash_loop", "deploy", "config", "cpu_hog", "request_size", "hang_after", "flap", "wrong", "rate_limit", "scale_min",
                   "scale_max", "restart_at", "kill_at", "error_kind", "replication_lag")
EDGE_KNOBS = ("blocked", "network_latency", "pool_size", "retries", "timeout", "backoff", "breaker_open", "refusal")
NODE_KNOBS = ("cpu_steal", "node_down", "drained", "isolated", "gpu_health")
ENDPOINT_KNOBS = ("traffic", "flood", "admit", "handler_error")
KNOB_NAMES = COMPONENT_KNOBS + EDGE_KNOBS + NODE_KNOBS + ENDPOINT_KNOBS + ("cert_not_after", "partition", "hung")
KnobName = Literal[
    "capacity", "error_rate", "latency", "replicas", "memory_growth", "disk_growth", "hit_ratio", "crash_loop",
    "deploy", "config", "cpu_hog", "request_size", "hang_after", "flap", "wrong", "rate_limit", "scale_min", "scale_max", "restart_at",
    "kill_at", "error_kind", "replication_lag", "blocked", "network_latency", "pool_size", "retries", "timeout", "backoff", "breaker_open",
    "cpu_steal", "node_down", "drained", "isolated", "gpu_health", "cert_not_after", "partition", "traffic", "flood", "admit",
    "handler_error", "hung", "refusal",
]

# What a process prints when its requests fail (`error_kind`) and how a refused call attempt fails (`refusal`):
# physical facts of the world, like an exception class or an errno, read by the log and trace sensors.
ERROR_KINDS = ("exception", "config", "fd_exhausted", "clock_skew", "id_overflow", "wraparound", "read_only")
REFUSALS = ("refused", "no_such_host", "timeout", "unauthorized", "too_many_clients")
GPU_HEALTH = ("ok", "ecc", "thermal", "interconnect", "lost")   # what ails a node's GPUs, as their driver sees it


@dataclass
class Knobs:
    """Per-world parameters, world axis last: S components, E edges, C certificates, Z zones, N nodes, P endpoints,
    R replica slots, B worlds. (World-last keeps each component's row contiguous for the engine's level slices.)
    """

    capacity: np.ndarray        # [S, B] speed of own work, 1 = as specified (a CPU hog lowers it)
    error_rate: np.ndarray      # [S, B] probability a request fails after its own work (application errors)
    latency: np.ndarray         # [S, B] seconds each request waits without using a core (lock waits, slow I/O)
    replicas: np.ndarray        # [S, B] desired replicas (what a scale action or the autoscaler asks for)
    memory_growth: np.ndarray   # [S, B] bytes per second each running replica's memory grows by (a leak)
    disk_growth: np.ndarray     # [S, B] bytes per second each replica writes to its disk
    hit_ratio: np.ndarray       # [S, B] caches: fraction of lookups answered from the cache
    crash_loop: np.ndarray      # [S, B] bool: replicas crash shortly after starting (a bad build)
    deploy: np.ndarray          # [S, B] int id of the running deploy version (Engine.versions names it)
    config: np.ndarray          # [S, B] int id of the running config version
    cpu_hog: np.ndarray         # [S, B] share of each replica's CPU limit burnt by other than requests: the runtime's
    #                             idle work (`idle_cpu`), and a runaway process or thread on top of it
    request_size: np.ndarray    # [S, B] multiplier on the memory a request in flight needs (GPU KV cache)
    hang_after: np.ndarray      # [S, B] seconds of uptime after which a replica deadlocks (inf: never)
    flap: np.ndarray            # [S, B] fraction of running replicas the health checks wrongly take out of rotation
    wrong: np.ndarray           # [S, B] fraction of answers that are wrong but reported as successes
    rate_limit: np.ndarray      # [S, B] requests per second admitted; the rest are refused (inf: no limit)
    scale_min: np.ndarray       # [S, B] autoscaler bounds
    scale_max: np.ndarray       # [S, B]
    restart_at: np.ndarray      # [S, B] when a rolling restart was ordered (replicas started before it are replaced
    #                             one after another); a deploy version change orders one too
    kill_at: np.ndarray         # [S, B] when every replica was killed at once (they restart after a short back-off)
    error_kind: np.ndarray      # [S, B] index into ERROR_KINDS: what the component's failing requests say
    replication_lag: np.ndarray # [S, B] datastores: seconds the read replicas are behind the primary
    blocked: np.ndarray         # [E, B] fraction of call attempts refused (wrong address, partition)
    network_latency: np.ndarray # [E, B] seconds added to each attempt's round trip
    pool_size: np.ndarray       # [E, B] connections per caller replica on datastore edges
    retries: np.ndarray         # [E, B]
    timeout: np.ndarray         # [E, B] seconds
    backoff: np.ndarray         # [E, B] seconds before the first retry (doubling after)
    breaker_open: np.ndarray    # [E, B] bool: circuit held open (calls fail fast, callee sees none)
    refusal: np.ndarray         # [E, B] index into REFUSALS: how the refused (`blocked`) attempts fail
    cert_not_after: np.ndarray  # [C, B] Unix seconds
    partition: np.ndarray       # [Z, Z, B] bool: traffic from zone a to zone b is dropped
    cpu_steal: np.ndarray       # [N, B] cores taken by processes outside the model (noisy neighbours)
    node_down: np.ndarray       # [N, B] bool: the node is lost; its replicas are rescheduled elsewhere after a delay
    drained: np.ndarray         # [N, B] bool: the node is cordoned and drained; its replicas restart elsewhere now
    isolated: np.ndarray        # [N, B] bool: no route reaches the node (monitoring and responders' tools included)
    gpu_health: np.ndarray      # [N, B] index into GPU_HEALTH: the state of the node's GPUs
    traffic: np.ndarray         # [P, B] multiplier on the rate users send to each endpoint (a crowd raises it)
    flood: np.ndarray           # [P, B] extra requests from one client source that are no user's (a scraper, a
    #                             partner's retry loop), as a multiple of the endpoint's normal rate
    admit: np.ndarray           # [P, B] the front door's limit, as a multiple of the endpoint's normal rate: what
    #                             arrives above it is refused, users and flood alike (inf: no limit)
    handler_error: np.ndarray   # [P, B] probability a request fails in the handler of its endpoint, after the work
    #                             (a bug in one handler of the entry service: its other endpoints are untouched)
    hung: np.ndarray            # [R, B] bool: the replica is alive but serves nothing (a deadlock)

    @classmethod
    def initial(cls, topo: Topology, worlds: int, deploy_ids: np.ndarray, config_ids: np.ndarray) -> "Knobs":
        """The parameters the scenario specifies, repeated for every world."""
        B, S, E = worlds, topo.n_components, topo.n_edges

        def rep(row: np.ndarray, dtype=REAL) -> np.ndarray:
            return np.repeat(np.asarray(row, dtype=dtype)[:, None], B, axis=1)

        Z = len(topo.zones)
        return cls(
            capacity=np.ones((S, B), REAL),
            error_rate=rep(topo.error_rate),
            latency=np.zeros((S, B), REAL),
            replicas=rep(topo.replicas, np.int64),
            memory_growth=np.zeros((S, B), REAL),
            disk_growth=np.zeros((S, B), REAL),
            hit_ratio=rep(topo.hit_ratio),
            crash_loop=np.zeros((S, B), dtype=bool),
            deploy=rep(deploy_ids, np.int64),
            config=rep(config_ids, np.int64),
            cpu_hog=rep(topo.idle_cpu),        # the runtime's own background work, before any runaway
            request_size=np.ones((S, B), REAL),
            hang_after=np.full((S, B), np.inf, REAL),
            flap=np.zeros((S, B), REAL),
            wrong=np.zeros((S, B), REAL),
            rate_limit=np.full((S, B), np.inf, REAL),
            scale_min=rep(topo.as_min),
            scale_max=rep(topo.as_max),
            restart_at=np.full((S, B), -np.inf),
            kill_at=np.full((S, B), -np.inf),
            error_kind=np.zeros((S, B), np.int8),
            replication_lag=np.zeros((S, B), REAL),
            blocked=np.zeros((E, B), REAL),
            network_latency=np.zeros((E, B), REAL),
            pool_size=rep(topo.edge_pool),
            retries=rep(topo.edge_retries),
            timeout=rep(topo.edge_timeout),
            backoff=rep(topo.edge_backoff),
            breaker_open=np.zeros((E, B), dtype=bool),
            refusal=np.zeros((E, B), np.int8),
            cert_not_after=rep(topo.cert_not_after, np.float64),   # seconds since 1970 need float64
            partition=np.zeros((Z, Z, B), dtype=bool),
            cpu_steal=np.zeros((len(topo.nodes), B), REAL),
            node_down=np.zeros((len(topo.nodes), B), dtype=bool),
            drained=np.zeros((len(topo.nodes), B), dtype=bool),
            isolated=np.zeros((len(topo.nodes), B), dtype=bool),
            gpu_health=np.zeros((len(topo.nodes), B), np.int8),
            traffic=np.ones((len(topo.endpoints), B), REAL),
            flood=np.zeros((len(topo.endpoints), B), REAL),
            admit=np.full((len(topo.endpoints), B), np.inf, REAL),
            handler_error=np.zeros((len(topo.endpoints), B), REAL),
            hung=np.zeros((len(topo.replica_component), B), dtype=bool),
        )

    def copy(self) -> "Knobs":
        return Knobs(**{f.name: getattr(self, f.name).copy() for f in fields(self)})


class KnobError(ValueError):
    """A knob, component, edge or world that does not exist, or a value of the wrong shape."""


def resolve_worlds(worlds: Worlds, n: int) -> np.ndarray | slice:
    """World selection as an index: None = all, an int, a list of ints or a boolean mask."""
    if worlds is None:
        return slice(None)
    if type(worlds) is np.ndarray and worlds.dtype == np.int64 and worlds.ndim == 1:   # the common case, at once
        if worlds.size and (worlds.view(np.uint64) >= n).any():                      # (negatives wrap to huge)
            raise KnobError(f"worlds must be integers in 0..{n - 1}")
        return worlds
    idx = np.atleast_1d(np.asarray(worlds))
    if idx.dtype == bool:
        if idx.shape != (n,):
            raise KnobError(f"a world mask needs {n} entries, got {idx.shape[0]}")
        return np.flatnonzero(idx)
    if not np.issubdtype(idx.dtype, np.integer) or (idx < 0).any() or (idx >= n).any():
        raise KnobError(f"worlds must be integers in 0..{n - 1}")
    return idx


def column(topo: Topology, knob: str, target: object) -> int | slice | tuple:
    """The rows of `knob` that `target` names: a component, a (caller, callee) edge, a certificate, a node, an
    endpoint, a (zone, zone) pair for `partition`, a component or (component, replica) for `hung`; None = all."""
    try:
        return _column(topo, knob, target)
    except KeyError as exc:
        raise KnobError(str(exc.args[0])) from None


def _column(topo: Topology, knob: str, target: object) -> int | slice | tuple:
    if target is None:
        return slice(None)
    if knob in COMPONENT_KNOBS:
        return topo.index(str(target))
    if knob in EDGE_KNOBS:
        if not (isinstance(target, tuple) and len(target) == 2):
            raise KnobError(f"knob '{knob}' is set per call edge: give (caller, callee)")
        src, dst = topo.index(str(target[0])), topo.index(str(target[1]))
        hits = np.flatnonzero((topo.edge_src == src) & (topo.edge_dst == dst))
        if hits.size == 0:
            raise KnobError(f"'{target[0]}' does not call '{target[1]}'")
        return int(hits[0]) if hits.size == 1 else hits      # the same call made for several endpoints
    if knob == "partition":
        if not (isinstance(target, tuple) and len(target) == 2 and all(z in topo.zones for z in target)):
            raise KnobError(f"partition takes a (from_zone, to_zone) pair of: {', '.join(topo.zones)}")
        return (topo.zones.index(str(target[0])), topo.zones.index(str(target[1])))
    if knob == "hung":
        name, replica = (target if isinstance(target, tuple) else (target, None))
        s = topo.index(str(name))
        first, count = int(topo.replica_starts[s]), int(topo.max_replicas[s])
        if replica is None:
            return slice(first, first + count)
        if not 0 <= int(replica) < count:
            raise KnobError(f"'{name}' has replica slots 0..{count - 1}")
        return first + int(replica)
    names = topo.nodes if knob in NODE_KNOBS else topo.endpoints if knob in ENDPOINT_KNOBS else topo.certificates
    if target not in names:
        raise KnobError(f"no {knob} target named '{target}'; known: {', '.join(names)}")
    return names.index(str(target))
