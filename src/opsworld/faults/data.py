"""Faults of the data tier: connection pools and limits, hard limits, caches, primaries and replicas, queries,
locks, and queue consumers."""

from __future__ import annotations

from typing import Literal, TYPE_CHECKING, ClassVar

import numpy as np
from pydantic import Field

from opsworld.engine.topology import CONSUME, topology_of
from opsworld.faults.base import Effect, Fault, FaultError, Seconds
from opsworld.faults.process import CrashLoop, Slowdown, Stall, WrongAnswers

if TYPE_CHECKING:
    from opsworld.engine import Engine
    from opsworld.spec import Scenario


def _pooled(engine: "Engine", *, caller: str | None = None, callee: str | None = None) -> list[tuple[str, str]]:
    topo = engine.topology
    pairs = set()
    for e in np.flatnonzero(topo.edge_pool > 0):
        a, b = topo.components[int(topo.edge_src[e])], topo.components[int(topo.edge_dst[e])]
        if (caller is None or a == caller) and (callee is None or b == callee):
            pairs.add((a, b))
    return sorted(pairs)


class ConnectionPoolLeak(Fault):
    """The service leaks database connections: its pools shrink with uptime until requests wait for a connection
    and time out. A restart gives it fresh pools (and the leak starts over)."""

    kind: ClassVar[str] = "connection_pool_leak"
    mechanism: ClassVar[str] = "connections are taken from the pool and never returned; the pool shrinks with uptime"
    masks: ClassVar[tuple[str, ...]] = ("restart",)
    default_via: ClassVar[str] = "deploy"
    restart_resets: ClassVar[bool] = True
    ramp: float = Field(1800.0, ge=0.0, description="seconds of uptime to leak `share` of the pool")
    share: float = Field(1.0, gt=0.0, le=1.0, description="share of the pool leaked at full strength")

    def check(self, scenario: "Scenario") -> None:
        super().check(scenario)
        topo = topology_of(scenario)
        s = topo.index(self.target)
        if not ((topo.edge_src == s) & (topo.edge_pool > 0)).any():
            raise FaultError(f"{self.kind}: '{self.target}' holds no connection pool to a datastore")

    def effects(self, engine: "Engine") -> list[Effect]:
        return [Effect("pool_size", p, lambda base, e: base * (1.0 - self.share))
                for p in _pooled(engine, caller=self.target)]


class ConnectionLimit(Fault):
    """The datastore's connection limit is lowered below what its callers' pools open ("too many connections"):
    the calls that need a new connection are refused."""

    kind: ClassVar[str] = "connection_limit"
    mechanism: ClassVar[str] = "the datastore refuses connections past a limit lower than its callers' pools"
    component_kinds: ClassVar[tuple[str, ...]] = ("datastore",)
    default_via: ClassVar[str] = "config"
    share: float = Field(0.5, gt=0.0, le=1.0, description="share of the callers' calls refused a connection")

    @property
    def refusal(self) -> str:
        return "too_many_clients"

    def effects(self, engine: "Engine") -> list[Effect]:
        pairs = _pooled(engine, callee=self.target)
        if not pairs:
            raise FaultError(f"{self.kind}: no caller of '{self.target}' uses a connection pool")
        return [Effect("blocked", p, lambda base, e: np.maximum(base, self.share)) for p in pairs]


class HardLimit(Fault):
    """A hard limit overflows (a 32-bit id, the transaction-id space): from then on writes fail. Nothing in the
    runbook raises it; someone has to migrate the schema or vacuum."""

    kind: ClassVar[str] = "hard_limit"
    mechanism: ClassVar[str] = "an id space runs out: every write the datastore takes fails"
    component_kinds: ClassVar[tuple[str, ...]] = ("datastore",)
    writes: float = Field(0.5, gt=0.0, le=1.0, description="share of the datastore's requests that write")
    limit: Literal["id", "transaction_id"] = Field("id", description="the id space that ran out")

    @property
    def error_kind(self) -> str:
        return "id_overflow" if self.limit == "id" else "wraparound"

    def effects(self, engine: "Engine") -> list[Effect]:
        return [Effect("error_rate", self.target, lambda base, e: 1.0 - (1.0 - base) * (1.0 - self.writes))]


class CacheFailure(Fault):
    """A cache answers fewer lookups (a smaller size, a new key scheme) and the misses fall through to what it
    fronts; `flush` also kills its replicas, which come back empty: a thundering herd onto the database."""

    kind: ClassVar[str] = "cache_failure"
    mechanism: ClassVar[str] = "the cache's hit ratio drops; misses fall through to the datastore behind it"
    component_kinds: ClassVar[tuple[str, ...]] = ("cache",)
    default_via: ClassVar[str] = "config"
    masks: ClassVar[tuple[str, ...]] = ("scale",)
    share: float = Field(0.5, gt=0.0, le=1.0, description="share of the hits lost")
    flush: bool = Field(False, description="the cache restarts empty at onset")

    def effects(self, engine: "Engine") -> list[Effect]:
        out = [Effect("hit_ratio", self.target, lambda base, e: base * (1.0 - self.share))]
        if self.flush:
            out.append(Effect("kill_at", self.target, lambda base, e: np.full_like(base, e.time), switch=True))
        return out


class PrimaryFailure(Fault):
    """The datastore's primary dies: writes fail and the replicas carry the reads until a replica is promoted
    (automatically after `duration`, or by a failover)."""

    kind: ClassVar[str] = "primary_failure"
    mechanism: ClassVar[str] = "the primary is lost: writes fail and one instance fewer serves until failover"

    @property
    def error_kind(self) -> str:
        return "read_only"
    component_kinds: ClassVar[tuple[str, ...]] = ("datastore",)
    fixes: ClassVar[tuple[str, ...]] = ("failover_db",)
    writes: float = Field(0.5, gt=0.0, le=1.0, description="share of the datastore's requests that write")

    def effects(self, engine: "Engine") -> list[Effect]:
        return [Effect("error_rate", self.target, lambda base, e: 1.0 - (1.0 - base) * (1.0 - self.writes)),
                Effect("replicas", self.target, lambda base, e: np.maximum(base - 1, 0), switch=True)]


class ReplicationLag(WrongAnswers):
    """Read replicas fall behind the primary: reads served by them return stale data as success. Sending the
    reads back to the primary (a failover of the read path) ends it."""

    kind: ClassVar[str] = "replication_lag"
    mechanism: ClassVar[str] = "replicas lag the primary: a share of the reads returns stale data"
    component_kinds: ClassVar[tuple[str, ...]] = ("datastore",)
    fixes: ClassVar[tuple[str, ...]] = ("failover_db",)
    default_via: ClassVar[str] = "none"
    delay: Seconds = Field(0.01, ge=0.0, description="seconds the lagging replicas add to reads")
    lag: Seconds = Field(120.0, gt=0.0, description="seconds the read replicas are behind the primary")

    def effects(self, engine: "Engine") -> list[Effect]:
        return super().effects(engine) + [Effect("latency", self.target, lambda base, e: base + self.delay),
                                          Effect("replication_lag", self.target, lambda base, e: base + self.lag)]


class LockContention(Slowdown):
    """A caller's new build holds row locks across calls: the datastore's requests queue on locks (waiting, and
    less throughput). The cause is the caller; the symptom is in the datastore."""

    kind: ClassVar[str] = "lock_contention"
    mechanism: ClassVar[str] = "a caller's transactions hold locks longer: the datastore serialises and slows"
    default_via: ClassVar[str] = "deploy"

    def check(self, scenario: "Scenario") -> None:
        super().check(scenario)
        if self.on is None or scenario.components[self.on].kind != "datastore":
            raise FaultError(f"{self.kind}: give `on`, the datastore whose locks '{self.target}' holds")


def _check_consumer(fault: Fault, scenario: "Scenario") -> None:
    topo = topology_of(scenario)
    s = topo.index(fault.target)
    if not ((topo.edge_dst == s) & (topo.edge_kind == CONSUME)).any():
        raise FaultError(f"{fault.kind}: '{fault.target}' consumes no queue")


class ConsumerStall(Stall):
    """A queue's consumers hang (stuck on a lock or a dead connection): messages pile up in the queue."""

    kind: ClassVar[str] = "consumer_stall"
    mechanism: ClassVar[str] = "the queue's consumers stop consuming: its backlog grows until they restart"

    def check(self, scenario: "Scenario") -> None:
        super().check(scenario)
        _check_consumer(self, scenario)


class PoisonMessage(CrashLoop):
    """A message the consumers cannot handle crashes them each time they read it; until it is moved to the dead-letter
    queue they crash-loop and the queue backs up."""

    kind: ClassVar[str] = "poison_message"
    mechanism: ClassVar[str] = "a message crashes every consumer that reads it: they crash-loop, the queue backs up"
    default_via: ClassVar[str] = "none"
    fixes: ClassVar[tuple[str, ...]] = ("dead_letter",)

    def check(self, scenario: "Scenario") -> None:
        super().check(scenario)
        _check_consumer(self, scenario)
