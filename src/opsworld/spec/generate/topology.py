"""Random production topologies whose request graphs look like production's.

`TopologyGenerator(services=(5, 500)).draw(seed)` gives a checked `Scenario`. It draws request graphs from the
`CallGraphModel` one endpoint at a time and gives each node of a graph a component: a service for an rpc/http call
(a new one, or an existing one whose own calls make the same subtree), a cache, a datastore or a queue for memcached,
db and mq calls. Endpoints are added until the topology has as many components as drawn. Then every component is
sized for the traffic it sees at peak (replicas, concurrency, cores), every call gets a timeout above its callee's
usual latency and a retry policy, and every endpoint an SLO its usual latency meets.

So the request graphs a generated scenario serves follow the published statistics by construction, and
`request_graphs(scenario, n, rng)` draws them from the scenario itself, which is what the tests check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from opsworld.spec.generate.callgraph import CALL_TYPES, LEAF_KINDS, CallGraphModel, RequestGraph
from opsworld.spec.generate.names import Namer
from opsworld.spec.loader import check_references
from opsworld.spec.schema import Cache, Scenario

_KIND_MEAN = {"service": (0.002, 0.8), "cache": (0.0003, 0.3), "datastore": (0.0015, 0.5), "queue": (0.0002, 0.3)}
_SLO_STEPS = (0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)


@dataclass
class _Component:
    kind: str
    protocol: str = "rpc"
    calls: dict = field(default_factory=dict)      # callee -> (calls per request, protocol of the call)
    signature: str = ""
    fronts: str | None = None
    consumer: str | None = None


@dataclass(frozen=True)
class TopologyGenerator:
    """Draws a scenario from a seed.

    services: range of the number of components, drawn log-uniformly (so small systems are as common as large ones
      on a log scale, as in the wild).
    hidden_couplings: share of calls left out of the documented service map.
    reuse: chance that a call goes to an existing component of the right kind (and, for a service, the same own
      calls) rather than a new one.
    same_callee: chance that two calls of one type from one caller go to the same callee (a call made twice).
    """

    services: tuple[int, int] = (5, 500)
    hidden_couplings: float = 0.0
    reuse: float = 0.3
    same_callee: float = 0.5
    callgraph: CallGraphModel = CallGraphModel()

    def draw(self, seed: int) -> Scenario:
        """The scenario of this seed."""
        scenario = Scenario.model_validate(self.raw(seed))      # our own dict: no copy; a mistake here is a bug
        check_references(scenario, f"generated scenario {seed}")
        return scenario

    def raw(self, seed: int) -> dict:
        """The scenario of this seed as a scenario file's fields, units written out (`yaml.safe_dump` it to edit)."""
        rng = np.random.default_rng([int(seed), 0x70B0])
        lo, hi = self.services
        if not 3 <= lo <= hi <= 1000:
            raise ValueError(f"services must be a range within 3..1000, low first; got {self.services}")
        target = int(np.clip(round(math.exp(rng.uniform(math.log(lo), math.log(hi + 1)))), lo, hi))
        return _Builder(self, rng, target, seed).scenario()


class _Builder:
    """One draw: components grow endpoint by endpoint, then everything is sized."""

    def __init__(self, gen: TopologyGenerator, rng: np.random.Generator, target: int, seed: int) -> None:
        self.gen, self.rng, self.target, self.seed = gen, rng, target, seed
        self.names = Namer(rng)
        self.comps: dict[str, _Component] = {}
        self.by_signature: dict[str, list[str]] = {}          # components that make the same subtree
        self.entries: list[str] = []
        self.endpoints: list[tuple[str, str, dict]] = []      # (name, entry service, calls)

    # ---- structure ---------------------------------------------------------------------------------------------------
    def scenario(self) -> dict:
        n_entries = 1 + self.target // 60
        # The number of endpoints is fixed before any graph is drawn: stopping once the target is reached would
        # favour big graphs (a system that got there with few endpoints got there with large ones). Past the target,
        # calls go to existing components wherever one fits.
        n_endpoints = max(1, math.ceil(self.target / 2.5))
        while len(self.endpoints) < n_endpoints or len(self.comps) < self.target:
            graph = self.gen.callgraph.draw(self.rng)
            if len(self.entries) < n_entries:
                entry = self.names.entry()
                self.entries.append(entry)
                self.comps[entry] = _Component("service", protocol="http", signature="entry")
            entry = self.entries[len(self.endpoints) % len(self.entries)]
            self.endpoints.append((self.names.endpoint(), entry, self._calls(graph, 0)))
        return self._sized()

    def _calls(self, graph: RequestGraph, node: int) -> dict:
        """callee -> (calls, protocol) for the children of `node`, each child given a component."""
        out: dict[str, tuple[float, str]] = {}
        last_leaf: dict[int, str] = {}          # the last leaf callee of each call type
        for child in graph.children(node):
            t = int(graph.call[child])
            leaf = not graph.children(child)
            if leaf and t in last_leaf and self.rng.random() < self.gen.same_callee:
                name = last_leaf[t]
            else:
                name = self._component(graph, child, t)
            if leaf:
                last_leaf[t] = name
            calls, proto = out.get(name, (0.0, CALL_TYPES[t]))
            out[name] = (calls + 1.0, proto)
        return out

    def _component(self, graph: RequestGraph, node: int, t: int) -> str:
        kind = LEAF_KINDS.get(CALL_TYPES[t], "service")
        protocol = CALL_TYPES[t] if kind == "service" else "rpc"
        if kind == "service" and graph.children(node):
            calls = self._calls(graph, node)
            signature = protocol + "(" + ",".join(sorted(self.comps[c].signature + f"x{n:g}"
                                                         for c, (n, _) in calls.items())) + ")"
        else:
            calls, signature = {}, f"{kind}:{protocol}"
        same = self.by_signature.setdefault(signature, [])
        if same and (self.rng.random() < self.gen.reuse or len(self.comps) >= self.target):
            return same[int(self.rng.integers(len(same)))]
        name = self.names.component(kind)
        comp = self.comps[name] = _Component(kind, protocol, calls, signature)
        same.append(name)
        if kind == "cache":
            comp.fronts = self._store()
        elif kind == "queue":
            worker = self.names.component("worker")
            self.comps[worker] = _Component("service", signature=f"worker:{worker}", calls={self._store(): (1.0, "rpc")})
            comp.consumer = worker
        return name

    def _store(self) -> str:
        """A datastore for a cache to front or a worker to write to: an existing one half of the time."""
        stores = self.by_signature.setdefault("datastore:rpc", [])
        if stores and self.rng.random() < 0.5:
            return stores[int(self.rng.integers(len(stores)))]
        name = self.names.component("datastore")
        self.comps[name] = _Component("datastore", signature="datastore:rpc")
        stores.append(name)
        return name

    # ---- sizes -------------------------------------------------------------------------------------------------------
    def _sized(self) -> dict:
        rng, comps = self.rng, self.comps
        mean = {n: float(np.clip(_KIND_MEAN[c.kind][0] * math.exp(_KIND_MEAN[c.kind][1] * rng.standard_normal()),
                                 5e-5, 0.05)) for n, c in comps.items()}
        hit = {n: float(rng.uniform(0.91, 0.99)) for n, c in comps.items() if c.kind == "cache"}
        order = self._callees_first()
        # idle latency of a request at each component: its own work plus its calls, one after the other
        hold: dict[str, float] = {}
        for n in order:
            c = comps[n]
            downstream = sum(k * (hold[d] + 0.001) for d, (k, _) in c.calls.items())
            if c.kind == "cache":
                downstream += (1 - hit[n]) * hold[c.fronts]
            hold[n] = mean[n] + downstream
        shares = rng.dirichlet(np.full(len(self.endpoints), 0.8))
        base_rate = float(math.exp(rng.uniform(math.log(20), math.log(1000))))
        amplitude = float(rng.uniform(0.0, 0.3))
        bursts = rng.random() < 0.2
        magnitude = float(rng.uniform(1.3, 2.0)) if bursts else 1.0
        peak = base_rate * (1 + amplitude) * magnitude * 1.2          # 20% for noise and Poisson arrivals
        # requests per second each component sees at peak, from the entry down (callers first)
        rate = dict.fromkeys(comps, 0.0)
        for (_, entry, calls), share in zip(self.endpoints, shares):
            rate[entry] += peak * share
            for d, (k, _) in calls.items():
                rate[d] += peak * share * k
        for n in reversed(order):
            c = comps[n]
            for d, (k, _) in c.calls.items():
                rate[d] += rate[n] * k
            if c.kind == "cache":
                rate[c.fronts] += rate[n] * (1 - hit[n])
            if c.kind == "queue":
                rate[c.consumer] += rate[n]
        zones = self.names.zones(int(rng.choice([1, 2, 3], p=[0.2, 0.3, 0.5])))
        out: dict[str, dict] = {}
        cores_asked = 0.0
        for n in order[::-1]:
            c = comps[n]
            cpu = float(rng.choice([0.5, 1.0, 2.0] if c.kind != "datastore" else [1.0, 2.0, 4.0]))
            utilisation = float(rng.uniform(0.25, 0.5))
            busy = rate[n] * mean[n]                                   # cores busy at peak
            replicas = max(int(rng.integers(1, 4)) if c.kind == "service" else 1,
                           math.ceil(busy / (cpu * utilisation)))
            replicas = min(replicas, 500)
            per_replica = rate[n] / replicas
            concurrency = int(min(100_000, max(16, 2 ** math.ceil(math.log2(max(1.0, 3 * per_replica * hold[n]))))))
            spec: dict = {
                "kind": c.kind, "replicas": replicas, "concurrency": concurrency,
                "service_time": {"mean": _dur(mean[n]), "cv": round(float(rng.uniform(0.5, 1.2)), 2)},
                "cpu": cpu, "memory": f"{int(rng.choice([256, 512, 1024, 2048]))}Mi",
                "deploy": self.names.version(), "config": self.names.config(),
                "startup": _dur(round(float(rng.uniform(5, 30)), 1)),
                "dependencies": [self._call(d, k, proto, hold[d], rng) for d, (k, proto) in c.calls.items()],
            }
            if c.kind == "service" and rng.random() < 0.3:
                spec["autoscaler"] = {"min": replicas, "max": min(1000, replicas * int(rng.integers(2, 4))),
                                      "target_cpu": 0.6}
            if c.kind == "cache":
                spec.update(fronts=c.fronts, hit_ratio=hit[n])
            if c.kind == "queue":
                spec.update(consumer=c.consumer)
            if c.kind == "datastore":
                spec.update(pool_size=int(rng.choice([8, 16, 32])), max_connections=100_000,
                            read_replicas=int(rng.integers(0, 3)))
            cores_asked += replicas * cpu * (3 if "autoscaler" in spec else 2)
            out[n] = spec
        node_cpu = float(rng.choice([8, 16, 32]))
        per_zone = max(1 if len(zones) > 1 else 2, math.ceil(cores_asked * 0.5 / node_cpu / len(zones)))
        nodes = [{"name": f"node-{z[-1]}{i + 1}", "zone": z, "cpu": node_cpu, "memory": f"{4 * int(node_cpu)}Gi"}
                 for z in zones for i in range(min(per_zone, 100))]
        endpoints = []
        parallel = rng.random() < 0.5
        for (name, entry, calls), share in zip(self.endpoints, shares):
            usual = mean[entry] + (max if parallel else sum)(
                [k * (hold[d] + 0.001) for d, (k, _) in calls.items()] or [0.0])
            latency = next((s for s in _SLO_STEPS if s >= 8 * usual + 0.02), _SLO_STEPS[-1])
            endpoints.append({
                "name": name, "service": entry, "share": max(float(share), 1e-4),
                "timeout": _dur(float(rng.choice([10.0, 15.0, 30.0]))),
                "slo": {"availability": float(rng.choice([0.99, 0.995, 0.999])), "latency": _dur(latency),
                        "percentile": 0.99},
                "calls": [self._call(d, k, proto, hold[d], rng, mode="parallel" if parallel else "sequential")
                          for d, (k, proto) in calls.items()]})
        traffic = {"base_rate": f"{base_rate:.6g}/s", "noise": round(float(rng.uniform(0.02, 0.08)), 3),
                   "diurnal": {"amplitude": amplitude, "peak": f"{int(rng.integers(10, 20))}:{int(rng.integers(0, 60)):02d}"},
                   "endpoints": endpoints}
        if bursts:
            traffic["bursts"] = {"rate": f"{rng.uniform(1, 4):.3g}/h", "magnitude": magnitude,
                                 "duration": _dur(round(float(rng.uniform(60, 180))))}
        # the traffic starts 2026-01-01; certificates live a month to a year from then
        certificates = [{"name": f"{e}-tls", "component": e,
                         "not_after": f"2026-{int(rng.integers(2, 13)):02d}-{int(rng.integers(1, 29)):02d}T00:00:00Z"}
                        for e in self.entries]
        return {"name": f"generated-{self.seed}", "description": f"generated topology of {len(out)} components",
                "duration": "1h", "tick": "10s", "nodes": nodes, "components": out, "certificates": certificates,
                "traffic": traffic}

    def _call(self, callee: str, calls: float, protocol: str, hold: float, rng: np.random.Generator,
              mode: str = "sequential") -> dict:
        retries = int(rng.choice([0, 1, 2], p=[0.6, 0.3, 0.1]))
        call = {"target": callee, "calls": calls, "mode": mode,
                "timeout": _dur(float(np.clip(round(10 * hold + 0.05, 3), 0.05, 5.0))),
                "retries": retries, "backoff": _dur(round(float(rng.uniform(0.01, 0.05)), 3) if retries else 0.0),
                "required": bool(rng.random() < 0.85),
                "network_latency": _dur(round(float(rng.uniform(0.0003, 0.0015)), 5)),
                "documented": bool(rng.random() >= self.gen.hidden_couplings)}
        if self.comps[callee].kind == "service":
            call["protocol"] = protocol if protocol in ("rpc", "http", "other") else "rpc"
        if rng.random() < 0.1:
            call["circuit_breaker"] = {"failure_ratio": 0.5, "open_for": "30s", "min_calls": 20}
        return call

    def _callees_first(self) -> list[str]:
        """Component names, every callee before its callers (the builder made callees first, but reuse and cache
        fronts can put an older component below a newer one)."""
        done: list[str] = []
        seen: set[str] = set()
        for root in self.comps:
            stack = [(root, False)]
            while stack:
                n, expanded = stack.pop()
                if n in seen:
                    continue
                if expanded:
                    seen.add(n)
                    done.append(n)
                    continue
                stack.append((n, True))
                c = self.comps[n]
                below = list(c.calls) + [x for x in (c.fronts, c.consumer) if x]
                stack.extend((d, False) for d in below if d not in seen)
        return done


def request_graphs(scenario: Scenario, n: int, rng: np.random.Generator) -> list[RequestGraph]:
    """`n` request graphs a scenario serves: an endpoint drawn by share, then its calls followed down (a fractional
    call made or not at random, a cache's miss made with its miss ratio; a queue's consumer runs later, apart)."""
    endpoints = scenario.traffic.endpoints
    shares = np.array([e.share for e in endpoints])
    comps = scenario.components
    out = []
    for p in rng.choice(len(endpoints), size=n, p=shares / shares.sum()):
        ep = endpoints[int(p)]
        parent, call = [-1], [-1]
        todo = [(0, ep.service, ep.calls if ep.calls is not None else comps[ep.service].dependencies)]
        while todo:
            node, name, deps = todo.pop()
            comp = comps[name]
            for d in deps:
                times = int(d.calls) + int(rng.random() < d.calls - int(d.calls))
                for _ in range(times):
                    parent.append(node)
                    call.append(_call_type(comps[d.target].kind, d.protocol))
                    todo.append((len(parent) - 1, d.target, comps[d.target].dependencies))
            if isinstance(comp, Cache) and rng.random() >= comp.hit_ratio:
                parent.append(node)
                call.append(CALL_TYPES.index("db"))
                todo.append((len(parent) - 1, comp.fronts, comps[comp.fronts].dependencies))
        # nodes are appended after their caller, so callers come first as RequestGraph needs
        out.append(RequestGraph(np.array(parent), np.array(call)))
    return out


def _call_type(kind: str, protocol: str) -> int:
    by_kind = {v: k for k, v in LEAF_KINDS.items()}
    return CALL_TYPES.index(by_kind.get(kind, protocol))



def _dur(seconds: float) -> str:
    """A duration written with its unit, as scenario files must."""
    if seconds >= 1:
        return f"{seconds:.6g}s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.4g}ms"
    return f"{seconds * 1e6:.4g}us"
