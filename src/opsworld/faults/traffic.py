"""Faults of load and of the control around it: crowds and floods, quotas, capacity removed by hand, retry
policies, and the metastable retry storm that outlives its trigger."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
from pydantic import Field

from opsworld.faults.base import KINDS, Effect, Fault, FaultError, Seconds
from opsworld.faults.network import check_edge, callers

if TYPE_CHECKING:
    from opsworld.engine import Engine
    from opsworld.spec import Scenario


class _EndpointFault(Fault):
    strikes: ClassVar[str] = "endpoint"
    def check(self, scenario: "Scenario") -> None:
        names = [e.name for e in scenario.traffic.endpoints]
        if self.target not in names:
            raise FaultError(f"{self.kind}: '{self.target}' is not an endpoint; known: {', '.join(names)}")

    def roots(self, scenario: "Scenario") -> list[tuple[str, str]]:
        return [("endpoint", self.target)]


class LoadLevel(Fault):
    """How busy the day is: every endpoint's users arrive at `factor` times the scenario's rate (a quiet Sunday, a
    launch week). No failure: the same system on another day, drawn per episode beside the incident so that no two
    incidents run at the same numbers."""

    kind: ClassVar[str] = "load_level"
    mechanism: ClassVar[str] = "every endpoint's offered rate is the scenario's times a factor, all episode"
    strikes: ClassVar[str] = "system"
    target: str = Field("*", description="every endpoint (`*`)")
    onset: float | str = 0.0
    factor: float = Field(1.0, gt=0.0, le=10.0, description="multiplier on every endpoint's rate")

    @property
    def mitigations(self) -> tuple[str, ...]:
        return ()

    def check(self, scenario: "Scenario") -> None:
        if self.target != "*":
            raise FaultError(f"{self.kind}: it loads every endpoint; target must be '*', got '{self.target}'")

    def roots(self, scenario: "Scenario") -> list[tuple[str, str]]:
        return []

    def effects(self, engine: "Engine") -> list[Effect]:
        return [Effect("traffic", ep.name, lambda base, e: base * self.factor)
                for ep in engine.scenario.traffic.endpoints]


class FlashCrowd(_EndpointFault):
    """Real users arrive at several times the usual rate (a sale, a news mention): more capacity is the fix."""

    kind: ClassVar[str] = "flash_crowd"
    mechanism: ClassVar[str] = "the endpoint's offered rate multiplies"
    fixes: ClassVar[tuple[str, ...]] = ("scale",)
    masks: ClassVar[tuple[str, ...]] = ("rate_limit",)
    factor: float = Field(3.0, gt=1.0, le=1000.0, description="multiplier on the endpoint's rate")

    def effects(self, engine: "Engine") -> list[Effect]:
        return [Effect("traffic", self.target, lambda base, e: base * self.factor)]


class ClientFlood(FlashCrowd):
    """One client source floods an endpoint (a retry loop in a partner's integration, a scraper): blocking it is
    the fix; more capacity only keeps up with it."""

    kind: ClassVar[str] = "client_flood"
    mechanism: ClassVar[str] = "one client source sends many times the endpoint's usual rate"
    fixes: ClassVar[tuple[str, ...]] = ("block_client",)
    masks: ClassVar[tuple[str, ...]] = ("rate_limit", "scale")
    factor: float = Field(10.0, gt=1.0, le=1000.0)

    def effects(self, engine: "Engine") -> list[Effect]:
        # the flood is no user's: it loads the system, but only the users' requests count as their experience
        return [Effect("flood", self.target, lambda base, e: base + (self.factor - 1.0))]


class QuotaExhaustion(Fault):
    """A dependency's request quota drops below its demand (an automated quota system that misjudged it): it refuses
    what passes the quota."""

    kind: ClassVar[str] = "quota_exhaustion"
    mechanism: ClassVar[str] = "the component admits only a share of its demand; the rest is refused"
    component_kinds: ClassVar[tuple[str, ...]] = KINDS
    fixes: ClassVar[tuple[str, ...]] = ("raise_limit",)
    share: float = Field(0.3, gt=0.0, lt=1.0, description="the quota as a share of the demand at onset")

    def effects(self, engine: "Engine") -> list[Effect]:
        s = engine.topology.index(self.target)
        return [Effect("rate_limit", self.target,
                       lambda base, e: np.maximum(e.offered[s], 1.0) * self.share, switch=True)]


class CapacityRemoval(Fault):
    """An operator's command removes far more capacity than meant (a mistyped argument): the service is left with
    `left` replicas."""

    made_by: ClassVar[str | None] = "j.ortiz"   # an operator running a routine command
    kind: ClassVar[str] = "capacity_removal"
    mechanism: ClassVar[str] = "the desired replica count is cut to a few"
    component_kinds: ClassVar[tuple[str, ...]] = KINDS
    fixes: ClassVar[tuple[str, ...]] = ("scale",)
    left: int = Field(1, ge=0, description="replicas left")

    def effects(self, engine: "Engine") -> list[Effect]:
        return [Effect("replicas", self.target, lambda base, e: np.minimum(base, self.left), switch=True),
                Effect("scale_min", self.target, lambda base, e: np.minimum(base, self.left), switch=True),
                Effect("scale_max", self.target, lambda base, e: np.minimum(base, self.left), switch=True)]


class RetryPolicy(Fault):
    """A caller's retry policy pushed wrong: many retries with no backoff (load multiplies whenever the callee
    stumbles), or a timeout far too long (the caller's threads wait on a slow callee until its pool is spent)."""

    kind: ClassVar[str] = "retry_policy"
    mechanism: ClassVar[str] = "the caller's retries, backoff or timeout towards the callee change"
    component_kinds: ClassVar[tuple[str, ...]] = KINDS
    default_via: ClassVar[str] = "config"
    caller: str = Field(description="the component whose calls change")
    retries: int | None = Field(None, ge=0, le=10)
    backoff: Seconds | None = Field(None, ge=0.0)
    timeout: Seconds | None = Field(None, gt=0.0)

    @property
    def change_target(self) -> str:
        return self.caller

    def check(self, scenario: "Scenario") -> None:
        super().check(scenario)
        check_edge(self, scenario, self.caller)

    def roots(self, scenario: "Scenario") -> list[tuple[str, str]]:
        return [("component", self.caller)]

    def effects(self, engine: "Engine") -> list[Effect]:
        edge = (self.caller, self.target)
        out = []
        for knob in ("retries", "backoff", "timeout"):
            value = getattr(self, knob)
            if value is not None:
                out.append(Effect(knob, edge, value, switch=True))
        return out


class RetryStorm(Fault):
    """Metastable failure: the callers retry at once (no backoff); a short trigger (a slow spell of the target)
    makes calls time out, the retries multiply the load past the target's capacity, and the overload keeps itself
    going after the trigger is gone. It ends only when the retries are shed or capacity is added."""

    kind: ClassVar[str] = "retry_storm"
    mechanism: ClassVar[str] = "retries without backoff amplify a brief slowdown into overload that sustains itself"
    component_kinds: ClassVar[tuple[str, ...]] = KINDS
    fixes: ClassVar[tuple[str, ...]] = ("disable_retries", "scale")
    retries: int = Field(4, ge=1, le=10, description="retries the callers make, with no backoff")
    trigger: Seconds = Field(120.0, gt=0.0, description="seconds the target is slowed for")
    slowdown: float = Field(4.0, gt=1.0, description="how much slower its work is during the trigger")

    def effects(self, engine: "Engine") -> list[Effect]:
        out = [Effect("capacity", self.target, lambda base, e: base / self.slowdown, until=self.trigger)]
        for pair in callers(engine, self.target):
            out.append(Effect("retries", pair, lambda base, e: np.maximum(base, self.retries), switch=True))
            out.append(Effect("backoff", pair, 0.0, switch=True))
        return out
