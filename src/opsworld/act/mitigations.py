"""The runbook's mitigations: what each does to a world, through the engine's knobs, and how long it takes to land.

Most act on the system as an operator would (roll back, restart, scale, drain, renew, rate-limit). A few remove a
cause that lives outside the model's knobs (rotate a credential, fix a clock, promote a replica, dead-letter a
message); those tell the injector that the cause is gone. `page_human` brings in someone who fixes whatever is
wrong, slowly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from opsworld.engine import Engine
from opsworld.engine.knobs import Worlds, resolve_worlds
from opsworld.engine.topology import CONSUME

if TYPE_CHECKING:
    from opsworld.faults.injector import Injector

HUMAN_DELAY = 1800.0   # seconds for a paged human to find and fix the cause
ONCALL = "oncall"        # who the change history says made the runbook's changes
CERT_LIFETIME = 90 * 86400.0


class MitigationError(ValueError):
    """A mitigation that does not exist or a target it cannot act on."""


@dataclass(frozen=True)
class Mitigation:
    name: str
    summary: str
    target: str            # what it acts on: component, node, zone, certificate, endpoint, or nothing
    takes: float           # seconds from the order until its effect lands (rollouts then take their own time)
    act: Callable[[Engine, "Injector | None", object, Worlds], None]


def _component(engine: Engine, target: object) -> str:
    if not isinstance(target, str) or target not in engine.scenario.components:
        raise MitigationError(f"'{target}' is not a component; known: {', '.join(engine.scenario.components)}")
    return target


def _version(engine: Engine, knob: str, target: object, worlds: Worlds) -> None:
    name = _component(engine, target)
    spec = engine.scenario.components[name]
    engine.set(knob, getattr(spec, knob), name, worlds, by=ONCALL)     # back to the last version known good: the scenario's


def _restart(engine: Engine, injector, target: object, worlds: Worlds) -> None:
    engine.set("restart_at", engine.time, _component(engine, target), worlds, by=ONCALL)


def _scale_up(engine: Engine, injector, target: object, worlds: Worlds) -> None:
    names = list(engine.scenario.components) if target is None else [_component(engine, target)]
    rows = resolve_worlds(worlds, engine.worlds)
    k, topo = engine.knobs, engine.topology
    for name in names:
        s = topo.index(name)
        want = np.minimum(np.maximum(2 * k.replicas[s][rows], topo.replicas[s]), topo.max_replicas[s])
        engine.set("replicas", want, name, worlds, by=ONCALL)
        engine.set("scale_min", np.maximum(k.scale_min[s][rows], want), name, worlds, by=ONCALL)
        engine.set("scale_max", np.maximum(k.scale_max[s][rows], want), name, worlds, by=ONCALL)


def _renew(engine: Engine, injector, target: object, worlds: Worlds) -> None:
    certs = engine.scenario.certificates
    names = [c.name for c in certs if target in (c.name, c.component)]
    if not names:
        raise MitigationError(f"no certificate named or served by '{target}'; known: {', '.join(c.name for c in certs)}")
    for name in names:
        engine.set("cert_not_after", engine.scenario.traffic.start + engine.time + CERT_LIFETIME, name, worlds, by=ONCALL)


def _node(engine: Engine, target: object) -> str:
    if target not in engine.topology.nodes:
        raise MitigationError(f"'{target}' is not a node; known: {', '.join(engine.topology.nodes)}")
    return str(target)


def _drain_node(engine: Engine, injector, target: object, worlds: Worlds) -> None:
    engine.set("drained", True, _node(engine, target), worlds, by=ONCALL)


def _drain_zone(engine: Engine, injector, target: object, worlds: Worlds) -> None:
    nodes = [n.name for n in engine.scenario.nodes if n.zone == target]
    if not nodes:
        raise MitigationError(f"'{target}' is not a zone; known: {', '.join(engine.topology.zones)}")
    for node in nodes:
        engine.set("drained", True, node, worlds, by=ONCALL)


def _shed_load(engine: Engine, injector, target: object, worlds: Worlds) -> None:
    """Admit at most what the component's replicas can serve with headroom (CPU-bound estimate)."""
    name = _component(engine, target)
    topo = engine.topology
    s = topo.index(name)
    rows = resolve_worlds(worlds, engine.worlds)
    capacity = engine.knobs.replicas[s][rows] * topo.cpu[s] / max(topo.service_mean[s], 1e-6)
    engine.set("rate_limit", 0.8 * capacity, name, worlds, by=ONCALL)


def _block_client(engine: Engine, injector, target: object, worlds: Worlds) -> None:
    """Block the source sending far more than its share: the endpoint's rate returns to its usual level."""
    if target not in engine.topology.endpoints:
        raise MitigationError(f"'{target}' is not an endpoint; known: {', '.join(engine.topology.endpoints)}")
    engine.set("traffic", np.minimum(engine.knobs.traffic[engine.topology.endpoints.index(target)]
                                     [resolve_worlds(worlds, engine.worlds)], 1.0), target, worlds, by=ONCALL)


def _into(engine: Engine, name: str) -> list[tuple[str, str]]:
    topo = engine.topology
    s = topo.index(name)
    return sorted({(topo.components[int(a)], name) for a, b, k in zip(topo.edge_src, topo.edge_dst, topo.edge_kind)
                   if b == s and k != CONSUME})


def _disable_retries(engine: Engine, injector, target: object, worlds: Worlds) -> None:
    for pair in _into(engine, _component(engine, target)):
        engine.set("retries", 0, pair, worlds, by=ONCALL)


def _raise_limit(engine: Engine, injector, target: object, worlds: Worlds) -> None:
    name = _component(engine, target)
    engine.set("rate_limit", np.inf, name, worlds, by=ONCALL)
    rows = resolve_worlds(worlds, engine.worlds)
    for pair in _into(engine, name):
        edges = np.flatnonzero((engine.topology.edge_src == engine.topology.index(pair[0]))
                               & (engine.topology.edge_dst == engine.topology.index(name)))
        spec = engine.topology.edge_pool[edges].max()
        if spec > 0:
            engine.set("pool_size", np.maximum(engine.knobs.pool_size[edges[0]][rows], spec), pair, worlds, by=ONCALL)


def _removes(*kinds: str, by: str = "component") -> Callable[[Engine, "Injector | None", object, Worlds], None]:
    """A mitigation that removes a cause outside the knobs: faults of these kinds at this target are repaired."""
    def act(engine: Engine, injector, target: object, worlds: Worlds) -> None:
        _node(engine, target) if by == "node" else _component(engine, target)
        if injector is not None:
            injector.repair(worlds, lambda f: f.kind in kinds and target in
                            (f.target, getattr(f, "caller", None)))
    return act


def _page_human(engine: Engine, injector, target: object, worlds: Worlds) -> None:
    if injector is not None:
        injector.repair(worlds)


MITIGATIONS: dict[str, Mitigation] = {m.name: m for m in [
    Mitigation("rollback_deploy", "roll the component back to its last good deploy (replicas replaced one by one)",
               "component", 30.0, lambda e, i, t, w: _version(e, "deploy", t, w)),
    Mitigation("rollback_config", "push the component's last good config", "component", 30.0,
               lambda e, i, t, w: _version(e, "config", t, w)),
    Mitigation("restart", "rolling restart of the component's replicas", "component", 10.0, _restart),
    Mitigation("scale_up", "double the component's replicas (every component's, without a target)", "component",
               10.0, _scale_up),
    Mitigation("renew_certificate", "issue and install a new certificate", "certificate", 60.0, _renew),
    Mitigation("rotate_credentials", "issue the component new credentials", "component", 60.0,
               _removes("expired_credentials")),
    Mitigation("drain_node", "cordon and drain a node: its replicas start elsewhere", "node", 10.0, _drain_node),
    Mitigation("drain_zone", "drain every node of a zone", "zone", 10.0, _drain_zone),
    Mitigation("failover", "promote a healthy replica of a datastore and send reads and writes to it", "component",
               30.0, _removes("primary_failure", "replication_lag")),
    Mitigation("sync_clock", "resynchronise a node's clock", "node", 30.0, _removes("clock_skew", by="node")),
    Mitigation("dead_letter", "move the message a consumer cannot handle to the dead-letter queue", "component",
               30.0, _removes("poison_message")),
    Mitigation("shed_load", "rate-limit a component to what its replicas can serve", "component", 10.0, _shed_load),
    Mitigation("block_client", "block the client source flooding an endpoint", "endpoint", 10.0, _block_client),
    Mitigation("disable_retries", "turn off retries on every call into the component", "component", 30.0,
               _disable_retries),
    Mitigation("raise_limit", "raise the component's quota and connection limits", "component", 30.0, _raise_limit),
    Mitigation("page_human", "page a human, who finds and fixes the cause", "nothing", HUMAN_DELAY, _page_human),
]}


def mitigate(engine: Engine, name: str, target: object = None, worlds: Worlds = None,
             injector: "Injector | None" = None) -> None:
    """Apply a mitigation now (its effect, not its delay: the runbook waits `takes` before calling this)."""
    if name not in MITIGATIONS:
        raise MitigationError(f"no mitigation '{name}'; known: {', '.join(MITIGATIONS)}")
    MITIGATIONS[name].act(engine, injector, target, worlds)
