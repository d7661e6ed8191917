"""The scenario schema: a production system written down as YAML and checked by pydantic.

All quantities are stored in base units (seconds, bytes, cores, per second, fractions) after parsing the written
units (see `units.py`). Cross-references between components (a dependency on a service that does not exist, a call
cycle) are checked by `loader.check_references`, which names the field path of the mistake.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag

from opsworld.spec import units

Duration = Annotated[float, BeforeValidator(units.parse_duration), Field(ge=0)]
Bytes = Annotated[float, BeforeValidator(units.parse_bytes), Field(ge=0)]
Cores = Annotated[float, BeforeValidator(units.parse_cpu), Field(gt=0)]
Rate = Annotated[float, BeforeValidator(units.parse_rate), Field(ge=0)]
Fraction = Annotated[float, BeforeValidator(units.parse_fraction)]
Instant = Annotated[float, BeforeValidator(units.parse_time)]
ClockTime = Annotated[float, BeforeValidator(units.parse_clock)]
Name = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$")]


class Spec(BaseModel):
    """Base for every scenario block: unknown fields are mistakes, not extensions."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ServiceTime(Spec):
    """Time a replica spends on its own work for one request (downstream calls excluded)."""

    mean: Duration
    cv: float = Field(1.0, ge=0.0, le=10.0, description="coefficient of variation; 1 = exponential")


class CircuitBreaker(Spec):
    """Opens when the failure ratio of calls on an edge passes `failure_ratio`; fails calls fast while open."""

    failure_ratio: Fraction = 0.5
    open_for: Duration = 30.0
    min_calls: Annotated[float, Field(ge=0)] = 20.0


class Dependency(Spec):
    """A call edge. A call to a component of kind `queue` is asynchronous (publish); any other call is synchronous."""

    target: Name
    calls: float = Field(1.0, gt=0.0, le=100.0, description="mean calls per request; a fraction means sometimes")
    mode: Literal["sequential", "parallel"] = "sequential"
    timeout: Duration = 1.0
    retries: int = Field(0, ge=0, le=10)
    backoff: Duration = 0.0
    required: bool = Field(True, description="a failed required call fails the caller's request")
    network_latency: Duration = 0.0005
    circuit_breaker: CircuitBreaker | None = None
    protocol: Literal["rpc", "http", "other"] = Field(
        "rpc", description="how a call to a service travels (calls to caches, datastores and queues are memcached, "
                           "db and mq calls); recorded, it changes nothing in the dynamics")
    documented: bool = Field(True, description="false: a hidden coupling, real but missing from the service map "
                                                "shown to agents")


class HealthCheck(Spec):
    """Load-balancer health check: a replica is ejected after `unhealthy_threshold` failed probes."""

    interval: Duration = 10.0
    timeout: Duration = 1.0
    unhealthy_threshold: int = Field(3, ge=1, le=100)
    healthy_threshold: int = Field(1, ge=1, le=100)


class Autoscaler(Spec):
    """Horizontal autoscaler on CPU utilisation, in the manner of Kubernetes' HPA."""

    min: int = Field(1, ge=0, le=1000)
    max: int = Field(10, ge=1, le=1000)
    target_cpu: Fraction = 0.6
    interval: Duration = 15.0
    scale_down_delay: Duration = 300.0


class Gpu(Spec):
    """Accelerators per replica, and the KV-cache memory each in-flight request holds on them."""

    count: int = Field(1, ge=1, le=16)
    memory: Bytes = 80 * 2.0**30
    model_memory: Bytes = 40 * 2.0**30
    kv_cache_per_request: Bytes = 0.5 * 2.0**30


class ComponentBase(Spec):
    replicas: int = Field(1, ge=1, le=1000)
    concurrency: int = Field(16, ge=1, le=100_000, description="requests one replica works on at once")
    service_time: ServiceTime
    cpu: Cores = Field(1.0, description="CPU cores per replica; the own work of a request runs on one core")
    idle_cpu: Annotated[Fraction, Field(ge=0.0, lt=0.9)] = Field(
        0.0, description="share of each replica's CPU limit its runtime uses whatever the load (garbage collection, "
                         "background threads): busy in the metrics, and not there for requests")
    memory: Bytes = 512 * 2.0**20
    memory_baseline: Bytes | None = Field(None, description="resident memory at rest; default 40% of the limit")
    disk: Bytes = 10 * 2.0**30
    error_rate: Fraction = 0.0
    node_pool: Name = "default"
    nodes: list[Name] | None = Field(None, description="nodes the replicas are spread over; default the pool's nodes")
    deploy: str = "v1"
    config: str = "c1"
    startup: Duration = 20.0
    health_check: HealthCheck = HealthCheck()
    autoscaler: Autoscaler | None = None
    gpu: Gpu | None = None
    dependencies: list[Dependency] = []
    handlers: dict[str, Annotated[float, Field(gt=0.0)]] = Field(
        {}, description="its handlers (operations) and their shares of its requests, where a bug may live in one; "
                        "an entry service's endpoints are its handlers when none are listed")


    @property
    def instances(self) -> int:
        """Replicas that serve requests (a datastore's read replicas included)."""
        return self.replicas


class Service(ComponentBase):
    kind: Literal["service"] = "service"


class Cache(ComponentBase):
    """A cache in front of a datastore: a fraction `1 - hit_ratio` of its lookups go on to `fronts`."""

    kind: Literal["cache"]
    fronts: Name
    hit_ratio: Fraction = 0.9


class Datastore(ComponentBase):
    """A database: a primary plus read replicas, reached through a connection pool in each client replica."""

    kind: Literal["datastore"]
    pool_size: int = Field(16, ge=1, le=10_000, description="connections per client replica")
    max_connections: int = Field(1000, ge=1, le=1_000_000)
    read_replicas: int = Field(0, ge=0, le=100)

    @property
    def instances(self) -> int:
        """The primary(s) and the read replicas; the model pools them into one serving capacity."""
        return self.replicas + self.read_replicas


class Queue(ComponentBase):
    """An asynchronous queue: callers publish, `consumer` replicas take messages off at their own pace."""

    kind: Literal["queue"]
    consumer: Name
    capacity: int = Field(1_000_000, ge=1, description="most messages the queue holds before refusing publishes")
    feeds: list[Name] | None = Field(None, description="the datastores and caches the consumer keeps up to date "
                                                        "(default: those it calls): reads of them go stale while "
                                                        "messages wait")
    freshness: Duration = Field(60.0, gt=0, description="how long a message may wait before readers of what its "
                                                        "consumer writes notice: past it, a growing share of their "
                                                        "reads is stale (1 - exp(-(lag - freshness) / freshness))")


def _kind(value: object) -> str:
    # `kind` may be left out: a component is a service unless it says otherwise.
    if isinstance(value, dict):
        return str(value.get("kind", "service"))
    return str(getattr(value, "kind", "service"))


Component = Annotated[
    Union[
        Annotated[Service, Tag("service")],
        Annotated[Cache, Tag("cache")],
        Annotated[Datastore, Tag("datastore")],
        Annotated[Queue, Tag("queue")],
    ],
    Discriminator(_kind),
]


class Node(Spec):
    name: Name
    zone: Name
    pool: Name = "default"
    cpu: Cores = 8.0
    memory: Bytes = 32 * 2.0**30
    disk: Bytes = 200 * 2.0**30
    gpus: int = Field(0, ge=0, le=16)


class Certificate(Spec):
    name: Name
    component: Name
    not_after: Instant


class Diurnal(Spec):
    amplitude: Fraction = 0.0
    peak: ClockTime = 14 * 3600.0


class Bursts(Spec):
    rate: Rate = 0.0
    magnitude: float = Field(2.0, ge=1.0, le=100.0)
    duration: Duration = 120.0


class Slo(Spec):
    availability: Fraction = 0.999
    latency: Duration = 1.0
    percentile: Fraction = 0.99


class Endpoint(Spec):
    """An entry endpoint. With `calls`, its requests make these calls from `service` in place of the service's own
    `dependencies` (a page that calls different backends from another page on the same frontend)."""

    name: str = Field(min_length=1, max_length=200)
    service: Name
    share: float = Field(1.0, gt=0.0)
    timeout: Duration = 30.0
    slo: Slo = Slo()
    calls: list[Dependency] | None = None


class Traffic(Spec):
    base_rate: Rate
    start: Instant = units.parse_time("2026-01-01T00:00:00Z")
    diurnal: Diurnal = Diurnal()
    noise: float = Field(0.0, ge=0.0, le=1.0, description="coefficient of variation of the per-tick rate")
    arrivals: Literal["poisson", "expected"] = Field(
        "poisson", description="requests per tick drawn from a Poisson law, or exactly the expected count")
    bursts: Bursts | None = None
    endpoints: list[Endpoint] = Field(min_length=1)


class Scenario(Spec):
    name: Name
    description: str = ""
    duration: Duration = 3600.0
    tick: Duration = 10.0
    nodes: list[Node] = Field(min_length=1)
    components: dict[Name, Component] = Field(min_length=1)
    certificates: list[Certificate] = []
    traffic: Traffic

    @property
    def zones(self) -> list[str]:
        """The zones its nodes are in, sorted (the order every table of places uses)."""
        return sorted({n.zone for n in self.nodes})

    def handlers(self, component: str) -> dict[str, float]:
        """A component's handlers and their shares of its requests (summing to 1): those it lists, else an entry
        service's endpoints (by their shares of the traffic), else none (one handler for everything)."""
        listed = dict(self.components[component].handlers)
        if not listed:
            listed = {ep.name: ep.share for ep in self.traffic.endpoints if ep.service == component}
        total = sum(listed.values())
        return {name: share / total for name, share in listed.items()} if total > 0 else {}
