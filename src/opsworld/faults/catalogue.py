"""The catalogue: every failure mode opsworld models, as a fault type with preset parameters, and a worked
example on a template (the target, the truth signal it moves, and the faults it needs beside it, if any).

`opsworld faults` lists it; `entry(name).make(target=...)` builds a fault from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from opsworld.faults.base import Fault, FaultError, one_line
from opsworld.faults.ranges import describe_ranges
from opsworld.spec import Scenario, load_scenario
from opsworld.faults.data import (CacheFailure, ConnectionLimit, ConnectionPoolLeak, ConsumerStall, HardLimit,
                                  LockContention, PoisonMessage, PrimaryFailure, ReplicationLag)
from opsworld.faults.infrastructure import (BandwidthSaturation, ClockSkew, GpuDegraded, GpuLost, KvCacheExhaustion,
                                            NodeFailure, NoisyNeighbour, ZoneOutage)
from opsworld.faults.network import (CertificateExpiry, ControlPlaneLoss, ExpiredCredentials, NetworkDelay,
                                     PacketLoss, Unreachable, ZonePartition)
from opsworld.faults.process import (AutoscalerBounds, BenignChange, CpuHog, CrashLoop, Deadlock, DiskFill,
                                     EarlyReturn, ErrorRate, FdExhaustion, HealthCheckFlap, MemoryLeak, NoFault,
                                     Slowdown, UnevenBalancing, WrongAnswers)
from opsworld.faults.traffic import (CapacityRemoval, ClientFlood, FlashCrowd, LoadLevel, QuotaExhaustion,
                                     RetryPolicy, RetryStorm)

FAULT_TYPES: tuple[type[Fault], ...] = (
    ErrorRate, EarlyReturn, Slowdown, CpuHog, CrashLoop, MemoryLeak, DiskFill, Deadlock, WrongAnswers, FdExhaustion,
    HealthCheckFlap, AutoscalerBounds, UnevenBalancing, BenignChange, NoFault,
    Unreachable, ExpiredCredentials, NetworkDelay, PacketLoss, ZonePartition, CertificateExpiry, ControlPlaneLoss,
    ConnectionPoolLeak, ConnectionLimit, HardLimit, CacheFailure, PrimaryFailure, ReplicationLag, LockContention,
    ConsumerStall, PoisonMessage,
    NoisyNeighbour, NodeFailure, ZoneOutage, ClockSkew, BandwidthSaturation, GpuDegraded, GpuLost, KvCacheExhaustion,
    FlashCrowd, ClientFlood, QuotaExhaustion, CapacityRemoval, RetryPolicy, RetryStorm,
)
# the day's conditions, set like a fault but no failure (never a class a responder names)
CONDITIONS: tuple[type[Fault], ...] = (LoadLevel,)


@dataclass(frozen=True)
class Example:
    """A fault from the catalogue at work on a template: what it strikes and the truth signal that shows it.

    `shows` is (truth field, component / endpoint / (caller, callee), "up" or "down"); `also` lists faults that
    must be present for this one to matter (a slow callee for a too-long timeout), as (entry name, parameters);
    `overrides` puts the template in the state the failure needs (a metastable storm needs a service running hot).
    """

    template: str
    target: str
    shows: tuple[str, Any, str]
    params: dict = field(default_factory=dict)
    also: tuple[tuple[str, dict], ...] = ()
    overrides: dict = field(default_factory=dict)     # scenario fields changed from the template's

    def scenario(self) -> Scenario:
        return load_scenario(self.template, self.overrides or None)


    def series(self, trajectory, topology) -> "np.ndarray":
        """[T, B] the truth signal this example shows, from a trajectory of its template."""
        name, where = self.shows[0], self.shows[1]
        values = trajectory.failed_by_cause.sum(axis=-1) if name == "failed_total" else getattr(trajectory, name)
        if isinstance(where, tuple):
            edges = (topology.edge_src == topology.index(where[0])) & (topology.edge_dst == topology.index(where[1]))
            return values[..., edges].sum(axis=-1) if name != "edge_failure" else values[..., edges].max(axis=-1)
        if where in topology.endpoints and values.shape[-1] == len(topology.endpoints):
            return values[..., topology.endpoints.index(where)]
        return values[..., topology.index(where)]


@dataclass(frozen=True)
class Entry:
    name: str
    fault: type[Fault]
    behaviour: str                # the real-world failure it models
    example: Example
    params: dict = field(default_factory=dict)
    # where the rule by meaning (`faults.ranges`) would be wrong for this failure: {parameter: (lo, hi[, scale])}
    # to draw from, or None to never draw it
    ranges: dict = field(default_factory=dict)

    def make(self, **params: Any) -> Fault:
        """The fault with this entry's presets, overridden by `params` (which must give `target`)."""
        merged = {**self.params, **params}
        try:
            return self.fault(**merged)
        except ValueError as exc:
            raise FaultError(f"{self.name}: {one_line(exc)}") from None

    def example_faults(self) -> list[Fault]:
        """This entry's worked example: its fault and the faults it needs beside it."""
        ex = self.example
        return [self.make(target=ex.target, **ex.params)] + [entry(n).make(**p) for n, p in ex.also]

    def describe(self) -> dict:
        fault = self.make(**{"target": self.example.target, **self.example.params})
        info = fault.describe()
        return {"name": self.name, "behaviour": self.behaviour, **info, "ranges": describe_ranges(self),
                "example": {"template": self.example.template, "target": self.example.target,
                            "shows": list(map(str, self.example.shows))}}


def _entries() -> list[Entry]:
    E, X = Entry, Example
    shop, hotel, social, llm = "online-shop", "hotel-reservation", "social-network", "llm-inference"
    return [
        # -- the seed essay's examples
        E("certificate_expiry", CertificateExpiry, "a TLS certificate expires unrenewed at a wall-clock time (02:00)",
          X(shop, "cartservice-tls", ("edge_failure", ("checkoutservice", "cartservice"), "up"), {"onset": "02:00"},
            overrides={"traffic": {"start": "2026-11-25T01:45:00Z"}})),
        E("zone_partition", ZonePartition, "a network partition between two zones",
          X(shop, "us-central1-a", ("failed_total", "frontend", "up"), {"other": "us-central1-b"})),
        E("service_partition", Unreachable, "a network partition between two services (a firewall rule, a mesh policy)",
          X(shop, "productcatalogservice", ("failed_total", "recommendationservice", "up"),
            {"caller": "recommendationservice"}), {"how": "timeout"}),
        E("connection_pool_leak", ConnectionPoolLeak, "a connection-pool leak: the pool drains with uptime",
          X(shop, "cartservice", ("response_mean", "cartservice", "up"), {"ramp": "8m"})),
        E("bad_config_push", ErrorRate, "a bad config push makes a service fail part of its requests",
          X(shop, "currencyservice", ("failed_total", "currencyservice", "up")), {"via": "config", "rate": 0.3}),
        E("memory_creep", MemoryLeak, "slow memory creep: the memory alert pages ~4 h later, then OOM kills and a "
          "crash loop", X(shop, "productcatalogservice", ("memory_max_fraction", "productcatalogservice", "up"))),
        E("disk_filling", DiskFill, "a disk filling with logs until writes fail",
          X(shop, "shippingservice", ("disk_max_fraction", "shippingservice", "up"), {"fills_in": "15m"}),
          ranges={"fills_in": (480.0, 1800.0, "log")}),        # full within an hour's episode
        # -- deploys and config
        E("bad_deploy_errors", ErrorRate, "a bad deploy raising errors on the endpoints that use the service",
          X(shop, "cartservice", ("failed", "GET /cart", "up")), {"via": "deploy", "rate": 0.5}),
        E("bad_deploy_latency", Slowdown, "a bad deploy with a latency regression",
          X(shop, "productcatalogservice", ("response_mean", "productcatalogservice", "up")),
          {"via": "deploy", "delay": 0.15}),
        E("bad_deploy_crashloop", CrashLoop, "a bad deploy that crash-loops on start",
          X(shop, "currencyservice", ("ready_replicas", "currencyservice", "down"))),
        E("misconfigured_address", Unreachable, "a misconfigured downstream address or port: connection refused",
          X(shop, "redis-cart", ("failed_total", "cartservice", "up"), {"caller": "cartservice"}), {"via": "config"}),
        E("regex_cpu_exhaustion", CpuHog, "a config push whose catastrophically backtracking regex exhausts CPU on "
          "every replica of a tier at once", X(shop, "frontend", ("cpu_utilisation", "frontend", "up")),
          {"via": "config", "share": 0.97}, ranges={"share": (0.85, 0.99)}),     # a milder hog is another failure
        E("feature_flag_failing_path", ErrorRate, "a feature flag sends a fraction of traffic down a failing path",
          X(shop, "recommendationservice", ("failed_total", "recommendationservice", "up")),
          {"via": "config", "rate": 0.25}),
        E("corrupt_responses", WrongAnswers, "wrong-but-successful responses: corrupt data returned with success codes",
          X(shop, "productcatalogservice", ("wrong", "GET /product/{id}", "up"))),
        E("retries_without_backoff", RetryPolicy, "retries without backoff multiply the load when a callee stumbles",
          X(shop, "cartservice", ("edge_attempts", ("checkoutservice", "cartservice"), "up"),
            {"caller": "checkoutservice"}, also=(("bad_config_push", {"target": "cartservice", "rate": 0.5}),)),
          {"retries": 6, "backoff": 0.0}, ranges={"retries": (3, 10)}),
        E("timeout_too_long", RetryPolicy, "a timeout set far too long: the caller's threads wait on a slow callee "
          "until its pool is exhausted",
          X(shop, "adservice", ("slot_utilisation", "frontend", "up"), {"caller": "frontend"},
            also=(("third_party_slowness", {"target": "adservice", "delay": 3.0}),)), {"timeout": 30.0}),
        E("health_check_flapping", HealthCheckFlap, "a misconfigured health check: replicas flap out of the load "
          "balancer", X(shop, "currencyservice", ("ready_replicas", "currencyservice", "down")), {"share": 0.8}),
        E("autoscaler_max_too_low", AutoscalerBounds, "autoscaler misconfigured with a maximum too low",
          X(shop, "frontend", ("ready_replicas", "frontend", "down"),
            also=(("flash_crowd", {"target": "GET /", "factor": 2.5}),)), {"most": 1}),
        E("autoscaler_scale_to_zero", AutoscalerBounds, "autoscaler misconfigured to scale to zero",
          X(shop, "currencyservice", ("ready_replicas", "currencyservice", "down")), {"most": 0}),
        E("deadlock", Deadlock, "a deadlock: replicas stop serving without errors",
          X(shop, "shippingservice", ("served", "shippingservice", "down"))),
        E("gc_pauses", Slowdown, "garbage-collection pauses after a heap-size change",
          X(shop, "productcatalogservice", ("response_mean", "productcatalogservice", "up")),
          {"via": "config", "delay": 0.05, "work": 2.0}),
        # -- resources
        E("cpu_hog", CpuHog, "a CPU hog inside a service (a runaway thread)",
          X(shop, "checkoutservice", ("cpu_utilisation", "checkoutservice", "up")), ranges={"share": (0.75, 0.99)}),
        E("noisy_neighbour", NoisyNeighbour, "CPU contention from a noisy neighbour on the node",
          X(shop, "node-c1", ("response_mean", "currencyservice", "up"), {"cores": 4.0})),
        E("fd_exhaustion", FdExhaustion, "file-descriptor exhaustion after a leak",
          X(shop, "shippingservice", ("failed_total", "shippingservice", "up"), {"ramp": "15m"}),
          ranges={"ramp": (600.0, 1800.0, "log")}),             # the table fills within the episode
        E("db_connection_limit", ConnectionLimit, "the database's connection limit is reached",
          X(hotel, "mongodb-reservation", ("failed_total", "reservation", "up"))),
        E("int32_id_overflow", HardLimit, "a 32-bit id overflows: inserts fail",
          X(hotel, "mongodb-reservation", ("failed_total", "mongodb-reservation", "up")), {"writes": 0.6}),
        E("txid_wraparound", HardLimit, "transaction-id wraparound: the database refuses writes",
          X(hotel, "mongodb-user", ("failed_total", "mongodb-user", "up")),
          {"writes": 0.3, "limit": "transaction_id"}),
        # -- data tier
        E("cache_failure_herd", CacheFailure, "a cache failure and the thundering herd onto the database",
          X(hotel, "memcached-rate", ("offered", "mongodb-rate", "up")), {"share": 1.0, "flush": True},
          ranges={"share": (0.8, 1.0)}),             # less is the hit-ratio drop below
        E("cache_hit_ratio_drop", CacheFailure, "the cache's hit ratio drops (a smaller cache, a new key scheme)",
          X(social, "post-storage-memcached", ("offered", "post-storage-mongodb", "up")), {"share": 0.5},
          ranges={"share": (0.3, 0.8)}),             # all of it is the cache failure above
        E("db_primary_failure", PrimaryFailure, "the database primary fails; writes fail until a failover",
          X(social, "home-timeline-redis", ("failed_total", "home-timeline-redis", "up"))),
        E("db_primary_failure_auto_failover", PrimaryFailure, "the database primary fails and fails over by itself",
          X(social, "post-storage-mongodb", ("failed_total", "post-storage-mongodb", "up")), {"duration": "1m"}),
        E("replication_lag", ReplicationLag, "replication lag: reads from replicas are stale",
          X(hotel, "mongodb-profile", ("wrong", "GET /hotels", "up"))),
        E("slow_query_schema_change", Slowdown, "a slow query after a schema change (a dropped index)",
          X(hotel, "mongodb-geo", ("response_mean", "mongodb-geo", "up")), {"via": "deploy", "delay": 0.02,
                                                                              "work": 5.0}),
        E("lock_contention", LockContention, "lock contention in the database from a caller's new transactions",
          X(hotel, "reservation", ("response_mean", "mongodb-reservation", "up"), {"on": "mongodb-reservation"}),
          {"delay": 0.05, "work": 3.0}),
        E("queue_consumer_stall", ConsumerStall, "a queue consumer stalls; the queue's lag grows",
          X(social, "write-home-timeline-service", ("queue_depth", "write-home-timeline-rabbitmq", "up"))),
        E("poison_message", PoisonMessage, "a poison message crash-loops the consumers",
          X(social, "write-home-timeline-service", ("queue_depth", "write-home-timeline-rabbitmq", "up"))),
        # -- network and infrastructure
        E("network_delay", NetworkDelay, "network delay on the links into a service",
          X(shop, "productcatalogservice", ("response_mean", "recommendationservice", "up"), {"delay": 0.1})),
        E("packet_loss", PacketLoss, "packet loss on the links into a service",
          X(shop, "cartservice", ("edge_failure", ("checkoutservice", "cartservice"), "up"), {"loss": 0.4})),
        E("bandwidth_saturation", BandwidthSaturation, "bandwidth saturation on a node's link",
          X(shop, "node-c1", ("response_mean", "checkoutservice", "up"))),
        E("dns_failure", Unreachable, "DNS resolution fails for a service name",
          X(shop, "shippingservice", ("failed_total", "checkoutservice", "up")), {"how": "no_such_host"}),
        E("node_failure", NodeFailure, "a node fails; its pods are rescheduled after a delay",
          X(shop, "node-b1", ("ready_replicas", "redis-cart", "down"))),
        E("zone_outage", ZoneOutage, "a whole availability zone goes down",
          X(shop, "us-central1-c", ("ready_replicas", "currencyservice", "down"))),
        E("uneven_load_balancing", UnevenBalancing, "uneven load-balancer weights overload one replica",
          X(shop, "recommendationservice", ("response_mean", "recommendationservice", "up")), {"hot_share": 1.0},
          ranges={"hot_share": (0.75, 1.0)}),        # near 1/replicas the balance is even: no failure
        # -- identity, time, limits
        E("expired_credentials", ExpiredCredentials, "expired or rotated credentials: the callee rejects the caller",
          X(llm, "auth-db", ("failed_total", "auth", "up"), {"caller": "auth"})),
        E("clock_skew", ClockSkew, "clock skew on one node: token validation fails there",
          X(llm, "node-a1", ("failed_total", "api-gateway", "up"))),
        E("quota_exhaustion", QuotaExhaustion, "quota exhaustion on a dependency (the 2020 authentication outage)",
          X(llm, "auth", ("failed_total", "auth", "up"))),
        E("third_party_outage", ErrorRate, "a third-party API outage",
          X(shop, "paymentservice", ("failed", "POST /cart/checkout", "up")), {"rate": 1.0},
          ranges={"rate": (0.7, 1.0)}),              # an outage, not a flaky API
        E("third_party_slowness", Slowdown, "a third-party API slows down",
          X(shop, "paymentservice", ("response_mean", "checkoutservice", "up")), {"delay": 0.5}),
        # -- traffic
        E("flash_crowd", FlashCrowd, "a flash crowd", X(shop, "GET /product/{id}", ("cpu_utilisation",
                                                                                     "productcatalogservice", "up")),
          ranges={"factor": (2.5, 8.0, "log")}),    # less is absorbed: the everyday swing, not an incident
        E("client_flood", ClientFlood, "one client source floods an endpoint",
          X(shop, "POST /cart", ("offered", "cartservice", "up"), {"factor": 30.0})),
        # -- human and control plane
        E("capacity_removal", CapacityRemoval, "capacity removed by a mistyped command (the 2017 storage outage)",
          X(shop, "productcatalogservice", ("ready_replicas", "productcatalogservice", "down"), {"left": 0})),
        E("control_plane_loss", ControlPlaneLoss, "the control plane withdraws routes: names unreachable, the "
          "responders' own tools dark (the 2021 social-network outage)",
          X(shop, "frontend", ("failed", "GET /", "up"))),
        E("metastable_retry_storm", RetryStorm, "a metastable retry storm that outlives its trigger (on a service "
          "running hot, as metastable failures need)",
          X(shop, "productcatalogservice", ("backlog", "productcatalogservice", "up"),
            overrides={"components": {"productcatalogservice": {"cpu": "300m"}}}),
          # a trigger too short or too mild does not tip the service into the storm
          ranges={"trigger": (90.0, 360.0, "log"), "slowdown": (3.0, 8.0, "log"), "retries": (3, 6)}),
        # -- AI infrastructure
        E("gpu_xid_error", GpuLost, "a GPU falls off the bus (XID error)",
          X(llm, "gpu-b1", ("ready_replicas", "model-server-llama-70b", "down")),
          ranges={"work": None}),                   # a lost GPU does no work at all: `work` is not its knob
        E("gpu_ecc_degraded", GpuDegraded, "a degraded GPU (ECC errors, retired pages)",
          X(llm, "gpu-a1", ("response_mean", "model-server-llama-8b", "up")), {"work": 2.0}),
        E("gpu_thermal_throttling", GpuDegraded, "thermal throttling halves the GPUs' clocks",
          X(llm, "gpu-a2", ("response_mean", "model-server-llama-70b", "up")), {"work": 2.0, "symptom": "thermal"}),
        E("interconnect_degraded", GpuDegraded, "a degraded interconnect slows tensor-parallel steps",
          X(llm, "gpu-b1", ("response_mean", "model-server-llama-70b", "up")),
          {"work": 1.5, "delay": 1.0, "symptom": "interconnect"}),
        E("kv_cache_exhaustion", KvCacheExhaustion, "KV-cache exhaustion under long prompts: preemption, latency",
          X(llm, "model-server-llama-70b", ("gpu_memory_fraction", "model-server-llama-70b", "up")),
          ranges={"growth": (10.0, 50.0, "log")}),   # less fits in the cache
        E("bad_model_rollout", WrongAnswers, "a bad model rollout that answers fast but wrong",
          X(llm, "model-server-llama-8b", ("wrong", "POST /v1/completions", "up")), {"share": 0.3, "speedup": 2.0}),
        E("tokenizer_mismatch", WrongAnswers, "a tokenizer/config mismatch after a rollout: garbled output, some "
          "requests rejected", X(llm, "tokenizer", ("wrong", "POST /v1/chat/completions", "up")),
          {"via": "config", "share": 0.6, "errors": 0.05}),
        # -- the real faults of the Nezha Online Boutique recordings, with the presets `opsworld calibrate` checks
        #    against them (the reasons for each value are in `opsworld.calibration.nezha`)
        E("cpu_contention", CpuHog, "CPU contention inside a pod (stress-ng): the pod's CPU pinned near its limit",
          X(shop, "currencyservice", ("cpu_utilisation", "currencyservice", "up")), {"share": 0.85},
          ranges={"share": (0.7, 0.95)}),
        E("cpu_consumed", CpuHog, "a process consuming about half of a pod's CPU",
          X(shop, "productcatalogservice", ("cpu_utilisation", "productcatalogservice", "up")), {"share": 0.76},
          ranges={"share": (0.6, 0.9)}),
        E("code_exception", ErrorRate, "an injected exception in a service's handler",
          X(shop, "cartservice", ("failed_total", "cartservice", "up")), {"rate": 0.7}),
        E("early_return", EarlyReturn, "a code path returns early with a bad value",
          X(shop, "productcatalogservice", ("failed", "GET /product/{id}", "up")), {"rate": 0.7}),
        # -- controls
        E("no_fault", NoFault, "no fault at all", X(shop, "", ("failed", "GET /", "flat"))),
        E("benign_deploy", BenignChange, "a deploy that is fine (a red herring)",
          X(shop, "adservice", ("failed", "GET /", "flat")), {"via": "deploy"}),
        E("benign_config", BenignChange, "a config push that is fine (a red herring)",
          X(shop, "cartservice", ("failed", "GET /", "flat")), {"via": "config"}),
    ]


CATALOGUE: dict[str, Entry] = {e.name: e for e in _entries()}


def entry(name: str) -> Entry:
    """The catalogue entry called `name`; a FaultError lists the known names otherwise."""
    if name not in CATALOGUE:
        raise FaultError(f"no fault named '{name}' in the catalogue; see `opsworld faults` for the "
                         f"{len(CATALOGUE)} known")
    return CATALOGUE[name]


def scenario_for(fault: str | None, scenario: str | Path | Scenario | None = None,
                 overrides: dict | None = None) -> Scenario:
    """The scenario to run a catalogue fault (`NAME` or `NAME:TARGET`) on: `scenario` if given, else the fault's own
    template (online-shop without a fault). The fault's own template gets the changes its failure needs
    (`Example.overrides`: a metastable storm needs a service running hot) under `overrides`. Raises FaultError for
    an unknown fault and ScenarioError for a scenario that does not load."""
    example = entry(fault.partition(":")[0]).example if fault is not None else None
    source = scenario if scenario is not None else example.template if example else "online-shop"
    if isinstance(source, Scenario):
        return source
    own = example.overrides if example is not None and str(source) == example.template else {}
    return load_scenario(source, {**own, **(overrides or {})} or None)


def fault_from(spec: dict) -> Fault:
    """A fault from a mapping such as a scenario's `faults:` item: `{fault: memory_creep, target: cartservice,
    onset: 02:00, ...}` (a catalogue entry name or a fault type's kind)."""
    spec = dict(spec)
    name = spec.pop("fault", None)
    if name is None:
        raise FaultError("a fault needs `fault:` naming a catalogue entry (see `opsworld faults`)")
    if name in CATALOGUE:
        return CATALOGUE[name].make(**spec)
    types = {t.kind: t for t in FAULT_TYPES + CONDITIONS}
    if name in types:
        try:
            return types[name](**spec)
        except ValueError as exc:
            raise FaultError(f"{name}: {one_line(exc)}") from None
    return entry(name).make(**spec)
