"""Faults of the machines under the services: nodes, zones, clocks, links, and GPUs. The target is a node (or a
zone); the components it strikes are those with replicas there, in proportion to the replicas still there (a
drained node's replicas run elsewhere and are spared)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, ClassVar, Literal

import numpy as np
from pydantic import Field

from opsworld.engine.knobs import GPU_HEALTH
from opsworld.engine.topology import CONSUME, topology_of
from opsworld.faults.base import KINDS, Effect, Fault, FaultError, Seconds

if TYPE_CHECKING:
    from opsworld.engine import Engine
    from opsworld.spec import Scenario


def placed(engine: "Engine", node: str) -> list[str]:
    """Components with a replica slot in use on `node` at the start."""
    topo = engine.topology
    n = topo.nodes.index(node)
    on = (topo.replica_node == n) & (topo.replica_index < topo.replicas[topo.replica_component])
    return [topo.components[s] for s in np.unique(topo.replica_component[on])]


def share_on(node: str, component: str) -> Callable[["Engine"], np.ndarray]:
    """[B] share of `component`'s running replicas that still run on `node`."""
    def share(engine: "Engine") -> np.ndarray:
        topo, reps = engine.topology, engine.replicas
        mine = topo.replica_component == topo.index(component)
        here = mine & (topo.replica_node == topo.nodes.index(node))
        running = reps.running
        stay = (running[here] * ~reps.moved[here]).sum(axis=0)
        return stay / np.maximum(running[mine].sum(axis=0), 1.0)
    return share


class _NodeFault(Fault):
    strikes: ClassVar[str] = "node"
    component_kinds: ClassVar[tuple[str, ...]] = KINDS
    fixes: ClassVar[tuple[str, ...]] = ("drain_node",)

    def check(self, scenario: "Scenario") -> None:
        names = [n.name for n in scenario.nodes]
        if self.target not in names:
            raise FaultError(f"{self.kind}: '{self.target}' is not a node; known: {', '.join(names)}")

    def roots(self, scenario: "Scenario") -> list[tuple[str, str]]:
        return [("node", self.target)]


class NoisyNeighbour(_NodeFault):
    """Processes outside the model on the node (another tenant, a batch job) take its cores."""

    kind: ClassVar[str] = "noisy_neighbour"
    mechanism: ClassVar[str] = "something else on the node takes its cores: every replica there is slowed"
    cores: float = Field(1.0, gt=0.0, le=10.0, description="cores taken, as a share of the node's cores")

    def effects(self, engine: "Engine") -> list[Effect]:
        cores = engine.topology.node_cpu[engine.topology.nodes.index(self.target)]
        return [Effect("cpu_steal", self.target, lambda base, e: base + self.cores * cores)]


class NodeFailure(_NodeFault):
    """The node is lost (kernel panic, power): its replicas die and are rescheduled after the eviction timeout,
    or at once when the node is drained."""

    kind: ClassVar[str] = "node_failure"
    mechanism: ClassVar[str] = "the node is lost; its replicas die until rescheduled elsewhere"

    def effects(self, engine: "Engine") -> list[Effect]:
        return [Effect("node_down", self.target, True, switch=True)]


class ZoneOutage(Fault):
    """A whole zone is lost: every node in it fails."""

    strikes: ClassVar[str] = "zone"

    kind: ClassVar[str] = "zone_outage"
    mechanism: ClassVar[str] = "every node of a zone is lost; their replicas die until rescheduled elsewhere"
    component_kinds: ClassVar[tuple[str, ...]] = KINDS
    fixes: ClassVar[tuple[str, ...]] = ("reroute_zone",)

    def check(self, scenario: "Scenario") -> None:
        zones = scenario.zones
        if self.target not in zones:
            raise FaultError(f"{self.kind}: '{self.target}' is not a zone; known: {', '.join(zones)}")

    def roots(self, scenario: "Scenario") -> list[tuple[str, str]]:
        return [("zone", self.target)]

    def effects(self, engine: "Engine") -> list[Effect]:
        nodes = [n.name for n in engine.scenario.nodes if n.zone == self.target]
        return [Effect("node_down", n, True, switch=True) for n in nodes]


class ClockSkew(_NodeFault):
    """The node's clock drifts: tokens it issues or checks look expired or not yet valid, so the requests its
    replicas handle fail."""

    kind: ClassVar[str] = "clock_skew"
    mechanism: ClassVar[str] = "the node's clock is off: token checks fail for requests served by replicas there"
    fixes: ClassVar[tuple[str, ...]] = ("drain_node", "sync_clock")
    rate: float = Field(1.0, gt=0.0, le=1.0, description="share of the requests served there that fail")

    @property
    def error_kind(self) -> str:
        return "clock_skew"

    def effects(self, engine: "Engine") -> list[Effect]:
        return [Effect("error_rate", c, lambda base, e: 1.0 - (1.0 - base) * (1.0 - self.rate),
                       scale=share_on(self.target, c)) for c in placed(engine, self.target)]


class BandwidthSaturation(_NodeFault):
    """The node's network link is saturated: calls into its replicas queue on the wire."""

    kind: ClassVar[str] = "bandwidth_saturation"
    mechanism: ClassVar[str] = "the node's link is full: calls into replicas there wait on the network"
    delay: Seconds = Field(0.3, gt=0.0, description="seconds a call into the node waits on its link")

    def effects(self, engine: "Engine") -> list[Effect]:
        topo = engine.topology
        out = []
        for c in placed(engine, self.target):
            s = topo.index(c)
            for a in sorted({int(x) for x, y, k in zip(topo.edge_src, topo.edge_dst, topo.edge_kind)
                             if y == s and k != CONSUME}):
                out.append(Effect("network_latency", (topo.components[a], c), lambda base, e: base + self.delay,
                                  scale=share_on(self.target, c)))
        return out


class GpuDegraded(_NodeFault):
    """The node's GPUs slow down: ECC errors and retired pages, thermal throttling, or a degraded interconnect that
    stretches every tensor-parallel step. The model servers there do their work `work` times slower."""

    kind: ClassVar[str] = "gpu_degraded"
    mechanism: ClassVar[str] = "the node's GPUs run slower: model servers there need more time per request"
    work: float = Field(2.0, ge=1.0, le=100.0, description="multiplier on the work per request")
    delay: Seconds = Field(0.0, ge=0.0, description="seconds added to each request (synchronisation waits)")
    symptom: Literal["ecc", "thermal", "interconnect"] = Field(
        "ecc", description="what ails the GPUs: memory errors, heat, or the links between them")

    def check(self, scenario: "Scenario") -> None:
        super().check(scenario)
        topo = topology_of(scenario)
        n = topo.nodes.index(self.target)
        on = topo.replica_component[(topo.replica_node == n) & (topo.replica_index < topo.replicas[topo.replica_component])]
        if not (topo.gpu_count[on] > 0).any():
            raise FaultError(f"{self.kind}: no GPU workload runs on '{self.target}'")

    def effects(self, engine: "Engine") -> list[Effect]:
        topo = engine.topology
        out = [Effect("gpu_health", self.target, GPU_HEALTH.index(self.symptom), switch=True)]
        for c in placed(engine, self.target):
            if topo.gpu_count[topo.index(c)] > 0:
                out.append(Effect("capacity", c, lambda base, e: base / self.work, scale=share_on(self.target, c)))
                if self.delay:
                    out.append(Effect("latency", c, lambda base, e: base + self.delay, scale=share_on(self.target, c)))
        return out


class GpuLost(GpuDegraded):
    """A GPU falls off the bus (an XID error): the replica using it dies and cannot start there again."""

    kind: ClassVar[str] = "gpu_lost"
    mechanism: ClassVar[str] = "a GPU drops off the bus: the node can no longer run its GPU replicas"

    def effects(self, engine: "Engine") -> list[Effect]:
        return [Effect("node_down", self.target, True, switch=True),
                Effect("gpu_health", self.target, GPU_HEALTH.index("lost"), switch=True)]


class KvCacheExhaustion(Fault):
    """Prompts grow long (a new client, a new feature): each request in flight needs several times the KV cache,
    which no longer fits beside the weights; requests are preempted and fail, the rest wait for prefill."""

    kind: ClassVar[str] = "kv_cache_exhaustion"
    mechanism: ClassVar[str] = "longer prompts: each in-flight request needs more KV cache than the GPUs have"
    fixes: ClassVar[tuple[str, ...]] = ("scale",)
    masks: ClassVar[tuple[str, ...]] = ("rate_limit",)
    growth: float = Field(20.0, gt=1.0, le=1000.0, description="multiplier on each request's KV-cache need (128k-token prompts)")
    prefill: Seconds = Field(0.0, ge=0.0, description="seconds of prefill added to each request")

    def check(self, scenario: "Scenario") -> None:
        super().check(scenario)
        if getattr(scenario.components[self.target], "gpu", None) is None:
            raise FaultError(f"{self.kind}: '{self.target}' has no GPUs")

    def effects(self, engine: "Engine") -> list[Effect]:
        out = [Effect("request_size", self.target, lambda base, e: base * self.growth)]
        if self.prefill:     # prefill is GPU work: each request needs more of it, so fewer are served per second
            own = float(engine.topology.service_mean[engine.topology.index(self.target)])
            out.append(Effect("capacity", self.target, lambda base, e: base * own / (own + self.prefill)))
        return out
