"""What the policy network reads, as arrays any topology fits: a feature row per component, one global row, and per
action target (place) its kind and the components it stands for. numpy only, so that rollout workers and tests need
no torch to build them.

The observation holds only the last query, log read and trace, so the features also carry a `Memory` per world: what
the responder has seen so far this episode (the last value of every signal it queried for every component, the log
lines and traces it read) and what it has done (its verbs, overall and per component). The memory is a function of
the episode's observations and actions alone, so PPO trains on the features as they were when the action was drawn,
with no recurrent state to backpropagate through.

A place is a component, a node, a zone, an endpoint or a certificate (`Context.places`). The policy scores a target
from the embeddings of the components the place stands for (`relation`): a node stands for the components with
replicas on it, a zone for those on its nodes, an endpoint for its entry service, a certificate for the component
serving it. So one network handles any number of services, nodes or endpoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opsworld.agents.base import Context
from opsworld.engine.topology import KINDS
from opsworld.act.vocabulary import VERBS
from opsworld.observe.dashboard import ALERTS, LOG_SIGNATURES, SIGNALS

PLACE_KINDS = (*KINDS, "node", "zone", "endpoint", "certificate", "other")
STATIC = len(KINDS) + 3                 # kind one-hot, entry service, log callers, log callees (documented map)
OBSERVED = len(ALERTS) + 2 + len(SIGNALS) + 2           # alerts, changes, query by signal, logs_of, traces
REMEMBERED = len(SIGNALS) + len(LOG_SIGNATURES) + 1 + len(VERBS)    # last value by signal, logs, traces, verbs done
SERVICE_FEATURES = OBSERVED + STATIC + REMEMBERED
# query_signal, logs, clock; remembered: signals looked at, verbs done
GLOBAL_FEATURES = len(SIGNALS) + len(LOG_SIGNATURES) + 4 + len(SIGNALS) + len(VERBS)


@dataclass(frozen=True)
class Structure:
    """A topology as the policy sees it, fixed for an episode (S components, T places, V verbs, G arguments)."""

    static: np.ndarray          # [S, STATIC] float32: per component what the documented inventory says
    place_kind: np.ndarray      # [T] int64: index into PLACE_KINDS
    relation: np.ndarray        # [T, S] float32: the components each place stands for, rows summing to 1
    verb_mask: np.ndarray       # [V] bool
    target_mask: np.ndarray     # [V, T] bool
    argument_mask: np.ndarray   # [V, G] bool

    @property
    def components(self) -> int:
        return self.static.shape[0]


def structure_of(context: Context) -> Structure:
    """The `Structure` of an env's context (`opsworld.agents.context_of(env)`)."""
    comps = context.components
    S, T = len(comps), len(context.places)
    index = {c: i for i, c in enumerate(comps)}
    static = np.zeros((S, STATIC), np.float32)
    kind_of = dict(zip(context.places, context.kinds))
    for i, c in enumerate(comps):
        static[i, KINDS.index(kind_of[c])] = 1.0
    for entry in context.extra.get("endpoints", {}).values():
        if entry in index:
            static[index[entry], len(KINDS)] = 1.0
    callers, callees = np.zeros(S), np.zeros(S)
    for a, b in context.calls:
        if a in index and b in index:
            callees[index[a]] += 1
            callers[index[b]] += 1
    static[:, len(KINDS) + 1] = np.log1p(callers)
    static[:, len(KINDS) + 2] = np.log1p(callees)

    on_node: dict[str, set[int]] = {}
    for comp, nodes in context.extra.get("placement", {}).items():
        for n in nodes:
            on_node.setdefault(n, set()).add(index[comp])
    in_zone: dict[str, set[int]] = {}
    for node, zone in context.extra.get("zones", {}).items():
        in_zone.setdefault(zone, set()).update(on_node.get(node, ()))
    relation = np.zeros((T, S), np.float32)
    kinds = np.zeros(T, np.int64)
    for t, (place, kind) in enumerate(zip(context.places, context.kinds)):
        kinds[t] = PLACE_KINDS.index(kind if kind in PLACE_KINDS else "other")
        if kind in KINDS:
            members = {index[place]}
        elif kind == "node":
            members = on_node.get(place, set())
        elif kind == "zone":
            members = in_zone.get(place, set())
        elif kind == "endpoint":
            members = {index[c] for c in [context.extra.get("endpoints", {}).get(place)] if c in index}
        elif kind == "certificate":
            members = {index[c] for c in [context.extra.get("certificates", {}).get(place)] if c in index}
        else:
            members = set()
        if members:
            relation[t, sorted(members)] = 1.0 / len(members)
    masks = context.masks
    return Structure(static, kinds, relation, masks["verb"] > 0, masks["target"] > 0, masks["argument"] > 0)


class Memory:
    """What each of W worlds' responder has seen and done this episode (made anew for each episode).

    `observe` every tick with the whole batch's observations (a query's result is remembered even if the responder
    is asked only later); `acted` with the decisions taken."""

    def __init__(self, worlds: int, structure: Structure) -> None:
        W, S, F, L, V = worlds, structure.components, len(SIGNALS), len(LOG_SIGNATURES), len(VERBS)
        self.relation = structure.relation
        self.values = np.zeros((W, S, F), np.float32)      # log1p of the last value seen, per component and signal
        self.looked = np.zeros((W, F), np.float32)         # signals queried at least once
        self.logs = np.zeros((W, S, L), np.float32)        # the most of each kind of log line seen in a component
        self.traces = np.zeros((W, S), np.float32)         # the most a trace pointed at a component (log1p)
        self.done = np.zeros((W, S, V), np.float32)        # verbs done to each component (log1p of the count)
        self.verbs = np.zeros((W, V), np.float32)          # verbs done at all (log1p of the count)

    def observe(self, obs: dict[str, np.ndarray]) -> None:
        signal = obs["query_signal"] > 0                                    # [W, F]
        query = np.log1p(obs["query"])[:, :, None]                          # [W, S, 1]
        np.copyto(self.values, np.broadcast_to(query, self.values.shape), where=signal[:, None, :])
        np.maximum(self.looked, signal, out=self.looked)
        np.maximum(self.logs, obs["logs_of"][:, :, None] * obs["logs"][:, None, :], out=self.logs)
        np.maximum(self.traces, np.log1p(obs["traces"]), out=self.traces)

    def acted(self, worlds: np.ndarray, actions: np.ndarray) -> None:
        """`actions` [n, 3] taken by `worlds` [n] (distinct)."""
        verb, target = actions[:, 0], actions[:, 1]
        counts = np.expm1(self.done[worlds, :, verb]) + self.relation[target]         # [n, S]
        self.done[worlds, :, verb] = np.log1p(counts)
        self.verbs[worlds, verb] = np.log1p(np.expm1(self.verbs[worlds, verb]) + 1.0)


def service_features(obs: dict[str, np.ndarray], structure: Structure, memory: Memory,
                     worlds: np.ndarray) -> np.ndarray:
    """[n, S, SERVICE_FEATURES] float32 for `worlds` [n] of a batch of observations (the vector env's), with their
    memory."""
    alerts = obs["alerts"][worlds]                                   # [n, S, A]
    n, S = alerts.shape[:2]
    query = np.log1p(obs["query"][worlds])[:, :, None] * obs["query_signal"][worlds][:, None, :]   # [n, S, F]
    return np.concatenate([
        alerts, obs["changes"][worlds], query, obs["logs_of"][worlds][:, :, None],
        np.log1p(obs["traces"][worlds])[:, :, None], np.broadcast_to(structure.static, (n, S, STATIC)),
        memory.values[worlds], memory.logs[worlds], memory.traces[worlds][:, :, None], memory.done[worlds]],
        axis=2).astype(np.float32, copy=False)


def global_features(obs: dict[str, np.ndarray], memory: Memory, worlds: np.ndarray) -> np.ndarray:
    """[n, GLOBAL_FEATURES] float32 for `worlds` [n]."""
    return np.concatenate([obs["query_signal"][worlds], obs["logs"][worlds], obs["clock"][worlds],
                           memory.looked[worlds], memory.verbs[worlds]], axis=1).astype(np.float32, copy=False)


def decisions(obs: dict[str, np.ndarray]) -> np.ndarray:
    """[B] bool: whether each world's responder acts on this observation (not busy, not handed over): the env
    ignores the actions of the others, so they teach the policy nothing."""
    return obs["clock"][:, 1] < 0.5
