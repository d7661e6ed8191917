"""The action vocabulary every front end speaks (the gym env, the text tools, the agents, the trainer, the dataset):
the verbs, what each verb's argument means, the one table of places a verb may target, and which targets and
arguments each verb takes in a scenario (its masks).

An action is `[verb, target, argument]`: a verb (`VERBS`), a place (`places`: components, nodes, zones, endpoints,
certificates, in that order) and an argument whose meaning depends on the verb: a signal for `query_metrics`, a wait
level (`WAIT_TICKS`), a silence level (`SILENCE_SECONDS`), a replica level for `scale` (`SCALE_FACTORS`), a rate
level for `rate_limit`, a pool level for `set_pool_size`, a fault class for `submit` (`FAULT_CLASSES`).
"""

from __future__ import annotations

import numpy as np

from opsworld.act.mitigations import MITIGATIONS, MitigationError
from opsworld.engine import Engine
from opsworld.engine.topology import KINDS, Topology
from opsworld.faults.catalogue import FAULT_TYPES
from opsworld.observe.dashboard import SIGNALS
from opsworld.spec import Scenario

VERBS = ("wait", "query_metrics", "read_logs", "get_traces", *MITIGATIONS, "silence_alert", "acknowledge", "submit")
FAULT_CLASSES = tuple(t.kind for t in FAULT_TYPES)      # what `submit` may name (no_fault for a control)
WAIT_TICKS = (1, 3, 6, 30)
SILENCE_SECONDS = (900.0, 3600.0, 14400.0)
SCALE_FACTORS = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0)          # x the scenario's replicas
RATE_FACTORS = (0.5, 0.8, 1.0, 1.2)                     # x the rate the target usually serves
POOL_FACTORS = (0.5, 1.0, 2.0, 4.0)                     # x the scenario's pool size
# G: the widest argument any verb takes
ARGUMENTS = max(len(FAULT_CLASSES), len(SIGNALS), len(WAIT_TICKS), len(SILENCE_SECONDS), len(SCALE_FACTORS))

Masks = dict[str, np.ndarray]     # verb [V], target [V, T], argument [V, G], int8


def places(scenario: Scenario, topology: Topology) -> dict[str, int]:
    """Every nameable place of the scenario (components, nodes, zones, endpoints, certificates) -> column."""
    names = [*topology.components, *topology.nodes, *topology.zones, *topology.endpoints,
             *(c.name for c in scenario.certificates)]
    out: dict[str, int] = {}
    for n in names:
        out.setdefault(n, len(out))
    return out


def masks(engine: Engine, scenario: Scenario, names: list[str]) -> Masks:
    """Which targets and arguments each verb takes (the same in every world of a scenario)."""
    topo = engine.topology
    T, V, G = len(names), len(VERBS), ARGUMENTS
    kinds = {n: KINDS[int(k)] for n, k in zip(topo.components, topo.kind)}
    certificates = {c.name for c in scenario.certificates}
    is_ = {
        "component": np.array([n in kinds for n in names]),
        "node": np.array([n in topo.nodes for n in names]),
        "zone": np.array([n in topo.zones for n in names]),
        "endpoint": np.array([n in topo.endpoints for n in names]),
        "certificate": np.array([n in certificates for n in names]),
    }
    target = np.zeros((V, T), np.int8)
    argument = np.zeros((V, G), np.int8)
    first = np.arange(T) == 0
    for v, name in enumerate(VERBS):
        if name in ("wait",):
            target[v], argument[v, :len(WAIT_TICKS)] = first, 1
        elif name in ("query_metrics",):
            target[v], argument[v, :len(SIGNALS)] = first, 1
        elif name in ("read_logs", "get_traces", "acknowledge"):
            target[v], argument[v, 0] = is_["component"], 1
        elif name == "silence_alert":
            target[v], argument[v, :len(SILENCE_SECONDS)] = is_["component"], 1
        elif name == "submit":
            target[v] = is_["component"] | is_["node"] | is_["zone"] | is_["endpoint"] | is_["certificate"]
            argument[v, :len(FAULT_CLASSES)] = 1
        else:       # a mitigation: the targets it accepts, asked of the mitigation itself
            m = MITIGATIONS[name]
            if m.target == "team":
                target[v] = first
            else:
                target[v] = [_accepts(m, engine, n) for n in names]
            levels = {"scale": len(SCALE_FACTORS), "rate_limit": len(RATE_FACTORS),
                      "set_pool_size": len(POOL_FACTORS)}.get(name, 1)
            argument[v, :levels] = 1
    verb = target.any(axis=1).astype(np.int8)
    if not verb.all():
        argument[verb == 0] = 0
    return {"verb": verb, "target": target, "argument": argument}


def valid(masks: Masks, verb: np.ndarray, target: np.ndarray, arg: np.ndarray) -> np.ndarray:
    """[n] whether each action is in range and allowed by the masks."""
    V, T = masks["target"].shape
    G = masks["argument"].shape[1]
    inside = (verb >= 0) & (verb < V) & (target >= 0) & (target < T) & (arg >= 0) & (arg < G)
    v, t, a = np.where(inside, verb, 0), np.where(inside, target, 0), np.where(inside, arg, 0)
    return inside & (masks["verb"][v] > 0) & (masks["target"][v, t] > 0) & (masks["argument"][v, a] > 0)


def sample_actions(masks: Masks, rng: np.random.Generator, n: int) -> np.ndarray:
    """[n, 3] uniformly random valid actions, drawn for all n worlds at once."""
    def pick(mask: np.ndarray) -> np.ndarray:           # mask [n, K] -> one valid index per row
        keys = rng.random(mask.shape) * mask
        return keys.argmax(axis=1)
    verb = pick(np.broadcast_to(masks["verb"], (n, len(masks["verb"]))))
    target = pick(masks["target"][verb])
    arg = pick(masks["argument"][verb])
    return np.stack([verb, target, arg], axis=1)


def _accepts(m, engine: Engine, place: str) -> bool:
    try:
        m.check(engine, place)
    except MitigationError:
        return False
    return True
