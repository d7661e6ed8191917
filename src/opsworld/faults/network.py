"""Faults on the paths between components: partitions, delay, loss, saturated links, names that do not resolve,
wrong addresses, rejected credentials, expired certificates, and the loss of the control plane itself."""

from __future__ import annotations

from typing import Literal, TYPE_CHECKING, ClassVar

import numpy as np
from pydantic import Field

from opsworld.engine.topology import CONSUME, topology_of
from opsworld.faults.base import KINDS, Effect, Fault, FaultError, Seconds

if TYPE_CHECKING:
    from opsworld.engine import Engine
    from opsworld.spec import Scenario


def callers(engine: "Engine", component: str) -> list[tuple[str, str]]:
    """The (caller, callee) pairs of every call into `component` (queues' deliveries to consumers excluded)."""
    topo = engine.topology
    s = topo.index(component)
    pairs = {(topo.components[int(a)], component) for a, b, k in zip(topo.edge_src, topo.edge_dst, topo.edge_kind)
             if b == s and k != CONSUME}
    return sorted(pairs)


def check_edge(fault: Fault, scenario: "Scenario", caller: str | None) -> None:
    if caller is None:
        return
    if caller not in scenario.components:
        raise FaultError(f"{fault.kind}: caller '{caller}' is not a component")
    topo = topology_of(scenario)
    s, t = topo.index(caller), topo.index(fault.target)
    if not ((topo.edge_src == s) & (topo.edge_dst == t)).any():
        raise FaultError(f"{fault.kind}: '{caller}' does not call '{fault.target}'")


class _PathFault(Fault):
    """A fault on the calls into `target`, or only on those from `caller` when given."""

    component_kinds: ClassVar[tuple[str, ...]] = KINDS
    caller: str | None = Field(None, description="only the calls from this component (default: every caller)")

    def check(self, scenario: "Scenario") -> None:
        super().check(scenario)
        check_edge(self, scenario, self.caller)

    def paths(self, engine: "Engine") -> list[tuple[str, str]]:
        return [(self.caller, self.target)] if self.caller else callers(engine, self.target)

    def roots(self, scenario: "Scenario") -> list[tuple[str, str]]:
        return ([("component", self.caller)] if self.caller else []) + [("component", self.target)]


class Unreachable(_PathFault):
    """Calls cannot connect: a misconfigured address or port (connection refused), a service name that no longer
    resolves, a partition between two services, credentials the callee rejects."""

    kind: ClassVar[str] = "unreachable"
    mechanism: ClassVar[str] = "a share of the call attempts into the target are refused before they reach it"
    share: float = Field(1.0, gt=0.0, le=1.0, description="share of attempts refused")
    how: Literal["refused", "no_such_host", "timeout"] = Field(
        "refused", description="how attempts fail: a closed port, a name that does not resolve, a dropped route")

    @property
    def refusal(self) -> str:
        return self.how

    def roots(self, scenario: "Scenario") -> list[tuple[str, str]]:
        # a wrong address is the caller's; a name or partition problem sits on the path to the callee
        if self.caller and self.change == "config":
            return [("component", self.caller)]
        return super().roots(scenario)

    def check(self, scenario: "Scenario") -> None:
        super().check(scenario)
        if self.change == "config" and self.caller is None:
            raise FaultError(f"{self.kind}: a misconfigured address is the caller's: give `caller`")

    def effects(self, engine: "Engine") -> list[Effect]:
        return [Effect("blocked", p, lambda base, e: np.maximum(base, self.share)) for p in self.paths(engine)]

    @property
    def change_target(self) -> str:
        return self.caller or self.target


class ExpiredCredentials(Unreachable):
    """The caller's credentials for the target expired or were rotated without it: the target rejects its calls."""

    kind: ClassVar[str] = "expired_credentials"
    mechanism: ClassVar[str] = "the target rejects the caller's calls: its credentials are no longer valid"
    fixes: ClassVar[tuple[str, ...]] = ("rotate_credentials",)

    @property
    def refusal(self) -> str:
        return "unauthorized"

    def roots(self, scenario: "Scenario") -> list[tuple[str, str]]:
        return [("component", self.caller or self.target)]


class NetworkDelay(_PathFault):
    """Each call attempt into the target waits longer on the wire (a congested or misrouted link, netem)."""

    kind: ClassVar[str] = "network_delay"
    mechanism: ClassVar[str] = "each call attempt into the target spends longer on the network"
    delay: Seconds = Field(0.1, gt=0.0, description="seconds added to each attempt's round trip")

    def roots(self, scenario: "Scenario") -> list[tuple[str, str]]:
        return [("component", self.target)]

    def effects(self, engine: "Engine") -> list[Effect]:
        return [Effect("network_latency", p, lambda base, e: base + self.delay) for p in self.paths(engine)]


class PacketLoss(_PathFault):
    """Packets into the target are dropped: some attempts fail (and are retried), the rest wait for
    retransmissions."""

    kind: ClassVar[str] = "packet_loss"
    mechanism: ClassVar[str] = "a share of the call attempts is lost; the others wait for retransmission"
    loss: float = Field(0.3, gt=0.0, le=1.0, description="share of attempts lost")
    retransmit: Seconds = Field(0.2, ge=0.0, description="seconds a lossy exchange waits for retransmissions")

    @property
    def refusal(self) -> str:
        return "timeout"

    def roots(self, scenario: "Scenario") -> list[tuple[str, str]]:
        return [("component", self.target)]

    def effects(self, engine: "Engine") -> list[Effect]:
        out = []
        for p in self.paths(engine):
            out.append(Effect("blocked", p, lambda base, e: np.maximum(base, self.loss)))
            out.append(Effect("network_latency", p, lambda base, e: base + self.retransmit * self.loss))
        return out


class ZonePartition(Fault):
    """Two zones cannot reach each other: calls between replicas on opposite sides fail."""

    strikes: ClassVar[str] = "zone"

    kind: ClassVar[str] = "zone_partition"
    mechanism: ClassVar[str] = "traffic between two zones is dropped both ways"
    fixes: ClassVar[tuple[str, ...]] = ("reroute_zone",)
    other: str = Field(description="the zone on the other side")

    def check(self, scenario: "Scenario") -> None:
        zones = scenario.zones
        for z in (self.target, self.other):
            if z not in zones:
                raise FaultError(f"{self.kind}: '{z}' is not a zone; known: {', '.join(zones)}")

    def roots(self, scenario: "Scenario") -> list[tuple[str, str]]:
        return [("zone", self.target), ("zone", self.other)]

    def effects(self, engine: "Engine") -> list[Effect]:
        return [Effect("partition", (self.target, self.other), True, switch=True),
                Effect("partition", (self.other, self.target), True, switch=True)]


class CertificateExpiry(Fault):
    """A TLS certificate reaches its not-after time unrenewed: every handshake with its component fails from then
    on. `target` names the certificate (or the component serving it); the onset is the not-after time."""

    strikes: ClassVar[str] = "certificate"

    kind: ClassVar[str] = "certificate_expiry"
    mechanism: ClassVar[str] = "the certificate's not-after moves to the onset: handshakes fail from then on"
    component_kinds: ClassVar[tuple[str, ...]] = KINDS
    fixes: ClassVar[tuple[str, ...]] = ("renew_cert",)
    onset: float | str = "02:00"

    def certificate(self, scenario: "Scenario") -> str:
        for cert in scenario.certificates:
            if self.target in (cert.name, cert.component):
                return cert.name
        names = [c.name for c in scenario.certificates]
        raise FaultError(f"{self.kind}: no certificate named or served by '{self.target}'; known: {', '.join(names)}")

    def check(self, scenario: "Scenario") -> None:
        self.certificate(scenario)

    def roots(self, scenario: "Scenario") -> list[tuple[str, str]]:
        name = self.certificate(scenario)
        return [("component", next(c.component for c in scenario.certificates if c.name == name))]

    def levels(self, t: float, onset: np.ndarray) -> np.ndarray:
        # the certificate's date is moved once, ahead of time; the dynamics do the rest when the clock passes it
        return np.where(np.asarray(t < onset + self.duration) if self.duration is not None else True, 1.0,
                        0.0) * np.ones_like(onset)

    def effects(self, engine: "Engine") -> list[Effect]:
        scenario = engine.scenario
        not_after = scenario.traffic.start + self.onset_seconds(scenario)
        return [Effect("cert_not_after", self.certificate(scenario), not_after, switch=True)]


class ControlPlaneLoss(Fault):
    """Routes are withdrawn (a bad backbone command): names stop resolving everywhere, every call between
    components fails, and the responders' own tools go dark with it. `target` names the entry component."""

    strikes: ClassVar[str] = "component"

    kind: ClassVar[str] = "control_plane_loss"
    mechanism: ClassVar[str] = "routes withdrawn: every call between components and every zone link fails"

    @property
    def refusal(self) -> str:
        return "no_such_host"

    def roots(self, scenario: "Scenario") -> list[tuple[str, str]]:
        return [("network", "control-plane")]

    def effects(self, engine: "Engine") -> list[Effect]:
        topo = engine.topology
        pairs = sorted({(topo.components[int(a)], topo.components[int(b)])
                        for a, b, k in zip(topo.edge_src, topo.edge_dst, topo.edge_kind) if k != CONSUME})
        # with the routes gone, nothing reaches any node: neither the callers nor the monitoring and its users
        return [Effect("blocked", p, 1.0, switch=True) for p in pairs] + \
            [Effect("isolated", node, True, switch=True) for node in topo.nodes]
