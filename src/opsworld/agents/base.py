"""What an agent is: anything with `act(observation) -> action` for the Gymnasium interface, told once per episode
what the world's places and the env's vocabularies are.

An agent class may also define `act_batch(observations) -> actions` ([N, ...] observations, [N, 3] actions) to act
for many worlds at once; the audit and `opsworld eval` use it when present, `act` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from opsworld.act.vocabulary import FAULT_CLASSES, VERBS, WAIT_TICKS
from opsworld.engine.topology import KINDS
from opsworld.observe.dashboard import ALERTS, LOG_SIGNATURES, SIGNALS
from opsworld.spec.loader import service_map


@dataclass
class Context:
    """What the responder knows before the incident: the place and verb vocabularies, the documented service map.

    places: every target, in the action space's order (components first, then nodes, zones, endpoints,
      certificates); kinds: each place's kind (service, cache, datastore, queue, node, zone, endpoint, certificate).
    calls: the documented calls (caller, callee) — the real graph may have more.
    masks: the env's action masks (`verb` [V], `target` [V, T], `argument` [V, G]).
    extra: the inventory an on-call engineer has at hand — `endpoints` (endpoint -> entry service),
      `endpoint_calls` (endpoint -> documented callees of its entry service), `placement` (component -> the node
      of each of its replicas at the start), `zones` and `pools` (node -> zone, node -> pool), `certificates`
      (certificate -> the component serving it).
    """

    places: list[str]
    kinds: list[str]
    components: list[str]
    verbs: tuple[str, ...]
    fault_classes: tuple[str, ...]
    signals: tuple[str, ...]
    alerts: tuple[str, ...]
    log_signatures: tuple[str, ...]
    calls: list[tuple[str, str]]
    masks: dict[str, np.ndarray]
    dt: float
    horizon: float
    extra: dict = field(default_factory=dict)

    def verb(self, name: str) -> int:
        return self.verbs.index(name)

    def place(self, name: str) -> int:
        return self.places.index(name)


@runtime_checkable
class Agent(Protocol):
    """The agent interface: `reset(context)` at the start of each episode, then `act(observation)` every step."""

    def reset(self, context: Context, seed: int = 0) -> None: ...

    def act(self, observation: dict[str, np.ndarray]) -> np.ndarray: ...


def context_of(env) -> Context:
    """The context of an `IncidentVectorEnv` (or `IncidentEnv`)."""
    vec = getattr(env, "vec", env)
    inc = vec.inc
    topo, sc = inc.topology, inc.scenario
    comp_kind = {n: KINDS[int(k)] for n, k in zip(topo.components, topo.kind)}
    zones = set(sc.zones)
    certs = {c.name for c in sc.certificates}

    def kind(name: str) -> str:
        if name in comp_kind:
            return comp_kind[name]
        if name in topo.nodes:
            return "node"
        if name in zones:
            return "zone"
        if name in topo.endpoints:
            return "endpoint"
        return "certificate" if name in certs else "other"

    placement: dict[str, list[str]] = {}         # what `kubectl get pods -o wide` shows at the start
    for s, n, i in zip(topo.replica_component, topo.replica_node, topo.replica_index):
        if i < topo.replicas[s]:
            placement.setdefault(topo.components[int(s)], []).append(topo.nodes[int(n)])
    return Context(places=list(vec.places), kinds=[kind(p) for p in vec.places], components=list(topo.components),
                   verbs=VERBS, fault_classes=FAULT_CLASSES, signals=SIGNALS, alerts=tuple(ALERTS),
                   log_signatures=LOG_SIGNATURES, calls=service_map(sc),
                   masks={k: v.copy() for k, v in vec._masks.items()}, dt=inc.system.dt,
                   horizon=inc.ticks * inc.system.dt,
                   extra={"endpoints": {e.name: e.service for e in sc.traffic.endpoints},
                          "endpoint_calls": {e.name: [d.target for d in e.calls or () if d.documented]
                                             for e in sc.traffic.endpoints},
                          "placement": placement,
                          "zones": {n.name: n.zone for n in sc.nodes},
                          "pools": {n.name: n.pool for n in sc.nodes},
                          "certificates": {c.name: c.component for c in sc.certificates}})


class PerWorld:
    """A helper for agents that keep one small state per world: `act` is `act_batch` on one world, and
    `act_batch` calls `_act_one(world, state, observation)` for each world with its own state (made by `_fresh`).

    Subclasses implement `_fresh(world) -> state` and `_act_one(world, state, obs) -> [3]`; `reset` keeps the
    context and the seed, and drops the states (a new episode)."""

    def __init__(self) -> None:
        self.context: Context | None = None
        self.seed = 0
        self._states: list = []

    def reset(self, context: Context, seed: int = 0) -> None:
        self.context, self.seed = context, int(seed)
        self._states = []
        self._ready()

    def _ready(self) -> None:
        """Called once per reset, after the context is set (precompute what the context implies)."""

    def _fresh(self, world: int):
        return None

    def _act_one(self, world: int, state, obs: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def act(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return self.act_batch({k: np.asarray(v)[None] for k, v in observation.items()})[0]

    def act_batch(self, observations: dict[str, np.ndarray]) -> np.ndarray:
        n = len(observations["clock"])
        while len(self._states) < n:
            self._states.append(self._fresh(len(self._states)))
        out = np.zeros((n, 3), np.int64)
        for b in range(n):
            obs = {k: v[b] for k, v in observations.items()}
            out[b] = self._act_one(b, self._states[b], obs)
        return out

    # ---- building actions --------------------------------------------------------------------------------------------
    def action(self, verb: str, target: str | int = 0, argument: int = 0) -> np.ndarray:
        """[3] the action `verb` on `target` (a place name or index) with argument index `argument`."""
        ctx = self.context
        t = ctx.place(target) if isinstance(target, str) else int(target)
        return np.array([ctx.verb(verb), t, argument], np.int64)

    def wait(self, ticks: int = 1) -> np.ndarray:
        return self.action("wait", 0, WAIT_TICKS.index(ticks) if ticks in WAIT_TICKS else 0)

    def valid(self, verb: str, target: str | int) -> bool:
        ctx = self.context
        t = ctx.place(target) if isinstance(target, str) else int(target)
        v = ctx.verb(verb)
        return bool(ctx.masks["verb"][v]) and bool(ctx.masks["target"][v, t])
