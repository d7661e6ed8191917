"""The runbook's mitigations: what each does to a world, through the engine's knobs, and how long it takes to land.

Most act on the system as an operator would (roll back, restart, scale, drain, renew, rate-limit, open a circuit,
flush or warm a cache). A few remove a cause that lives outside the model's knobs (rotate a credential, fix a clock,
promote a replica, dead-letter a message); those tell the injector that the cause is gone — a cause that is there:
one that has not begun yet is not removed by an order made before it. `page_human` brings in a person (`act.human`)
who looks, and fixes what is wrong then, slowly.

Every mitigation takes a target (what it acts on) and some an amount (how many replicas, requests per second,
connections): None, a number, or an array with one number per selected world. A call is checked whole before it
changes anything: a bad target or amount raises `MitigationError` (one line, naming the choices) and leaves the
worlds as they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from opsworld.engine import Engine
from opsworld.engine.knobs import KnobError, Worlds, resolve_worlds
from opsworld.engine.topology import CONSUME

if TYPE_CHECKING:
    from opsworld.faults.injector import Injector

HUMAN_ARRIVE = 300.0   # seconds for a paged human to get to a keyboard and look
HUMAN_DELAY = 1800.0   # seconds from the page until their fix lands, when they found something wrong
ONCALL = "oncall"        # who the change history says made the runbook's changes
CERT_LIFETIME = 90 * 86400.0

Amount = float | np.ndarray | None
Act = Callable[[Engine, "Injector | None", object, Amount, Worlds], None]


class MitigationError(ValueError):
    """A mitigation that does not exist, a target it cannot act on or an amount it cannot take."""


_UNCHECKED = object()   # `Mitigation.check` without an amount: the target alone is checked


@dataclass(frozen=True)
class Mitigation:
    name: str
    summary: str
    target: str            # the kind of place it acts on: component, datastore, cache, node, zone, certificate,
    #                        endpoint, edge ('caller->callee', or a component: every call into it),
    #                        component_or_endpoint, or team (any name, or none)
    amount: str | None     # what its numeric argument counts (replicas, rps, connections); None: it takes none
    takes: float           # seconds from the order until its effect lands (rollouts then take their own time)
    act: Act               # act(engine, injector, target, amount, worlds): checks everything, then sets knobs
    resolve: Callable[[Engine, object, object], object]   # (engine, target, amounts [W] | None | unchecked): what
    #                        it acts on; raises MitigationError for a target (or amount) it cannot take
    removes: tuple[str, ...] = ()   # the fault kinds whose cause it removes outside the knobs (at its target)

    def check(self, engine: Engine, target: object, amount: object = _UNCHECKED, worlds: Worlds = None) -> None:
        """Raise `MitigationError` where `mitigate` would refuse this call; change nothing. Without `amount`, only the
        target (and worlds) are checked (an order whose amount is decided later)."""
        _rows(engine, worlds)
        if amount is _UNCHECKED:
            self.resolve(engine, target, _UNCHECKED)
            return
        if amount is not None and self.amount is None:
            raise MitigationError(f"{self.name} takes no amount; those that do: "
                                  f"{', '.join(f'{x.name} ({x.amount})' for x in MITIGATIONS.values() if x.amount)}")
        self.resolve(engine, target, _amount(engine, amount, worlds, self.name))


# ---- checking targets and amounts ------------------------------------------------------------------------------------
def _known(names) -> str:
    names = list(names)
    return ", ".join(str(n) for n in names) if names else "none in this scenario"


def _component(engine: Engine, target: object) -> str:
    if not isinstance(target, str) or target not in engine.scenario.components:
        raise MitigationError(f"'{target}' is not a component; known: {_known(engine.scenario.components)}")
    return target


def _of_kind(engine: Engine, target: object, kind: str) -> str:
    comps = engine.scenario.components
    if not isinstance(target, str) or target not in comps or comps[target].kind != kind:
        raise MitigationError(f"'{target}' is not a {kind}; {kind}s: "
                              f"{_known(n for n, c in comps.items() if c.kind == kind)}")
    return target


def _consumer(engine: Engine, target: object) -> str:
    topo = engine.topology
    consumers = [topo.components[int(s)] for s in np.unique(topo.edge_dst[topo.edge_kind == CONSUME])]
    if target not in consumers:
        raise MitigationError(f"'{target}' consumes no queue; consumers: {_known(consumers)}")
    return str(target)


def _node(engine: Engine, target: object) -> str:
    if not isinstance(target, str) or target not in engine.topology.nodes:
        raise MitigationError(f"'{target}' is not a node; known: {_known(engine.topology.nodes)}")
    return target


def _endpoint(engine: Engine, target: object) -> int:
    endpoints = engine.topology.endpoints
    if not isinstance(target, str) or target not in endpoints:
        raise MitigationError(f"'{target}' is not an endpoint; known: {_known(endpoints)}")
    return endpoints.index(target)


def _rows(engine: Engine, worlds: Worlds) -> np.ndarray | slice:
    try:
        return resolve_worlds(worlds, engine.worlds)
    except KnobError as exc:
        raise MitigationError(str(exc)) from None


def _selected(engine: Engine, worlds: Worlds) -> int:
    rows = _rows(engine, worlds)
    return engine.worlds if isinstance(rows, slice) else len(rows)


def _amount(engine: Engine, amount: object, worlds: Worlds, name: str) -> np.ndarray | None:
    """None, or the amount as float64 [W], one per selected world (a number applies to all of them)."""
    if amount is None:
        return None
    W = _selected(engine, worlds)
    raw = np.asarray(amount) if not isinstance(amount, (bool, np.bool_)) else np.asarray(amount, dtype=object)
    if raw.dtype.kind not in "iuf":
        raise MitigationError(f"{name}: the amount must be a number or an array of {W} numbers (one per world), "
                              f"got {type(amount).__name__}")
    if raw.ndim > 1 or (raw.ndim == 1 and raw.shape[0] != W):
        raise MitigationError(f"{name}: the amount has shape {raw.shape} but {W} worlds are selected; give a number "
                              f"or {W} numbers")
    values = np.broadcast_to(raw.astype(np.float64), (W,)).copy()
    if not np.isfinite(values).all():
        raise MitigationError(f"{name}: the amount must be finite, got {type(amount).__name__} with non-finite values")
    return values


def _at_least(name: str, values: object, low: float, unit: str) -> None:
    if isinstance(values, np.ndarray) and (values < low).any():
        raise MitigationError(f"{name}: {unit} must be at least {low:g}, got {float(values.min()):g}")


def _edges_of(engine: Engine) -> list[tuple[str, str]]:
    """Every (caller, callee) call edge; a queue handing messages to its consumer is none."""
    topo = engine.topology
    cached = _EDGES.get(id(topo))
    if cached is not None and cached[0] is topo:
        return list(cached[1])
    edges = sorted({(topo.components[int(a)], topo.components[int(b)])
                   for a, b, k in zip(topo.edge_src, topo.edge_dst, topo.edge_kind) if k != CONSUME})
    if len(_EDGES) > 64:
        _EDGES.clear()
    _EDGES[id(topo)] = (topo, tuple(edges))
    return edges


_EDGES: dict[int, tuple[object, tuple[tuple[str, str], ...]]] = {}   # per topology (held, so its id stays its own)


def _into(engine: Engine, name: str) -> list[tuple[str, str]]:
    return [pair for pair in _edges_of(engine) if pair[1] == name]


def _edge_target(engine: Engine, target: object, name: str) -> list[tuple[str, str]]:
    """'caller->callee' (or a (caller, callee) tuple): that call edge; a component: every call edge into it."""
    edges = _edges_of(engine)
    if isinstance(target, str) and "->" in target:
        target = tuple(part.strip() for part in target.split("->", 1))
    if isinstance(target, tuple) and len(target) == 2:
        caller, callee = (_component(engine, part) for part in target)
        if (caller, callee) not in edges:
            near = [f"{a}->{b}" for a, b in edges if caller in (a, b) or callee in (a, b)]
            raise MitigationError(f"{name}: '{caller}' does not call '{callee}'; edges there: {_known(near)}")
        return [(caller, callee)]
    pairs = _into(engine, _component(engine, target))
    if not pairs:
        raise MitigationError(f"{name}: nothing calls '{target}'; give caller->callee, one of: "
                              f"{_known(f'{a}->{b}' for a, b in edges)}")
    return pairs


# ---- what each mitigation acts on (checked whole, before anything changes) --------------------------------------------
def _any_component(engine: Engine, target: object, values: object) -> str:
    return _component(engine, target)


def _kind(kind: str) -> Callable[[Engine, object, object], str]:
    return lambda engine, target, values: _of_kind(engine, target, kind)


def _scale_target(engine: Engine, target: object, values: object) -> list[str]:
    if target is None:
        if isinstance(values, np.ndarray):
            raise MitigationError(f"scale: a replica count needs a component; known: "
                                  f"{_known(engine.scenario.components)}")
        return list(engine.scenario.components)
    return [_component(engine, target)]


def _certificates(engine: Engine, target: object, values: object) -> list[str]:
    certs = engine.scenario.certificates
    names = [c.name for c in certs if target in (c.name, c.component)]
    if not names:
        raise MitigationError(f"no certificate named or served by '{target}'; known: {_known(c.name for c in certs)}")
    return names


def _zone(engine: Engine, target: object, values: object) -> list[str]:
    nodes = [n.name for n in engine.scenario.nodes if n.zone == target]
    if not nodes:
        raise MitigationError(f"'{target}' is not a zone; known: {_known(engine.topology.zones)}")
    return nodes


def _rate_target(engine: Engine, target: object, values: object) -> tuple[str, str]:
    _at_least("rate_limit", values, 0.0, "rps")
    topo = engine.topology
    if isinstance(target, str) and target in topo.endpoints:
        return "endpoint", target
    if not isinstance(target, str) or target not in engine.scenario.components:
        raise MitigationError(f"rate_limit: '{target}' is neither a component nor an endpoint; components: "
                              f"{_known(engine.scenario.components)}; endpoints: {_known(topo.endpoints)}")
    return "component", target


def _edges(name: str) -> Callable[[Engine, object, object], list[tuple[str, str]]]:
    return lambda engine, target, values: _edge_target(engine, target, name)


def _pools(engine: Engine, name: str) -> list[tuple[str, str]]:
    """The pooled (datastore) edges out of a component."""
    topo = engine.topology
    out = topo.out_slices[topo.index(name)]
    pooled = topo.edge_dst[out][topo.edge_pool[out] > 0]
    return sorted({(name, topo.components[int(b)]) for b in pooled})


def _pool_target(engine: Engine, target: object, values: object) -> list[tuple[str, str]]:
    name = _component(engine, target)
    pairs = _pools(engine, name)
    if not pairs:
        topo = engine.topology
        holders = [topo.components[int(c)] for c in np.unique(topo.edge_src[topo.edge_pool > 0])]
        raise MitigationError(f"set_pool_size: '{name}' holds no connection pool; components with one: "
                              f"{_known(holders)}")
    if values is None:
        raise MitigationError("set_pool_size: give the connections per replica as the amount (at least 1)")
    _at_least("set_pool_size", values, 1.0, "connections")
    return pairs


def _team(engine: Engine, target: object, values: object) -> object:
    if target is not None and not isinstance(target, str):
        raise MitigationError(f"page_human: the target is a team's name or nothing, got {type(target).__name__}")
    return target


# ---- what each does, once checked: effect(engine, injector, what, amounts [W] | None, rows, worlds) -----------------
Effect = Callable[[Engine, "Injector | None", object, "np.ndarray | None", "np.ndarray | slice", Worlds], None]


def _version(knob: str) -> Effect:
    def effect(engine: Engine, injector, name: str, values, rows, worlds: Worlds) -> None:
        spec = engine.scenario.components[name]
        engine.set(knob, getattr(spec, knob), name, worlds, by=ONCALL)   # back to the last version known good
    return effect


def _restart(engine: Engine, injector, name: str, values, rows, worlds: Worlds) -> None:
    engine.set("restart_at", engine.time, name, worlds, by=ONCALL)


def _scale(engine: Engine, injector, names: list[str], values, rows, worlds: Worlds) -> None:
    """Set the desired replicas (double them without an amount), clipped to 1..the most the component may run, and
    move the autoscaler's bounds to hold them."""
    k, topo = engine.knobs, engine.topology
    for name in names:
        s = topo.index(name)
        now = k.replicas[s][rows]
        if values is None:
            want = np.minimum(np.maximum(2 * now, topo.replicas[s]), topo.max_replicas[s])
        else:
            want = np.clip(np.rint(values), 1, topo.max_replicas[s]).astype(np.int64)
        up = want >= now      # scaling up: the autoscaler may not go below; down: it may not go above
        low = np.where(up, np.maximum(k.scale_min[s][rows], want), np.minimum(k.scale_min[s][rows], want))
        high = np.where(up, np.maximum(k.scale_max[s][rows], want), want)
        engine.set("replicas", want, name, worlds, by=ONCALL)
        engine.set("scale_min", low, name, worlds, by=ONCALL)
        engine.set("scale_max", high, name, worlds, by=ONCALL)


def _renew(engine: Engine, injector, names: list[str], values, rows, worlds: Worlds) -> None:
    for name in names:
        engine.set("cert_not_after", engine.scenario.traffic.start + engine.time + CERT_LIFETIME, name, worlds,
                   by=ONCALL)


def _drain(engine: Engine, injector, nodes: str | list[str], values, rows, worlds: Worlds) -> None:
    for node in [nodes] if isinstance(nodes, str) else nodes:
        engine.set("drained", True, node, worlds, by=ONCALL)


def _rate_limit(engine: Engine, injector, what: tuple[str, str], values, rows, worlds: Worlds) -> None:
    """A component: admit at most `rps` (without one, what its replicas can serve with headroom, a CPU-bound
    estimate); the rest are refused. An endpoint: admit at most `rps` of its offered traffic (without one, its normal
    rate). The endpoint's limit is a multiplier on its normal rate, taken at the tick the order lands
    (`engine.rates`, which follows the day's curve): it admits `rps` then and moves with the daily curve after, and
    never loosens a limit already there. Whoever arrives above it is refused at the door: users as well as any
    flooding client, and a refused user is a failed one."""
    kind, name = what
    topo = engine.topology
    if kind == "endpoint":
        p = topo.endpoints.index(name)
        normal = float(engine.rates[min(engine.tick, len(engine.rates) - 1)][p])
        share = np.ones(1) if values is None else values / max(normal, 1e-9)
        engine.set("admit", np.minimum(engine.knobs.admit[p][rows], share), name, worlds, by=ONCALL)
        return
    s = topo.index(name)
    if values is None:
        values = 0.8 * engine.knobs.replicas[s][rows] * topo.cpu[s] / max(topo.service_mean[s], 1e-6)
    engine.set("rate_limit", values, name, worlds, by=ONCALL)


def _block_client(engine: Engine, injector, name: str, values, rows, worlds: Worlds) -> None:
    """Block the one client source sending far more than its share (there is none to block in a crowd of users)."""
    engine.set("flood", 0.0, name, worlds, by=ONCALL)


def _on_edges(knob: str, value: object) -> Effect:
    def effect(engine: Engine, injector, pairs: list[tuple[str, str]], values, rows, worlds: Worlds) -> None:
        for pair in pairs:
            engine.set(knob, value, pair, worlds, by=ONCALL)
    return effect


def _set_pool_size(engine: Engine, injector, pairs: list[tuple[str, str]], values, rows, worlds: Worlds) -> None:
    for pair in pairs:
        engine.set("pool_size", np.rint(values), pair, worlds, by=ONCALL)


def _raise_limit(engine: Engine, injector, name: str, values, rows, worlds: Worlds) -> None:
    topo = engine.topology
    raised = []
    for pair in _into(engine, name):
        edges = np.flatnonzero((topo.edge_src == topo.index(pair[0])) & (topo.edge_dst == topo.index(name)))
        spec = topo.edge_pool[edges].max()
        if spec > 0:
            raised.append((pair, np.maximum(engine.knobs.pool_size[edges[0]][rows], spec)))
    engine.set("rate_limit", np.inf, name, worlds, by=ONCALL)
    for pair, size in raised:
        engine.set("pool_size", size, pair, worlds, by=ONCALL)


def _flush_cache(engine: Engine, injector, name: str, values, rows, worlds: Worlds) -> None:
    """Kill the cache's replicas at once: they come back empty and warm up again as lookups fill them."""
    engine.set("kill_at", engine.time, name, worlds, by=ONCALL)


def _warm_cache(engine: Engine, injector, name: str, values, rows, worlds: Worlds) -> None:
    """Pre-load the hot keys: the cache's running replicas count as full from now (until they next restart)."""
    engine.replicas.warm(np.array([engine.topology.index(name)]), rows, engine.time)


def removed_by(kinds: tuple[str, ...], target: object) -> Callable[[object], bool]:
    """Which faults a mitigation removing causes of `kinds` at `target` removes (for a call's fault: at either end)."""
    return lambda f: f.kind in kinds and target in (f.target, getattr(f, "caller", None))


def _removes(*kinds: str) -> Effect:
    """A mitigation that removes a cause outside the knobs: faults of these kinds at this target that have begun are
    repaired."""
    def effect(engine: Engine, injector, target: str, values, rows, worlds: Worlds) -> None:
        if injector is not None:
            injector.repair(worlds, removed_by(kinds, target))
    effect.removes = kinds        # type: ignore[attr-defined]
    return effect


def _page_human(engine: Engine, injector, team: object, values, rows, worlds: Worlds) -> None:
    """A paged human's fix landing (a team, any name, or whoever is on call: None): they repair what was wrong when
    they looked, `HUMAN_DELAY - HUMAN_ARRIVE` ago, and nothing that began since. (Whether they stayed to fix it at
    all is theirs to decide when they look: `act.human.Humans`.)"""
    if injector is not None:
        injector.repair(worlds, begun_by=engine.time - (HUMAN_DELAY - HUMAN_ARRIVE))


def _m(name: str, summary: str, target: str, amount: str | None, takes: float,
       resolve: Callable[[Engine, object, object], object], effect: Effect) -> Mitigation:
    def act(engine: Engine, injector, target_: object, amount_: Amount, worlds: Worlds) -> None:
        rows = _rows(engine, worlds)
        values = _amount(engine, amount_, worlds, name) if amount is not None else None
        what = resolve(engine, target_, values)          # raises before anything changes
        effect(engine, injector, what, values, rows, worlds)
    return Mitigation(name, summary, target, amount, takes, act, resolve, getattr(effect, "removes", ()))


MITIGATIONS: dict[str, Mitigation] = {m.name: m for m in [
    _m("rollback_deploy", "roll the component back to its last good deploy (replicas replaced one by one)",
       "component", None, 30.0, _any_component, _version("deploy")),
    _m("rollback_config", "push the component's last good config", "component", None, 30.0, _any_component,
       _version("config")),
    _m("restart", "rolling restart of the component's replicas", "component", None, 10.0, _any_component, _restart),
    _m("scale", "set the component's replicas (double them without a count; every component's without a target), "
       "moving the autoscaler's bounds to hold them", "component", "replicas", 10.0, _scale_target, _scale),
    _m("renew_cert", "issue and install a new certificate", "certificate", None, 60.0, _certificates, _renew),
    _m("rotate_credentials", "issue the component new credentials", "component", None, 60.0, _any_component,
       _removes("expired_credentials")),
    _m("drain_node", "cordon and drain a node: its replicas start elsewhere", "node", None, 10.0,
       lambda e, t, v: _node(e, t), _drain),
    _m("reroute_zone", "drain every node of a zone", "zone", None, 10.0, _zone, _drain),
    _m("failover_db", "promote a healthy replica of a datastore and send reads and writes to it", "datastore", None,
       30.0, _kind("datastore"), _removes("primary_failure", "replication_lag")),
    _m("sync_clock", "resynchronise a node's clock", "node", None, 30.0, lambda e, t, v: _node(e, t),
       _removes("clock_skew")),
    _m("dead_letter", "move the message a consumer cannot handle to the dead-letter queue", "component", None, 30.0,
       lambda e, t, v: _consumer(e, t), _removes("poison_message")),
    _m("rate_limit", "admit at most this many requests per second into a component or at an endpoint (without a "
       "number: what the component's replicas can serve, or the endpoint's normal rate)", "component_or_endpoint",
       "rps", 10.0, _rate_target, _rate_limit),
    _m("block_client", "block the client source flooding an endpoint", "endpoint", None, 10.0,
       lambda e, t, v: e.topology.endpoints[_endpoint(e, t)], _block_client),
    _m("disable_retries", "turn off retries on a call edge (caller->callee) or every call into a component",
       "edge", None, 30.0, _edges("disable_retries"), _on_edges("retries", 0)),
    _m("open_circuit", "hold the circuit open on a call edge (caller->callee) or every call into a component: calls "
       "fail fast and the callee sees none", "edge", None, 10.0, _edges("open_circuit"),
       _on_edges("breaker_open", True)),
    _m("set_pool_size", "set the connections per replica of the component's datastore pools", "component",
       "connections", 30.0, _pool_target, _set_pool_size),
    _m("raise_limit", "raise the component's quota and connection limits", "component", None, 30.0, _any_component,
       _raise_limit),
    _m("flush_cache", "flush a cache: its replicas restart empty and warm up again", "cache", None, 10.0,
       _kind("cache"), _flush_cache),
    _m("warm_cache", "pre-load a cache's hot keys: its running replicas are full at once", "cache", None, 60.0,
       _kind("cache"), _warm_cache),
    _m("page_human", "page a human (a team, or whoever is on call): they look within minutes, and if something is "
       "wrong they stay and fix it (half an hour from the page); their time costs", "team", None, HUMAN_DELAY, _team,
       _page_human),
]}


def mitigate(engine: Engine, name: str, target: object = None, amount: Amount = None, worlds: Worlds = None,
             injector: "Injector | None" = None) -> None:
    """Apply a mitigation now (its effect, not its delay: the runbook waits `takes` before calling this).

    `amount` is None, a number, or an array with one number per world that `worlds` selects (None: all). Everything
    is checked before anything changes: a bad name, target, amount or world selection raises `MitigationError`.
    """
    if name not in MITIGATIONS:
        raise MitigationError(f"no mitigation '{name}'; known: {', '.join(MITIGATIONS)}")
    m = MITIGATIONS[name]
    m.check(engine, target, amount, worlds)
    m.act(engine, injector, target, amount, worlds)
