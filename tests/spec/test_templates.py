"""The built-in scenario templates: they load, model the systems they name, and run at a moderate load.

The load check is a back-of-the-envelope capacity plan at the template's base rate (no diurnal swing, no noise,
no queueing): arrival rates flow down the call graph multiplied by `calls` (by `1 - hit_ratio` on a cache's miss
edge, in full from a queue to its consumer), and every component must be neither idle nor near saturation:

- CPU utilisation  `rate * service_time.mean / (replicas * cpu)` in [0.05, 0.6];
- slot utilisation `rate * (own work + time in downstream calls) / (replicas * concurrency)` below 0.5;
- connection-pool utilisation on datastore edges below 0.5.
"""

from __future__ import annotations

from collections import deque

import pytest

from opsworld.spec import load_scenario, templates
from opsworld.spec.loader import call_edges
from opsworld.spec.schema import Cache, ComponentBase, Datastore, Queue, Scenario

CPU_MIN, CPU_MAX = 0.05, 0.6
SLOT_MAX = 0.5
POOL_MAX = 0.5
MISS_NETWORK = 0.0005  # round trip the engine puts on a cache's miss call

# templates measured from a real recording (`opsworld import traces`) keep its load, its service times' spread and
# its call depth, rather than the conventions the hand-designed templates follow; they are checked for those below
MEASURED = {"train-ticket"}
EXPECTED = {
    "online-shop": {
        "services": ["frontend", "cartservice", "productcatalogservice", "currencyservice", "paymentservice",
                     "shippingservice", "emailservice", "checkoutservice", "recommendationservice", "adservice"],
        "datastores": ["redis-cart"],
        "caches": [],
    },
    "social-network": {
        "services": ["nginx-web-server", "compose-post-service", "text-service", "user-service", "unique-id-service",
                     "media-service", "url-shorten-service", "user-mention-service", "post-storage-service",
                     "user-timeline-service", "home-timeline-service", "social-graph-service",
                     "write-home-timeline-service"],
        "datastores": ["post-storage-mongodb", "user-timeline-mongodb", "social-graph-mongodb", "user-mongodb",
                       "url-shorten-mongodb", "home-timeline-redis"],
        "caches": ["post-storage-memcached", "user-timeline-redis"],
    },
    "hotel-reservation": {
        "services": ["frontend", "search", "geo", "rate", "profile", "recommendation", "reservation", "user"],
        "datastores": ["mongodb-geo", "mongodb-rate", "mongodb-profile", "mongodb-recommendation",
                       "mongodb-reservation", "mongodb-user"],
        "caches": ["memcached-rate", "memcached-profile", "memcached-reserve"],
    },
    "llm-inference": {
        "services": ["api-gateway", "auth", "router", "tokenizer", "embedding-service", "model-server-llama-70b",
                     "model-server-llama-8b", "metering-service"],
        "datastores": ["vector-db"],
        "caches": [],
    },
    "train-ticket": {
        "services": ["ts-assurance-service", "ts-auth-service", "ts-basic-service", "ts-cancel-service",
                     "ts-config-service", "ts-contacts-service", "ts-delivery-service",
                     "ts-execute-service", "ts-food-service", "ts-gateway-service",
                     "ts-inside-payment-service", "ts-order-other-service", "ts-order-service",
                     "ts-payment-service", "ts-preserve-other-service", "ts-preserve-service",
                     "ts-price-service", "ts-route-service", "ts-seat-service", "ts-security-service",
                     "ts-station-food-service", "ts-station-service", "ts-train-food-service",
                     "ts-train-service", "ts-travel-service", "ts-travel2-service", "ts-user-service",
                     "ts-verification-code-service"],
        "datastores": ["mysql"],
        "caches": [],
    },
}

BASE_RATE = {  # requests per second: tractable for the request-level reference simulation
    "online-shop": (50.0, 150.0),
    "social-network": (50.0, 150.0),
    "hotel-reservation": (50.0, 150.0),
    "llm-inference": (2.0, 20.0),
    "train-ticket": (0.3, 2.0),      # the recording's light load (0.66/s)
}


# --- capacity-plan helpers --------------------------------------------------------------------------------------

def topological_order(scenario: Scenario) -> list[str]:
    """Components with every caller before its callees (Kahn's algorithm over `call_edges`)."""
    names = list(scenario.components)
    indegree = {n: 0 for n in names}
    out: dict[str, list[str]] = {n: [] for n in names}
    for src, dst in call_edges(scenario):
        out[src].append(dst)
        indegree[dst] += 1
    ready = deque(n for n in names if indegree[n] == 0)
    order = []
    while ready:
        node = ready.popleft()
        order.append(node)
        for nxt in out[node]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
    assert len(order) == len(names), "call graph has a cycle"
    return order


def weighted_edges(scenario: Scenario, name: str) -> list[tuple[str, float]]:
    """(callee, mean calls per request at `name`) for each out-edge: dependencies, cache misses, queue consumer."""
    comp = scenario.components[name]
    edges = [(d.target, d.calls) for d in comp.dependencies]
    if isinstance(comp, Cache):
        edges.append((comp.fronts, 1.0 - comp.hit_ratio))
    if isinstance(comp, Queue):
        edges.append((comp.consumer, 1.0))
    return edges


def endpoint_rates(scenario: Scenario) -> list[float]:
    """Requests per second at each endpoint at the base rate."""
    endpoints = scenario.traffic.endpoints
    total_share = sum(ep.share for ep in endpoints)
    return [scenario.traffic.base_rate * ep.share / total_share for ep in endpoints]


def component_rates(scenario: Scenario) -> dict[str, float]:
    """Requests per second reaching each component at the base rate (no retries, no failures). An endpoint with
    its own `calls` makes those instead of its service's dependencies."""
    rates = {name: 0.0 for name in scenario.components}
    generic = {name: 0.0 for name in scenario.components}      # requests that make the component's own calls
    for ep, rate in zip(scenario.traffic.endpoints, endpoint_rates(scenario)):
        rates[ep.service] += rate
        if ep.calls is None:
            generic[ep.service] += rate
    for name in topological_order(scenario):
        for ep, rate in zip(scenario.traffic.endpoints, endpoint_rates(scenario)):
            if ep.service == name and ep.calls is not None:
                for dep in ep.calls:
                    rates[dep.target] += rate * dep.calls
                    generic[dep.target] += rate * dep.calls
        for target, calls in weighted_edges(scenario, name):
            rates[target] += generic[name] * calls
            generic[target] += generic[name] * calls
    return rates


def own_work(comp: ComponentBase) -> float:
    """Mean time of a request's own work, including the slowdown of a fractional CPU limit."""
    quota = comp.replicas * comp.cpu
    return comp.service_time.mean * max(1, round(quota)) / quota


def response_times(scenario: Scenario) -> dict[str, float]:
    """Mean time a request holds a slot at each component: own work plus waiting on its synchronous calls.

    Own work is stretched by a fractional CPU limit as in the engine (`round(replicas x cpu)` cores shared by
    `replicas x cpu` worth of quota). Sequential calls add up; parallel ones count as the slowest. A publish waits
    for the broker's own work only; a queue's consumer runs detached from the publisher.
    """
    comps = scenario.components
    rt: dict[str, float] = {}
    for name in reversed(topological_order(scenario)):
        comp = comps[name]
        rt[name] = holding(scenario, comp, comp.dependencies, rt)
        if isinstance(comp, Cache):
            rt[name] += (1.0 - comp.hit_ratio) * (MISS_NETWORK + rt[comp.fronts])
    return rt


def holding(scenario: Scenario, comp: ComponentBase, deps: list, rt: dict[str, float]) -> float:
    """Own work plus the calls `deps`: sequential ones add up, parallel ones count as the slowest."""
    total, parallel = own_work(comp), 0.0
    for dep in deps:
        callee = scenario.components[dep.target]
        one = dep.network_latency + (own_work(callee) if isinstance(callee, Queue) else rt[dep.target])
        if dep.mode == "parallel":
            parallel = max(parallel, dep.calls * one)
        else:
            total += dep.calls * one
    return total + parallel


def busy_slots(scenario: Scenario) -> dict[str, float]:
    """Request slots in use at each component: rate x holding time, each endpoint with its own calls apart."""
    rates, rt = component_rates(scenario), response_times(scenario)
    busy = {name: rates[name] * rt[name] for name in scenario.components}
    for ep, rate in zip(scenario.traffic.endpoints, endpoint_rates(scenario)):
        if ep.calls is not None:
            comp = scenario.components[ep.service]
            busy[ep.service] += rate * (holding(scenario, comp, ep.calls, rt) - rt[ep.service])
    return busy


def utilisation(scenario: Scenario) -> dict[str, tuple[float, float]]:
    """(CPU utilisation, slot utilisation) of every component at the base rate."""
    rates, busy = component_rates(scenario), busy_slots(scenario)
    out = {}
    for name, comp in scenario.components.items():
        cpu = rates[name] * comp.service_time.mean / (comp.replicas * comp.cpu)
        slots = busy[name] / (comp.replicas * comp.concurrency)
        out[name] = (cpu, slots)
    return out


def pool_utilisation(scenario: Scenario) -> dict[tuple[str, str], float]:
    """Connections busy / pool size on each datastore call edge (pool_size per caller replica)."""
    comps, rates, rt = scenario.components, component_rates(scenario), response_times(scenario)
    out = {}
    for name, comp in comps.items():
        for dep in comp.dependencies:
            store = comps[dep.target]
            if isinstance(store, Datastore):
                busy = rates[name] * dep.calls * (dep.network_latency + rt[dep.target])
                out[(name, dep.target)] = busy / (store.pool_size * comp.replicas)
    return out


def reachable(scenario: Scenario) -> set[str]:
    """Components an endpoint request or the messages it publishes can reach."""
    out: dict[str, list[str]] = {n: [] for n in scenario.components}
    for src, dst in call_edges(scenario):
        out[src].append(dst)
    seen = {ep.service for ep in scenario.traffic.endpoints}
    todo = list(seen)
    while todo:
        for nxt in out[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


# --- tests ------------------------------------------------------------------------------------------------------

def test_the_four_templates_exist() -> None:
    assert set(EXPECTED) <= set(templates())


@pytest.fixture(scope="module", params=templates())
def scenario(request: pytest.FixtureRequest) -> Scenario:
    return load_scenario(request.param)


def test_template_loads(scenario: Scenario) -> None:
    assert scenario.name in templates()
    assert scenario.duration == 3600.0 and scenario.tick == 10.0
    assert scenario.traffic.endpoints and scenario.components


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_template_models_the_named_system(name: str) -> None:
    scenario = load_scenario(name)
    comps = scenario.components
    want = EXPECTED[name]
    for svc in want["services"]:
        assert svc in comps and comps[svc].kind == "service", f"{name}: service {svc}"
    for store in want["datastores"]:
        assert store in comps and comps[store].kind == "datastore", f"{name}: datastore {store}"
    for cache in want["caches"]:
        assert cache in comps and comps[cache].kind == "cache", f"{name}: cache {cache}"
        assert comps[comps[cache].fronts].kind == "datastore"
    low, high = BASE_RATE[name]
    assert low <= scenario.traffic.base_rate <= high


def test_online_shop_call_graph() -> None:
    scenario = load_scenario("online-shop")
    edges = set(call_edges(scenario))
    for callee in ["currencyservice", "productcatalogservice", "cartservice", "recommendationservice",
                   "shippingservice", "checkoutservice", "adservice"]:
        assert ("frontend", callee) in edges
    for callee in ["productcatalogservice", "cartservice", "currencyservice", "shippingservice", "emailservice",
                   "paymentservice"]:
        assert ("checkoutservice", callee) in edges
    assert ("recommendationservice", "productcatalogservice") in edges
    assert ("cartservice", "redis-cart") in edges
    assert len(scenario.components) == 11


def test_memcached_fronts_mongodb() -> None:
    for name in ("social-network", "hotel-reservation"):
        comps = load_scenario(name).components
        memcached = [n for n, c in comps.items() if n.startswith("memcached") or n.endswith("memcached")]
        assert memcached, name
        for cache in memcached:
            assert comps[cache].kind == "cache" and "mongodb" in comps[cache].fronts
        mongos = [n for n, c in comps.items() if "mongodb" in n]
        assert mongos and all(comps[m].kind == "datastore" for m in mongos)


def test_social_network_fans_out_through_a_queue() -> None:
    comps = load_scenario("social-network").components
    queues = [c for c in comps.values() if isinstance(c, Queue)]
    assert any(q.consumer == "write-home-timeline-service" for q in queues)


def test_hotel_search_calls_geo_and_rate_in_parallel() -> None:
    scenario = load_scenario("hotel-reservation")
    comps = scenario.components
    modes = {d.target: d.mode for d in comps["search"].dependencies}
    assert modes.get("geo") == "parallel" and modes.get("rate") == "parallel"
    frontend = {src_dst[1] for src_dst in call_edges(scenario) if src_dst[0] == "frontend"}   # endpoint calls too
    assert {"search", "profile", "recommendation", "reservation", "user"} <= frontend


def test_llm_inference_runs_models_on_gpu_nodes() -> None:
    scenario = load_scenario("llm-inference")
    gpu_pools = {n.pool for n in scenario.nodes if n.gpus > 0}
    on_gpus = [name for name, c in scenario.components.items()
               if c.kind == "service" and c.gpu is not None and c.node_pool in gpu_pools]
    assert on_gpus
    nodes = {n.name: n for n in scenario.nodes}
    for name in on_gpus:
        comp = scenario.components[name]
        placed = comp.nodes or [n.name for n in scenario.nodes if n.pool == comp.node_pool]
        assert all(nodes[n].gpus >= comp.gpu.count for n in placed), name
        assert comp.gpu.model_memory + comp.concurrency * comp.gpu.kv_cache_per_request <= comp.gpu.count * comp.gpu.memory
    chat = [ep for ep in scenario.traffic.endpoints if ep.name == "POST /v1/chat/completions"]
    assert chat and chat[0].slo.latency >= 1.0
    assert any(c.kind == "queue" for c in scenario.components.values())
    assert any(c.kind == "datastore" for c in scenario.components.values())


def test_every_component_is_reachable_from_an_endpoint(scenario: Scenario) -> None:
    missing = set(scenario.components) - reachable(scenario)
    assert not missing, f"{scenario.name}: unreachable {sorted(missing)}"


def test_load_is_moderate_at_the_base_rate(scenario: Scenario) -> None:
    problems = []
    low = 0.0 if scenario.name in MEASURED else CPU_MIN      # a recording's light load stays light
    for name, (cpu, slots) in utilisation(scenario).items():
        if not low <= cpu <= CPU_MAX:
            problems.append(f"{name}: CPU utilisation {cpu:.3f} outside [{CPU_MIN}, {CPU_MAX}]")
        if slots >= SLOT_MAX:
            problems.append(f"{name}: slot utilisation {slots:.3f} >= {SLOT_MAX}")
    for (src, dst), busy in pool_utilisation(scenario).items():
        if busy >= POOL_MAX:
            problems.append(f"{src} -> {dst}: connection pool utilisation {busy:.3f} >= {POOL_MAX}")
    assert not problems, f"{scenario.name}: " + "; ".join(problems)


def test_requests_visit_a_tractable_number_of_components(scenario: Scenario) -> None:
    visits = sum(component_rates(scenario).values()) / scenario.traffic.base_rate
    most = 40.0 if scenario.name in MEASURED else 20.0       # Train Ticket's bookings call a dozen services
    assert visits <= most, f"{scenario.name}: {visits:.1f} component visits per entry request"


def test_timeouts_leave_room_for_the_callee(scenario: Scenario) -> None:
    comps, rt = scenario.components, response_times(scenario)
    for name, comp in comps.items():
        for dep in comp.dependencies:
            callee = comps[dep.target]
            mean = own_work(callee) if isinstance(callee, Queue) else rt[dep.target]
            assert dep.timeout >= 4.0 * (dep.network_latency + mean), f"{name} -> {dep.target}"
    for ep in scenario.traffic.endpoints:
        assert ep.timeout >= 4.0 * rt[ep.service] and ep.slo.latency >= 2.0 * rt[ep.service], ep.name


def test_nodes_have_room_for_every_replica(scenario: Scenario) -> None:
    """The pool's requested CPU and memory at the autoscalers' maximum fit with room to spare."""
    for pool in {n.pool for n in scenario.nodes}:
        nodes = [n for n in scenario.nodes if n.pool == pool]
        names = {n.name for n in nodes}
        cpu = mem = 0.0
        for comp in scenario.components.values():
            placed = comp.nodes or [n.name for n in scenario.nodes if n.pool == comp.node_pool]
            if not set(placed) <= names:
                continue
            count = max(comp.replicas, comp.autoscaler.max if comp.autoscaler else 0)
            cpu += count * comp.cpu
            mem += count * comp.memory
        assert cpu <= 0.8 * sum(n.cpu for n in nodes), f"{scenario.name}: pool {pool} CPU"
        assert mem <= 0.8 * sum(n.memory for n in nodes), f"{scenario.name}: pool {pool} memory"


def test_scenario_shape(scenario: Scenario) -> None:
    zones = {n.zone for n in scenario.nodes}
    default = [n for n in scenario.nodes if n.pool == "default"]
    assert 2 <= len(zones) <= 3 and 4 <= len(default) <= 8
    measured = scenario.name in MEASURED
    for comp in scenario.components.values():
        # measured: the spread of the recorded own times, within the importer's bounds
        assert (0.1 if measured else 0.5) <= comp.service_time.cv <= (2.0 if measured else 1.5)
        for dep in comp.dependencies:
            assert dep.retries <= 2
    # a recording of two hours shows no daily cycle
    assert scenario.traffic.diurnal.amplitude == 0.0 if measured else 0.2 <= scenario.traffic.diurnal.amplitude <= 0.4
    assert scenario.certificates
