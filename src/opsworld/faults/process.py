"""Faults inside a service's own processes: errors, slowness, CPU, memory, disk, crashes, deadlocks, wrong answers,
and the controls (no fault, a harmless change)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
from pydantic import Field

from opsworld.faults.base import KINDS, Effect, Fault, FaultError, Seconds

if TYPE_CHECKING:
    from opsworld.engine import Engine
    from opsworld.spec import Scenario


HANDLER = Field(None, description="the one handler (operation) the bug is in, as the scenario names it (an entry "
                                   "service's endpoint, or one of a component's `handlers`); none: every request")


def _check_handler(fault: Fault, scenario: "Scenario") -> None:
    handler = getattr(fault, "handler", None)
    if handler is None:
        return
    known = scenario.handlers(fault.target)
    if handler not in known:
        where = f"its handlers: {', '.join(known)}" if known else \
            "it lists no handlers (give the component `handlers`, or strike every request)"
        raise FaultError(f"{fault.kind}: '{handler}' is not a handler of '{fault.target}'; {where}")


def _failing(fault: Fault, engine: "Engine", rate: float) -> Effect:
    """Requests failing at `rate` after the work: every request's, or one handler's. An entry service's endpoint
    fails alone (its own knob); a handler inside a service fails its share of the service's requests."""
    handler = getattr(fault, "handler", None)
    if handler is None:
        return Effect("error_rate", fault.target, lambda base, e: 1.0 - (1.0 - base) * (1.0 - rate))
    scenario = engine.scenario
    if handler in [ep.name for ep in scenario.traffic.endpoints if ep.service == fault.target]:
        return Effect("handler_error", handler, lambda base, e: 1.0 - (1.0 - base) * (1.0 - rate))
    share = rate * scenario.handlers(fault.target)[handler]
    return Effect("error_rate", fault.target, lambda base, e: 1.0 - (1.0 - base) * (1.0 - share))


class ErrorRate(Fault):
    """Requests fail after the service's own work: an exception path, a bad build, a flag sending traffic down a
    broken branch, a dependency outside the model that fails. With `handler`, the bug is in that one handler."""

    kind: ClassVar[str] = "error_rate"
    mechanism: ClassVar[str] = "a share of the service's requests end in an error after its own work"
    component_kinds: ClassVar[tuple[str, ...]] = KINDS
    rate: float = Field(0.5, gt=0.0, le=1.0, description="share of requests that fail at full strength")
    handler: str | None = HANDLER

    def check(self, scenario: "Scenario") -> None:
        super().check(scenario)
        _check_handler(self, scenario)

    def effects(self, engine: "Engine") -> list[Effect]:
        return [_failing(self, engine, self.rate)]


class EarlyReturn(Fault):
    """A code path returns early with a bad value: the service does less work (its CPU falls) and its callers fail
    on what it answered. With `handler`, the path is in that one handler."""

    kind: ClassVar[str] = "early_return"
    mechanism: ClassVar[str] = "requests end early with a bad value: the callers fail on it"
    rate: float = Field(0.1, gt=0.0, le=1.0, description="share of answers that are bad")
    speedup: float = Field(1.0, ge=1.0, le=100.0, description="requests end this much sooner (less CPU work; the "
                                                               "recordings show none)")
    handler: str | None = HANDLER

    def check(self, scenario: "Scenario") -> None:
        super().check(scenario)
        _check_handler(self, scenario)

    def effects(self, engine: "Engine") -> list[Effect]:
        return [_failing(self, engine, self.rate), Effect("capacity", self.target, lambda base, e: base * self.speedup)]


class Slowdown(Fault):
    """Each request takes longer: a latency regression, garbage-collection pauses, a slow query after a schema
    change, lock waits. `delay` adds waiting time; `work` multiplies the CPU work per request."""

    kind: ClassVar[str] = "slowdown"
    mechanism: ClassVar[str] = "each request waits longer and/or needs more CPU work in the service"
    component_kinds: ClassVar[tuple[str, ...]] = KINDS
    delay: Seconds = Field(0.2, ge=0.0, description="seconds added to each request")
    work: float = Field(1.0, ge=1.0, le=1000.0, description="multiplier on the CPU work per request")
    on: str | None = Field(None, description="the component that slows, when not the target (lock contention "
                                             "caused by a caller's new transactions)")

    def check(self, scenario) -> None:
        super().check(scenario)
        if self.on is not None and self.on not in scenario.components:
            raise FaultError(f"{self.kind}: 'on' names no component: '{self.on}'")

    def effects(self, engine: "Engine") -> list[Effect]:
        where = self.on or self.target
        return [Effect("latency", where, lambda base, e: base + self.delay),
                Effect("capacity", where, lambda base, e: base / self.work)]


class CpuHog(Fault):
    """A runaway thread or process inside the service's containers burns CPU the requests needed."""

    kind: ClassVar[str] = "cpu_hog"
    mechanism: ClassVar[str] = "something inside the containers burns part of each replica's CPU limit"
    component_kinds: ClassVar[tuple[str, ...]] = KINDS
    fixes: ClassVar[tuple[str, ...]] = ("restart",)
    masks: ClassVar[tuple[str, ...]] = ("scale",)
    restart_clears: ClassVar[bool] = True
    share: float = Field(0.9, gt=0.0, lt=1.0, description="share of the CPU limit it burns")

    def effects(self, engine: "Engine") -> list[Effect]:
        # on top of what the runtime burns at rest (at most 99% of the limit: requests still get scheduled)
        return [Effect("cpu_hog", self.target, lambda base, e: np.minimum(base + self.share, 0.99))]

    @property
    def mitigations(self) -> tuple[str, ...]:   # a config-carried hog (a regex) is undone by rolling back only
        return super().mitigations if self.change == "none" else super().mitigations[:1]


class CrashLoop(Fault):
    """Replicas crash soon after starting (a broken build, a poison message read at start) and back off."""

    kind: ClassVar[str] = "crash_loop"
    mechanism: ClassVar[str] = "replicas crash seconds after starting and restart with growing back-off"
    component_kinds: ClassVar[tuple[str, ...]] = KINDS
    default_via: ClassVar[str] = "deploy"

    def effects(self, engine: "Engine") -> list[Effect]:
        return [Effect("crash_loop", self.target, True, switch=True)]


class MemoryLeak(Fault):
    """Each replica's memory grows steadily: the memory alert (90% of the limit) fires about `page_after` after the
    leaking build starts, then the kernel kills replicas and they crash-loop as they refill."""

    kind: ClassVar[str] = "memory_leak"
    mechanism: ClassVar[str] = "each replica's memory grows at a steady rate until it is killed for running out"
    component_kinds: ClassVar[tuple[str, ...]] = KINDS
    masks: ClassVar[tuple[str, ...]] = ("restart",)
    default_via: ClassVar[str] = "deploy"
    page_after: Seconds = Field(4 * 3600.0, gt=0.0, description="seconds from a replica's start to 90% of its limit")

    def effects(self, engine: "Engine") -> list[Effect]:
        topo = engine.topology
        s = topo.index(self.target)
        rate = (0.9 * topo.memory_limit[s] - topo.memory_baseline[s]) / self.page_after
        return [Effect("memory_growth", self.target, lambda base, e: base + rate)]


class DiskFill(Fault):
    """Each replica writes to its local disk (verbose logging) until it is full; then its writes fail."""

    kind: ClassVar[str] = "disk_fill"
    mechanism: ClassVar[str] = "each replica's local disk fills at a steady rate; a full disk fails its writes"
    component_kinds: ClassVar[tuple[str, ...]] = KINDS
    masks: ClassVar[tuple[str, ...]] = ("restart",)
    default_via: ClassVar[str] = "deploy"
    fills_in: Seconds = Field(3600.0, gt=0.0, description="seconds for a fresh replica's disk to fill")

    def effects(self, engine: "Engine") -> list[Effect]:
        topo = engine.topology
        rate = 0.8 * topo.disk[topo.index(self.target)] / self.fills_in
        return [Effect("disk_growth", self.target, lambda base, e: base + rate)]


class Deadlock(Fault):
    """Replicas stop serving without an error after some uptime (a lock-order bug); health checks eject them."""

    kind: ClassVar[str] = "deadlock"
    mechanism: ClassVar[str] = "replicas deadlock after some uptime: alive, in rotation until ejected, serving nothing"
    component_kinds: ClassVar[tuple[str, ...]] = KINDS
    masks: ClassVar[tuple[str, ...]] = ("restart",)
    default_via: ClassVar[str] = "deploy"
    after: Seconds = Field(300.0, ge=0.0, description="uptime in seconds before a replica deadlocks")

    def effects(self, engine: "Engine") -> list[Effect]:
        return [Effect("hang_after", self.target, self.after, switch=True)]


class Stall(Fault):
    """A one-off hang of every replica (a consumer stuck on a lock): a restart clears it."""

    kind: ClassVar[str] = "stall"
    mechanism: ClassVar[str] = "every replica hangs at once and serves nothing until restarted"
    component_kinds: ClassVar[tuple[str, ...]] = KINDS
    fixes: ClassVar[tuple[str, ...]] = ("restart",)
    restart_clears: ClassVar[bool] = True

    def effects(self, engine: "Engine") -> list[Effect]:
        return [Effect("hang_after", self.target, 0.0, switch=True)]


class WrongAnswers(Fault):
    """Requests succeed with wrong content: corrupt data, stale reads, a model that answers fast but wrong."""

    kind: ClassVar[str] = "wrong_answers"
    mechanism: ClassVar[str] = "a share of the answers is wrong while reported as success"
    component_kinds: ClassVar[tuple[str, ...]] = KINDS
    default_via: ClassVar[str] = "deploy"
    share: float = Field(0.2, gt=0.0, le=1.0, description="share of answers that are wrong")
    errors: float = Field(0.0, ge=0.0, le=1.0, description="share of requests that also fail outright")
    speedup: float = Field(1.0, ge=1.0, le=100.0, description="answers come this much faster (less work done)")

    def effects(self, engine: "Engine") -> list[Effect]:
        out = [Effect("wrong", self.target, lambda base, e: 1.0 - (1.0 - base) * (1.0 - self.share))]
        if self.errors:
            out.append(Effect("error_rate", self.target, lambda base, e: 1.0 - (1.0 - base) * (1.0 - self.errors)))
        if self.speedup > 1.0:
            out.append(Effect("capacity", self.target, lambda base, e: base * self.speedup))
        return out


class FdExhaustion(Fault):
    """File descriptors leak with every connection; once the table is full, new connections (and requests) fail.
    A restart frees them and the clock starts again."""

    kind: ClassVar[str] = "fd_exhaustion"
    mechanism: ClassVar[str] = "leaked file descriptors fill the process's table; then most requests fail"
    masks: ClassVar[tuple[str, ...]] = ("restart",)
    default_via: ClassVar[str] = "deploy"
    restart_resets: ClassVar[bool] = True
    sudden: ClassVar[bool] = True
    rate: float = Field(0.9, gt=0.0, le=1.0, description="share of requests failing once the table is full")

    @property
    def error_kind(self) -> str:
        return "fd_exhausted"

    def effects(self, engine: "Engine") -> list[Effect]:
        return [Effect("error_rate", self.target, lambda base, e: 1.0 - (1.0 - base) * (1.0 - self.rate))]


class HealthCheckFlap(Fault):
    """A probe too strict for the service (a timeout shorter than its p99) takes healthy replicas out of the load
    balancer, on and off."""

    kind: ClassVar[str] = "health_check_flap"
    mechanism: ClassVar[str] = "health checks wrongly fail a share of the replicas, which flap out of rotation"
    component_kinds: ClassVar[tuple[str, ...]] = KINDS
    default_via: ClassVar[str] = "config"
    share: float = Field(0.6, gt=0.0, le=1.0, description="share of replicas out of rotation at any time")

    def effects(self, engine: "Engine") -> list[Effect]:
        return [Effect("flap", self.target, self.share)]


class AutoscalerBounds(Fault):
    """The autoscaler's bounds set wrong: a maximum too low for the load, or scale-to-zero."""

    made_by: ClassVar[str | None] = "m.chen"   # a person editing the autoscaler's settings
    kind: ClassVar[str] = "autoscaler_bounds"
    mechanism: ClassVar[str] = "the autoscaler's min/max replicas are set so it cannot keep enough replicas"
    default_via: ClassVar[str] = "config"
    most: int = Field(1, ge=0, description="the wrong maximum (0 scales to zero)")

    def check(self, scenario) -> None:
        super().check(scenario)
        if scenario.components[self.target].autoscaler is None:
            raise FaultError(f"{self.kind}: '{self.target}' has no autoscaler")

    def effects(self, engine: "Engine") -> list[Effect]:
        return [Effect("scale_max", self.target, self.most, switch=True),
                Effect("scale_min", self.target, lambda base, e: np.minimum(base, self.most), switch=True),
                Effect("replicas", self.target, lambda base, e: np.minimum(base, self.most), switch=True)]


class UnevenBalancing(Fault):
    """Load-balancer weights send most traffic to one replica, which saturates while the others idle: the service
    behaves as if it had a fraction of its capacity."""

    kind: ClassVar[str] = "uneven_balancing"
    mechanism: ClassVar[str] = "skewed load-balancer weights: the hottest replica bounds the service's capacity"
    default_via: ClassVar[str] = "config"
    hot_share: float = Field(0.7, gt=0.0, le=1.0, description="share of the traffic the hottest replica gets")

    def effects(self, engine: "Engine") -> list[Effect]:
        n = float(engine.topology.replicas[engine.topology.index(self.target)])
        return [Effect("capacity", self.target, lambda base, e: base / max(self.hot_share * n, 1.0))]


class BenignChange(Fault):
    """A deploy or config push that changes nothing that matters: the red herring in the change log."""

    kind: ClassVar[str] = "benign_change"
    mechanism: ClassVar[str] = "a new version rolls out (replicas restart one by one); nothing else changes"
    component_kinds: ClassVar[tuple[str, ...]] = KINDS
    default_via: ClassVar[str] = "deploy"

    @property
    def mitigations(self) -> tuple[str, ...]:
        return ()

    def roots(self, scenario) -> list[tuple[str, str]]:
        return []          # it causes nothing

    def effects(self, engine: "Engine") -> list[Effect]:
        return []


class NoFault(Fault):
    """The control: nothing happens."""

    kind: ClassVar[str] = "no_fault"
    mechanism: ClassVar[str] = "nothing"
    component_kinds: ClassVar[tuple[str, ...]] = KINDS
    target: str = ""

    @property
    def mitigations(self) -> tuple[str, ...]:
        return ()

    def check(self, scenario) -> None:
        return None

    def roots(self, scenario) -> list[tuple[str, str]]:
        return []

    def effects(self, engine: "Engine") -> list[Effect]:
        return []
